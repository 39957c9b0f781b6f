"""Helpers for tests that run real uwsgi processes and make real HTTP requests on loopback."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from toolkit.emperor.child import kill_group

BIN = Path(sys.executable).parent
UWSGI = BIN / "uwsgi"
TOOLKIT = BIN / "toolkit"
GZIP = {"Accept-Encoding": "gzip"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def wait_for(
    condition: Callable[[], object], *, what: str, timeout: float = 10.0, every: float = 0.02
) -> object:
    """Poll until `condition()` is truthy, and say `what` it waited for when it fails after
    `timeout` seconds. A test asserts nothing it has not waited for: what happens after the
    event it waited for is waited for too."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}, in vain")
        time.sleep(every)


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


def get(port: int, path: str = "/", headers: Mapping[str, str] | None = None) -> Response:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers=dict(headers or {}))
        answer = connection.getresponse()
        return Response(
            answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
        )
    finally:
        connection.close()


def try_get(port: int, path: str = "/") -> Response | None:
    try:
        return get(port, path)
    except (OSError, http.client.HTTPException):
        return None


def serving(port: int, path: str = "/") -> Callable[[], bool]:
    def check() -> bool:
        response = try_get(port, path)
        return response is not None and response.status == 200

    return check


def port_closed(port: int) -> Callable[[], bool]:
    def check() -> bool:
        with socket.socket() as sock:
            return sock.connect_ex(("127.0.0.1", port)) != 0

    return check


def port_open(port: int) -> Callable[[], bool]:
    closed = port_closed(port)
    return lambda: not closed()


def uwsgi_pids(under: Path | None = None) -> set[int]:
    """Live uwsgi processes; with `under`, only those whose command line names a path there."""
    pids = set()
    for process in psutil.process_iter(["name", "status", "cmdline"]):
        if process.info["name"] != "uwsgi" or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if under is None or any(str(under) in part for part in process.info["cmdline"] or []):
            pids.add(process.pid)
    return pids


@dataclass
class Processes:
    """Starts commands in their own process groups and ends every group at teardown."""

    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(
        self, *args: str | Path, cwd: Path | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [str(a) for a in args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            kill_group(process.pid, signal.SIGINT)
        deadline = time.monotonic() + 5
        for process in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            kill_group(process.pid, signal.SIGKILL)
            process.wait()
            if process.stdout:
                process.stdout.close()


def run_toolkit(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TOOLKIT), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def own_virtualenv(app: Path) -> Path:
    """An app's own virtualenv (.venv), made by the Python uWSGI embeds; its packages come
    from this test environment through a .pth file, not from a download. Its python."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(app / ".venv")],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    site = next((app / ".venv" / "lib").glob("python3*/site-packages"))
    (site / "test-packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return app / ".venv" / "bin" / "python"
