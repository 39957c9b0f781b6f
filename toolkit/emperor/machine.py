"""A vassal's life as a table: (state, input) -> the states it may go to, and the one method
that moves it.

Pure: no process, no file, no event loop. The driver (vassal.py) turns what happens (the
child's messages, output and exit, a timer, a request of the Emperor) into an `Input`, and
carries out the `Action`s that come back. Tests drive it with a fake clock and spawner.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from toolkit.emperor.config import Stamp, VassalConfig
from toolkit.emperor.events import Kind
from toolkit.emperor.options import EmperorOptions
from toolkit.emperor.protocol import FromVassal, ToVassal

# How long to wait for the master to say it took message 2 (one whose output goes
# elsewhere never does) before nudging it.
GRACEFUL_ACK_BOUND = 2.0
# Once it took message 2, a SIGINT only wakes the master to check on its workers.
NUDGE_EVERY = 0.05
IDLE_STOP = (
    "idle, it asked to be stopped (die-on-idle); a config change or `toolkit reload` starts it"
)
# A timer that fires this much after its due time means the Emperor was not running then.
PAUSE_BOUND = 1.0
# uWSGI's exit code for "no app loaded" under need-app (UWSGI_FAILED_APP_CODE, uwsgi.h).
FAILED_APP_CODE = 22


class State(StrEnum):
    PENDING = "pending"  # its name's previous vassal is still stopping
    STARTING = "starting"
    READY = "ready"
    LOYAL = "loyal"
    UNHEALTHY = "unhealthy"  # running, failing its health check: out of its router's rotation
    RELOADING = "reloading"
    STOPPING = "stopping"
    BACKOFF = "backoff"
    THROTTLED = "throttled"
    WAITING = "waiting"  # for its config file to be finished, after uWSGI misread it
    STOPPED = "stopped"


RUNNING = frozenset({State.STARTING, State.READY, State.LOYAL, State.UNHEALTHY, State.RELOADING})
SERVING = frozenset({State.READY, State.LOYAL})
PROBED = SERVING | {State.UNHEALTHY}
WITH_CHILD = RUNNING | {State.STOPPING}


class On(StrEnum):
    BEGIN = "begin"  # the Emperor starts it (its predecessor, if any, has stopped)
    SPAWN_FAILED = "spawn failed"
    CONFIG_READ = "config read"  # uWSGI says it read its config, or speaks for the first time
    ACCEPTING = "accepting"
    FIRST_REQUEST = "first request"
    HEARTBEAT = "heartbeat"
    HEARTBEAT_MISSED = "heartbeat missed"
    IDLE = "idle"  # it asked to be stopped
    RELOAD = "reload"  # its config changed or was touched, or `toolkit reload`
    STOP = "stop"
    STOP_TAKEN = "stop taken"  # the master says it is stopping gracefully
    ACK_TIMEOUT = "ack timeout"
    NUDGE = "nudge"
    STOP_DEADLINE = "stop deadline"
    EXITED = "exited"
    BACKOFF_OVER = "backoff over"
    PROBE_DUE = "probe due"
    PROBE_PASSED = "probe passed"
    PROBE_FAILED = "probe failed"


class Timer(StrEnum):
    BACKOFF = "backoff"
    ACK = "ack"
    NUDGE = "nudge"
    DEADLINE = "deadline"
    HEARTBEAT = "heartbeat"
    PROBE = "probe"


FIRES = {
    Timer.BACKOFF: On.BACKOFF_OVER,
    Timer.ACK: On.ACK_TIMEOUT,
    Timer.NUDGE: On.NUDGE,
    Timer.DEADLINE: On.STOP_DEADLINE,
    Timer.HEARTBEAT: On.HEARTBEAT_MISSED,
    Timer.PROBE: On.PROBE_DUE,
}


@dataclass(frozen=True)
class Input:
    on: On
    text: str = ""
    """A reason (reload, stop) or an error (spawn failed)."""
    code: int = 0
    """The exit code (EXITED), negative for a signal; its `text` says why, when known."""
    stamp: Stamp | None = None
    """The config file's stamp now, None if it is gone (CONFIG_READ, EXITED)."""
    config: VassalConfig | None = None
    """A newer read of its config (RELOAD)."""
    late: float = 0.0
    """Seconds after its due time a timer fired: more than PAUSE_BOUND means the Emperor
    was not running (SIGSTOP, a frozen machine) when it was due."""


