"""toolkit's Emperor with real uwsgi vassals on free loopback ports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support import (
    TOOLKIT,
    Processes,
    Response,
    free_port,
    free_ports,
    get,
    kill_group,
    port_closed,
    run_toolkit,
    serving,
    try_get,
    uwsgi_pids,
    wait_for,
)
from toolkit.apply import write_atomically
from toolkit.emperor import control
from toolkit.seal import seal

APP = """
import os

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [os.environ.get("GREETING", "none").encode()]
"""


def vassal_ini(code: Path, port: int, greeting: str = "hello", module: str = "app") -> str:
    return (
        "[uwsgi]\nstrict = true\nmaster = true\n"
        f"http-socket = 127.0.0.1:{port}\nprocesses = 1\n"
        f"pythonpath = {code}\nmodule = {module}\nneed-app = true\n"
        f"env = GREETING={greeting}\n"
    )


@dataclass
class RunningEmperor:
    root: Path
    process: subprocess.Popen[bytes]
    output: Path

    @property
    def vassals(self) -> Path:
        return self.root / "vassals"

    @property
    def run_dir(self) -> Path:
        return self.root / "run"

    def status(self) -> dict[str, dict[str, Any]]:
        return {v["name"]: v for v in control.request(self.run_dir, "status")["vassals"]}

    def state(self, name: str) -> str | None:
        vassal = self.status().get(name)
        return None if vassal is None else str(vassal["state"])

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def stop(self) -> None:
        """SIGINT, as Ctrl-C; SIGKILL to its group if it is not gone within 10 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                kill_group(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def add(self, name: str, port: int, **kwargs: str) -> Path:
        path = self.vassals / f"{name}.ini"
        write_atomically(path, vassal_ini(self.root / "code", port, **kwargs))
        return path


def start_emperor(root: Path, *extra: str) -> RunningEmperor:
    (root / "vassals").mkdir(parents=True, exist_ok=True)
    (root / "code").mkdir(exist_ok=True)
    (root / "code" / "app.py").write_text(APP)
    output = root / "emperor.out"
    with output.open("wb") as stream:
        process = subprocess.Popen(
            [
                str(TOOLKIT),
                "emperor",
                str(root / "vassals" / "*.ini"),
                "--run-dir",
                str(root / "run"),
                "--logs-dir",
                str(root / "logs"),
                *extra,
            ],
            stdout=stream,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
    emperor = RunningEmperor(root, process, output)
    pid_file = emperor.run_dir / control.PID_NAME

    def listening() -> bool:
        pid = pid_file.read_text().strip() if pid_file.exists() else ""
        return pid == str(process.pid) or process.poll() is not None

    wait_for(listening, what="listening")
    assert process.poll() is None, emperor.text()
    return emperor


@pytest.fixture
def emperor(tmp_path: Path) -> Iterator[RunningEmperor]:
    running = start_emperor(
        tmp_path,
        *("--max-spawns", "3", "--window", "30", "--backoff", "0.05"),
        *("--heartbeat-tolerance", "2"),
    )
    yield running
    running.stop()


def group_members(pgid: int) -> list[int]:
    members = []
    for process in psutil.process_iter(["status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(process.pid)
        except (ProcessLookupError, psutil.Error):
            continue
    return members


def test_new_config_is_ready_by_protocol_then_loyal(emperor: RunningEmperor) -> None:
    port = free_port()
    emperor.add("web", port)
    wait_for(lambda: emperor.state("web") == "ready", what='emperor.state("web") == "ready"')
    assert get(port).body == b"hello"
    wait_for(lambda: emperor.state("web") == "loyal", what='emperor.state("web") == "loyal"')
    shown = ["web     ▸ spawned: pid", "web     ▸ ready: in ", "web     | *** Starting uWSGI"]
    wait_for(
        lambda: all(line in emperor.text() for line in shown),
        what="the spawned and ready events and uWSGI's banner on the Emperor's output",
    )
    wait_for(
        lambda: "*** Starting uWSGI" in (emperor.root / "logs" / "web.log").read_text(),
        what="uWSGI's banner in logs/web.log",
    )


def test_killed_master_is_respawned_and_serves_again(emperor: RunningEmperor) -> None:
    port = free_port()
    emperor.add("web", port)
    wait_for(lambda: emperor.state("web") == "ready", what='emperor.state("web") == "ready"')
    pid = emperor.status()["web"]["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: emperor.status()["web"]["restarts"] == 1,
        what='emperor.status()["web"]["restarts"] == 1',
    )
    wait_for(serving(port), what="serving(port)")
    after = emperor.status()["web"]
    assert after["pid"] != pid
    assert str(after["last_exit"]).startswith("killed by SIGKILL from another process: not the OOM")
    wait_for(
        lambda: "web     ▸ crashed: killed by SIGKILL from another process" in emperor.text(),
        what="the crash explained on the Emperor's output",
    )


def test_deleted_config_closes_port_and_ends_every_process(emperor: RunningEmperor) -> None:
    port = free_port()
    path = emperor.add("web", port)
    wait_for(lambda: emperor.state("web") == "ready", what='emperor.state("web") == "ready"')
    pid = emperor.status()["web"]["pid"]
    path.unlink()
    wait_for(port_closed(port), what="port_closed(port)")
    wait_for(lambda: "web" not in emperor.status(), what='"web" not in emperor.status()')
    wait_for(lambda: group_members(pid) == [], what="every process of the vassal's group gone")
    wait_for(
        lambda: "web     ▸ stopped: config file removed" in emperor.text(),
        what='"web ▸ stopped: config file removed" in emperor.text()',
    )


def test_changed_config_reloads_and_serves_the_new_value(emperor: RunningEmperor) -> None:
    port = free_port()
    emperor.add("web", port, greeting="before")
    wait_for(lambda: emperor.state("web") == "ready", what='emperor.state("web") == "ready"')
    pid = emperor.status()["web"]["pid"]
    emperor.add("web", port, greeting="after")
    wait_for(
        lambda: (r := try_get(port)) is not None and r.body == b"after",
        what='(r := try_get(port)) is not None and r.body == b"after"',
        timeout=15,
    )
    assert emperor.status()["web"]["pid"] == pid, "a reload keeps the master"
    wait_for(
        lambda: "web     ▸ reloading: config changed" in emperor.text(),
        what='"web ▸ reloading: config changed" in emperor.text()',
    )


def test_touching_a_config_reloads_its_vassal(emperor: RunningEmperor) -> None:
    port = free_port()
    path = emperor.add("web", port)
    wait_for(
        lambda: emperor.state("web") in {"ready", "loyal"},
        what='emperor.state("web") in {"ready", "loyal"}',
    )
    pid = emperor.status()["web"]["pid"]
    os.utime(path)
    wait_for(
        lambda: "web     ▸ reloading: config touched" in emperor.text(),
        what='"web ▸ reloading: config touched" in emperor.text()',
    )
    wait_for(
        lambda: "web     ▸ ready: reloaded" in emperor.text(),
        what='"web ▸ ready: reloaded" in emperor.text()',
        timeout=15,
    )
    assert emperor.status()["web"]["pid"] == pid, "a reload keeps the master"


def test_broken_app_is_throttled_and_its_error_shown(emperor: RunningEmperor) -> None:
    emperor.add("broken", free_port(), module="no_such_module")
    wait_for(
        lambda: emperor.state("broken") == "throttled",
        what='emperor.state("broken") == "throttled"',
    )
    output = emperor.text()
    assert output.count("broken  ▸ spawned") == 3
    assert "broken  | ModuleNotFoundError: No module named 'no_such_module'" in output
    assert emperor.status()["broken"]["last_exit"] == "exit code 22: the app did not load"


def test_reload_clears_a_throttled_vassal(emperor: RunningEmperor) -> None:
    port = free_port()
    emperor.add("web", port, module="no_such_module")
    wait_for(
        lambda: emperor.state("web") == "throttled", what='emperor.state("web") == "throttled"'
    )
    (emperor.root / "code" / "no_such_module.py").write_text(APP)
    result = run_toolkit("reload", "web", "-C", emperor.root)
    assert result.returncode == 0, result.stderr
    wait_for(serving(port), what="serving(port)")


def test_not_a_vassal_is_warned_about_and_not_started(emperor: RunningEmperor) -> None:
    (emperor.vassals / "shared.ini").write_text("[other]\nkey = value\n")
    wait_for(
        lambda: "shared.ini has no [uwsgi] section" in emperor.text(),
        what='"shared.ini has no [uwsgi] section" in emperor.text()',
    )
    assert emperor.status() == {}


def test_status_json_lists_every_field(emperor: RunningEmperor) -> None:
    emperor.add("one", free_port())
    emperor.add("two", free_port())
    wait_for(
        lambda: {emperor.state("one"), emperor.state("two")} == {"ready"},
        what='{emperor.state("one"), emperor.state("two")} == {"ready"}',
    )
    result = run_toolkit("status", "-C", emperor.root, "--json")
    assert result.returncode == 0, result.stderr
    vassals = {v["name"]: v for v in json.loads(result.stdout)}
    assert sorted(vassals) == ["one", "two"]
    for vassal in vassals.values():
        assert set(vassal) == {
            "name", "release", "pid", "state", "restarts", "uptime", "last_exit", "config",
            "digest", "log_problem", "rss", "cpu", "health", "worker_deaths",
            "last_worker_death", "worker_deaths_by_cause", "recent_worker_deaths", "config_changed",
        }  # fmt: skip
        assert vassal["config_changed"] is False


def test_sigint_stops_every_vassal_and_exits_0(emperor: RunningEmperor) -> None:
    port = free_port()
    emperor.add("web", port)
    wait_for(lambda: emperor.state("web") == "ready", what='emperor.state("web") == "ready"')
    emperor.process.send_signal(signal.SIGINT)
    assert emperor.process.wait(10) == 0
    assert "web     ▸ stopped: signal SIGINT from the user" in emperor.text()
    assert not control.socket_path(emperor.run_dir).exists()


def test_killed_emperor_takes_its_vassals_along(emperor: RunningEmperor) -> None:
    before = uwsgi_pids(emperor.root)
    emperor.add("one", free_port())
    emperor.add("two", free_port())
    wait_for(
        lambda: {emperor.state("one"), emperor.state("two")} == {"ready"},
        what='{emperor.state("one"), emperor.state("two")} == {"ready"}',
    )
    ours = uwsgi_pids(emperor.root) - before
    assert ours
    emperor.process.kill()
    emperor.process.wait()
    wait_for(
        lambda: not (uwsgi_pids(emperor.root) & ours),
        what="every uwsgi of the killed Emperor gone",
        timeout=10,
    )


def test_a_second_emperor_on_the_same_run_folder_is_refused(emperor: RunningEmperor) -> None:
    result = run_toolkit("emperor", emperor.vassals / "*.ini", "--run-dir", emperor.run_dir)
    assert result.returncode == 2
    assert "an Emperor already runs here" in result.stderr


def test_stale_socket_of_a_dead_emperor_is_replaced(tmp_path: Path) -> None:
    first = start_emperor(tmp_path)
    first.process.kill()
    first.process.wait()
    assert control.socket_path(first.run_dir).exists()
    second = start_emperor(tmp_path)
    try:
        assert second.status() == {}
    finally:
        second.process.send_signal(signal.SIGINT)
        assert second.process.wait(10) == 0


def test_a_burst_of_writes_gives_few_reloads_and_the_last_content(emperor: RunningEmperor) -> None:
    port = free_port()
    emperor.add("web", port, greeting="v0")
    wait_for(lambda: emperor.state("web") == "ready", what='emperor.state("web") == "ready"')
    for version in range(1, 21):
        emperor.add("web", port, greeting=f"v{version}")
    wait_for(
        lambda: (r := try_get(port)) is not None and r.body == b"v20",
        what='(r := try_get(port)) is not None and r.body == b"v20"',
        timeout=15,
    )
    wait_for(
        lambda: emperor.state("web") in {"ready", "loyal"},
        what='emperor.state("web") in {"ready", "loyal"}',
    )
    assert 1 <= emperor.text().count("web     ▸ reloading") <= 2


def test_stop_keeps_a_vassal_down_until_reload(emperor: RunningEmperor) -> None:
    port = free_port()
    emperor.add("web", port)
    wait_for(serving(port), what="serving(port)")
    result = run_toolkit("stop", "web", "-C", emperor.root)
    assert result.returncode == 0, result.stderr
    assert emperor.state("web") == "stopped"
    wait_for(port_closed(port), what="the port closed once the workers are gone")
    wait_for(
        lambda: "web     ▸ stopped: asked by `toolkit stop`" in emperor.text(),
        what='"web ▸ stopped: asked by `toolkit stop`" in emperor.text()',
    )
    assert run_toolkit("reload", "web", "-C", emperor.root).returncode == 0
    wait_for(serving(port), what="serving(port)")


def test_logs_prints_a_vassals_output(emperor: RunningEmperor) -> None:
    emperor.add("web", free_port())
    wait_for(lambda: emperor.state("web") == "ready", what='emperor.state("web") == "ready"')
    result = run_toolkit("logs", "web", "-C", emperor.root, "-n", "500")
    assert result.returncode == 0, result.stderr
    assert "*** Starting uWSGI" in result.stdout
    assert "[toolkit] spawned pid" in result.stdout
    missing = run_toolkit("logs", "nope", "-C", emperor.root)
    assert missing.returncode == 2
    assert "no log for vassal 'nope'" in missing.stderr


def test_world_writable_config_is_refused(emperor: RunningEmperor) -> None:
    port = free_port()
    path = emperor.add("web", port)
    wait_for(lambda: emperor.state("web") == "ready", what='emperor.state("web") == "ready"')
    path.chmod(0o666)
    path.touch()
    wait_for(lambda: "web" not in emperor.status(), what='"web" not in emperor.status()')
    wait_for(port_closed(port), what="port_closed(port)")
    wait_for(
        lambda: "web.ini refused: it is world-writable (chmod o-w it)" in emperor.text(),
        what='"web.ini refused: it is world-writable (chmod o-w it)" in emperor.text()',
    )
    wait_for(
        lambda: "web     ▸ stopped: config refused: it is world-writable" in emperor.text(),
        what='"web ▸ stopped: config refused: it is world-writable" in emperor.text()',
    )
    path.chmod(0o644)
    path.touch()
    wait_for(serving(port), what="serving(port)")


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
@pytest.mark.parametrize("trusted", [False, True], ids=["refused", "trusted"])
def test_a_config_owned_by_another_user_is_refused_unless_trusted(
    tmp_path: Path, trusted: bool
) -> None:
    nobody = 65534
    emperor = start_emperor(tmp_path, *(["--trust-any-config"] if trusted else []))
    try:
        port = free_port()
        draft = tmp_path / "web.ini"
        draft.write_text(vassal_ini(tmp_path / "code", port))
        os.chown(draft, nobody, -1)
        draft.rename(emperor.vassals / "web.ini")
        if trusted:
            wait_for(serving(port), what="serving(port)")
        else:
            wait_for(
                lambda: f"web.ini refused: it is owned by uid {nobody}" in emperor.text(),
                what='f"web.ini refused: it is owned by uid {nobody}" in emperor.text()',
            )
            assert emperor.status() == {}
    finally:
        emperor.process.send_signal(signal.SIGINT)
        assert emperor.process.wait(10) == 0


def test_run_folder_and_control_socket_are_private(emperor: RunningEmperor) -> None:
    assert stat.S_IMODE(emperor.run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(control.socket_path(emperor.run_dir).stat().st_mode) == 0o600
    assert emperor.run_dir.stat().st_uid == os.getuid()


def test_a_cut_sealed_config_is_held_and_the_vassal_keeps_serving(
    emperor: RunningEmperor,
) -> None:
    port = free_port()
    path = emperor.vassals / "web.ini"
    write_atomically(path, seal(vassal_ini(emperor.root / "code", port, greeting="before")))
    wait_for(serving(port), what="serving(port)")
    pid = emperor.status()["web"]["pid"]
    after = seal(vassal_ini(emperor.root / "code", port, greeting="after"))
    path.write_text(after[: len(after) // 2])
    wait_for(
        lambda: (
            "web.ini not run: its content does not match its toolkit-sha256 seal" in emperor.text()
        ),
        what="the Emperor saying it holds the cut file",
    )
    assert get(port).body == b"before"
    assert emperor.status()["web"]["pid"] == pid
    path.write_text(after)
    wait_for(
        lambda: (r := try_get(port)) is not None and r.body == b"after",
        what='(r := try_get(port)) is not None and r.body == b"after"',
        timeout=15,
    )


def test_a_config_changed_while_uwsgi_reads_it_is_read_again(emperor: RunningEmperor) -> None:
    """`exec-asap` runs after uWSGI has read its config and before it says so: it stands in
    for a writer that rewrites the file between the Emperor's read and uWSGI's."""
    port = free_port()
    path = emperor.vassals / "web.ini"
    once = emperor.root / "changed-once"
    rewrite = f"test -e {once} || {{ touch {once}; echo '; rewritten' >> {path}; }}"
    path.write_text(vassal_ini(emperor.root / "code", port) + f'exec-asap = sh -c "{rewrite}"\n')
    wait_for(serving(port), what="serving(port)")
    wait_for(
        lambda: emperor.state("web") in {"ready", "loyal"},
        what='emperor.state("web") in {"ready", "loyal"}',
    )
    output = emperor.text()
    assert "web     ▸ warning: config changed while uWSGI read it: restarting it" in output
    assert "crashed" not in output
    assert output.count("web     ▸ spawned") == 2
    assert emperor.status()["web"]["restarts"] == 1


def test_an_idle_vassal_that_asks_to_stop_stays_stopped_until_reload(
    emperor: RunningEmperor,
) -> None:
    port = free_port()
    path = emperor.add("web", port)
    path.write_text(path.read_text() + "idle = 1\ndie-on-idle = true\n")
    wait_for(
        lambda: "web     ▸ stopped: idle, it asked to be stopped" in emperor.text(),
        what='"web ▸ stopped: idle, it asked to be stopped" in emperor.text()',
    )
    assert emperor.state("web") == "stopped"
    wait_for(port_closed(port), what="the port closed once the workers are gone")
    assert "crashed" not in emperor.text()
    assert run_toolkit("reload", "web", "-C", emperor.root).returncode == 0
    wait_for(serving(port), what="serving(port)")


def test_a_vassal_whose_heartbeat_stops_is_killed_and_respawned(emperor: RunningEmperor) -> None:
    port = free_port()
    path = emperor.add("web", port)
    path.write_text(path.read_text() + "heartbeat = 1\n")
    wait_for(
        lambda: emperor.state("web") in {"ready", "loyal"} and try_get(port),
        what='emperor.state("web") in {"ready", "loyal"} and try_get(port)',
    )
    stuck = emperor.status()["web"]["pid"]
    os.killpg(stuck, signal.SIGSTOP)  # its workers, which send the heartbeats, are stuck too
    wait_for(
        lambda: "web     ▸ warning: no heartbeat for 2 s: killing it" in emperor.text(),
        what='"web ▸ warning: no heartbeat for 2 s: killing it" in emperor.text()',
    )
    wait_for(
        lambda: emperor.status()["web"]["pid"] not in {stuck, None},
        what='emperor.status()["web"]["pid"] not in {stuck, None}',
    )
    wait_for(serving(port), what="serving(port)")
    assert not psutil.pid_exists(stuck)


SLOW_APP = """
import pathlib
import time

def application(environ, start_response):
    pathlib.Path(__file__).with_name("slow.started").touch()
    time.sleep(1)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"finished"]
"""


@pytest.mark.parametrize("busy_cores", [0, 2], ids=["idle", "both-cores-busy"])
def test_a_removed_vassal_finishes_the_request_in_flight(
    emperor: RunningEmperor, processes: Processes, busy_cores: int
) -> None:
    """Graceful even on a busy host: no SIGINT (uWSGI's brutal stop) before the master says
    it took message 2."""
    for _ in range(busy_cores):
        processes.start(sys.executable, "-c", "while True: pass")
    (emperor.root / "code" / "slow.py").write_text(SLOW_APP)
    port = free_port()
    path = emperor.add("slow", port, module="slow")
    wait_for(
        lambda: emperor.state("slow") in {"ready", "loyal"},
        what='emperor.state("slow") in {"ready", "loyal"}',
    )
    answers: list[Response | None] = []
    client = threading.Thread(target=lambda: answers.append(try_get(port)))
    client.start()
    wait_for(
        lambda: (emperor.root / "code" / "slow.started").exists(), what="the request in the app"
    )
    path.unlink()
    client.join(10)
    wait_for(
        lambda: "slow    ▸ stopped: config file removed" in emperor.text(),
        what='"slow ▸ stopped: config file removed" in emperor.text()',
    )
    assert answers and answers[0] is not None and answers[0].body == b"finished"
    wait_for(port_closed(port), what="port_closed(port)")
    assert "graceful shutdown triggered" in emperor.text()
    assert "killing workers" not in emperor.text()


def test_a_watched_folder_removed_and_made_again_is_watched_again(
    emperor: RunningEmperor,
) -> None:
    """inotify loses a folder with the folder; the Emperor looks for it every second."""
    port = free_port()
    emperor.add("one", port)
    wait_for(serving(port), what="serving(port)")
    shutil.rmtree(emperor.vassals)
    wait_for(lambda: emperor.state("one") is None, what='emperor.state("one") is None')
    wait_for(port_closed(port), what="port_closed(port)")
    emperor.vassals.mkdir()
    time.sleep(0.1)  # the folder is back before its first file
    again = free_port()
    emperor.add("two", again)
    wait_for(serving(again), what="the vassal in the folder made again serving", timeout=15)
    emperor.add("three", free_port())
    wait_for(
        lambda: emperor.state("three") in {"ready", "loyal"},
        what='emperor.state("three") in {"ready", "loyal"}',
        timeout=15,
    )


def test_the_site_is_announced_once_it_answers_and_its_silence_is_said(tmp_path: Path) -> None:
    """`--serving URL` (what `up` passes): once every vassal is ready the Emperor asks the
    site. One that does not answer is not announced, and after 10 s the Emperor says why,
    once; once it answers, `serving URL`."""
    port, site = free_ports(2)
    emperor = start_emperor(tmp_path, "--serving", f"http://127.0.0.1:{site}")
    try:
        emperor.add("web", port)
        wait_for(
            lambda: "has not answered for 10 s" in emperor.text(),
            what="the Emperor saying the site is silent",
            timeout=30,
        )
        said = emperor.text()
        assert f"127.0.0.1:{site} has not answered for 10 s: connection refused" in said
        assert "serving http" not in said
        emperor.add("site", site)  # something answers there now
        wait_for(
            lambda: f"emperor ▸ serving http://127.0.0.1:{site}" in emperor.text(),
            what="the site announced once it answers",
        )
        assert emperor.text().count("has not answered") == 1
    finally:
        emperor.stop()
