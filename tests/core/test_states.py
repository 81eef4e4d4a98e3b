"""The process state machine: every legal edge is allowed, every other one is refused."""

from __future__ import annotations

import itertools

import pytest

from agent.core.states import EDGES, ProcessState, check_edge
from agent.errors import IllegalTransition

S = ProcessState

LEGAL = [
    (S.STOPPED, S.STARTING),
    (S.STARTING, S.RUNNING),
    (S.STARTING, S.BACKOFF),
    (S.STARTING, S.STOPPING),
    (S.STARTING, S.EXITED),
    (S.STARTING, S.FATAL),
    (S.RUNNING, S.BACKOFF),
    (S.RUNNING, S.EXITED),
    (S.RUNNING, S.STOPPING),
    (S.RUNNING, S.FATAL),
    (S.BACKOFF, S.STARTING),
    (S.BACKOFF, S.STOPPED),
    (S.BACKOFF, S.FATAL),
    (S.STOPPING, S.STOPPED),
    (S.EXITED, S.STARTING),
    (S.EXITED, S.STOPPED),
    (S.FATAL, S.STARTING),
    (S.FATAL, S.STOPPED),
]
ILLEGAL = [pair for pair in itertools.product(S, S) if pair not in LEGAL]


def test_the_edge_table_is_exactly_the_documented_one() -> None:
    table = {(old, new) for old, targets in EDGES.items() for new in targets}
    assert table == set(LEGAL)


@pytest.mark.parametrize(("old", "new"), LEGAL, ids=[f"{a.name}->{b.name}" for a, b in LEGAL])
def test_legal_edge_is_allowed(old: ProcessState, new: ProcessState) -> None:
    check_edge("ingest", old, new)


@pytest.mark.parametrize(("old", "new"), ILLEGAL, ids=[f"{a.name}->{b.name}" for a, b in ILLEGAL])
def test_illegal_edge_raises_a_named_error(old: ProcessState, new: ProcessState) -> None:
    with pytest.raises(IllegalTransition) as err:
        check_edge("target youtube", old, new)
    assert f"from {old.name} to {new.name}" in str(err.value)
    assert "target youtube" in str(err.value)


def test_active_states_are_the_ones_with_a_child_or_a_pending_start() -> None:
    assert {s for s in S if s.is_active} == {S.STARTING, S.RUNNING, S.BACKOFF}