@dataclass(frozen=True)
class Spawn:
    pass


@dataclass(frozen=True)
class Send:
    message: ToVassal


@dataclass(frozen=True)
class Signal:
    """To the master alone."""

    number: signal.Signals


@dataclass(frozen=True)
class KillGroup:
    """SIGKILL to the child's whole process group."""


@dataclass(frozen=True)
class StartTimer:
    timer: Timer
    delay: float


@dataclass(frozen=True)
class CancelTimer:
    timer: Timer


@dataclass(frozen=True)
class ReleaseSockets:
    pass


@dataclass(frozen=True)
class Probe:
    """Ask the vassal's health check now; its result comes back as PROBE_PASSED/FAILED."""


@dataclass(frozen=True)
class Withdraw:
    """Out of its routers' rotation (its announcements blocked, an unsubscribe sent)."""


@dataclass(frozen=True)
class Reinstate:
    """Back into its routers' rotation (its announcements flow again)."""


@dataclass(frozen=True)
class Emit:
    kind: Kind
    text: str = ""


Action = (
    Spawn
    | Send
    | Signal
    | KillGroup
    | StartTimer
    | CancelTimer
    | ReleaseSockets
    | Probe
    | Withdraw
    | Reinstate
    | Emit
)
Moved = tuple[State, list[Action]] | None
"""The state a handler moves to and what to do, or None: nothing happens."""

_EXIT_TO = frozenset({State.STARTING, State.BACKOFF, State.THROTTLED})
UNCONFIRMED = frozenset({State.STARTING, State.RELOADING})
TABLE: dict[tuple[State, On], frozenset[State]] = {
    (State.PENDING, On.BEGIN): frozenset({State.STARTING}),
    (State.PENDING, On.RELOAD): frozenset({State.PENDING}),
    (State.PENDING, On.STOP): frozenset({State.STOPPED}),
    **{
        (state, on): frozenset({state})
        for state in RUNNING
        for on in (On.HEARTBEAT, On.HEARTBEAT_MISSED)
    },
    **{(state, On.STOP): frozenset({State.STOPPING}) for state in RUNNING},
    **{(state, On.IDLE): frozenset({State.STOPPING}) for state in RUNNING},
    # Only a process that has not confirmed its read of the config can have misread it: one
    # starting or reloading, or one that said "accepting" before it confirmed (a reloading
    # vassal whose read was never printed, as with `logto`).
    **{(state, On.EXITED): _EXIT_TO | {State.WAITING} for state in UNCONFIRMED | PROBED},
    (State.STARTING, On.SPAWN_FAILED): frozenset({State.STARTING, State.BACKOFF, State.THROTTLED}),
    (State.STARTING, On.CONFIG_READ): frozenset({State.STARTING}),
    (State.STARTING, On.ACCEPTING): frozenset({State.READY, State.RELOADING}),
    (State.STARTING, On.RELOAD): frozenset({State.STARTING, State.STOPPING}),
    (State.READY, On.FIRST_REQUEST): frozenset({State.LOYAL}),
    (State.UNHEALTHY, On.FIRST_REQUEST): frozenset({State.UNHEALTHY}),
    **{(state, On.PROBE_DUE): frozenset({state}) for state in PROBED},
    **{(state, On.PROBE_PASSED): frozenset({state}) for state in SERVING},
    **{(state, On.PROBE_FAILED): frozenset({state, State.UNHEALTHY}) for state in SERVING},
    (State.UNHEALTHY, On.PROBE_PASSED): frozenset({State.READY, State.LOYAL}),
    (State.UNHEALTHY, On.PROBE_FAILED): frozenset({State.UNHEALTHY}),
    (State.UNHEALTHY, On.RELOAD): frozenset({State.RELOADING, State.READY, State.STOPPING}),
    (State.READY, On.RELOAD): frozenset({State.RELOADING, State.READY, State.STOPPING}),
    (State.LOYAL, On.RELOAD): frozenset({State.RELOADING, State.READY, State.STOPPING}),
    (State.RELOADING, On.CONFIG_READ): frozenset({State.RELOADING}),
    (State.RELOADING, On.ACCEPTING): frozenset({State.READY, State.RELOADING}),
    (State.RELOADING, On.RELOAD): frozenset({State.RELOADING, State.STOPPING}),
    **{
        (State.STOPPING, on): frozenset({State.STOPPING})
        for on in (
            On.STOP,
            On.RELOAD,
            On.STOP_TAKEN,
            On.ACK_TIMEOUT,
            On.NUDGE,
            On.STOP_DEADLINE,
        )
    },
    (State.STOPPING, On.EXITED): frozenset({State.STOPPED, State.STARTING}),
    (State.BACKOFF, On.BACKOFF_OVER): frozenset({State.STARTING}),
    (State.BACKOFF, On.RELOAD): frozenset({State.STARTING}),
    (State.BACKOFF, On.STOP): frozenset({State.STOPPED}),
    (State.THROTTLED, On.RELOAD): frozenset({State.STARTING}),
    (State.THROTTLED, On.STOP): frozenset({State.STOPPED}),
    (State.WAITING, On.RELOAD): frozenset({State.STARTING}),
    (State.WAITING, On.STOP): frozenset({State.STOPPED}),
}
"""Every move a vassal can make. An input missing here for a state is ignored: a message
from a process being stopped, a timer that fired as it was cancelled."""


