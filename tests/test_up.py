"""`toolkit up`: render, then run the deployment's vassals under the Emperor."""

from __future__ import annotations

import gzip
import json
import signal
import subprocess
from pathlib import Path

from tests.support import GZIP, TOOLKIT, get, port_closed, run_toolkit, wait_for


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
    wait_for(port_closed(free_pair[0]), what="port_closed(free_pair[0])")
    assert (deployment / "logs" / "uwsgi.log").read_text().count("goodbye to uWSGI") == 1


def test_up_detach_reports_a_failing_vassal(deployment: Path, free_pair: tuple[int, int]) -> None:
    configure(deployment, free_pair)
    (deployment / "code" / "app.py").write_text("raise RuntimeError('broken on purpose')\n")
    result = run_toolkit("up", deployment, "--detach")
    assert result.returncode == 2
    assert "vassal uwsgi failed" in result.stderr
    assert "RuntimeError: broken on purpose" in result.stderr
    wait_for(
        lambda: not (deployment / "run" / "emperor.sock").exists(),
        what='not (deployment / "run" / "emperor.sock").exists()',
    )


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
    announced = f"emperor ▸ serving http://127.0.0.1:{free_pair[0]}\n"
    try:
        wait_for(lambda: announced in log.read_text(), what="up announcing its address", timeout=15)
        # Announced once the site answered: the router knows its app (a subscription, sent on
        # the app master's own clock, can come after every vassal said it is ready).
        assert get(free_pair[0]).status == 200
    except AssertionError as error:
        raise AssertionError(f"{error}\n{log.read_text()}") from None
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)
    assert process.returncode == 0
    text = log.read_text()
    assert "http    ▸ stopped: signal SIGINT from the user" in text
    assert "uwsgi   ▸ stopped: signal SIGINT from the user" in text


def test_up_detach_says_where_it_serves(deployment: Path, free_pair: tuple[int, int]) -> None:
    configure(deployment, free_pair)
    result = run_toolkit("up", deployment, "--detach")
    try:
        assert result.returncode == 0, result.stderr
        assert f"serving http://127.0.0.1:{free_pair[0]}\n" in result.stdout
        assert f"stop it with: toolkit down {deployment}" in result.stdout
    finally:
        run_toolkit("down", deployment)


def test_render_keeps_a_hand_edited_vassal_beside_the_new_one(deployment: Path) -> None:
    assert run_toolkit("render", deployment).returncode == 0
    vassal = deployment / "vassals" / "uwsgi.ini"
    edited = vassal.read_text() + "harakiri = 5\n"
    vassal.write_text(edited)
    result = run_toolkit("render", deployment)
    assert result.returncode == 0, result.stderr
    copy = vassal.with_name("uwsgi.ini.edited")
    assert f"{vassal} was edited by hand: rendered over it, kept the edited copy as {copy}" in (
        result.stdout
    )
    assert copy.read_text() == edited
    assert "harakiri" not in vassal.read_text()
    assert run_toolkit("check", deployment).returncode == 0


def test_status_shows_a_vassal_whose_file_is_not_what_runs(
    deployment: Path, free_pair: tuple[int, int]
) -> None:
    configure(deployment, free_pair)
    assert run_toolkit("up", deployment, "--detach").returncode == 0
    try:
        vassal = deployment / "vassals" / "uwsgi.ini"
        assert "changed on disk" not in run_toolkit("status", deployment).stdout
        vassal.write_text(vassal.read_text() + "harakiri = 5\n")  # breaks its seal: held
        status = run_toolkit("status", deployment, "--json")
        changed = {v["name"]: v["config_changed"] for v in json.loads(status.stdout)}
        assert changed == {"http": False, "uwsgi": True}
        assert (
            f"{vassal}  (changed on disk: not what runs)"
            in run_toolkit("status", deployment).stdout
        )
    finally:
        run_toolkit("down", "-C", deployment)


def test_the_emperor_exits_non_zero_when_it_cannot_watch(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(TOOLKIT), "emperor", str(tmp_path / "missing" / "*.ini"), "--run-dir", tmp_path],
        cwd=tmp_path,  # its logs folder (`logs`, relative) is made there, not in the checkout
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "cannot watch" in result.stdout + result.stderr


def test_the_address_up_announces_is_the_one_it_asks() -> None:
    from toolkit.emperor.health import site_check
    from toolkit.pipeline import serving_addresses

    for address, port in (("127.0.0.1", 8000), ("::1", 8080)):
        [url] = serving_addresses({"http_address": address, "http_port": port})
        check = site_check(url)
        assert check.address == (address, port) and check.over_http and check.status == 0
    assert serving_addresses({"http_address": "::1", "http_port": 8080}) == ["http://[::1]:8080"]
