"""Bearer-token authentication shared by the admin API of `gslb serve` and of `gslb proxy`.

The token comes from the environment variable named by `ServerSettings.token_env`, or else
from the file `ServerSettings.token_file`. No token configured means every mutation is refused:
an admin API that anyone can drive is never the silent default.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from gslb.model import ServerSettings

_SCHEME = "bearer "


def find_token(settings: ServerSettings, environ: Mapping[str, str]) -> tuple[str, str] | None:
    """(the configured admin token, stripped; where it came from, for the log: "environment
    variable NAME" or "file PATH", never the token); None when none is set (or it is empty)."""
    value = environ.get(settings.token_env, "").strip() if settings.token_env else ""
    if value:
        return value, f"environment variable {settings.token_env}"
    if settings.token_file:
        try:
            with open(settings.token_file, encoding="utf-8") as f:
                value = f.read().strip()
        except OSError:
            return None
        return (value, f"file {settings.token_file}") if value else None
    return None


def load_token(settings: ServerSettings, environ: Mapping[str, str]) -> str | None:
    """The configured admin token, stripped; None when none is set (or it is empty)."""
    found = find_token(settings, environ)
    return None if found is None else found[0]


def bearer_ok(header_value: str | None, token: str | None) -> bool:
    """True when `header_value` is `Bearer <token>`; compared in constant time."""
    if not token or not header_value:
        return False
    if header_value[: len(_SCHEME)].lower() != _SCHEME:
        return False
    offered = header_value[len(_SCHEME) :].strip()
    return hmac.compare_digest(offered.encode("utf-8"), token.encode("utf-8"))
