"""Hostile files and faults under the real Emperor: what cannot run is refused in one line,
a fault on one vassal (a log it cannot write, the open-file limit, a pause) costs that
vassal at most, and what a vassal starts ends with it."""

from __future__ import annotations

import os
import resource
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    TOOLKIT,
    free_port,
    free_ports,
    get,
    port_closed,
    run_toolkit,
    serving,
    try_get,
    wait_for,
)
from tests.test_emperor import APP, RunningEmperor, start_emperor, vassal_ini
from toolkit.apply import write_atomically
from toolkit.emperor import control
from toolkit.emperor.containment import Cgroups


@pytest.fixture
def emperor(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RunningEmperor]:
    running = start_emperor(tmp_path, *getattr(request, "param", ()))
    yield running
    running.stop()


def test_files_that_cannot_be_vassals_are_refused_in_one_line(emperor: RunningEmperor) -> None:
    """A name uWSGI would split, a FIFO, a 1 GB sparse file: each named, none run, the
    Emperor still answers at once, and its memory stays small."""
    os.mkfifo(emperor.vassals / "pipe.ini")
    with (emperor.vassals / "huge.ini").open("wb") as stream:
        stream.truncate(1 << 30)
    write_atomically(emperor.vassals / "site:v2.ini", vassal_ini(emperor.root / "code", 1))
    port = free_port()
    emperor.add("fine", port)
    wait_for(serving(port), what="the one fine vassal serving")
    lines = [
        "pipe.ini not run: it is a FIFO, not a file",
        "huge.ini not run: it is 1,073,741,824 bytes, more than the 1,048,576 a config may be",
        "site:v2.ini not run: uWSGI reads 'site:v2.ini' as a file and a section",
    ]
    wait_for(lambda: all(line in emperor.text() for line in lines), what="a line for each refusal")
    assert sorted(emperor.status()) == ["fine"]
    started = time.monotonic()
    control.status(emperor.run_dir, timeout=5)
    assert time.monotonic() - started < 5
    rss = int(Path(f"/proc/{emperor.process.pid}/statm").read_text().split()[1]) * 4096
    assert rss < 100 << 20, f"the Emperor holds {rss >> 20} MB"


def test_a_swapped_watched_folder_is_followed(tmp_path: Path) -> None:
    """vassals/ is a link; `ln -sfn` points it at another folder: that folder's vassals run
    and the old ones stop, well before the 60 s rescan."""
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    (tmp_path / "vassals").symlink_to(first)
    one, two = free_ports(2)
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text(APP)
    write_atomically(first / "one.ini", vassal_ini(tmp_path / "code", one))
    write_atomically(second / "two.ini", vassal_ini(tmp_path / "code", two))
    emperor = start_emperor(tmp_path)
    try:
        wait_for(serving(one), what="the first folder's vassal serving")
        swap = tmp_path / "vassals.new"
        swap.symlink_to(second)
        swap.rename(tmp_path / "vassals")
        wait_for(serving(two), what="the second folder's vassal serving", timeout=10)
        wait_for(port_closed(one), what="the first folder's vassal stopped", timeout=10)
    finally:
        emperor.stop()


def test_an_edit_of_a_linked_configs_target_is_seen(emperor: RunningEmperor) -> None:
    configs = emperor.root / "configs"
    configs.mkdir()
    port = free_port()
    target = configs / "web.ini"
    write_atomically(target, vassal_ini(emperor.root / "code", port, greeting="before"))
    (emperor.vassals / "web.ini").symlink_to(target)
    wait_for(serving(port), what="the linked vassal serving")
    write_atomically(target, vassal_ini(emperor.root / "code", port, greeting="after"))
    wait_for(
        lambda: (r := try_get(port)) is not None and r.body == b"after",
        what="the edit of the target served, well before the 60 s rescan",
        timeout=10,
    )


