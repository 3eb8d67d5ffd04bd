"""`select()`: the one pure function that decides every answer.

For a question (name, type) from a client, over one plan and one state snapshot,
it returns a `Decision`: rcode, the RRsets of each section, the ECS scope, and
(when asked) the trace that `gslb explain` prints. No I/O, no clock; the
randomness of weighted choices comes in as a `random.Random`.

It is `decide(classify(...))`: what the answer depends on (gslb/select/classify.py),
then the state applied to it (gslb/select/decide.py); callers that keep decision keys
call the two themselves.
"""

from __future__ import annotations

import random
from dataclasses import replace

from gslb.plan import Plan
from gslb.select.classify import Question, RankingMemo, classify
from gslb.select.client import Client
from gslb.select.decide import decide
from gslb.select.decision import Decision, Trace
from gslb.state import State


def select(
    plan: Plan,
    state: State,
    qname: str,
    qtype: int,
    client: Client,
    rng: random.Random,
    explain: bool = False,
    memo: RankingMemo | None = None,
) -> Decision:
    """Decide the answer to (qname, qtype); `qname` is absolute and lower case.

    `memo` keeps geo rankings across calls (see gslb/select/classify.py).
    """
    if not explain:
        return decide(plan, state, classify(plan, Question(qname, qtype), client, memo), rng)
    trace = Trace(True)
    key = classify(plan, Question(qname, qtype), client, memo, trace)
    return replace(decide(plan, state, key, rng, trace), trace=tuple(trace.steps))
