"""Continuous health with real uWSGI: an app that accepts and then hangs leaves its router's
rotation (no request through the router waits on it), comes back once it answers, and
one that keeps failing is restarted, the exit saying why. The hang is a sleep in the view,
and an ASGI app loaded before the fork (a2wsgi without lazy-apps)."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import free_ports, own_virtualenv, run_toolkit, wait_for
from tests.test_emperor import RunningEmperor, start_emperor
from tests.test_real_apps import FASTAPI_APP

# Hangs while its marker file exists (a view stuck on a lock, a dead database), then
# answers with the name of the vassal that served it.
HANGING_APP = """import os, time


def application(environ, start_response):
    marker = os.environ["HANG_FILE"]
    while os.path.exists(marker):
        time.sleep(0.05)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [os.path.basename(marker).encode()]
"""
FAST = "health_every = 0.3\nhealth_wait = 0.3\nhealth_out_after = 2\n"


def status(root: Path) -> dict[str, dict[str, object]]:
    listed = json.loads(run_toolkit("status", root, "--json").stdout or "[]")
    return {str(v["name"]): v for v in listed}


def live_nodes(root: Path) -> set[str]:
    """The app addresses the router sends requests to, as its stats server says."""
    shown = json.loads(run_toolkit("top", root, "--json").stdout or "[]")
    router = next((v["stats"] for v in shown if v["name"] == "http" and v["stats"]), None)
    return {n["name"] for n in router["nodes"] if not n["dead"]} if router else set()


def through_router(port: int, timeout: float = 3.0) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=timeout) as answer:
        return str(answer.read().decode())


@pytest.fixture
def two_apps(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """The ground-up recipe's router in front of two app vassals on one subscription: the
    rendered `uwsgi` (never restarted by its health check) and `second`, a copy on its own
    port that is restarted after 3 failures."""
    root = tmp_path / "site"
    port, app_port, second_port = free_ports(3)
    assert run_toolkit("new", root).returncode == 0
    (root / "code" / "app.py").write_text(HANGING_APP)
    with (root / "deploy.ini").open("a") as stream:
        stream.write(f"http_port = {port}\napp_port = {app_port}\n{FAST}")
        stream.write(f"health_restart_after = 0\nenv = HANG_FILE={tmp_path / 'first'}\n")
    started = run_toolkit("up", root, "--detach")
    assert started.returncode == 0, started.stderr
    rendered = (root / "vassals" / "uwsgi.ini").read_text()
    second = "\n".join(
        line
        for line in rendered.splitlines()
        if not line.startswith(("# toolkit-sha256:", "# Rendered by toolkit"))
    )
    second = second.replace(f":{app_port}\n", f":{second_port}\n")
    second = second.replace("restart-after=0", "restart-after=3")
    second = second.replace(str(tmp_path / "first"), str(tmp_path / "second"))
    (root / "vassals" / "second.ini").write_text(second + "\n")
    try:
        wait_for(
            lambda: {"first", "second"} <= {through_router(port) for _ in range(6)},
            what="both apps answering through the router",
            timeout=30,
        )
        yield root, port
    finally:
        for marker in ("first", "second"):
            (tmp_path / marker).unlink(missing_ok=True)
        run_toolkit("down", root)


def test_a_hung_app_leaves_the_rotation_comes_back_and_is_restarted(
    two_apps: tuple[Path, int], tmp_path: Path
) -> None:
    root, port = two_apps
    (tmp_path / "first").touch()
    wait_for(lambda: status(root)["uwsgi"]["state"] == "unhealthy", what="the hung app unhealthy")
    # Its unsubscribe is a datagram the router reads on its own clock: marked dead there.
    wait_for(lambda: len(live_nodes(root)) == 1, what="the router's pool down to one live node")
    shown = run_toolkit("status", root)
    assert shown.returncode == 3, "an unhealthy vassal is not serving"
    assert re.search(
        r"uwsgi: its last health check failed: GET /: no answer within 0.3 s", (shown.stdout)
    ), shown.stdout
    answers = [through_router(port) for _ in range(40)]
    assert answers == ["second"] * 40, "no request waits on the hung app"
    (tmp_path / "first").unlink()
    wait_for(lambda: status(root)["uwsgi"]["state"] == "loyal", what="the app back, healthy")
    wait_for(
        lambda: "first" in {through_router(port) for _ in range(6)},
        what="the router sending requests to it again",
    )
    assert status(root)["uwsgi"]["restarts"] == 0, "readiness alone restarts nothing"
    (tmp_path / "second").touch()
    wait_for(lambda: status(root)["second"]["restarts"] >= 1, what="the hung app restarted")
    said = status(root)["second"]["last_exit"]
    assert said == "killed by toolkit: health check failed 3 times in a row", said
    log = (root / "logs" / "second.log").read_text()
    assert "health check 3 failed in a row: killing it to respawn it" in log
    (tmp_path / "second").unlink()
    wait_for(lambda: status(root)["second"]["state"] == "loyal", what="the restarted app healthy")


def test_an_asgi_app_loaded_before_the_fork_is_found_hung_and_restarted(tmp_path: Path) -> None:
    """The a2wsgi case, under toolkit's Emperor alone (`check` would refuse this file):
    every request hangs; its health check says so and restarts it."""
    app = tmp_path / "api"
    app.mkdir()
    (app / "main.py").write_text(FASTAPI_APP)
    own_virtualenv(app)
    port = free_ports(1)[0]
    emperor: RunningEmperor = start_emperor(tmp_path / "emperor")
    try:
        (emperor.vassals / "api.ini").write_text(
            "[uwsgi]\n"
            f"# toolkit-health: path=/ every=0.3 timeout=0.5 out-after=2 restart-after=3\n"
            f"socket = 127.0.0.1:{port}\nmaster = true\nprocesses = 1\n"
            f"pythonpath = {app}\nvirtualenv = {app / '.venv'}\nmodule = main:application\n"
        )
        wait_for(
            lambda: (emperor.status().get("api") or {}).get("restarts", 0) >= 1,
            what="the hung ASGI app restarted by its health check",
            timeout=60,
        )
        assert "(accepted, then silent: a hang)" in emperor.text()
        assert "health check failed 3 times in a row" in str(emperor.status()["api"]["last_exit"])
    finally:
        emperor.stop()
