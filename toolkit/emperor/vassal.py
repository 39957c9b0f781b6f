"""One vassal: a real `uwsgi --ini` child in its own process group, its output, its protocol."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from toolkit.emperor import protocol
from toolkit.emperor.events import Event, Kind
from toolkit.emperor.listeners import Listeners
from toolkit.emperor.protocol import FromVassal, ToVassal
from toolkit.emperor.throttle import Throttle

LINE_LIMIT = 1 << 20
PR_SET_PDEATHSIG = 1
# Printed by uWSGI once it has read its config; the protocol's first message comes later.
CONFIG_READ_LINE = b"*** Starting uWSGI "
Stamp = tuple[int, int, int]
IDLE_STOP = (
    "idle, it asked to be stopped (die-on-idle); a config change or `toolkit reload` starts it"
)
# uWSGI's own `emperor-required-heartbeat` default.
HEARTBEAT_TOLERANCE = 30.0
# Long enough for the master to read message 2 first (and run its emperor-stop hooks).
NUDGE_EVERY = 0.05
# What the master prints once it has taken message 2 (gracefully_kill_them_all(),
# core/uwsgi.c): from then on a SIGINT only wakes it; before, SIGINT is a brutal stop.
GRACEFUL_STOP_LINE = b"graceful shutdown triggered"
# How long to wait for that line (a master whose output goes elsewhere never shows it).
GRACEFUL_ACK_BOUND = 2.0


class State(StrEnum):
    STARTING = "starting"
    READY = "ready"
    LOYAL = "loyal"
    RELOADING = "reloading"
    STOPPING = "stopping"
    STOPPED = "stopped"
    CRASHED = "crashed"
    BACKOFF = "backoff"
    WAITING = "waiting"  # for its config file to be finished
    THROTTLED = "throttled"


RUNNING = {State.STARTING, State.READY, State.LOYAL, State.RELOADING}
SERVING = {State.READY, State.LOYAL}


@dataclass(frozen=True)
class Config:
    """A vassal's config file as last read: its name, path, content digest, and the file's
    stamp then, which tells whether uWSGI, reading it later, can have read anything else."""

    name: str
    path: Path
    digest: str
    stamp: Stamp
    has_workers: bool
    sockets: tuple[str, ...] = ()
    """Its `socket = IPv4:port` lines: what the Emperor binds and hands over (listeners)."""


def file_stamp(info: os.stat_result) -> Stamp:
    """Inode, size and mtime: any write, truncation or replacement changes one of them."""
    return (info.st_ino, info.st_size, info.st_mtime_ns)


def die_with(emperor_pid: int) -> Callable[[], None]:
    """What the child runs before exec: SIGKILL the master if the Emperor dies, even by SIGKILL.

    uWSGI notices its emperor's socket closing too, but takes about two seconds; its
    workers follow a killed master at once. An Emperor that died between fork and prctl
    would never send the signal, so the child checks its parent is still the Emperor.
    """

    def arm() -> None:
        if sys.platform == "linux":
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != emperor_pid:
            os._exit(1)

    return arm


def kill_group(pid: int, sig: int) -> None:
    """Signal a vassal's whole process group; a group that already left is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


# uWSGI's exit code for "no app loaded" under need-app (UWSGI_FAILED_APP_CODE, uwsgi.h).
FAILED_APP_CODE = 22


def describe_exit(code: int) -> str:
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    if code == FAILED_APP_CODE:
        return f"exit code {code}: the app did not load"
    return f"exit code {code}"


