"""The pure selection pipeline of DESIGN.md: one function decides every answer."""

from gslb.select.classify import DecisionKey, Fixed, Question, RankingMemo, Steered, classify
from gslb.select.client import UNKNOWN_CLIENT, Client
from gslb.select.decide import decide
from gslb.select.decision import (
    FORMERR,
    NOERROR,
    NOTIMP,
    NXDOMAIN,
    REFUSED,
    SERVFAIL,
    Decision,
    Steering,
    Step,
)
from gslb.select.resolve import select

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
    "DecisionKey",
    "Fixed",
    "Question",
    "RankingMemo",
    "Steered",
    "Steering",
    "Step",
    "classify",
    "decide",
    "select",
]
