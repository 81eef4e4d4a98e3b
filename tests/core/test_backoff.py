"""The restart schedule: exponential, jittered, capped, and reset by a stable run."""

from __future__ import annotations

import pytest

from agent.core.backoff import BackoffPolicy


def test_first_retry_waits_about_a_second_and_doubles_up_to_the_cap() -> None:
    policy = BackoffPolicy()
    assert [policy.base_delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


@pytest.mark.parametrize(
    ("rand", "expected"),
    [
        pytest.param(0.0, 3.6, id="lowest-jitter"),
        pytest.param(0.5, 4.0, id="no-jitter"),
        pytest.param(1.0, 4.4, id="highest-jitter"),
    ],
)
def test_jitter_spreads_the_delay_by_the_configured_fraction(rand: float, expected: float) -> None:
    policy = BackoffPolicy(jitter=0.1)
    assert policy.delay(3, lambda: rand) == pytest.approx(expected)


def test_jitter_never_pushes_a_delay_past_the_cap() -> None:
    policy = BackoffPolicy(cap=30, jitter=0.5)
    assert policy.delay(20, lambda: 1.0) == 30


def test_configured_schedule_is_followed() -> None:
    policy = BackoffPolicy(initial=0.5, factor=3, cap=10, jitter=0)
    assert [policy.delay(n) for n in range(1, 5)] == [0.5, 1.5, 4.5, 10]


def test_huge_attempt_counts_do_not_overflow() -> None:
    assert BackoffPolicy().base_delay(10_000) == 30


def test_a_run_counts_as_stable_after_reset_after_seconds() -> None:
    policy = BackoffPolicy(reset_after=30)
    assert not policy.is_stable(29.9)
    assert policy.is_stable(30)


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"initial": 0}, id="zero-initial"),
        pytest.param({"factor": 0.5}, id="shrinking"),
        pytest.param({"cap": 0.1}, id="cap-below-initial"),
        pytest.param({"jitter": 1.0}, id="jitter-too-big"),
    ],
)
def test_nonsense_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)
