"""The Emperor's control socket: a 0600 unix socket in a 0700 run folder, one JSON line each way."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import ToolkitError

if TYPE_CHECKING:
    import asyncio

SOCKET_NAME = "emperor.sock"
PID_NAME = "emperor.pid"
Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


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


async def serve(run_dir: Path, handle: Handler) -> asyncio.Server:
    import asyncio

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = json.loads(await reader.readline() or b"{}")
            if not isinstance(request, dict):
                raise ValueError("expected a JSON object")
            answer = await handle(request)
        except ValueError as error:
            answer = {"ok": False, "error": f"bad request: {error}"}
        with contextlib.suppress(ConnectionError):
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
            writer.close()

    path = socket_path(run_dir)
    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(on_connect, path=str(path))
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    (run_dir / PID_NAME).write_text(f"{os.getpid()}\n")
    return server


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
