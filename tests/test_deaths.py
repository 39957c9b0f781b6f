"""Every death explained, provoked with real uWSGI: a segfault, a request killed by
harakiri (with where the app was stuck), a worker SIGKILLed by another process, a worker
recycled by max-requests, and a master killed from outside. Each is said in the vassal's
log, in `status` and in `status --json`.

Not provoked here: the kernel's OOM killer. This machine's cgroup v2 hierarchy has no
memory controller (it is v1's here), so no memory limit can be set on a vassal, and an
out-of-memory kill would need the whole machine's memory; `deaths.oom_killed` reads the
kernel log's `Killed process PID` line, which this machine's kernel writes for OOM kills."""

from __future__ import annotations

import json
import os
import signal
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_ports, get, run_toolkit, serving, wait_for

APP = """import ctypes, os, time


def slow_view():
    time.sleep(60)


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/segv":
        ctypes.string_at(0)
    if path == "/slow":
        slow_view()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    root = tmp_path / "site"
    port, app_port = free_ports(2)
    assert run_toolkit("new", root).returncode == 0
    (root / "code" / "app.py").write_text(APP)
    # uWSGI recycles a worker past max-requests only once it has lived min-worker-lifetime
    # (10 s by default, core/init.c): 1 s here, through a template of the deployment's own.
    (root / "templates").mkdir()
    (root / "templates" / "uwsgi.ini.j2").write_text(
        '{% extends "base/uwsgi.ini.j2" %}\n'
        "{% block limits %}{{ super() }}\nmin-worker-lifetime = 1\n{% endblock %}\n"
    )
    with (root / "deploy.ini").open("a") as stream:
        stream.write(f"http_port = {port}\napp_port = {app_port}\nharakiri = 2\n")
        stream.write("max_requests = 20\nprocesses = 2\ncheaper = 0\nthreads = 1\n")
        stream.write("health_every = 0\n")
    started = run_toolkit("up", root, "--detach")
    assert started.returncode == 0, started.stderr
    try:
        yield root, port
    finally:
        run_toolkit("down", root)


def said(root: Path, text: str) -> bool:
    return text in (root / "logs" / "uwsgi.log").read_text()


def ask(port: int, path: str) -> None:
    """A request whose answer does not matter: the worker dies under it."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30):
            pass
    except (urllib.error.URLError, OSError):
        pass


def test_each_worker_death_says_why(site: tuple[Path, int]) -> None:
    root, port = site
    ask(port, "/segv")
    wait_for(
        lambda: said(root, "crashed: SIGSEGV, a segmentation fault (in C code: an extension"),
        what="the segfault explained",
    )
    ask(port, "/slow")
    wait_for(lambda: said(root, "killed by harakiri: GET /slow ran for"), what="the harakiri")
    log = (root / "logs" / "uwsgi.log").read_text()
    assert "(harakiri = 2 s); it was in app.py:5 in slow_view <- app.py:13 in application" in (
        log
    ), log[-3000:]
    wait_for(serving(port), what="the app serving again")
    victim = int(get(port, "/").body)
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: said(root, f"(pid {victim}) killed by SIGKILL from another process: not the OOM"),
        what="the outside SIGKILL explained",
    )
    wait_for(serving(port), what="the app serving again")
    recycled = "recycled (max-requests or reload-on-rss): not a failure"

    def asked_until_recycled() -> bool:
        get(port, "/")
        return said(root, recycled)

    wait_for(asked_until_recycled, what="a worker recycled by max-requests", timeout=60)
    listed = json.loads(run_toolkit("status", root, "--json").stdout)
    app = next(v for v in listed if v["name"] == "uwsgi")
    assert app["worker_deaths"] >= 4 and app["restarts"] == 0, "workers died, not the vassal"
    shown = run_toolkit("status", root).stdout
    assert "uwsgi: " in shown and "worker end(s), the last: worker" in shown


def test_a_master_killed_from_outside_says_so(site: tuple[Path, int]) -> None:
    root, _ = site
    listed = json.loads(run_toolkit("status", root, "--json").stdout)
    master = next(v for v in listed if v["name"] == "uwsgi")["pid"]
    os.kill(master, signal.SIGKILL)

    def restarted() -> dict[str, object] | None:
        now = json.loads(run_toolkit("status", root, "--json").stdout)
        found: dict[str, object] = next(v for v in now if v["name"] == "uwsgi")
        return found if found["restarts"] == 1 else None

    after = wait_for(restarted, what="the master respawned")
    assert isinstance(after, dict)
    assert str(after["last_exit"]).startswith("killed by SIGKILL from another process")
    shown = run_toolkit("status", root).stdout
    assert "uwsgi: last exit: killed by SIGKILL from another process: not the OOM killer" in (shown)