MEANINGS: dict[int, On] = {
    FromVassal.LOYAL: On.FIRST_REQUEST,
    FromVassal.HEARTBEAT: On.HEARTBEAT,
    FromVassal.VOLUNTARY_SHUTDOWN: On.IDLE,
}


def input_for(message: int, has_workers: bool) -> On | None:
    """What a protocol message means; uWSGI announces nothing more for a vassal without
    workers than that its master is up."""
    if message == FromVassal.ACCEPTING or (message == FromVassal.SPAWNED and not has_workers):
        return On.ACCEPTING
    return MEANINGS.get(message)


def describe_exit(code: int) -> str:
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    if code == FAILED_APP_CODE:
        return f"exit code {code}: the app did not load"
    return f"exit code {code}"


class ReadGuard:
    """uWSGI reads its config by path, after the Emperor did: if the file changed in between,
    it may have read a half-written one. Until uWSGI says it has read its config, the guard
    holds the stamp the Emperor read; a different stamp then is a misread, and the process
    is restarted only once the Emperor has a newer, finished read."""

    def __init__(self) -> None:
        self.expected: Stamp | None = None
        self.misread: Stamp | None = None

    def expect(self, stamp: Stamp) -> None:
        self.expected, self.misread = stamp, None

    def confirm(self, now: Stamp | None) -> bool:
        """False when the file changed since the Emperor read it: a misread."""
        expected, self.expected = self.expected, None
        if expected is not None and now != expected:
            self.misread = expected
        return self.misread is None

    def settled_by(self, stamp: Stamp) -> bool:
        """Whether a read with this stamp may be handed to a new process."""
        return stamp != self.misread


