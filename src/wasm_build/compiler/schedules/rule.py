"""What every schedule rule is, and how one is tried on a block without risk."""

from __future__ import annotations

import abc
import logging

from tvm import s_tir
from tvm.s_tir.schedule import SBlockRV, ScheduleError

logger = logging.getLogger(__name__)


class Rule(abc.ABC):
    """Reschedules one kind of block, recognised by its structure (iterators, reads, writes).

    Unlike dlight's `ScheduleRule`, which takes a whole PrimFunc, a rule sees one root block
    at a time: a fused kernel often holds several blocks that different rules speed up.
    """

    name: str

    @abc.abstractmethod
    def apply(self, sch: s_tir.Schedule, block: SBlockRV) -> bool:
        """Reschedule ``block`` in ``sch``; False when the rule does not apply to it.

        A rule may change ``sch`` and still return False or raise: `attempt` runs it on a
        copy, kept only when it returns True."""


def attempt(sch: s_tir.Schedule, rule: Rule, block_name: str) -> s_tir.Schedule | None:
    """Run ``rule`` on a copy of ``sch``; the copy if the rule applied, else None."""
    candidate = sch.copy()
    try:
        block = candidate.get_sblock(block_name)
    except ScheduleError:
        return None  # inlined by an earlier rule
    try:
        if rule.apply(candidate, block):
            return candidate
    except Exception as err:  # pylint: disable=broad-except
        # A primitive refused the transformation: keep the previous state.
        logger.debug("%s on block %s skipped: %s", rule.name, block_name, err)
    return None
