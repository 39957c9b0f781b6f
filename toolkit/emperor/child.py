"""A vassal's process: spawn a real `uwsgi --ini` in its own process group, read its output
and its emperor-protocol messages on the event loop, signal it, and learn of its exit.

No thread and no timer per child: its stdout, its end of the protocol socket and a pidfd
are registered with the loop, which sleeps until one of them has something to say.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from toolkit.emperor import protocol
from toolkit.emperor.config import VassalConfig
from toolkit.emperor.loop import Loop, Scheduled
from toolkit.emperor.protocol import ToVassal
from toolkit.installed import on_path

TYPE_CHECKING = False  # the Emperor never loads typing (toolkit/emperor/__init__.py)
if TYPE_CHECKING:
    from typing import Protocol

    from toolkit.emperor.containment import Containment

LINE_LIMIT = 1 << 20
PR_SET_PDEATHSIG = 1
# How long a dead master's output may still flow (from a process that left its group).
DRAIN_BOUND = 1.0


def die_with(emperor_pid: int) -> Callable[[], None]:
    """What the child runs before exec: SIGKILL the master if the Emperor dies, even by SIGKILL.

    uWSGI notices its emperor's socket closing too, but takes about two seconds; its
    workers follow a killed master at once. An Emperor that died between fork and prctl
    would never send the signal, so the child checks its parent is still the Emperor.
    """

    # Looked up here, not in the child: dlopen after each fork cost 0.8 ms per spawn.
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None

    def arm() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != emperor_pid:
            os._exit(1)

    return arm


def kill_group(pid: int, sig: int) -> None:
    """Signal a vassal's whole process group; a group that already left is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


if TYPE_CHECKING:

    class Child(Protocol):
        pid: int

        def send(self, message: ToVassal) -> None: ...

        def signal(self, number: signal.Signals) -> None: ...

        def kill_group(self) -> None: ...

    class Parent(Protocol):
        """What a child tells the vassal that spawned it; `exited` comes last, once."""

        def output(self, line: bytes) -> None: ...

        def message(self, message: int) -> None: ...

        def exited(self, code: int, why: str = "") -> None: ...

        def warn(self, text: str) -> None: ...

    class Spawner(Protocol):
        def spawn(self, config: VassalConfig, fds: list[int], parent: Parent) -> Child:
            """Start the vassal's process, handing it these listening fds; OSError if it cannot."""
            ...


