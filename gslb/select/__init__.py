"""The pure selection pipeline of DESIGN.md: one function decides every answer."""

from gslb.select.client import UNKNOWN_CLIENT, Client
from gslb.select.resolve import (
    FORMERR,
    NOERROR,
    NOTIMP,
    NXDOMAIN,
    REFUSED,
    SERVFAIL,
    Decision,
    Steering,
    Step,
    select,
)

__all__ = [
    "FORMERR",
    "NOERROR",
    "NOTIMP",
    "NXDOMAIN",
    "REFUSED",
    "SERVFAIL",
    "UNKNOWN_CLIENT",
    "Client",
    "Decision",
    "Steering",
    "Step",
    "select",
]
