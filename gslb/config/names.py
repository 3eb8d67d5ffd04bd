"""Domain names as the config writes them → absolute, lower-case, trailing dot.

Three spellings appear in zone files and each has its own rule:
- owners (record and service keys): "@" is the apex, a trailing dot means
  absolute (and must be inside the zone), anything else is relative to the zone;
- names inside rdata and CNAME targets: "@" is the apex, a trailing dot means
  absolute, a single label is relative to the zone, several labels are absolute;
- names that are always absolute (SOA mname/rname, NS, service names in region
  files): the trailing dot is optional.
"""

from __future__ import annotations

import re

MAX_NAME_OCTETS = 255
MAX_LABEL_OCTETS = 63
_LABEL = re.compile(r"^[a-z0-9_][a-z0-9_-]*$")


class BadName(ValueError):
    """A name that cannot be used; str() is the message for the user."""


def absolute(text: str) -> str:
    """An absolute name, trailing dot optional in `text`."""
    name = text.strip().lower()
    if name in ("", "."):
        if name == ".":
            return "."
        raise BadName("empty name")
    if name.endswith("."):
        name = name[:-1]
    labels = name.split(".")
    _check_labels(labels, text)
    return name + "."


def plain(name: str) -> str:
    """An absolute name as people read it, without the trailing dot (the root stays ".").

    The one spelling of a service name outside DNS messages: region files write it so,
    and `/v1/status`, the admin API's answers and the metric labels show it so.
    """
    return name[:-1] if name.endswith(".") and name != "." else name


def owner(text: str, origin: str) -> str:
    """An owner name in zone `origin`: "@", relative, or absolute inside the zone."""
    spelled = text.strip()
    if spelled == "@":
        return origin
    if spelled.endswith("."):
        name = absolute(spelled)
        if not is_inside(name, origin):
            raise BadName(f"{name} is outside the zone {origin}")
        return name
    return absolute(f"{spelled}.{origin}")


def in_rdata(text: str, origin: str) -> str:
    """A name inside rdata: "@", absolute with a dot, one label relative, else absolute."""
    spelled = text.strip()
    if spelled == "@":
        return origin
    if spelled.endswith(".") or "." in spelled:
        return absolute(spelled)
    return absolute(f"{spelled}.{origin}")


def mailbox(text: str) -> str:
    """SOA rname: a name, or an email address (hostmaster@example.com → hostmaster.example.com.)."""
    spelled = text.strip()
    if "@" not in spelled:
        return absolute(spelled)
    local, _, domain = spelled.rpartition("@")
    if not local or any(c.isspace() or c in '\\"()' for c in local):
        raise BadName(f"bad mailbox {text!r}")
    if len(local.encode()) > MAX_LABEL_OCTETS:
        raise BadName(f"mailbox name {local!r} is longer than {MAX_LABEL_OCTETS} octets")
    rest = absolute(domain)
    if len(local) + 1 + _wire_length(rest) > MAX_NAME_OCTETS:
        raise BadName(f"{text!r} is longer than {MAX_NAME_OCTETS} octets")
    # A dot inside the local part is escaped so it stays one label (RFC 1035 §8).
    return local.lower().replace(".", "\\.") + "." + rest


def is_inside(name: str, origin: str) -> bool:
    """True when `name` is `origin` or below it (both absolute)."""
    return origin == "." or name == origin or name.endswith("." + origin)


def _wire_length(name: str) -> int:
    if name == ".":
        return 1
    return sum(len(label) + 1 for label in name[:-1].split(".")) + 1


def _check_labels(labels: list[str], text: str) -> None:
    for label in labels:
        if not label:
            raise BadName(f"{text!r} has an empty label")
        if not label.isascii():
            raise BadName(f"{text!r} is not ASCII; write it in its xn-- (punycode) form")
        if len(label) > MAX_LABEL_OCTETS:
            raise BadName(f"label {label!r} is longer than {MAX_LABEL_OCTETS} octets")
        if not _LABEL.match(label):
            raise BadName(
                f"{text!r}: label {label!r} may only hold letters, digits, '-' and '_'"
                " and must not start with '-'"
            )
    if sum(len(label) + 1 for label in labels) + 1 > MAX_NAME_OCTETS:
        raise BadName(f"{text!r} is longer than {MAX_NAME_OCTETS} octets")