class Vassal:
    """Owns one config's uwsgi child: spawn, watch, reload, respawn with backoff, stop."""

    def __init__(
        self,
        config: Config,
        *,
        uwsgi: Path,
        publish: Callable[[Event], None],
        throttle: Throttle,
        stop_timeout: float = 5.0,
        heartbeat_tolerance: float = HEARTBEAT_TOLERANCE,
        clock: Callable[[], float] = time.monotonic,
        listeners: Listeners | None = None,
    ) -> None:
        self.config = config
        self.uwsgi = uwsgi
        self.listeners = listeners
        self.publish = publish
        self.throttle = throttle
        self.stop_timeout = stop_timeout
        self.heartbeat_tolerance = heartbeat_tolerance
        self.clock = clock
        self.state = State.STARTING
        self.pid: int | None = None
        self.restarts = 0
        self.spawned_at: float | None = None
        self.last_exit: str | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._wake = asyncio.Event()
        self._stop_requested = asyncio.Event()
        # Its held sockets changed: stop the process gracefully and spawn a new one with
        # the new sockets (a reload would keep the old fds it was handed).
        self._restart_requested = asyncio.Event()
        self._stop_taken = asyncio.Event()
        self._stop_reason: str | None = None
        self._asked_to_reload_at: float | None = None
        self._reload_pending: str | None = None
        self._ready_at: float | None = None
        self._task: asyncio.Task[None] | None = None
        self._reading: Stamp | None = None
        self._misread: Stamp | None = None
        self._heartbeat_due: asyncio.TimerHandle | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def emit(self, kind: Kind, text: str = "") -> None:
        self.publish(Event(self.name, kind, text))

    def start(self, after: Awaitable[object] | None = None) -> None:
        """Begin supervising, once `after` (a predecessor's stop) is done."""
        self._task = asyncio.create_task(self._supervise(after), name=f"vassal {self.name}")

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    def status(self) -> dict[str, object]:
        uptime = None
        if self.spawned_at is not None and self.state in RUNNING:
            uptime = round(self.clock() - self.spawned_at, 3)
        return {
            "name": self.name,
            "pid": self.pid,
            "state": self.state.value,
            "restarts": self.restarts,
            "uptime": uptime,
            "last_exit": self.last_exit,
            "config": str(self.config.path),
            "digest": self.config.digest,
        }

    def reload(self, config: Config | None = None, reason: str = "") -> None:
        """Graceful reload of a running vassal; a waiting (backoff, throttled) one spawns now."""
        sockets_changed = (
            config is not None
            and self.listeners is not None
            and config.sockets != self.config.sockets
        )
        if config is not None:
            self.config = config
        if self._stop_reason is not None:
            return
        if sockets_changed and self.state in RUNNING and self._process is not None:
            self.emit(Kind.RELOADING, f"{reason or 'config changed'}; new sockets: restarting")
            self._restart_requested.set()
        elif self.state in {State.STARTING, State.RELOADING}:
            # One reload at a time: a burst of changes ends in one more reload, not many.
            self._reload_pending = reason or "config changed"
        elif self.state in RUNNING and self._writer is not None:
            self.state = State.RELOADING
            self._asked_to_reload_at = self.clock()
            self._reading = self.config.stamp
            self.emit(Kind.RELOADING, reason)
            self._send(ToVassal.RELOAD)
            if not self.config.has_workers:
                # uWSGI announces nothing after reloading a vassal without workers.
                self._ready()
        else:
            self.throttle.clear()
            self._wake.set()

    def _verify_read(self) -> bool:
        """uWSGI reads its config by path, after the Emperor did: if the file changed in
        between, it may have read a half-written one. Restart it before it serves that.

        False when the process is being restarted for it."""
        if self._reading is None or self.pid is None:
            return True
        expected, self._reading = self._reading, None
        if not self._changed_since(expected):
            return True
        self._misread = expected
        self.emit(Kind.WARNING, "config changed while uWSGI read it: restarting it")
        kill_group(self.pid, signal.SIGKILL)
        return False

    def _changed_since(self, stamp: Stamp) -> bool:
        try:
            return file_stamp(self.config.path.stat()) != stamp
        except OSError:
            return True

    async def stop(self, reason: str) -> None:
        """Ask the supervising task to stop its child, and wait until it has."""
        self._request_stop(reason)
        if self._task is not None:
            await self._task

    def _request_stop(self, reason: str) -> None:
        if self._stop_reason is None:
            self._stop_reason = reason
            self._stop_requested.set()
            self._wake.set()

    async def _terminate(self, process: asyncio.subprocess.Process) -> None:
        """Emperor message 2; once the master says it took it (or GRACEFUL_ACK_BOUND
        passed), SIGINT to the master every NUDGE_EVERY seconds; SIGKILL to the group after
        `stop_timeout`.

        Message 2 makes the master SIGHUP its workers, which finish the request in hand
        and exit; the master checks on them once a second, unless a signal wakes it. A
        SIGINT to a master that is already stopping does nothing else, so each nudge is a
        chance to exit now; a SIGINT before it took message 2 (a busy host) would be
        uWSGI's brutal stop and cut the request the graceful stop exists for.
        """
        self.state = State.STOPPING
        self.emit(Kind.STOPPING, self._stop_reason or "to restart it on its new sockets")
        self._stop_taken.clear()
        self._send(ToVassal.GRACEFUL_STOP)
        deadline = self.clock() + self.stop_timeout
        taken: asyncio.Future[object] = asyncio.ensure_future(self._stop_taken.wait())
        exited: asyncio.Future[object] = asyncio.ensure_future(asyncio.shield(process.wait()))
        await asyncio.wait(
            {taken, exited},
            timeout=min(GRACEFUL_ACK_BOUND, self.stop_timeout),
            return_when=asyncio.FIRST_COMPLETED,
        )
        taken.cancel()
        if exited.done():
            return
        exited.cancel()
        while not await self._exits_within(process, NUDGE_EVERY):
            if self.clock() >= deadline:
                kill_group(process.pid, signal.SIGKILL)
                return
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)

    @staticmethod
    async def _exits_within(process: asyncio.subprocess.Process, seconds: float) -> bool:
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), seconds)
        except TimeoutError:
            return False
        return True

    def _send(self, message: ToVassal) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(bytes([message]))

    async def _supervise(self, after: Awaitable[object] | None) -> None:
        if after is not None:
            await after
        while self._stop_reason is None:
            try:
                code = await self._run_once()
            except OSError as error:
                code = None
                self.emit(Kind.CRASHED, f"cannot start {self.uwsgi}: {error.strerror or error}")
            if self._stop_reason is not None:
                break
            if self._restart_requested.is_set():
                self._restart_requested.clear()
                continue
            if self._reading is not None and self._changed_since(self._reading):
                # It exited before it could be checked, and its config changed meanwhile.
                self._misread = self._reading
                self.emit(Kind.WARNING, "exited while its config changed: starting it again")
            if self._misread is not None:
                await self._await_finished_config()
                continue
            if code is not None:
                self.last_exit = describe_exit(code)
                self.state = State.CRASHED
                self.emit(Kind.CRASHED, self.last_exit)
            now = self.clock()
            served_for = now - self._ready_at if self._ready_at is not None else 0.0
            delay = self.throttle.record_exit(now, served_for)
            self._wake.clear()
            if delay is None:
                self._release_listeners()  # refused at once, not left waiting in a backlog
                self.state = State.THROTTLED
                self.emit(
                    Kind.THROTTLED,
                    f"{self.throttle.max_spawns} exits within {self.throttle.window:g} s; "
                    "waiting for its config to change or `toolkit reload`",
                )
                await self._wake.wait()
            elif delay > 0:
                self.state = State.BACKOFF
                self.emit(Kind.BACKOFF, f"respawn in {delay:g} s")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            if self._stop_reason is None:
                self.restarts += 1
        self._release_listeners()
        self.state = State.STOPPED
        self.pid = None
        self.emit(Kind.STOPPED, self._stop_reason or "")

    def _release_listeners(self) -> None:
        if self.listeners is not None:
            self.listeners.release(self.config.name)

    async def _await_finished_config(self) -> None:
        """After a misread, respawn only once the Emperor has a newer, finished read of the
        file: its change is an event, and a sealed file is not handed over half-written."""
        self.state = State.WAITING
        if self.config.stamp == self._misread:
            self._wake.clear()
            await self._wake.wait()
        self._misread = None
        if self._stop_reason is None:
            self.restarts += 1

    async def _run_once(self) -> int:
        """Spawn, follow its protocol and output until it exits; return its exit code."""
        emperor_end, vassal_end = protocol.channel()
        env = {**os.environ, protocol.ENVIRONMENT_VARIABLE: str(vassal_end.fileno())}
        held = self.listeners.hold(self.config.name, self.config.sockets) if self.listeners else []
        self.state = State.STARTING
        self.spawned_at = self.clock()
        self._reload_pending = None  # the new process reads the config as it is now
        self._ready_at = None
        self._reading = self.config.stamp
        try:
            process = await asyncio.create_subprocess_exec(
                str(self.uwsgi),
                "--ini",
                str(self.config.path),
                # Workers and gateways die with their master, even when it is SIGKILLed;
                # without it a worker blocked in accept() outlives a killed Emperor.
                "--no-orphans",
                *(f"--socket=fd://{fd}" for fd in held),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(vassal_end.fileno(), *held),
                env=env,
                limit=LINE_LIMIT,
                preexec_fn=die_with(os.getpid()),
            )
        except OSError:
            emperor_end.close()
            raise
        finally:
            vassal_end.close()
        self._process, self.pid = process, process.pid
        self.emit(Kind.SPAWNED, f"pid {process.pid}, {self.config.path}")
        reader, self._writer = await asyncio.open_unix_connection(sock=emperor_end)
        listen = asyncio.create_task(self._listen(reader))
        assert process.stdout is not None
        pump = asyncio.create_task(self._pump(process.stdout))
        stop_requested = asyncio.create_task(self._stop_requested.wait())
        restart_requested = asyncio.create_task(self._restart_requested.wait())
        await asyncio.wait(
            {stop_requested, restart_requested, asyncio.ensure_future(process.wait())},
            return_when=asyncio.FIRST_COMPLETED,
        )
        stop_requested.cancel()
        restart_requested.cancel()
        if process.returncode is None:
            await self._terminate(process)
        code = await process.wait()
        if self._heartbeat_due is not None:
            self._heartbeat_due.cancel()
            self._heartbeat_due = None
        # Workers or gateways that outlived their master would hold the sockets.
        kill_group(process.pid, signal.SIGKILL)
        await asyncio.wait({pump, listen}, timeout=1.0)
        for task in (pump, listen):
            task.cancel()
        self._writer.close()
        self._writer, self._process = None, None
        return code

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(64):
            # A fresh process speaks only once it has read its config; a reloading one may
            # still be the old process, so only its "Starting uWSGI" line tells.
            if self._misread is not None or (
                self.state is State.STARTING and not self._verify_read()
            ):
                continue
            for message in protocol.decode(data):
                if message == FromVassal.ACCEPTING or (
                    message == FromVassal.SPAWNED and not self.config.has_workers
                ):
                    self._ready()
                elif message == FromVassal.LOYAL and self.state is State.READY:
                    self.state = State.LOYAL
                    self.emit(Kind.LOYAL, "served its first request")
                elif message == FromVassal.HEARTBEAT:
                    self._heard_heartbeat()
                elif message == FromVassal.VOLUNTARY_SHUTDOWN:
                    # Sent by `die-on-idle`: the vassal waits for the Emperor to stop it.
                    self._request_stop(IDLE_STOP)

    def _heard_heartbeat(self) -> None:
        """A vassal with uWSGI's `heartbeat` option beats every few seconds; once it has
        beaten, silence for `heartbeat_tolerance` seconds means it is stuck."""
        if self._heartbeat_due is not None:
            self._heartbeat_due.cancel()
        loop = asyncio.get_running_loop()
        self._heartbeat_due = loop.call_later(self.heartbeat_tolerance, self._heartbeat_missed)

    def _heartbeat_missed(self) -> None:
        self._heartbeat_due = None
        if self.pid is not None and self._stop_reason is None:
            self.emit(
                Kind.WARNING,
                f"no heartbeat for {self.heartbeat_tolerance:g} s: killing it to respawn it",
            )
            kill_group(self.pid, signal.SIGKILL)

    def _ready(self) -> None:
        """Starting or reloading -> ready; a respawned worker's "accepting" changes nothing."""
        if self.state not in {State.STARTING, State.RELOADING}:
            return
        started = self._asked_to_reload_at or self.spawned_at or self.clock()
        took = round((self.clock() - started) * 1000)
        was_reload = self.state is State.RELOADING
        self.state, self._asked_to_reload_at = State.READY, None
        if self._ready_at is None:
            self._ready_at = self.clock()
        self.emit(Kind.READY, f"{'reloaded in' if was_reload else 'in'} {took} ms")
        if self._reload_pending is not None:
            reason, self._reload_pending = self._reload_pending, None
            self.reload(reason=reason)

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stream.readline()
            except ValueError:
                line = await stream.read(LINE_LIMIT)
            if not line:
                return
            if line.startswith(CONFIG_READ_LINE):
                self._verify_read()
            elif GRACEFUL_STOP_LINE in line:
                self._stop_taken.set()
            self.emit(Kind.OUTPUT, line.decode(errors="replace").rstrip("\r\n"))
