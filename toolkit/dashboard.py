"""The status page (/) and the metrics (/metrics) of one deployment, as a WSGI app. uWSGI
runs it in a vassal of its own (templates/status.ini.j2), so the Emperor stays as small as
it is; started in the deployment folder (its chdir), it reads the Emperor's control socket
and every vassal's stats server in run/."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from toolkit import metrics, observe, status_page
from toolkit.errors import ToolkitError

RUN_DIR = Path("run")
REFRESH_SECONDS = 2

_watch: observe.Watch | None = None
_watch_lock = threading.Lock()


def _sample() -> tuple[observe.Sample, float]:
    """A fresh sample (memory and CPU read now: scrapes are seconds apart); where the stats
    sockets are is kept from one request to the next."""
    global _watch
    started = time.monotonic()
    with _watch_lock:  # one sample at a time: the watch's caches are not shared safely
        if _watch is None:
            _watch = observe.Watch.of_emperor(RUN_DIR)
        sample = _watch.take()
    return sample, time.monotonic() - started


def application(environ: dict[str, Any], start_response: Callable[..., object]) -> Iterable[bytes]:
    path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
    if path not in ("/", "/metrics"):
        return _answer(start_response, "404 Not Found", "text/plain", "not found: / or /metrics\n")
    if method not in ("GET", "HEAD"):
        return _answer(start_response, "405 Method Not Allowed", "text/plain", "read-only\n")
    try:
        sample, took = _sample()
    except ToolkitError as error:
        return _answer(start_response, "503 Service Unavailable", "text/plain", f"{error}\n")
    if path == "/metrics":
        return _answer(
            start_response, "200 OK", metrics.CONTENT_TYPE, metrics.exposition(sample, took)
        )
    title = Path.cwd().name
    html = status_page.page(sample, title, REFRESH_SECONDS)
    return _answer(start_response, "200 OK", "text/html; charset=utf-8", html)


def _answer(
    start_response: Callable[..., object], status: str, kind: str, text: str
) -> list[bytes]:
    body = text.encode()
    start_response(
        status,
        [("Content-Type", kind), ("Content-Length", str(len(body))), ("Cache-Control", "no-store")],
    )
    return [body]
