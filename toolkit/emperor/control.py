"""The Emperor's control socket: a 0600 unix socket in a 0700 run folder, one JSON line each way."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from toolkit.emperor.loop import Loop
from toolkit.errors import ToolkitError

SOCKET_NAME = "emperor.sock"
PID_NAME = "emperor.pid"
Answer = Callable[[dict[str, Any]], None]
Handler = Callable[[dict[str, Any], Answer], None]
"""Handles a request, and answers through the callable it is given, now or later."""
REQUEST_LIMIT = 1 << 20


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
    """Create the run folder 0700; replace a dead Emperor's socket, refuse a live one's."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(run_dir, 0o700)
    except OSError as error:
        raise ToolkitError(
            f"cannot make the run folder: {error.strerror}",
            file=run_dir,
            hint="choose a folder this user can write (--run-dir)",
        ) from None
    path = socket_path(run_dir)
    if path.exists() or path.is_symlink():
        if _alive(path):
            pid = (run_dir / PID_NAME).read_text().strip() if (run_dir / PID_NAME).exists() else "?"
            raise ToolkitError(
                f"an Emperor already runs here (pid {pid})",
                file=path,
                hint=f"stop it with `toolkit down {run_dir.parent}`, or use another run folder",
            )
        path.unlink()


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
        loop.add_reader(self._socket.fileno(), self._accept)
        (run_dir / PID_NAME).write_text(f"{os.getpid()}\n")

    def _accept(self) -> None:
        try:
            client, _ = self._socket.accept()
        except OSError:
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

    def close(self) -> None:
        self.loop.remove_reader(self._socket.fileno())
        self._socket.close()
        for client, _ in list(self._clients.values()):
            self.loop.remove_reader(client.fileno())
            client.close()
        self._clients.clear()


def cleanup(run_dir: Path) -> None:
    for name in (SOCKET_NAME, PID_NAME):
        (run_dir / name).unlink(missing_ok=True)


def request(run_dir: Path, command: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
    """Send one command to a running Emperor and return its answer."""
    path = socket_path(run_dir)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        try:
            client.connect(str(path))
            client.sendall(json.dumps({"command": command, **fields}).encode() + b"\n")
            data = client.makefile("rb").readline()
        except (FileNotFoundError, ConnectionRefusedError):
            raise ToolkitError(
                "no Emperor is running here",
                file=path,
                hint=f"start one with `toolkit up {run_dir.parent}`",
            ) from None
        except OSError as error:
            raise ToolkitError(f"cannot talk to the Emperor: {error}", file=path) from None
    answer: dict[str, Any] = json.loads(data or b"{}")
    if not answer.get("ok"):
        raise ToolkitError(str(answer.get("error", "the Emperor gave no answer")), exit_code=1)
    return answer