def test_run_files_are_private_and_never_written_through_a_link(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (run / "emperor.pid").symlink_to(victim)
    emperor = start_emperor(tmp_path)
    try:
        pid = run / "emperor.pid"
        assert not pid.is_symlink() and victim.read_text() == "keep me\n"
        assert stat.S_IMODE(pid.stat().st_mode) == 0o600
        assert stat.S_IMODE(run.stat().st_mode) == 0o700
        port = free_port()
        emperor.add("web", port)
        wait_for(serving(port), what="the vassal serving")
        log = emperor.root / "logs" / "web.log"
        wait_for(log.exists, what="its log file")
        assert stat.S_IMODE(log.stat().st_mode) == 0o640 & ~current_umask()
    finally:
        emperor.stop()


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_run_folder_of_another_user_is_refused(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    os.chown(tmp_path / "run", 65534, -1)
    result = run_toolkit("emperor", tmp_path / "*.ini", "--run-dir", tmp_path / "run")
    assert result.returncode == 2
    assert "the run folder belongs to uid 65534" in result.stderr


def test_a_log_that_cannot_be_written_costs_only_its_vassals_lines(
    emperor: RunningEmperor,
) -> None:
    (emperor.root / "logs").mkdir(exist_ok=True)
    (emperor.root / "logs" / "bad.log").mkdir()  # a folder where the log file would go
    bad, good = free_ports(2)
    emperor.add("bad", bad)
    emperor.add("good", good)
    wait_for(lambda: serving(bad)() and serving(good)(), what="both vassals serving")
    wait_for(
        lambda: "*** Starting uWSGI" in (emperor.root / "logs" / "good.log").read_text(),
        what="the other vassal's log written",
    )
    wait_for(
        lambda: "logs/bad.log: cannot write (Is a directory)" in emperor.text(),
        what="the Emperor saying the one log cannot be written",
    )
    problem = emperor.status()["bad"]["log_problem"]
    assert problem is not None and problem.startswith("Is a directory (")
    assert emperor.status()["good"]["log_problem"] is None


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_logs_disk_costs_log_lines_not_the_site(deployment: Path, small_disk: Path) -> None:
    port, app_port = free_ports(2)
    with (deployment / "deploy.ini").open("a") as stream:
        stream.write(f"http_port = {port}\napp_port = {app_port}\nlog_dir = {small_disk}\n")
    assert run_toolkit("up", deployment, "--detach").returncode == 0
    try:
        filler = small_disk / "filler"
        with filler.open("wb", buffering=0) as stream, pytest.raises(OSError):
            while True:
                stream.write(b"\0" * 4096)
        for _ in range(50):
            assert get(port).status == 200
        assert run_toolkit("reload", deployment, "uwsgi").returncode == 0
        wait_for(
            lambda: any(v["log_problem"] for v in status_of(deployment)),
            what="status naming a log it cannot write",
        )
        assert get(port).status == 200
        filler.unlink()
        time.sleep(5)  # the Emperor tries a failed log again after RETRY_AFTER (5 s)
        assert run_toolkit("reload", deployment, "uwsgi").returncode == 0
        wait_for(
            lambda: "lines lost: No space left on device" in (small_disk / "uwsgi.log").read_text(),
            what="the log written again, with the count of lines lost",
            timeout=15,
        )
    finally:
        assert run_toolkit("down", deployment).returncode == 0


def status_of(deployment: Path) -> list[dict[str, object]]:
    import json

    result = run_toolkit("status", deployment, "--json")
    assert result.returncode == 0, result.stderr
    listed: list[dict[str, object]] = json.loads(result.stdout)
    return listed


def test_at_the_open_file_limit_the_emperor_keeps_what_it_runs(tmp_path: Path) -> None:
    """With few file descriptors, the vassals that started keep serving, the others say
    why they cannot start, and nothing is taken for removed."""
    root = tmp_path
    (root / "vassals").mkdir()
    (root / "code").mkdir()
    (root / "code" / "app.py").write_text(APP)
    ports = free_ports(10)

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))

    output = root / "emperor.out"
    with output.open("wb") as stream:
        process = subprocess.Popen(
            [str(TOOLKIT), "emperor", str(root / "vassals" / "*.ini"), "--run-dir",
             str(root / "run"), "--logs-dir", str(root / "logs")],
            stdout=stream, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=limited,
        )  # fmt: skip
    emperor = RunningEmperor(root, process, output)
    try:
        wait_for(lambda: (root / "run" / "emperor.sock").exists(), what="the control socket")
        for index, port in enumerate(ports):
            emperor.add(f"web{index}", port)

        def settled() -> dict[str, dict[str, object]] | None:
            vassals = emperor.status()
            states = {str(v["state"]) for v in vassals.values()}
            return (
                vassals
                if len(vassals) == 10 and states <= {"ready", "loyal", "throttled"}
                else None
            )

        vassals = wait_for(settled, what="every vassal serving or throttled", timeout=60)
        assert isinstance(vassals, dict)
        running = [name for name, v in vassals.items() if v["state"] != "throttled"]
        refused = [v for v in vassals.values() if v["state"] == "throttled"]
        assert running, "some vassals run"
        assert refused and all("Too many open files" in str(v["last_exit"]) for v in refused)
        for name in running:
            assert get(ports[int(name.removeprefix("web"))]).status == 200
        assert "config file removed" not in emperor.text()
    finally:
        emperor.stop()


