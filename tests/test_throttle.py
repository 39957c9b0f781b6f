"""The respawn policy, with a fake clock: backoff grows for a crash loop, throttles, resets."""

from __future__ import annotations

from toolkit.emperor.throttle import Throttle


def test_first_exit_respawns_at_once_then_backoff_doubles_then_throttles() -> None:
    throttle = Throttle(max_spawns=5, window=30, first_delay=0.25, max_delay=10)
    assert [throttle.record_exit(t) for t in (0, 1, 2, 3)] == [0.0, 0.25, 0.5, 1.0]
    assert throttle.record_exit(4) is None


def test_backoff_is_capped() -> None:
    throttle = Throttle(max_spawns=100, window=1000, first_delay=1, max_delay=4)
    delays = [throttle.record_exit(t) for t in range(8)]
    assert delays == [0.0, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]


def test_exits_older_than_the_window_are_forgotten() -> None:
    throttle = Throttle(max_spawns=3, window=10)
    assert throttle.record_exit(0) == 0.0
    assert throttle.record_exit(1) == 0.25
    assert throttle.record_exit(20) == 0.0
    assert throttle.record_exit(21) == 0.25


def test_a_vassal_that_was_serving_respawns_at_once_and_starts_the_count_again() -> None:
    throttle = Throttle(max_spawns=3, window=30, stable_after=1.0)
    assert [throttle.record_exit(t, served_for=5) for t in range(10)] == [0.0] * 10
    assert throttle.record_exit(10, served_for=0.2) == 0.25
    assert throttle.record_exit(11, served_for=0.2) is None


def test_clear_forgets_every_exit() -> None:
    throttle = Throttle(max_spawns=2)
    throttle.record_exit(0)
    throttle.clear()
    assert throttle.record_exit(1) == 0.0
