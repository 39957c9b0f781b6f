"""The vassal state machine, driven with a fake clock and a fake uwsgi: scripted histories
(each a story a user would recognise), every transition of the table taken, and random
histories that keep the invariants. The real-uwsgi tests (test_emperor.py) stay for what
users see; these run in milliseconds."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.fakes import KILL_LATENCY, FakeChild, FakeClock, FakeProber, FakeSpawner
from toolkit.emperor.config import VassalConfig, file_stamp
from toolkit.emperor.events import Event, Kind
from toolkit.emperor.health import Health, Rotation
from toolkit.emperor.listeners import Listeners
from toolkit.emperor.machine import (
    GRACEFUL_ACK_BOUND,
    IDLE_STOP,
    NUDGE_EVERY,
    SERVING,
    TABLE,
    WITH_CHILD,
    On,
    State,
)
from toolkit.emperor.options import EmperorOptions
from toolkit.emperor.protocol import FromVassal, ToVassal
from toolkit.emperor.vassal import CONFIG_READ_LINE, GRACEFUL_STOP_LINE, Vassal

STARTING_LINE = CONFIG_READ_LINE + b"2.0.31 (64bit) on [Tue Nov 24 10:00:00 2026] ***"
Move = tuple[State, On, State]


class Rig:
    """One vassal, its config file on disk, a fake clock and a fake uwsgi."""

    def __init__(
        self,
        folder: Path,
        *,
        workers: bool = True,
        sockets: tuple[str, ...] = (),
        stop_timeout: float = 5.0,
        moves: set[Move] | None = None,
        after: Vassal | None = None,
        clock: FakeClock | None = None,
        spawner: FakeSpawner | None = None,
        health: Health | None = None,
    ) -> None:
        self.path = folder / "web.ini"
        self.health = health
        self.withdrawals: list[str] = []
        self.prober = FakeProber()
        self.version = 0
        self.workers = workers
        self.sockets = sockets
        self.write()
        self.clock = clock or FakeClock()
        self.spawner = spawner or FakeSpawner(self.clock)
        self.events: list[Event] = []
        self.moves = moves if moves is not None else set()
        self.vassal = Vassal(
            self.config(),
            spawner=self.spawner,
            timers=self.clock,
            publish=self.events.append,
            options=EmperorOptions(stop_timeout=stop_timeout),
            listeners=Listeners() if sockets else None,
            after=after,
            prober=self.prober,
        )
        self._record(self.vassal)

    def _record(self, vassal: Vassal) -> None:
        machine = vassal.machine
        handle = machine.handle

        def recorded(event: object) -> list[object]:
            machine.last_move = None
            actions = handle(event)  # type: ignore[arg-type]
            if machine.last_move is not None:
                self.moves.add(machine.last_move)
            return actions  # type: ignore[return-value]

        machine.handle = recorded  # type: ignore[method-assign]

    def write(self, sockets: tuple[str, ...] | None = None) -> None:
        """A new version of the file, with a stamp no earlier version had."""
        self.version += 1
        if sockets is not None:
            self.sockets = sockets
        self.path.write_text(f"[uwsgi]\n; version {self.version}\n")
        moment = 10**18 + self.version * 10**6
        os.utime(self.path, ns=(moment, moment))

    def config(self) -> VassalConfig:
        stamp = file_stamp(self.path.stat())
        rotation = RecordedRotation(self.withdrawals) if self.health else None
        return VassalConfig(
            "web",
            self.path,
            f"v{self.version}",
            stamp,
            self.workers,
            tuple(self.sockets),
            self.health,
            rotation,
        )

    def edit(self, sockets: tuple[str, ...] | None = None) -> None:
        """The file changes and the Emperor, having read it, tells the vassal."""
        self.write(sockets)
        self.vassal.reload(self.config(), "config changed")

    @property
    def state(self) -> State:
        return self.vassal.state

    @property
    def child(self) -> FakeChild:
        child = self.spawner.child("web")
        assert child is not None, f"no live child in state {self.state}"
        return child

    def replace(self) -> None:
        """A new vassal for the same config, after this one (as the Emperor does)."""
        old = self.vassal
        self.vassal = Vassal(
            old.config,
            spawner=self.spawner,
            timers=self.clock,
            publish=self.events.append,
            options=old.machine.options,
            listeners=old.listeners,
            after=old,
        )
        self._record(self.vassal)
        self.vassal.start()

    def start(self) -> Rig:
        self.vassal.start()
        return self

    def serve(self) -> Rig:
        """Start it and bring it to READY, as uWSGI does: read, master up, accepting."""
        self.start()
        self.child.print(STARTING_LINE)
        self.child.say(FromVassal.SPAWNED)
        self.child.say(FromVassal.ACCEPTING)
        assert self.state is State.READY
        return self

    def texts(self, kind: Kind) -> list[str]:
        return [e.text for e in self.events if e.kind is kind]

    def kinds(self) -> list[Kind]:
        return [e.kind for e in self.events if e.kind is not Kind.OUTPUT]

    def crash(self, code: int = 1) -> None:
        self.child.exit(code)


class RecordedRotation(Rotation):
    """A rotation that notes what it was told instead of writing to a FIFO."""

    def __init__(self, record: list[str]) -> None:
        super().__init__(None, ())
        object.__setattr__(self, "record", record)

    def withdraw(self) -> None:
        self.record.append("withdraw")  # type: ignore[attr-defined]

    def toggle(self) -> None:
        self.record.append("toggle")  # type: ignore[attr-defined]


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


# Scripted histories. Each takes a folder and the set that collects the moves it made.


def starts_serves_and_turns_loyal(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, moves=moves).start()
    assert rig.state is State.STARTING and rig.texts(Kind.SPAWNED)
    rig.clock.advance(0.04)
    rig.child.print(STARTING_LINE)
    rig.child.say(FromVassal.SPAWNED)
    assert rig.state is State.STARTING, "a master is up before any worker accepts"
    rig.child.say(FromVassal.ACCEPTING)
    assert rig.state is State.READY and rig.texts(Kind.READY) == ["in 40 ms"]
    rig.child.say(FromVassal.ACCEPTING)  # a respawned worker: nothing new
    rig.child.say(FromVassal.LOYAL)
    assert rig.state is State.LOYAL
    rig.child.say(FromVassal.ACCEPTING)
    assert rig.state is State.LOYAL
    rig.child.say(99)  # unknown messages are ignored
    assert rig.state is State.LOYAL


def a_router_without_workers_is_ready_when_its_master_is_up(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, workers=False, moves=moves).start()
    rig.child.say(FromVassal.SPAWNED)
    assert rig.state is State.READY
    rig.vassal.reload(reason="asked by `toolkit reload`")
    assert rig.child.sent == [ToVassal.RELOAD]
    assert rig.state is State.READY and rig.texts(Kind.READY)[-1] == "reloaded in 0 ms"
    rig.child.say(FromVassal.LOYAL)
    rig.vassal.reload(reason="asked by `toolkit reload`")
    assert rig.state is State.READY


def a_vassal_killed_after_serving_respawns_at_once(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, moves=moves).serve()
    rig.clock.advance(5)
    rig.crash(-signal.SIGKILL)
    assert rig.texts(Kind.CRASHED) == ["signal SIGKILL"]
    assert rig.state is State.STARTING and len(rig.spawner.spawned) == 2
    assert rig.vassal.status().restarts == 1
    rig.child.say(FromVassal.ACCEPTING)
    rig.child.say(FromVassal.LOYAL)
    rig.clock.advance(5)
    rig.crash(22)
    assert rig.texts(Kind.CRASHED)[-1] == "exit code 22: the app did not load"
    assert rig.state is State.STARTING
    for _ in range(10):  # an OOM killer every 2 s: more than --max-spawns within --window
        rig.child.say(FromVassal.ACCEPTING)
        rig.clock.advance(2)
        rig.crash(-signal.SIGKILL)
        assert rig.state is State.STARTING, "a vassal that settled is never throttled"


def a_crash_loop_backs_off_then_is_throttled_until_reload(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, moves=moves).start()
    rig.crash()
    assert rig.state is State.STARTING, "the first exit respawns at once"
    delays = []
    while rig.state is not State.THROTTLED:
        rig.crash()
        if rig.state is State.BACKOFF:
            delays.append(rig.clock.pending()[0].when - rig.clock.time)
            rig.clock.advance(delays[-1])
            assert rig.state is State.STARTING
    assert delays == [0.25, 0.5, 1.0]
    assert rig.texts(Kind.THROTTLED) == [
        "5 exits within 30 s; waiting for its config to change or `toolkit reload`"
    ]
    spawned = len(rig.spawner.spawned)
    rig.clock.advance(3600)
    assert rig.state is State.THROTTLED and len(rig.spawner.spawned) == spawned
    rig.vassal.reload(reason="asked by `toolkit reload`")
    assert rig.state is State.STARTING
    rig.crash()
    assert rig.state is State.STARTING, "a reload forgets the exits that throttled it"


def a_config_change_wakes_a_backoff_and_a_throttled_vassal(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, moves=moves).start()
    rig.crash()
    rig.crash()
    assert rig.state is State.BACKOFF
    rig.edit()
    assert rig.state is State.STARTING
    assert rig.clock.pending() == [], "the backoff timer is cancelled"
    for _ in range(5):
        rig.crash()
        rig.clock.advance(1)
    assert rig.state is State.THROTTLED
    rig.edit()
    assert rig.state is State.STARTING


def a_missing_uwsgi_is_retried_then_throttled(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, moves=moves)
    rig.spawner.failures = 1
    rig.start()
    assert rig.state is State.STARTING and len(rig.spawner.spawned) == 1
    assert rig.texts(Kind.CRASHED)[0].startswith("cannot start uwsgi: [Errno 2]")
    rig.crash()
    assert rig.state is State.BACKOFF
    rig.spawner.failures = 100
    rig.clock.advance(0.25)
    assert rig.state is State.BACKOFF, "a failed spawn counts as an exit"
    for _ in range(10):
        rig.clock.advance(2)
    assert rig.state is State.THROTTLED


def a_reload_is_graceful_and_one_at_a_time(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, moves=moves).serve()
    rig.child.say(FromVassal.LOYAL)
    rig.edit()
    assert rig.state is State.RELOADING and rig.child.sent == [ToVassal.RELOAD]
    rig.child.print(STARTING_LINE)
    rig.edit()
    rig.edit()
    assert rig.child.sent == [ToVassal.RELOAD], "changes during a reload wait for it"
    rig.clock.advance(0.3)
    rig.child.say(FromVassal.ACCEPTING)
    assert rig.texts(Kind.READY)[-1] == "reloaded in 300 ms"
    assert rig.state is State.RELOADING and rig.child.sent == [ToVassal.RELOAD] * 2
    rig.child.print(STARTING_LINE)
    rig.child.say(FromVassal.ACCEPTING)
    assert rig.state is State.READY and len(rig.spawner.spawned) == 1


def a_change_while_starting_reloads_once_it_is_ready(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, moves=moves).start()
    rig.child.print(STARTING_LINE)
    rig.edit()
    assert rig.state is State.STARTING and rig.child.sent == []
    rig.child.say(FromVassal.ACCEPTING)
    assert rig.state is State.RELOADING and rig.child.sent == [ToVassal.RELOAD]


def a_config_changed_while_uwsgi_read_it_is_read_again(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, moves=moves).start()
    rig.write()  # the file changes after the Emperor's read, before uWSGI says it read it
    rig.child.print(STARTING_LINE)
    assert rig.texts(Kind.WARNING) == ["config changed while uWSGI read it: restarting it"]
    rig.child.say(FromVassal.ACCEPTING)
    assert rig.state is State.STARTING, "what it read is never served"
    rig.clock.advance(KILL_LATENCY)
    assert rig.state is State.WAITING and not rig.texts(Kind.CRASHED)
    rig.clock.advance(60)
    assert rig.state is State.WAITING and len(rig.spawner.spawned) == 1
    rig.vassal.reload(rig.config(), "config changed")
    assert rig.state is State.STARTING and rig.child.read == rig.config().stamp
    assert rig.vassal.status().restarts == 1


def a_misread_found_at_the_first_message(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, moves=moves).start()
    rig.write()
    rig.child.say(FromVassal.SPAWNED)
    assert rig.texts(Kind.WARNING) and rig.child.dying
    rig.edit()  # the Emperor's newer read arrives before the process is gone
    rig.clock.advance(KILL_LATENCY)
    assert rig.state is State.STARTING, "a newer read is there: no need to wait"


def a_vassal_that_exits_while_its_config_changes(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, moves=moves).start()
    rig.write()
    rig.crash()
    assert rig.texts(Kind.WARNING) == ["exited while its config changed: starting it again"]
    assert rig.state is State.WAITING
    rig.vassal.reload(reason="asked by `toolkit reload`")
    assert rig.state is State.STARTING


def a_reloading_vassal_that_misreads(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, moves=moves).serve()
    rig.edit()
    rig.write()
    rig.child.print(STARTING_LINE)
    assert rig.child.dying
    rig.clock.advance(KILL_LATENCY)
    assert rig.state is State.WAITING
    rig.vassal.request_stop("config file removed")
    assert rig.state is State.STOPPED


def a_reloading_vassal_exits(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, moves=moves).serve()
    rig.edit()
    rig.crash()
    assert rig.state is State.STARTING
    rig.child.print(STARTING_LINE)
    rig.child.say(FromVassal.ACCEPTING)
    rig.edit()
    rig.write()
    rig.crash()
    assert rig.state is State.WAITING


def a_graceful_stop_waits_for_the_master_to_take_it(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, moves=moves).serve()
    child = rig.child
    rig.vassal.request_stop("config file removed")
    assert rig.state is State.STOPPING and child.sent == [ToVassal.GRACEFUL_STOP]
    rig.clock.advance(1.0)
    assert child.signals == [], "no SIGINT before the master took message 2"
    child.print(b"...gracefully killing workers... " + GRACEFUL_STOP_LINE)
    rig.clock.advance(NUDGE_EVERY * 3)
    assert child.signals == [signal.SIGINT] * 3
    rig.vassal.request_stop("again")
    child.exit(0)
    assert rig.state is State.STOPPED and rig.texts(Kind.STOPPED) == ["config file removed"]
    assert rig.vassal.done and rig.clock.pending() == []


def a_master_that_never_answers_is_killed_at_the_bound(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, moves=moves, stop_timeout=5.0).serve()
    child = rig.child
    rig.vassal.request_stop("asked by `toolkit stop`")
    rig.clock.advance(GRACEFUL_ACK_BOUND - 0.001)
    assert child.signals == []
    rig.clock.advance(0.001 + NUDGE_EVERY)
    assert child.signals == [signal.SIGINT]
    rig.clock.advance(5.0 - GRACEFUL_ACK_BOUND - NUDGE_EVERY + KILL_LATENCY)
    assert rig.state is State.STOPPED and not child.alive


def a_vassal_at_rest_stops_at_once(folder: Path, moves: set[Move]) -> None:
    backoff = Rig(_sub(folder, "backoff"), moves=moves).start()
    backoff.crash()
    backoff.crash()
    backoff.vassal.request_stop("config file removed")
    assert backoff.state is State.STOPPED and backoff.clock.pending() == []
    throttled = Rig(_sub(folder, "throttled"), moves=moves).start()
    while throttled.state is not State.THROTTLED:
        throttled.crash() if throttled.state is State.STARTING else throttled.clock.advance(5)
    throttled.vassal.request_stop("config file removed")
    assert throttled.state is State.STOPPED
    waiting = Rig(_sub(folder, "waiting"), moves=moves).start()
    waiting.write()
    waiting.crash()
    waiting.vassal.request_stop("config file removed")
    assert waiting.state is State.STOPPED


def _sub(folder: Path, name: str) -> Path:
    (folder / name).mkdir()
    return folder / name


def new_sockets_restart_the_process(folder: Path, moves: set[Move]) -> None:
    for step in ("loyal", "reloading"):
        rig = Rig(_sub(folder, step), sockets=("127.0.0.1:0",), moves=moves).serve()
        rig.child.say(FromVassal.LOYAL)
        if step == "reloading":
            rig.edit()
        rig.edit(sockets=())
        assert rig.state is State.STOPPING
        rig.vassal.request_stop("config file removed")
        rig.child.exit(0)
        assert rig.state is State.STOPPED
    rig = Rig(folder, sockets=("127.0.0.1:0",), moves=moves).serve()
    first = rig.child
    rig.edit(sockets=("127.0.0.1:0", "127.0.0.2:0"))
    assert rig.state is State.STOPPING and first.sent == [ToVassal.GRACEFUL_STOP]
    assert rig.texts(Kind.RELOADING) == ["config changed; new sockets: restarting"]
    rig.edit()  # a change during the restart is read by the new process
    first.exit(0)
    assert rig.state is State.STARTING and rig.child.config.digest == "v3"
    assert not rig.texts(Kind.STOPPED)
    rig.edit(sockets=("127.0.0.1:0",))
    assert rig.state is State.STOPPING, "a starting vassal restarts too"
    rig.vassal.request_stop("config file removed")
    rig.spawner.child("web").exit(0)  # type: ignore[union-attr]
    assert rig.state is State.STOPPED and rig.spawner.live == []


def a_silent_heartbeat_kills_and_respawns(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, moves=moves).start()
    rig.child.say(FromVassal.HEARTBEAT)
    rig.child.say(FromVassal.ACCEPTING)
    for _ in range(3):
        rig.clock.advance(20)
        rig.child.say(FromVassal.HEARTBEAT)
    first = rig.child
    rig.clock.advance(30 + KILL_LATENCY)
    assert not first.alive and rig.state is State.STARTING
    assert rig.texts(Kind.WARNING) == ["no heartbeat for 30 s: killing it to respawn it"]
    rig.child.say(FromVassal.HEARTBEAT)
    rig.clock.advance(30 + KILL_LATENCY)
    assert len(rig.spawner.spawned) == 3, "a starting vassal that stops beating is killed too"


def a_pause_of_the_emperor_is_not_counted_against_heartbeats(
    folder: Path, moves: set[Move]
) -> None:
    """The Emperor stopped for 45 s past the deadline: a fresh tolerance, then a kill only
    if the vassal stays silent through it."""
    rig = Rig(folder, moves=moves).serve()
    rig.child.say(FromVassal.HEARTBEAT)
    first = rig.child
    rig.clock.pause(75)
    assert first.alive
    assert rig.texts(Kind.WARNING) == [
        "the Emperor was paused for 45 s or more: heartbeats are awaited for another 30 s"
    ]
    rig.child.say(FromVassal.HEARTBEAT)
    rig.clock.advance(29)
    assert first.alive
    rig.clock.advance(1 + KILL_LATENCY)
    assert not first.alive, "silent through the fresh tolerance: killed"


def heartbeats_while_reloading_and_loyal(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, moves=moves).serve()
    rig.child.say(FromVassal.LOYAL)
    rig.child.say(FromVassal.HEARTBEAT)
    rig.clock.advance(30 + KILL_LATENCY)
    rig.child.say(FromVassal.ACCEPTING)
    rig.edit()
    rig.child.say(FromVassal.HEARTBEAT)
    rig.clock.advance(30)
    assert rig.child.dying


def an_idle_vassal_is_stopped_until_reload(folder: Path, moves: set[Move]) -> None:
    for step in STEPS:
        rig = Rig(_sub(folder, step), moves=moves, health=HEALTH).start()
        if step != "starting":
            rig.child.say(FromVassal.ACCEPTING)
        if step == "unhealthy":
            _unhealthy(rig)
        if step == "loyal":
            rig.child.say(FromVassal.LOYAL)
        if step == "reloading":
            rig.edit()
        rig.child.say(FromVassal.VOLUNTARY_SHUTDOWN)
        assert rig.state is State.STOPPING
        rig.child.exit(0)
        assert rig.texts(Kind.STOPPED) == [IDLE_STOP]


def every_running_state_stops_gracefully(folder: Path, moves: set[Move]) -> None:
    for step in STEPS:
        rig = Rig(_sub(folder, step), moves=moves, health=HEALTH).start()
        if step != "starting":
            rig.child.say(FromVassal.ACCEPTING)
        if step == "unhealthy":
            _unhealthy(rig)
        if step == "loyal":
            rig.child.say(FromVassal.LOYAL)
        if step == "reloading":
            rig.edit()
        rig.vassal.request_stop("Emperor stopping")
        rig.edit()  # ignored while stopping, but remembered
        assert rig.state is State.STOPPING and rig.vassal.config.digest == f"v{rig.version}"
        rig.clock.advance(10)
        assert rig.state is State.STOPPED


def every_running_state_crashes(folder: Path, moves: set[Move]) -> None:
    for step in STEPS:
        for served in (0.0, 2.0):
            health = FAST if step == "unhealthy" else None
            rig = Rig(_sub(folder, f"{step}-{served}"), moves=moves, health=health).start()
            if step != "starting":
                rig.child.say(FromVassal.ACCEPTING)
            if step == "loyal":
                rig.child.say(FromVassal.LOYAL)
            if step == "reloading":
                rig.edit()
            if step == "unhealthy":
                _unhealthy(rig)
            rig.clock.advance(served)
            rig.crash()
            assert rig.state is State.STARTING
            rig.crash()
            assert rig.state is State.BACKOFF
            rig.clock.advance(0.25)
            for _ in range(3):
                rig.child.say(FromVassal.ACCEPTING)
                if step == "loyal":
                    rig.child.say(FromVassal.LOYAL)
                if step == "reloading":
                    rig.edit()
                if step == "unhealthy":
                    _unhealthy(rig)
                rig.crash()
                rig.clock.advance(2)
            assert rig.state is State.THROTTLED


def a_successor_waits_for_its_predecessor(folder: Path, moves: set[Move]) -> None:
    old = Rig(_sub(folder, "old"), moves=moves).serve()
    old.vassal.request_stop("config moved")
    shared = {"moves": moves, "clock": old.clock, "spawner": old.spawner}
    new = Rig(_sub(folder, "new"), after=old.vassal, **shared)  # type: ignore[arg-type]
    new.vassal.start()
    assert new.state is State.PENDING
    new.edit()
    assert new.state is State.PENDING
    old.child.exit(0)
    assert new.state is State.STARTING and new.child.config.digest == "v2"
    third = Rig(_sub(folder, "third"), after=new.vassal, **shared)  # type: ignore[arg-type]
    new.vassal.request_stop("config moved")
    gone = Rig(_sub(folder, "gone"), after=third.vassal, **shared)  # type: ignore[arg-type]
    third.vassal.start()
    third.vassal.request_stop("removed before it started")
    assert third.state is State.STOPPED and not third.vassal.done, "its predecessor still runs"
    gone.vassal.start()
    assert gone.state is State.PENDING
    new.child.exit(0)
    assert third.vassal.done and gone.state is State.STARTING


STEPS = ("starting", "ready", "loyal", "reloading", "unhealthy")
HEALTH = Health(("127.0.0.1", 9), every=5.0, timeout=2.0, out_after=2, restart_after=4)
HUNG = "GET /: no answer within 2 s (accepted, then silent: a hang)"


# Unhealthy within a second of serving: an exit then counts as a crash, not a settled one.
FAST = Health(("127.0.0.1", 9), every=0.1, timeout=0.05, out_after=1, restart_after=0)


def _probe(rig: Rig, failure: str | None) -> None:
    """The next probe comes due and answers."""
    assert rig.health is not None
    rig.clock.advance(rig.health.every)
    rig.prober.answer(failure)


def _unhealthy(rig: Rig) -> None:
    assert rig.health is not None
    for _ in range(rig.health.out_after):
        _probe(rig, HUNG)
    assert rig.state is State.UNHEALTHY


def a_hung_app_leaves_its_rotation_then_is_restarted(folder: Path, moves: set[Move]) -> None:
    rig = Rig(folder, moves=moves, health=HEALTH).serve()
    assert rig.prober.in_flight is None, "nothing is asked before the first interval"
    _probe(rig, None)
    assert rig.state is State.READY
    rig.child.say(FromVassal.LOYAL)
    _probe(rig, None)
    _probe(rig, HUNG)
    assert rig.state is State.LOYAL and rig.texts(Kind.WARNING) == [
        f"health check failed (1 of 2): {HUNG}"
    ]
    _probe(rig, HUNG)
    assert rig.state is State.UNHEALTHY and rig.withdrawals == ["withdraw"]
    assert rig.texts(Kind.UNHEALTHY) == [f"{HUNG}; 2 failed in a row: out of its router's rotation"]
    status = rig.vassal.status()
    assert not status.serving and status.health == HUNG
    _probe(rig, None)
    assert rig.state is State.LOYAL and rig.withdrawals == ["withdraw", "toggle"]
    assert rig.vassal.status().health is None
    _unhealthy(rig)
    first = rig.child
    _probe(rig, HUNG)
    assert rig.state is State.UNHEALTHY and first.alive
    _probe(rig, HUNG)
    assert first.dying
    rig.clock.advance(KILL_LATENCY)
    assert rig.state is State.STARTING and rig.vassal.status().restarts == 1
    said = "killed by toolkit: health check failed 4 times in a row"
    assert rig.vassal.status().last_exit == rig.texts(Kind.CRASHED)[-1] == said
    rig.child.say(FromVassal.ACCEPTING)
    assert rig.state is State.READY and rig.prober.in_flight is None
    _probe(rig, None)
    assert rig.state is State.READY, "the new process starts with a clean count"


def an_unhealthy_app_that_never_served(folder: Path, moves: set[Move]) -> None:
    rig = Rig(_sub(folder, "ready"), moves=moves, health=HEALTH).serve()
    _unhealthy(rig)
    _probe(rig, None)
    assert rig.state is State.READY, "back to ready: it had not served"
    rig = Rig(_sub(folder, "loyal"), moves=moves, health=HEALTH).serve()
    _unhealthy(rig)
    rig.child.say(FromVassal.LOYAL)
    assert rig.state is State.UNHEALTHY and not rig.texts(Kind.LOYAL)
    rig.child.say(FromVassal.HEARTBEAT)
    rig.clock.advance(HEALTH.every)
    rig.prober.answer(None)
    assert rig.state is State.LOYAL
    rig = Rig(_sub(folder, "silent"), moves=moves, health=HEALTH).serve()
    rig.child.say(FromVassal.HEARTBEAT)
    _unhealthy(rig)
    rig.clock.advance(30 - 2 * HEALTH.every)
    assert rig.child.dying, "a vassal that stops beating is killed, healthy or not"
    assert rig.prober.in_flight is not None
    rig.clock.advance(KILL_LATENCY)
    assert rig.prober.in_flight is None, "its probe ends with it"
    assert rig.vassal.status().last_exit == "killed by toolkit: no heartbeat for 30 s"


def an_unhealthy_app_reloads_as_any_other(folder: Path, moves: set[Move]) -> None:
    rig = Rig(_sub(folder, "workers"), moves=moves, health=HEALTH).serve()
    _unhealthy(rig)
    rig.edit()
    assert rig.state is State.RELOADING and rig.prober.in_flight is None
    rig.clock.advance(60)
    assert rig.prober.in_flight is None, "no probe while it reloads"
    rig.child.print(STARTING_LINE)
    rig.child.say(FromVassal.ACCEPTING)
    assert rig.state is State.READY and rig.withdrawals == ["withdraw"]
    rig = Rig(_sub(folder, "gateway"), moves=moves, health=HEALTH, workers=False).start()
    rig.child.say(FromVassal.SPAWNED)
    _unhealthy(rig)
    rig.vassal.reload(reason="asked by `toolkit reload`")
    assert rig.state is State.READY
    rig = Rig(_sub(folder, "sockets"), moves=moves, health=HEALTH, sockets=("127.0.0.1:0",))
    rig.serve()
    _unhealthy(rig)
    rig.edit(sockets=())
    assert rig.state is State.STOPPING
    rig.vassal.request_stop("config file removed")
    rig.child.exit(0)
    assert rig.state is State.STOPPED


def a_reload_accepting_before_its_read_can_have_misread(folder: Path, moves: set[Move]) -> None:
    """A reloading vassal says "accepting" (its workers) before uWSGI printed that it read
    its config (the line went to `logto`); the file changed meanwhile: an exit then is a
    possible misread, and it waits for the finished file, whatever state it reached."""
    for step in ("ready", "loyal", "unhealthy"):
        rig = Rig(_sub(folder, step), moves=moves, health=HEALTH).serve()
        rig.edit()
        rig.write()  # written again, not read by the Emperor yet
        rig.child.say(FromVassal.ACCEPTING)
        if step == "loyal":
            rig.child.say(FromVassal.LOYAL)
        if step == "unhealthy":
            _unhealthy(rig)
        rig.crash()
        assert rig.state is State.WAITING, step
        rig.edit()
        assert rig.state is State.STARTING


HISTORIES: list[Callable[[Path, set[Move]], None]] = [
    starts_serves_and_turns_loyal,
    a_router_without_workers_is_ready_when_its_master_is_up,
    a_vassal_killed_after_serving_respawns_at_once,
    a_crash_loop_backs_off_then_is_throttled_until_reload,
    a_config_change_wakes_a_backoff_and_a_throttled_vassal,
    a_missing_uwsgi_is_retried_then_throttled,
    a_reload_is_graceful_and_one_at_a_time,
    a_change_while_starting_reloads_once_it_is_ready,
    a_config_changed_while_uwsgi_read_it_is_read_again,
    a_misread_found_at_the_first_message,
    a_vassal_that_exits_while_its_config_changes,
    a_reloading_vassal_that_misreads,
    a_reloading_vassal_exits,
    a_graceful_stop_waits_for_the_master_to_take_it,
    a_master_that_never_answers_is_killed_at_the_bound,
    a_vassal_at_rest_stops_at_once,
    new_sockets_restart_the_process,
    a_silent_heartbeat_kills_and_respawns,
    a_pause_of_the_emperor_is_not_counted_against_heartbeats,
    heartbeats_while_reloading_and_loyal,
    an_idle_vassal_is_stopped_until_reload,
    every_running_state_stops_gracefully,
    every_running_state_crashes,
    a_successor_waits_for_its_predecessor,
    a_hung_app_leaves_its_rotation_then_is_restarted,
    an_unhealthy_app_that_never_served,
    an_unhealthy_app_reloads_as_any_other,
    a_reload_accepting_before_its_read_can_have_misread,
]


@pytest.mark.parametrize("history", HISTORIES, ids=lambda h: h.__name__)
def test_history(history: Callable[[Path, set[Move]], None], tmp_path: Path) -> None:
    history(tmp_path, set())


def test_the_histories_take_every_transition_of_the_table(tmp_path: Path) -> None:
    moves: set[Move] = set()
    for number, history in enumerate(HISTORIES):
        history(_sub(tmp_path, str(number)), moves)
    table = {(state, on, to) for (state, on), targets in TABLE.items() for to in targets}
    assert moves <= table
    assert sorted(table - moves) == []


class RandomHistories(RuleBasedStateMachine):
    """Whatever uWSGI, the file and the user do, in any order: the invariants hold."""

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp())
        self.rig = Rig(self.folder, sockets=("127.0.0.1:0",)).start()
        self.stop_asked_at: float | None = None
        self.throttled_spawns: int | None = None

    def teardown(self) -> None:
        self.rig.vassal.request_stop("the test is over")
        self.rig.clock.advance(60)
        shutil.rmtree(self.folder)

    @property
    def child(self) -> FakeChild | None:
        return self.rig.spawner.child("web")

    @precondition(lambda self: self.child is not None)
    @rule(message=st.sampled_from([*FromVassal, 99]))
    def uwsgi_says(self, message: int) -> None:
        self.child.say(message)  # type: ignore[union-attr]

    @precondition(lambda self: self.child is not None)
    @rule(line=st.sampled_from([STARTING_LINE, GRACEFUL_STOP_LINE, b"spawned uWSGI worker 1"]))
    def uwsgi_prints(self, line: bytes) -> None:
        self.child.print(line)  # type: ignore[union-attr]

    @precondition(lambda self: self.child is not None)
    @rule(code=st.sampled_from([0, 1, 22, -signal.SIGKILL, -signal.SIGSEGV]))
    def uwsgi_exits(self, code: int) -> None:
        self.child.exit(code)  # type: ignore[union-attr]

    @rule(new_sockets=st.booleans())
    def config_edited(self, new_sockets: bool) -> None:
        """Written, then read by the Emperor, which tells the vassal."""
        sockets = ("127.0.0.1:0",) * (1 + (len(self.rig.sockets) % 2)) if new_sockets else None
        self.rig.edit(sockets)
        self.throttled_spawns = None

    @rule()
    def config_written_unseen(self) -> None:
        """Written, and not read by the Emperor yet: uWSGI may read this one."""
        self.rig.write()

    @rule()
    def toolkit_reload(self) -> None:
        self.rig.vassal.reload(reason="asked by `toolkit reload`")
        self.throttled_spawns = None

    @rule(failures=st.integers(0, 3))
    def uwsgi_cannot_start(self, failures: int) -> None:
        self.rig.spawner.failures = failures

    @rule()
    def stop(self) -> None:
        if self.stop_asked_at is None:
            self.stop_asked_at = self.rig.clock.now()
        self.rig.vassal.request_stop("asked by `toolkit stop`")

    @precondition(lambda self: self.rig.vassal.done)
    @rule()
    def started_again(self) -> None:
        """`toolkit reload` of a stopped vassal: the Emperor makes a new one for its config."""
        self.rig.replace()
        self.stop_asked_at = None

    @rule(seconds=st.sampled_from([0.001, 0.05, 0.25, 1.0, 2.5, 31.0]))
    def time_passes(self, seconds: float) -> None:
        self.rig.clock.advance(seconds)

    @invariant()
    def a_child_exactly_when_its_state_says(self) -> None:
        assert (self.child is not None) == (self.rig.state in WITH_CHILD), self.rig.state

    @invariant()
    def it_serves_only_what_the_emperor_read(self) -> None:
        if self.rig.state in SERVING and self.child is not None:
            assert self.child.read == self.child.config.stamp

    @invariant()
    def every_stop_ends_within_its_bound(self) -> None:
        if self.stop_asked_at is not None:
            bound = self.stop_asked_at + 5.0 + KILL_LATENCY
            assert self.rig.clock.now() < bound or self.rig.state is State.STOPPED

    @invariant()
    def a_throttled_vassal_stays_down_until_changed_or_reloaded(self) -> None:
        spawned = len(self.rig.spawner.spawned)
        if self.rig.state is not State.THROTTLED:
            self.throttled_spawns = None
        elif self.throttled_spawns is None:
            self.throttled_spawns = spawned
        else:
            assert spawned == self.throttled_spawns


RandomHistories.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_random_histories = RandomHistories.TestCase


def test_the_states_page_lists_exactly_the_table() -> None:
    page = (Path(__file__).parent.parent / "docs" / "vassal-states.md").read_text()
    rows = {line for line in page.splitlines() if line.count("|") == 4}
    order = list(State)
    listed = {
        f"| {state.value} | {on.value} | "
        + ", ".join(t.value for t in sorted(targets, key=order.index))
        + " |"
        for (state, on), targets in TABLE.items()
    }
    documented = {r for r in rows if r.split("|")[1].strip() in {s.value for s in State}}
    documented -= {r for r in rows if r.split("|")[2].strip() not in {o.value for o in On}}
    assert documented == listed
    for name in [*State, *On]:
        assert f"\n| {name.value} | " in page, f"{name.value} is not explained"