HEARTBEAT = "heartbeat = 1\n"


@pytest.mark.parametrize("who", ["emperor", "everything"])
def test_a_pause_longer_than_the_heartbeat_tolerance_kills_no_one(tmp_path: Path, who: str) -> None:
    """SIGSTOP, then SIGCONT 4 s later with a tolerance of 2 s: the Emperor alone (the
    heartbeats wait unread) or every process (a frozen machine): no vassal is killed."""
    emperor = start_emperor(tmp_path, "--heartbeat-tolerance", "2")
    try:
        port = free_port()
        path = emperor.add("web", port)
        path.write_text(path.read_text() + HEARTBEAT)
        wait_for(serving(port), what="the vassal serving")
        wait_for(lambda: emperor.state("web") == "loyal", what="the vassal loyal")
        master = int(str(emperor.status()["web"]["pid"]))
        groups = [emperor.process.pid] + ([master] if who == "everything" else [])
        for group in groups:
            os.killpg(group, signal.SIGSTOP)
        time.sleep(4)  # the pause itself is what is tested
        for group in reversed(groups):
            os.killpg(group, signal.SIGCONT)
        wait_for(
            lambda: "heartbeats are awaited" in emperor.text() or who == "emperor",
            what="the Emperor saying it was paused (when its vassal was paused too)",
        )
        time.sleep(3)  # longer than the tolerance: a kill would have happened by now
        assert emperor.status()["web"]["pid"] == master
        assert "killing it to respawn it" not in emperor.text()
        assert get(port).status == 200
    finally:
        emperor.stop()


DAEMONIZING_APP = """
import os
import socket
import time

PORT = {port}


def daemon():
    if os.fork():
        return
    os.setsid()
    if os.fork():
        os._exit(0)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", PORT))
    listener.listen(8)
    while True:
        time.sleep(1)


daemon()


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]
"""


@pytest.mark.parametrize(
    "emperor", [(), ("--no-cgroups",)], ids=["cgroup-or-tree", "tree"], indirect=True
)
def test_what_a_daemonizing_app_starts_ends_with_its_vassal(emperor: RunningEmperor) -> None:
    port, daemon = free_ports(2)
    (emperor.root / "code" / "daemonizing.py").write_text(DAEMONIZING_APP.format(port=daemon))
    path = emperor.add("web", port, module="daemonizing")
    wait_for(serving(port), what="the app serving")
    wait_for(lambda: not port_closed(daemon)(), what="the app's daemon listening")
    path.unlink()
    wait_for(port_closed(port), what="the vassal stopped")
    wait_for(port_closed(daemon), what="the daemon ended with the vassal")


def test_the_emperor_says_how_it_ends_what_vassals_leave(emperor: RunningEmperor) -> None:
    kind = "cgroup v2" if Cgroups.here() is not None else "process tree (TOOLKIT_VASSAL_ID)"
    assert f"what a vassal leaves behind ends with it: {kind}" in emperor.text()
