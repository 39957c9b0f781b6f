"""What uWSGI's stats servers say: an app vassal's workers (`stats`), a router's nodes
(`http-stats`). Parsed into values here; read from their unix sockets all at once, so one
slow vassal never holds up the others (uWSGI's master answers between its other duties)."""

from __future__ import annotations

import functools
import json
import os
import selectors
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The longest unix socket path connect() takes (sun_path, 108 bytes with its NUL).
UNIX_PATH_MAX = 107
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Worker:
    """One worker slot. uWSGI lists every slot up to `processes`; one not running (cheaper
    mode) has pid 0 and status "cheap", and keeps the requests it served."""

    id: int
    """Its slot, 1 to `processes` (uWSGI's own `id` is 0 for a slot never used)."""
    pid: int
    status: str
    """idle, busy, cheap, pause, or sig (handling a uWSGI signal)."""
    requests: int
    exceptions: int
    avg_rt: int
    """Microseconds, uWSGI's running average (each request halves the weight of the past)."""
    respawns: int
    rss: int | None = None
    """Bytes, read from /proc (uWSGI's own `rss` is 0 unless memory-report is on)."""

    @property
    def running(self) -> bool:
        return self.pid > 0


@dataclass(frozen=True)
class Node:
    """An app address a router sends requests to: a subscription's node or a static one."""

    name: str
    key: str
    requests: int
    failures: int
    dead: bool


@dataclass(frozen=True)
class InstanceStats:
    """One uWSGI instance's answer: workers for an app, nodes for a router."""

    pid: int
    listen_queue: int
    listen_queue_errors: int
    workers: tuple[Worker, ...]
    nodes: tuple[Node, ...]

    @property
    def requests(self) -> int:
        return sum(w.requests for w in self.workers) or sum(n.requests for n in self.nodes)

    @property
    def exceptions(self) -> int:
        return sum(w.exceptions for w in self.workers)

    @functools.cached_property
    def counters(self) -> dict[str, int]:
        """Its request counters by name: the whole (""), each running worker ("worker N"),
        each node ("node NAME"), for rates between two samples."""
        found = {"": self.requests}
        found.update((f"worker {w.id}", w.requests) for w in self.workers if w.running)
        found.update((f"node {n.name}", n.requests) for n in self.nodes)
        return found


def parse(data: bytes, rss: Callable[[int], int | None]) -> InstanceStats:
    """A stats server's JSON, with each running worker's memory as `rss` reads it for its
    pid. ValueError when it is not one (a half answer, another program on the socket)."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not uWSGI stats: {error}") from None
    if not isinstance(document, dict) or "pid" not in document:
        raise ValueError("not uWSGI stats: no pid")
    try:
        return _instance(document, rss)
    except (TypeError, ValueError, AttributeError) as error:  # a number that is not one
        raise ValueError(f"not uWSGI stats: {error}") from None


def _instance(document: Mapping[str, Any], rss: Callable[[int], int | None]) -> InstanceStats:
    """uWSGI's own numbers, taken as numbers (`int()`: anything else is not its answer);
    read every second for every vassal by `top`, so kept to plain lookups."""
    workers = []
    for slot, w in enumerate(_list(document, "workers"), start=1):
        pid = int(w.get("pid", 0))
        workers.append(
            Worker(
                slot,
                pid,
                str(w.get("status", "?")),
                int(w.get("requests", 0)),
                int(w.get("exceptions", 0)),
                int(w.get("avg_rt", 0)),
                int(w.get("respawn_count", 0)),
                rss(pid) if pid > 0 else None,
            )
        )
    nodes = [
        Node(
            str(n.get("name", "?")),
            str(s.get("key", "")),
            int(n.get("requests", 0)),
            int(n.get("failcnt", 0)),
            bool(n.get("death_mark")),
        )
        for s in _list(document, "subscriptions")
        for n in _list(s, "nodes")
    ]
    nodes += [
        Node(str(n.get("name", "?")), "", int(n.get("hits", 0)), 0, bool(n.get("grace")))
        for n in _list(document, "static_nodes")
    ]
    return InstanceStats(
        pid=int(document.get("pid", 0)),
        listen_queue=int(document.get("listen_queue", 0)),
        listen_queue_errors=int(document.get("listen_queue_errors", 0)),
        workers=tuple(workers),
        nodes=tuple(nodes),
    )


def _list(mapping: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = mapping.get(key)
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


@dataclass
class ResidentMemory:
    """Workers' resident memory, read again once it is `max_age` seconds old: memory moves
    slowly, and 400 workers read from /proc every second were a third of what `top` cost."""

    max_age: float = 0.0
    known: dict[int, tuple[float, int | None]] = field(default_factory=dict)

    def of(self, pid: int) -> int | None:
        now = time.monotonic()
        seen = self.known.get(pid)
        if seen is None or now - seen[0] >= self.max_age:
            seen = self.known[pid] = (now, resident_bytes(pid))
        return seen[1]

    def keep_only(self, pids: set[int]) -> None:
        """Forget the workers that are gone (a pid is reused in time)."""
        for pid in set(self.known) - pids:
            del self.known[pid]


def resident_bytes(pid: int) -> int | None:
    try:
        fd = os.open(f"/proc/{pid}/statm", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fields = os.read(fd, 128).split()
    finally:
        os.close(fd)
    return int(fields[1]) * PAGE_SIZE if len(fields) > 1 else None


def read_all(paths: Mapping[str, Path], timeout: float = 2.0) -> dict[str, bytes | str]:
    """Each stats socket's whole answer, or why there is none (one line), read together
    within `timeout` seconds."""
    results: dict[str, bytes | str] = {}
    pending: dict[socket.socket, tuple[str, bytearray]] = {}
    with selectors.DefaultSelector() as selector:
        for key, path in paths.items():
            try:
                connection = _connect(path)
            except OSError as error:
                results[key] = f"cannot connect to {path.name}: {error.strerror or error}"
                continue
            pending[connection] = (key, bytearray())
            selector.register(connection, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        try:
            while pending and (left := deadline - time.monotonic()) > 0:
                for ready, _ in selector.select(left):
                    answering = ready.fileobj
                    assert isinstance(answering, socket.socket)
                    key, received = pending[answering]
                    try:
                        chunk = answering.recv(65536)
                    except OSError as error:
                        chunk, results[key] = b"", f"read failed: {error.strerror}"
                    if chunk:
                        received += chunk
                        continue
                    results.setdefault(key, bytes(received))
                    selector.unregister(answering)
                    answering.close()
                    del pending[answering]
        finally:
            for connection, (key, _) in pending.items():
                results[key] = f"no answer within {timeout:g} s"
                connection.close()
    return results


def _connect(path: Path) -> socket.socket:
    """A non-blocking connection to a unix socket, whatever the length of its path: a long
    one is reached through its folder's descriptor (/proc/self/fd/N/NAME)."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        if len(os.fsencode(path)) <= UNIX_PATH_MAX:
            connection.connect(str(path))
        else:
            folder = os.open(path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                connection.connect(f"/proc/self/fd/{folder}/{path.name}")
            finally:
                os.close(folder)
    except BaseException:
        connection.close()
        raise
    connection.setblocking(False)
    return connection