def test_a_memory_limit_is_applied_or_refused_before_anything_runs(tmp_path: Path) -> None:
    """memory_max needs cgroup v2's memory controller for the Emperor: where this machine
    has it, the vassal's group gets memory.max; where not (this one: memory is on cgroup
    v1), render refuses to write a limit that would not hold, and says why."""
    from toolkit.emperor.containment import memory_limits_here, own_cgroup

    root = tmp_path / "site"
    port, app_port = free_ports(2)
    assert run_toolkit("new", root).returncode == 0
    with (root / "deploy.ini").open("a") as stream:
        stream.write(f"http_port = {port}\napp_port = {app_port}\nmemory_max = 256\n")
    why = memory_limits_here()
    rendered = run_toolkit("render", root)
    if why is not None:
        assert rendered.returncode == 1
        assert "P408 error: memory limit 256 MB cannot be applied on this machine" in (
            rendered.stderr
        )
        return
    assert rendered.returncode == 0, rendered.stderr
    assert run_toolkit("up", root, "--detach").returncode == 0
    try:
        own = own_cgroup()
        assert own is not None
        limits = [p.read_text().strip() for p in own.glob("toolkit-emperor-*/vassal-*/memory.max")]
        assert str(256 * 1024 * 1024) in limits
    finally:
        run_toolkit("down", root)


def test_the_reader_takes_uwsgis_lines_as_they_come() -> None:
    """As uWSGI 2.0.31 prints them (core/master.c, master_utils.c, uwsgi.c), the worker's
    stack interleaved with the master's lines on their one pipe."""
    from toolkit.emperor.deaths import WorkerDeaths

    reader = WorkerDeaths(harakiri=2)
    lines = [
        "Sat Dec  5 2026 - *** HARAKIRI ON WORKER 2 (pid: 16450, try: 1, graceful: yes) ***",
        "Sat Dec  5 15:29:49 2026 - HARAKIRI [core 0] 127.0.0.1 - GET /slow since 100",
        "Current thread 0xSat Dec  5 15:29:49 2026 - HARAKIRI triggered by worker 2 core 0 !!!",
        '  File "/srv/app/app.py", line 5 in slow_view',
        '  File "/usr/lib/python3.11/threading.py", line 320 in wait',
        '  File "/srv/app/app.py", line 13 in application',
        "Sat Dec  5 2026 - *** HARAKIRI ON WORKER 2 (pid: 16450, try: 2, graceful: no) ***",
        "DAMN ! worker 2 (pid: 16450) died, killed by signal 9 :( trying respawn ...",
        "...The work of process 16500 is done. Seeya!",
        "worker 1 killed successfully (pid: 16500)",
        "DAMN ! worker 1 (pid: 16501) MISTERIOUSLY killed by signal 15 :( trying respawn ...",
        # Seen under load: the master's lines inside a frame, cutting it before its name.
        "Sat Dec  5 17:50:08 2026 - *** HARAKIRI ON WORKER 1 (pid: 9604, try: 1, "
        "graceful: yes) ***",
        "Sat Dec  5 17:50:08 2026 - HARAKIRI [core 0] 127.0.0.1 - GET /slow since 101",
        "Current thread 0x00007fc267d22440 (most recent call first):",
        '  File "/srv/app/app.py", line 5 in Sat Dec  5 17:50:08 2026 - HARAKIRI: graceful '
        "termination attempt on worker 1 with signal 23. Next harakiri: 1796493009",
        "slow_viewSat Dec  5 17:50:08 2026 - HARAKIRI triggered by worker 1 core 0 !!!",
        "",
        '  File "/srv/app/app.py", line 13 in application',
        "Sat Dec  5 17:50:10 2026 - *** HARAKIRI ON WORKER 1 (pid: 9604, try: 2, graceful: no) ***",
        "DAMN ! worker 1 (pid: 9604) died, killed by signal 9 :( trying respawn ...",
    ]
    said = [str(d) for line in lines if (d := reader.line(line, now=105.0)) is not None]
    assert said == [
        "worker 2 (pid 16450) killed by harakiri: GET /slow ran for 5 s (harakiri = 2 s); "
        "it was in app.py:5 in slow_view <- app.py:13 in application",
        "worker 1 (pid 16500) recycled (max-requests or reload-on-rss): not a failure",
        "worker 1 (pid 16501) ended by SIGTERM from another process (the kernel does not say "
        "which)",
        "worker 1 (pid 9604) killed by harakiri: GET /slow ran for 4 s (harakiri = 2 s); "
        "it was in app.py:5 in slow_view <- app.py:13 in application",
    ]