def pdeathsig_wrapper() -> list[str]:
    """`setpriv --pdeathsig KILL --` when this machine's setpriv (util-linux 2.33+) has it.

    Setting the signal in the child with a preexec function makes Python fork instead of
    vfork: 2.2 ms per spawn instead of 1.0 ms here, paid by the Emperor's one thread, so
    100 files dropped in at once were all serving 14 % later than 100 bare uwsgi instead
    of 3 %. setpriv sets it and execs uwsgi (same pid). An Emperor that dies in the few
    microseconds before setpriv runs leaves a master that exits once it reads the end of
    its emperor socket (about two seconds)."""
    setpriv = on_path("setpriv")
    if setpriv is None:
        return []
    wrapper = [setpriv, "--pdeathsig", "KILL", "--"]
    try:
        works = subprocess.run([*wrapper, "true"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.SubprocessError):
        works = False
    return wrapper if works else []


def ini_argument(path: Path) -> str:
    """`--ini PATH:uwsgi`: uWSGI splits the argument at its last `:` into file and section
    (core/ini.c uwsgi_ini_config()), so a `:` anywhere in the path (a folder `site:v2`)
    would make it read another file; naming the section makes the last `:` ours."""
    return f"{path}:uwsgi"


class UwsgiSpawner:
    def __init__(self, uwsgi: Path, loop: Loop, containment: Containment) -> None:
        self.uwsgi = uwsgi
        self.loop = loop
        self.containment = containment
        self._wrapper = pdeathsig_wrapper()
        self._die_with_me = None if self._wrapper else die_with(os.getpid())

    def spawn(self, config: VassalConfig, fds: list[int], parent: Parent) -> Child:
        emperor_end, vassal_end = protocol.channel()
        contained = self.containment.environment()
        env = {
            **os.environ,
            **contained,
            protocol.ENVIRONMENT_VARIABLE: str(vassal_end.fileno()),
        }
        try:
            process = subprocess.Popen(
                [
                    *self._wrapper,
                    str(self.uwsgi),
                    "--ini",
                    ini_argument(config.path),
                    # Workers and gateways die with their master, even when it is SIGKILLed;
                    # without it a worker blocked in accept() outlives a killed Emperor.
                    "--no-orphans",
                    *(f"--socket=fd://{fd}" for fd in fds),
                ],
                stdin=subprocess.DEVNULL,
                # Read with os.read on the loop: a buffered reader would hold 8 kB per vassal.
                bufsize=0,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(vassal_end.fileno(), *fds),
                env=env,
                preexec_fn=self._die_with_me,
            )
        except OSError:
            emperor_end.close()
            raise
        finally:
            vassal_end.close()
        problem = self.containment.adopt(process.pid, contained, config.memory_max)
        if problem is not None:
            parent.warn(problem)
        return UwsgiChild(process, emperor_end, parent, self.loop, self.containment)


class UwsgiChild:
    """One running uwsgi master, followed on the event loop until it has exited and its
    output has been read to the end."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        channel: socket.socket,
        parent: Parent,
        loop: Loop,
        containment: Containment,
    ) -> None:
        assert process.stdout is not None
        self._containment = containment
        self.pid = process.pid
        self._process = process
        self._channel = channel
        self._parent = parent
        self._stdout = process.stdout
        self._loop = loop
        self._pending = b""
        self._code: int | None = None
        self._output_done = False
        self._finished = False
        self._drain: Scheduled | None = None
        os.set_blocking(self._stdout.fileno(), False)
        try:
            self._pidfd = os.pidfd_open(self.pid)
        except OSError:
            # Linux before 5.3, or the open-file limit: not a vassal this Emperor could
            # follow; leave nothing behind.
            kill_group(self.pid, signal.SIGKILL)
            containment.end(self.pid)
            process.wait()
            channel.close()
            self._stdout.close()
            raise
        self._loop.add_reader(self._stdout.fileno(), self._read_output)
        self._loop.add_reader(channel.fileno(), self._read_messages)
        self._loop.add_reader(self._pidfd, self._reap)

    def send(self, message: ToVassal) -> None:
        with contextlib.suppress(OSError):
            self._channel.send(bytes([message]))

    def signal(self, number: signal.Signals) -> None:
        if self._code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, number)

    def kill_group(self) -> None:
        kill_group(self.pid, signal.SIGKILL)

    def _read_output(self) -> None:
        try:
            data = os.read(self._stdout.fileno(), 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._loop.remove_reader(self._stdout.fileno())
            if self._pending:
                self._parent.output(self._pending)
                self._pending = b""
            self._output_done = True
            if self._code is not None:
                self._finish()
            return
        *lines, self._pending = (self._pending + data).split(b"\n")
        for line in lines:
            self._parent.output(line)
        if len(self._pending) >= LINE_LIMIT:
            self._parent.output(self._pending)
            self._pending = b""

    def _read_messages(self) -> None:
        try:
            data = self._channel.recv(64)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._loop.remove_reader(self._channel.fileno())
            return
        for message in data:
            self._parent.message(message)

    def _reap(self) -> None:
        code = self._process.poll()
        if code is None:
            return
        self._code = code
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        # Workers or gateways that outlived their master would hold the sockets, and a
        # process that left the group (a daemonized app) would hold anything.
        kill_group(self.pid, signal.SIGKILL)
        self._containment.end(self.pid)
        if self._output_done:
            self._finish()
        else:
            self._drain = self._loop.call_later(DRAIN_BOUND, self._finish)

    def _finish(self) -> None:
        if self._finished or self._code is None:
            return
        self._finished = True
        if self._drain is not None:
            self._drain.cancel()
        while self._channel.fileno() >= 0:
            try:
                data = self._channel.recv(64)
            except OSError:
                data = b""
            if not data:
                break
            for message in data:
                self._parent.message(message)
        for fd in (self._stdout.fileno(), self._channel.fileno()):
            self._loop.remove_reader(fd)
        if not self._output_done and self._pending:
            self._parent.output(self._pending)
        self._stdout.close()
        self._channel.close()
        why = ""
        if self._code < 0:  # a signal ended it: which, and who can tell
            from toolkit.emperor.deaths import master_exit

            why = master_exit(self._code, self.pid)
        self._parent.exited(self._code, why)
