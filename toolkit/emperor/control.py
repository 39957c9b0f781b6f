"""The Emperor's control socket: a 0600 unix socket in a 0700 run folder, one JSON line each way."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from toolkit.emperor.loop import Loop, Scheduled
from toolkit.emperor.status import VassalStatus
from toolkit.errors import ExitCode, ToolkitError

TYPE_CHECKING = False  # the Emperor never loads typing (toolkit/emperor/__init__.py)
if TYPE_CHECKING:
    from typing import Any

    Answer = Callable[[dict[str, Any]], None]
    Handler = Callable[[dict[str, Any], Answer], None]
    """Handles a request, and answers through the callable it is given, now or later."""

SOCKET_NAME = "emperor.sock"
PID_NAME = "emperor.pid"
# The `--set` values `up` started this Emperor with: kept while it runs (toolkit.deployment).
KEPT_NAME = "set.json"
REQUEST_LIMIT = 1 << 20
# How long a client waits for an answer; `stop` answers once the vassal has stopped.
ANSWER_TIMEOUT = 30.0
# How long accepting waits after the open-file limit refused a connection.
ACCEPT_AGAIN = 0.5
# What `down` allows beyond the Emperor's own stop timeout before it says so.
STOP_MARGIN = 10.0


def socket_path(run_dir: Path) -> Path:
    return run_dir / SOCKET_NAME


def _alive(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def prepare_run_dir(run_dir: Path) -> None:
    """The run folder, for a new Emperor: replace a dead Emperor's socket, refuse a live
    one's."""
    own_run_dir(run_dir)
    path = socket_path(run_dir)
    if path.exists() or path.is_symlink():
        if _alive(path):
            raise ToolkitError(
                f"an Emperor already runs here (pid {_pid(run_dir) or '?'})",
                file=path,
                hint=f"stop it with `toolkit down {run_dir.parent}`, or use another run folder",
            )
        path.unlink()