class Machine:
    """One vassal's state, and everything it remembers beyond it."""

    def __init__(
        self,
        config: VassalConfig,
        options: EmperorOptions,
        *,
        clock: Callable[[], float],
        holds_sockets: bool = False,
    ) -> None:
        self.config = config
        self.options = options
        self.throttle = options.throttle()
        self.clock = clock
        self.holds_sockets = holds_sockets
        self.stop_timeout = options.stop_timeout
        self.heartbeat_tolerance = options.heartbeat_tolerance
        self.state = State.PENDING
        self.guard = ReadGuard()
        self.spawns = 0
        self.spawned_at: float | None = None
        self.ready_at: float | None = None
        self.last_exit: str | None = None
        self.stop_reason: str | None = None
        # Stopping only to start again on new sockets (a reload would keep the old fds).
        self.restarting = False
        self.reload_pending: str | None = None
        self.reload_asked_at: float | None = None
        self.nudging = False
        # Its health check: failures in a row, the last result, whether it was withdrawn
        # from its router, and whether it served before it turned unhealthy.
        self.failures = 0
        self.last_probe: str | None = None
        self.withdrawn = False
        self.loyal = False
        # Why toolkit itself killed it, said when it exits (a SIGKILL alone says nothing).
        self.killing: str | None = None
        self.last_move: tuple[State, On, State] | None = None
        """The last input that moved it, with where from and to: for logs and tests."""

    @property
    def restarts(self) -> int:
        return max(0, self.spawns - 1)

    def handle(self, event: Input) -> list[Action]:
        """The one place where the state changes: to one the table allows."""
        allowed = TABLE.get((self.state, event.on))
        if allowed is None:
            return []
        moved = HANDLERS[event.on](self, event)
        if moved is None:
            return []
        state, actions = moved
        if state not in allowed:
            raise AssertionError(f"{self.state} --{event.on}--> {state} is not in the table")
        self.last_move = (self.state, event.on, state)
        self.state = state
        return actions

    def _spawn(self, *before: Action) -> Moved:
        self.spawns += 1
        self.spawned_at = self.clock()
        self.ready_at = self.reload_asked_at = self.reload_pending = None
        self.restarting = self.nudging = self.withdrawn = self.loyal = False
        self.failures = 0
        self.guard.expect(self.config.stamp)
        return State.STARTING, [*before, Spawn()]

    def _spawn_now(self, event: Input) -> Moved:
        return self._spawn()

    def _on_spawn_failed(self, event: Input) -> Moved:
        self.last_exit = event.text
        return self._after_exit(Emit(Kind.CRASHED, event.text))

    def _after_exit(self, *before: Action) -> Moved:
        """Respawn now, after a backoff, or not until its config changes or a reload."""
        now = self.clock()
        served_for = now - self.ready_at if self.ready_at is not None else 0.0
        delay = self.throttle.record_exit(now, served_for)
        if delay is None:
            waiting = "waiting for its config to change or `toolkit reload`"
            limit = f"{self.throttle.max_spawns} exits within {self.throttle.window:g} s"
            # Refused at once from now on, not left waiting in a backlog.
            return State.THROTTLED, [
                *before,
                ReleaseSockets(),
                Emit(Kind.THROTTLED, f"{limit}; {waiting}"),
            ]
        if delay > 0:
            return State.BACKOFF, [
                *before,
                Emit(Kind.BACKOFF, f"respawn in {delay:g} s"),
                StartTimer(Timer.BACKOFF, delay),
            ]
        return self._spawn(*before)

    def _on_config_read(self, event: Input) -> Moved:
        if self.guard.expected is None:
            return None
        if self.guard.confirm(event.stamp):
            return self.state, []
        warning = Emit(Kind.WARNING, "config changed while uWSGI read it: restarting it")
        return self.state, [warning, KillGroup()]

    def _on_accepting(self, event: Input) -> Moved:
        if self.guard.misread is not None:
            return None
        started = self.reload_asked_at or self.spawned_at or self.clock()
        took = round((self.clock() - started) * 1000)
        was = "reloaded in" if self.state is State.RELOADING else "in"
        self.reload_asked_at = None
        if self.ready_at is None:
            self.ready_at = self.clock()
        ready = Emit(Kind.READY, f"{was} {took} ms")
        if self.reload_pending is not None:
            # One reload at a time: a burst of changes ends in one more reload, not many.
            reason, self.reload_pending = self.reload_pending, None
            return self._reload_now(reason, ready)
        return State.READY, [ready, *self._next_probe()]

    def _on_first_request(self, event: Input) -> Moved:
        if self.guard.misread is not None:
            return None
        self.loyal = True
        if self.state is State.UNHEALTHY:
            return self.state, []
        return State.LOYAL, [Emit(Kind.LOYAL, "served its first request")]

    def _next_probe(self) -> list[Action]:
        health = self.config.health
        return [StartTimer(Timer.PROBE, health.every)] if health is not None else []

    def _on_probe_due(self, event: Input) -> Moved:
        if self.config.health is None:
            return None
        return self.state, [Probe()]

    def _on_probe_passed(self, event: Input) -> Moved:
        self.failures, self.last_probe = 0, None
        if self.state is not State.UNHEALTHY:
            return self.state, self._next_probe()
        back: list[Action] = [Reinstate()] if self.withdrawn else []
        self.withdrawn = False
        passed = Emit(Kind.HEALTHY, f"{self.config.health} again: back in its router's rotation")
        return (State.LOYAL if self.loyal else State.READY), [*back, passed, *self._next_probe()]

    def _on_probe_failed(self, event: Input) -> Moved:
        """Readiness: out of rotation after `out_after` failures in a row. Liveness: killed,
        to be respawned as any exit is, after `restart_after`."""
        health = self.config.health
        if health is None:
            return None
        self.failures += 1
        self.last_probe = event.text
        in_a_row = f"{self.failures} failed in a row"
        if self.state is not State.UNHEALTHY:
            if self.failures < health.out_after:
                failed = (
                    f"health check failed ({self.failures} of {health.out_after}): {event.text}"
                )
                return self.state, [Emit(Kind.WARNING, failed), *self._next_probe()]
            self.withdrawn = self.config.rotation is not None
            out = (
                "out of its router's rotation"
                if self.withdrawn
                else "it announces itself to no router, so requests still reach it"
            )
            unhealthy = Emit(Kind.UNHEALTHY, f"{event.text}; {in_a_row}: {out}")
            withdraw: list[Action] = [Withdraw()] if self.withdrawn else []
            return State.UNHEALTHY, [*withdraw, unhealthy, *self._next_probe()]
        if health.restart_after and self.failures >= health.restart_after:
            self.killing = f"killed by toolkit: health check failed {self.failures} times in a row"
            restart = Emit(Kind.WARNING, f"health check {in_a_row}: killing it to respawn it")
            return self.state, [restart, KillGroup()]
        return self.state, self._next_probe()

    def _on_heartbeat(self, event: Input) -> Moved:
        """Once a vassal with uWSGI's `heartbeat` option has beaten, silence for
        `heartbeat_tolerance` seconds means it is stuck."""
        return self.state, [StartTimer(Timer.HEARTBEAT, self.heartbeat_tolerance)]

    def _on_heartbeat_missed(self, event: Input) -> Moved:
        """Silence means a stuck vassal, unless the Emperor itself was paused past the
        deadline: then the heartbeats it did not hear are not counted, and the vassal gets
        a fresh tolerance from now (its next beat arrives within it if it is alive)."""
        if event.late > PAUSE_BOUND:
            paused = (
                f"the Emperor was paused for {event.late:.0f} s or more: heartbeats are "
                f"awaited for another {self.heartbeat_tolerance:g} s"
            )
            return self.state, [
                Emit(Kind.WARNING, paused),
                StartTimer(Timer.HEARTBEAT, self.heartbeat_tolerance),
            ]
        silence = f"no heartbeat for {self.heartbeat_tolerance:g} s"
        self.killing = f"killed by toolkit: {silence}"
        return self.state, [Emit(Kind.WARNING, f"{silence}: killing it to respawn it"), KillGroup()]

    def _on_idle(self, event: Input) -> Moved:
        # Sent by `die-on-idle`: the vassal waits for the Emperor to stop it.
        return self._on_stop(Input(On.STOP, IDLE_STOP))

    def _on_reload(self, event: Input) -> Moved:
        new = event.config
        sockets_changed = (
            new is not None and self.holds_sockets and new.sockets != self.config.sockets
        )
        if new is not None:
            self.config = new
        reason = event.text or "config changed"
        if self.state in {State.PENDING, State.STOPPING}:
            return self.state, []
        if self.state in {State.BACKOFF, State.THROTTLED}:
            self.throttle.clear()
            return self._spawn(CancelTimer(Timer.BACKOFF))
        if self.state is State.WAITING:
            return self._spawn()
        if sockets_changed:
            self.restarting = True
            restart = Emit(Kind.RELOADING, f"{reason}; new sockets: restarting")
            return State.STOPPING, [restart, *self._graceful_stop()]
        if self.state in {State.STARTING, State.RELOADING}:
            self.reload_pending = reason
            return self.state, []
        return self._reload_now(reason)

    def _reload_now(self, reason: str, *before: Action) -> Moved:
        # A reloaded master starts with its announcements flowing and probes anew once ready.
        self.withdrawn, self.failures = False, 0
        actions: list[Action] = [
            *before,
            CancelTimer(Timer.PROBE),
            Emit(Kind.RELOADING, reason),
            Send(ToVassal.RELOAD),
        ]
        if not self.config.has_workers:
            # uWSGI announces nothing after reloading a vassal without workers.
            return State.READY, [*actions, Emit(Kind.READY, "reloaded in 0 ms")]
        self.reload_asked_at = self.clock()
        self.guard.expect(self.config.stamp)
        return State.RELOADING, actions

    def _on_stop(self, event: Input) -> Moved:
        if self.state is State.STOPPING:
            if self.restarting:
                self.restarting, self.stop_reason = False, event.text
            return self.state, []
        self.stop_reason = event.text
        if self.state in RUNNING:
            return State.STOPPING, [Emit(Kind.STOPPING, event.text), *self._graceful_stop()]
        return self._stopped(CancelTimer(Timer.BACKOFF))

    def _stopped(self, *before: Action) -> Moved:
        return State.STOPPED, [
            *before,
            ReleaseSockets(),
            Emit(Kind.STOPPED, self.stop_reason or ""),
        ]

    def _graceful_stop(self) -> list[Action]:
        """Emperor message 2 makes the master SIGHUP its workers, which finish the request
        in hand and exit; the master checks on them once a second unless a signal wakes it.
        A SIGINT before it took message 2 (a busy host) would be uWSGI's brutal stop, so the
        nudges start once it says it took it, or GRACEFUL_ACK_BOUND passed; SIGKILL to the
        group after `stop_timeout`."""
        self.nudging = False
        return [
            CancelTimer(Timer.HEARTBEAT),
            CancelTimer(Timer.PROBE),
            Send(ToVassal.GRACEFUL_STOP),
            StartTimer(Timer.ACK, min(GRACEFUL_ACK_BOUND, self.stop_timeout)),
            StartTimer(Timer.DEADLINE, self.stop_timeout),
        ]

    def _on_ack_timeout(self, event: Input) -> Moved:
        """The master took message 2, or was given long enough to: nudge it from now on."""
        if self.nudging:
            return None
        self.nudging = True
        return self.state, [CancelTimer(Timer.ACK), StartTimer(Timer.NUDGE, NUDGE_EVERY)]

    def _on_nudge(self, event: Input) -> Moved:
        return self.state, [Signal(signal.SIGINT), StartTimer(Timer.NUDGE, NUDGE_EVERY)]

    def _on_stop_deadline(self, event: Input) -> Moved:
        return self.state, [KillGroup()]

    def _on_exited(self, event: Input) -> Moved:
        cancel: list[Action] = [
            CancelTimer(t)
            for t in (Timer.ACK, Timer.NUDGE, Timer.DEADLINE, Timer.HEARTBEAT, Timer.PROBE)
        ]
        killed_by_toolkit, self.killing = self.killing, None
        if self.state is State.STOPPING:
            if self.stop_reason is None:
                return self._spawn(*cancel)
            return self._stopped(*cancel)
        if self.guard.expected is not None and not self.guard.confirm(event.stamp):
            cancel.append(Emit(Kind.WARNING, "exited while its config changed: starting it again"))
        if self.guard.misread is not None:
            if self.guard.settled_by(self.config.stamp):
                return self._spawn(*cancel)
            return State.WAITING, cancel
        self.last_exit = killed_by_toolkit or event.text or describe_exit(event.code)
        return self._after_exit(*cancel, Emit(Kind.CRASHED, self.last_exit))


# Which method answers which input; one table for all vassals.
HANDLERS: dict[On, Callable[[Machine, Input], Moved]] = {
    On.BEGIN: Machine._spawn_now,
    On.SPAWN_FAILED: Machine._on_spawn_failed,
    On.CONFIG_READ: Machine._on_config_read,
    On.ACCEPTING: Machine._on_accepting,
    On.FIRST_REQUEST: Machine._on_first_request,
    On.HEARTBEAT: Machine._on_heartbeat,
    On.HEARTBEAT_MISSED: Machine._on_heartbeat_missed,
    On.IDLE: Machine._on_idle,
    On.RELOAD: Machine._on_reload,
    On.STOP: Machine._on_stop,
    On.STOP_TAKEN: Machine._on_ack_timeout,
    On.ACK_TIMEOUT: Machine._on_ack_timeout,
    On.NUDGE: Machine._on_nudge,
    On.STOP_DEADLINE: Machine._on_stop_deadline,
    On.EXITED: Machine._on_exited,
    On.BACKOFF_OVER: Machine._spawn_now,
    On.PROBE_DUE: Machine._on_probe_due,
    On.PROBE_PASSED: Machine._on_probe_passed,
    On.PROBE_FAILED: Machine._on_probe_failed,
}
