"""The Emperor's own event loop, on real fds, timers and signals."""

from __future__ import annotations

import os
import signal
import socket

from toolkit.emperor.loop import Loop


def test_timers_fire_in_order_and_cancelled_ones_do_not() -> None:
    loop = Loop()
    fired: list[str] = []
    loop.call_later(0.02, lambda: fired.append("second"))
    loop.call_later(0.01, lambda: fired.append("first"))
    loop.call_later(0.015, lambda: fired.append("cancelled")).cancel()
    loop.call_later(0.03, loop.stop)
    loop.run()
    loop.close()
    assert fired == ["first", "second"]


def test_a_reader_removed_by_an_earlier_callback_in_the_same_turn_is_not_called() -> None:
    loop = Loop()
    one, two = socket.socketpair(), socket.socketpair()
    called: list[str] = []

    def first() -> None:
        called.append("first")
        loop.remove_reader(two[0].fileno())
        loop.remove_reader(one[0].fileno())

    def second() -> None:
        called.append("second")
        loop.remove_reader(one[0].fileno())
        loop.remove_reader(two[0].fileno())

    loop.add_reader(one[0].fileno(), first)
    loop.add_reader(two[0].fileno(), second)
    one[1].send(b"x")
    two[1].send(b"x")
    loop.call_later(0.05, loop.stop)
    loop.run()
    loop.close()
    assert len(called) == 1
    for pair in (one, two):
        for end in pair:
            end.close()


def test_a_signal_runs_its_handler_from_the_loop_and_stop_before_run_returns_at_once() -> None:
    loop = Loop()
    came: list[bool] = []

    def handle() -> None:
        came.append(True)
        loop.stop()

    loop.add_signal_handler(signal.SIGUSR1, handle)
    loop.call_later(0.01, lambda: os.kill(os.getpid(), signal.SIGUSR1))
    loop.call_later(5, loop.stop)
    loop.run()
    loop.close()
    assert came == [True]
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL
    early = Loop()
    early.stop()
    early.run()
    early.close()


def test_a_failing_callback_is_reported_and_the_loop_goes_on(capsys: object) -> None:
    loop = Loop()
    after: list[bool] = []
    loop.call_later(0.0, lambda: 1 / 0)  # type: ignore[func-returns-value]
    loop.call_later(0.01, lambda: after.append(True))
    loop.call_later(0.02, loop.stop)
    loop.run()
    loop.close()
    assert after == [True]
    assert "internal error" in capsys.readouterr().err  # type: ignore[attr-defined]