def own_run_dir(run_dir: Path) -> None:
    """Make the run folder 0700, or take one that is this user's own real folder (never a
    link, never someone else's: what is written in it is not followed elsewhere)."""
    try:
        run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(run_dir)
    except OSError as error:
        raise ToolkitError(
            f"cannot make the run folder: {error.strerror}",
            file=run_dir,
            hint="choose a folder this user can write (--run-dir)",
        ) from None
    if not stat.S_ISDIR(info.st_mode):
        raise ToolkitError(
            "the run folder is a link or not a folder",
            file=run_dir,
            hint="remove it: toolkit makes its own",
        )
    if info.st_uid != os.getuid():
        raise ToolkitError(
            f"the run folder belongs to uid {info.st_uid}, not to this user ({os.getuid()})",
            file=run_dir,
            hint="remove it, or use another run folder",
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(run_dir, 0o700)


def write_run_file(path: Path, text: str) -> None:
    """A file of the run folder, 0600, never through a link planted where it goes."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_symlink():
            path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as stream:
        stream.write(text)


class Server:
    """Accepts on the control socket; each connection sends one JSON line and gets one
    back, now or, for a command that waits (`stop`), once it is done."""

    def __init__(self, run_dir: Path, handle: Handler, loop: Loop) -> None:
        self.handle = handle
        self.loop = loop
        self.path = socket_path(run_dir)
        self._clients: dict[int, tuple[socket.socket, bytearray]] = {}
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o177)
        try:
            self._socket.bind(str(self.path))
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)
        self._socket.listen(64)
        self._socket.setblocking(False)
        self._paused: Scheduled | None = None
        self._reserve: int | None = None
        self._keep_reserve()
        self._listen()
        write_run_file(run_dir / PID_NAME, f"{os.getpid()}\n")

    def _accept(self) -> None:
        try:
            client, _ = self._socket.accept()
        except BlockingIOError:
            return
        except OSError as error:
            if error.errno in {errno.EMFILE, errno.ENFILE} and self._reserve is not None:
                # At the open-file limit: the fd kept in reserve serves this one client
                # (`toolkit status` still answers), and is taken back once it is done.
                os.close(self._reserve)
                self._reserve = None
                self._accept()
                return
            # Still nothing free: the connection stays queued and the socket readable;
            # listen again in a while rather than spin on it.
            self.loop.remove_reader(self._socket.fileno())
            self._paused = self.loop.call_later(ACCEPT_AGAIN, self._listen)
            return
        client.setblocking(False)
        self._clients[client.fileno()] = (client, bytearray())
        self.loop.add_reader(client.fileno(), lambda: self._read(client))

    def _read(self, client: socket.socket) -> None:
        received = self._clients[client.fileno()][1]
        try:
            data = client.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        received += data
        if data and b"\n" not in received and len(received) < REQUEST_LIMIT:
            return
        self.loop.remove_reader(client.fileno())
        try:
            request = json.loads(bytes(received).partition(b"\n")[0] or b"{}")
            if not isinstance(request, dict):
                raise ValueError("expected a JSON object")
        except ValueError as error:
            self._answer(client, {"ok": False, "error": f"bad request: {error}"})
            return
        self.handle(request, lambda answer: self._answer(client, answer))

    def _answer(self, client: socket.socket, answer: dict[str, Any]) -> None:
        self._clients.pop(client.fileno(), None)
        with contextlib.suppress(OSError):
            # A few kB that fit the socket's buffer; the timeout bounds a client that
            # stopped reading.
            client.settimeout(1.0)
            client.sendall(json.dumps(answer).encode() + b"\n")
        client.close()
        self._keep_reserve()

    def _keep_reserve(self) -> None:
        if self._reserve is None:
            with contextlib.suppress(OSError):
                self._reserve = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)

    def _listen(self) -> None:
        self._paused = None
        self.loop.add_reader(self._socket.fileno(), self._accept)

    def close(self) -> None:
        if self._paused is not None:
            self._paused.cancel()
        if self._reserve is not None:
            os.close(self._reserve)
            self._reserve = None
        self.loop.remove_reader(self._socket.fileno())
        self._socket.close()
        for client, _ in list(self._clients.values()):
            self.loop.remove_reader(client.fileno())
            client.close()
        self._clients.clear()


def cleanup(run_dir: Path) -> None:
    for name in (SOCKET_NAME, PID_NAME, KEPT_NAME):
        (run_dir / name).unlink(missing_ok=True)


def running(run_dir: Path) -> bool:
    """An Emperor answers on this run folder's control socket."""
    return _alive(socket_path(run_dir))


class NoEmperor(ToolkitError):
    """Nothing answers on the control socket."""


def request(
    run_dir: Path, command: str, timeout: float = ANSWER_TIMEOUT, **fields: Any
) -> dict[str, Any]:
    """Send one command to a running Emperor and return its answer, within `timeout`."""
    path = socket_path(run_dir)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        try:
            client.connect(str(path))
            client.sendall(json.dumps({"command": command, **fields}).encode() + b"\n")
            data = client.makefile("rb").readline(REQUEST_LIMIT)
        except (FileNotFoundError, ConnectionRefusedError):
            raise NoEmperor(
                "no Emperor is running here",
                file=path,
                hint=f"start one with `toolkit up {run_dir.parent}`",
            ) from None
        except TimeoutError:
            pid = _pid(run_dir) or "?"
            raise ToolkitError(
                f"the Emperor (pid {pid}) did not answer `{command}` within {timeout:g} s",
                file=path,
                hint="it is stopped or overloaded; the request stays queued and is carried out "
                f"once it runs again (`kill -KILL {pid}` ends it and its vassals)",
            ) from None
        except OSError as error:
            raise ToolkitError(f"cannot talk to the Emperor: {error}", file=path) from None
    try:
        answer = json.loads(data)
        if not isinstance(answer, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        raise ToolkitError(f"the Emperor's answer to `{command}` is unreadable: {error}") from None
    if not answer.get("ok"):
        refusal = str(answer.get("error", "the Emperor gave no answer"))
        raise ToolkitError(refusal, exit_code=ExitCode.PROBLEMS)
    return answer


def status(
    run_dir: Path, timeout: float = ANSWER_TIMEOUT, name: str | None = None, usage: bool = True
) -> list[VassalStatus]:
    """Every vassal's status (or the named one's); without `usage`, the memory and CPU
    figures the Emperor read last (reading them costs it a walk over /proc)."""
    return overview(run_dir, timeout, name, usage)[0]


def overview(
    run_dir: Path, timeout: float = ANSWER_TIMEOUT, name: str | None = None, usage: bool = True
) -> tuple[list[VassalStatus], bool]:
    """`status`, and whether the Emperor has announced its site (every address it was given
    with `--serving` answered once every vassal served)."""
    answer = request(run_dir, "status" if usage else "glance", timeout, name=name)
    try:
        return [VassalStatus.from_json(v) for v in answer["vassals"]], bool(answer["announced"])
    except (KeyError, TypeError, ValueError) as error:
        raise ToolkitError(f"the Emperor's status is unreadable: {error}") from None


def reload(run_dir: Path, name: str | None) -> list[str]:
    return list(request(run_dir, "reload", name=name)["reloaded"])


def wait_serving(run_dir: Path, name: str | None, timeout: float) -> None:
    """Return once every vassal (or the one named) serves; ToolkitError after `timeout`.
    Asked right after `reload`: the Emperor has moved each vassal to reloading before it
    answered that, so serving here is serving again."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        vassals = status(run_dir, timeout=max(0.1, deadline - time.monotonic()), name=name)
        if all(v.serving for v in vassals):
            return
        if time.monotonic() > deadline:
            waiting = ", ".join(f"{v.name} ({v.state})" for v in vassals if not v.serving)
            raise ToolkitError(
                f"not serving again within {timeout:g} s: {waiting}",
                file=socket_path(run_dir),
                hint=f"see `toolkit logs {run_dir.parent}`",
            )
        time.sleep(0.05)


def stop(run_dir: Path, name: str) -> None:
    request(run_dir, "stop", name=name)


def down(run_dir: Path, timeout: float = ANSWER_TIMEOUT) -> None:
    """Ask the Emperor to stop every vassal and exit; return once its process has ended (it
    may die in between: that is fine), or fail naming it after its stop timeout and a margin."""
    pid = _pid(run_dir)
    watch = _pidfd(pid)
    try:
        answer = request(run_dir, "down", timeout)
        pid = int(answer.get("pid", pid or 0)) or None
        if watch is None and pid is not None:
            watch = _pidfd(pid)
        bound = float(answer.get("stop_timeout", 0)) + STOP_MARGIN
        if watch is not None and not _ended(watch, bound):
            raise ToolkitError(
                f"the Emperor (pid {pid}) did not stop within {bound:g} s of `down`",
                file=socket_path(run_dir),
                hint=f"`kill -KILL {pid}` ends it; its vassals die with it",
            )
    finally:
        if watch is not None:
            os.close(watch)
    cleanup(run_dir)


def emperor_cwd(run_dir: Path) -> Path | None:
    """The running Emperor's working folder: where the relative vassal paths it reports
    start (None when it cannot be read)."""
    pid = _pid(run_dir)
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")) if pid else None
    except OSError:
        return None


def _pid(run_dir: Path) -> int | None:
    try:
        return int((run_dir / PID_NAME).read_text().strip())
    except (OSError, ValueError):
        return None


def _pidfd(pid: int | None) -> int | None:
    """A pidfd turns readable once the process has ended, reaped or not."""
    if pid is None:
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _ended(pidfd: int, timeout: float) -> bool:
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return bool(poller.poll(timeout * 1000))
