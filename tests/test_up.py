"""`toolkit up`: render, then run the deployment's vassals under the Emperor."""

from __future__ import annotations

import gzip
import signal
import subprocess
from pathlib import Path

from tests.support import GZIP, TOOLKIT, get, port_closed, run_toolkit, serving, wait_for


def configure(deployment: Path, ports: tuple[int, int]) -> None:
    with (deployment / "deploy.ini").open("a") as stream:
        stream.write(f"http_port = {ports[0]}\napp_port = {ports[1]}\n")


def test_up_detach_serves_then_down_stops_everything(
    deployment: Path, free_pair: tuple[int, int]
) -> None:
    configure(deployment, free_pair)
    result = run_toolkit("up", deployment, "--detach")
    try:
        assert result.returncode == 0, result.stderr + result.stdout
        assert "http" in result.stdout and "uwsgi" in result.stdout
        page = get(free_pair[0], "/", GZIP)
        assert b"<h1>" in gzip.decompress(page.body)
        status = run_toolkit("status", "-C", deployment)
        assert "ready" in status.stdout or "loyal" in status.stdout
    finally:
        down = run_toolkit("down", "-C", deployment)
    assert down.returncode == 0, down.stderr
    wait_for(port_closed(free_pair[0]))
    assert (deployment / "logs" / "uwsgi.log").read_text().count("goodbye to uWSGI") == 1


def test_up_detach_reports_a_failing_vassal(deployment: Path, free_pair: tuple[int, int]) -> None:
    configure(deployment, free_pair)
    (deployment / "code" / "app.py").write_text("raise RuntimeError('broken on purpose')\n")
    result = run_toolkit("up", deployment, "--detach")
    assert result.returncode == 2
    assert "vassal uwsgi failed" in result.stderr
    assert "RuntimeError: broken on purpose" in result.stderr
    wait_for(lambda: not (deployment / "run" / "emperor.sock").exists())


def test_up_in_the_foreground_stops_cleanly_on_ctrl_c(
    deployment: Path, free_pair: tuple[int, int], tmp_path: Path
) -> None:
    configure(deployment, free_pair)
    log = tmp_path / "up.out"
    with log.open("wb") as stream:
        process = subprocess.Popen(
            [str(TOOLKIT), "up", str(deployment)],
            stdout=stream,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for(serving(free_pair[0]), timeout=15)
    except AssertionError:
        raise AssertionError(log.read_text()) from None
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    assert process.returncode == 0
    text = log.read_text()
    assert "http    ▸ stopped: signal SIGINT from the user" in text
    assert "uwsgi   ▸ stopped: signal SIGINT from the user" in text
