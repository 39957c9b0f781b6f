"""Living with a running deployment: logs that rotate and can be followed through logrotate,
`status` as a health check, and `--set` values that stay what `up` was told."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import TOOLKIT, free_port, free_ports, get, run_toolkit, serving, wait_for
from tests.test_emperor import RunningEmperor, start_emperor
from toolkit.apply import write_atomically
from toolkit.errors import ExitCode

STAMPED = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ")


@pytest.fixture
def emperor(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RunningEmperor]:
    running = start_emperor(tmp_path, *getattr(request, "param", ()))
    yield running
    running.stop()


def requests(port: int, count: int) -> None:
    for _ in range(count):
        assert get(port).status == 200


@pytest.mark.parametrize(
    "emperor", [("--log-max-bytes", "3000", "--log-backups", "2")], indirect=True
)
def test_a_log_rotates_at_its_size_keeping_its_backups(emperor: RunningEmperor) -> None:
    port = free_port()
    emperor.add("web", port)
    wait_for(serving(port), what="the vassal serving")
    requests(port, 150)  # each a request line uWSGI prints
    logs = emperor.root / "logs"
    files = wait_for(
        lambda: log_files(logs / "web.log", backups=2),
        what="web.log with two rotated files beside it, and no third",
    )
    assert isinstance(files, dict)
    for text in files.values():
        assert len(text.encode()) <= 3000 + 500, "past the size, the next line rotates"
        assert all(STAMPED.match(line) for line in text.splitlines())


def log_files(log: Path, backups: int) -> dict[str, str] | None:
    """The texts of `log` and its `backups` rotated files when exactly those are there, or
    None before that, or while a rotation is between its renames (NAME.log.1 has become .2
    and NAME.log not yet .1)."""
    names = [log.name, *(f"{log.name}.{number}" for number in range(1, backups + 1))]
    try:
        if sorted(p.name for p in log.parent.glob(f"{log.name}*")) != sorted(names):
            return None
        return {name: (log.parent / name).read_text() for name in names}
    except FileNotFoundError:
        return None


class Follower:
    """`toolkit logs DIR NAME -f -n 0`, read line by line."""

    def __init__(self, *args: str | Path) -> None:
        self.process = subprocess.Popen(
            [str(TOOLKIT), "logs", *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        import threading

        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.reader.join(5)
        assert self.process.stdout is not None
        self.process.stdout.close()


def test_logs_follow_through_copytruncate_a_move_and_sighup(emperor: RunningEmperor) -> None:
    """The three ways logrotate hands a log back: `copytruncate`; `create` (the file moved
    away, a new one made by the writer) after SIGHUP; and a move noticed by the Emperor
    alone. `logs -f -n 0` shows only new lines and follows all of them."""
    port = free_port()
    emperor.add("web", port)
    wait_for(serving(port), what="the vassal serving")
    log = emperor.root / "logs" / "web.log"
    follower = Follower("-C", emperor.root, "web", "-f", "-n", "0")
    try:
        # Asked again until followed: the follower starts in its own time.
        wait_for(
            lambda: get(port, "/first") and follower.saw("GET /first"),
            what="a request line followed",
        )
        assert not follower.saw("Starting uWSGI"), "-n 0: no line from before"
        shutil.copy(log, log.with_name("web.log.copied"))
        os.truncate(log, 0)
        get(port, "/after-truncate")
        wait_for(lambda: follower.saw("GET /after-truncate"), what="a line after copytruncate")
        log.rename(log.with_name("web.log.moved"))
        emperor.process.send_signal(signal.SIGHUP)
        wait_for(lambda: "SIGHUP: log files opened anew" in emperor.text(), what="the reopen")
        get(port, "/after-move")
        wait_for(lambda: follower.saw("GET /after-move"), what="a line in the new file")
        assert log.is_file() and "/after-move" in log.read_text()
        assert "/after-move" not in log.with_name("web.log.moved").read_text()
        log.rename(log.with_name("web.log.moved-again"))  # no SIGHUP: the Emperor notices
        wait_for(  # within FOLLOW_EVERY (1 s) of its last look: asked until then
            lambda: (
                get(port, "/unannounced") and log.is_file() and "/unannounced" in log.read_text()
            ),
            what="a new file at the log's path",
        )
        wait_for(lambda: follower.saw("GET /unannounced"), what="the new file followed")
    finally:
        follower.stop()


def test_logs_of_a_deployment_merge_every_vassal_by_time(tmp_path: Path) -> None:
    root = tmp_path / "site"
    port, app_port = free_ports(2)
    assert run_toolkit("new", root).returncode == 0
    assert (
        run_toolkit(
            "up", root, "--detach", "--set", f"http_port={port}", "--set", f"app_port={app_port}"
        ).returncode
        == 0
    )
    try:
        get(port, "/merged")
        wait_for(
            lambda: "GET /merged" in run_toolkit("logs", root, "-n", "200").stdout,
            what="the request line in the merged logs",
        )
        lines = run_toolkit("logs", root, "-n", "200").stdout.splitlines()
        names = {line.split(" | ")[0].strip() for line in lines}
        assert names == {"http", "uwsgi", "emperor"}
        stamps = [line.split(" | ", 1)[1][:23] for line in lines]
        assert stamps == sorted(stamps), "in time order"
        head = subprocess.run(
            f"'{TOOLKIT}' logs '{root}' -n 200 | head -1", shell=True, capture_output=True,
            text=True, timeout=30,
        )  # fmt: skip
        assert head.returncode == 0 and head.stderr == "", "a closed pipe ends quietly"
    finally:
        run_toolkit("down", root)


def test_status_is_a_health_check(tmp_path: Path) -> None:
    """0 while every vassal serves, 3 when one does not (named or not), 4 with no Emperor;
    memory and CPU per vassal."""
    root = tmp_path / "site"
    port, app_port = free_ports(2)
    assert run_toolkit("new", root).returncode == 0
    with (root / "deploy.ini").open("a") as stream:
        stream.write(f"http_port = {port}\napp_port = {app_port}\n")
    assert run_toolkit("status", root).returncode == ExitCode.NO_EMPEROR
    assert run_toolkit("up", root, "--detach").returncode == 0
    try:
        serving_now = run_toolkit("status", root)
        assert serving_now.returncode == ExitCode.OK, serving_now.stdout
        assert re.search(r"uwsgi .* \d+\.\d MB \d+\.\d s", serving_now.stdout)
        listed = json.loads(run_toolkit("status", root, "--json").stdout)
        assert all(v["rss"] > 1_000_000 and v["cpu"] >= 0 for v in listed)
        assert run_toolkit("stop", root, "http").returncode == 0
        assert run_toolkit("status", root).returncode == ExitCode.NOT_SERVING
        assert run_toolkit("status", root, "http").returncode == ExitCode.NOT_SERVING
        only = run_toolkit("status", root, "uwsgi")
        assert only.returncode == ExitCode.OK and "http" not in only.stdout
        assert run_toolkit("status", root, "nosuch").returncode == ExitCode.NOT_SERVING
        (root / "code" / "app.py").write_text("raise ImportError('broken')\n")
        assert run_toolkit("reload", root, "uwsgi").returncode == 0
        wait_for(
            lambda: '"state": "throttled"' in run_toolkit("status", root, "uwsgi", "--json").stdout,
            what="the broken app throttled",
            timeout=30,
        )
        assert run_toolkit("status", root, "uwsgi").returncode == ExitCode.NOT_SERVING
    finally:
        run_toolkit("down", root)


HANGING_APP = """import pathlib, time


def application(environ, start_response):
    if environ["PATH_INFO"] == "/hang":
        pathlib.Path({marker!r}).write_text("hanging")
        time.sleep(600)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def test_a_reload_waits_for_a_hung_worker_no_longer_than_reload_mercy(tmp_path: Path) -> None:
    """A graceful reload lets the worker finish its request, for reload_mercy seconds (2
    here; uWSGI alone waits 60): the hung request is cut and the app serves again."""
    root = tmp_path / "site"
    port, app_port = free_ports(2)
    assert run_toolkit("new", root).returncode == 0
    marker = tmp_path / "hanging"
    (root / "code" / "app.py").write_text(HANGING_APP.format(marker=str(marker)))
    with (root / "deploy.ini").open("a") as stream:
        stream.write(f"http_port = {port}\napp_port = {app_port}\nreload_mercy = 2\n")
        stream.write("processes = 1\ncheaper = 0\nthreads = 1\n")
    assert "worker-reload-mercy = 2" in run_toolkit("render", root, "--diff").stdout
    assert run_toolkit("up", root, "--detach").returncode == 0
    outcome: list[object] = []

    def hang() -> None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/hang", timeout=120) as reply:
                outcome.append(reply.status)
        except (OSError, http.client.HTTPException) as error:
            outcome.append(error)

    client = threading.Thread(target=hang, daemon=True)
    client.start()
    try:
        wait_for(marker.is_file, what="the request hanging in the only worker")
        reloaded = run_toolkit("reload", root, "uwsgi", "--wait", "--timeout", "30")
        assert reloaded.returncode == 0, reloaded.stdout + reloaded.stderr
        client.join(60)
        assert outcome and outcome[0] != 200, "the hung request was cut, not answered"
        wait_for(serving(port), what="the app serving again")
        assert get(port).body == b"ok"
    finally:
        run_toolkit("down", root)


def test_run_is_the_command_in_the_apps_folder_with_the_apps_environment(tmp_path: Path) -> None:
    root = tmp_path / "site"
    assert run_toolkit("new", root).returncode == 0
    (root / "secrets.env").write_text("FROM_FILE=a $(value) as written\n")
    with (root / "deploy.ini").open("a") as stream:
        stream.write("env = GIVEN=1\nenv_file = secrets.env\n")
    script = (
        "import os, sys; print(os.getcwd()); print(os.environ['GIVEN'], os.environ['FROM_FILE']);"
        " print(sys.prefix); sys.exit(3)"
    )
    done = run_toolkit("run", root, "--", "python", "-c", script)
    assert done.returncode == 3, done.stderr
    cwd, values, prefix = done.stdout.splitlines()
    assert cwd == str(root / "code") and values == "1 a $(value) as written"
    assert prefix == sys.base_prefix, "the system's Python, not toolkit's virtualenv"
    missing = run_toolkit("run", root, "--", "no-such-program")
    assert missing.returncode == 2 and "cannot run 'no-such-program'" in missing.stderr


def test_what_up_was_told_stays_until_down(tmp_path: Path) -> None:
    """`up --set` values are kept while that Emperor runs: a later plain `render` says so and
    changes nothing; after `down`, deploy.ini's values are back."""
    root = tmp_path / "site"
    port, app_port = free_ports(2)
    assert run_toolkit("new", root).returncode == 0
    started = run_toolkit(
        "up", root, "--detach", "--set", f"http_port={port}", "--set", f"app_port={app_port}"
    )
    assert started.returncode == 0, started.stderr
    try:
        again = run_toolkit("render", root)
        assert again.returncode == 0
        assert f"keeping what `up --set` gave the running Emperor: http_port={port}" in again.stdout
        assert "changed=0" in again.stdout
        wait_for(serving(port), what="the site on the port `up` was given")
        changed = run_toolkit("render", root, "--set", "processes=2")
        assert "the running Emperor reloads it: processes: 4 -> 2" in changed.stdout
    finally:
        assert run_toolkit("down", root).returncode == 0
    after = run_toolkit("render", root)
    assert "keeping" not in after.stdout
    assert "http = 127.0.0.1:8000" in (root / "vassals" / "http.ini").read_text()


def test_the_foreground_stream_is_stamped_unless_asked(tmp_path: Path) -> None:
    for extra, stamped in (((), True), (("--no-timestamps",), False)):
        emperor = start_emperor(tmp_path / str(stamped), *extra)
        try:
            write_atomically(emperor.vassals / "x.txt", "not a config\n")
            wait_for(lambda e=emperor: "watching" in e.text(), what="the Emperor's first lines")  # type: ignore[misc]
            first = emperor.text().splitlines()[0]
            assert bool(re.match(r"^\d\d:\d\d:\d\d emperor", first)) is stamped, first
        finally:
            emperor.stop()


@pytest.fixture(scope="session")
def uwsgi_without_pcre() -> Path:
    """The same uWSGI built without PCRE, as pip builds it on a machine without its headers
    (about 16 s here, once: kept in the user's cache between runs)."""
    from toolkit.uwsgi_options import option_table

    version = option_table().version
    target = Path.home() / ".cache" / "toolkit-tests" / f"uwsgi-{version}-without-pcre"
    binary = target / "bin" / "uwsgi"
    if not binary.is_file():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-cache-dir", "--no-deps",
             "--no-binary", ":all:", "--target", str(target), f"uwsgi=={version}"],
            check=True, capture_output=True, timeout=600,
            env={**os.environ, "UWSGI_PROFILE_OVERRIDE": "pcre=false"},
        )  # fmt: skip
    return binary


def test_a_uwsgi_without_pcre_is_said_once_with_the_fix(
    deployment: Path, uwsgi_without_pcre: Path
) -> None:
    result = run_toolkit("render", deployment, "--uwsgi", uwsgi_without_pcre)
    assert result.returncode == ExitCode.PROBLEMS
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert "U106 error: this uWSGI (2.0.31) was built without PCRE" in lines[0]
    assert "libpcre2-dev" in lines[0] and "pip install --force-reinstall" in lines[0]
    assert lines[1].startswith("error: 1 error(s) in the rendered configs")


def test_the_unit_speaks_systemds_notify_protocol(tmp_path: Path) -> None:
    """The exported unit's ExecStart, run as systemd runs a Type=notify service (this
    machine has no systemd to start it): READY=1 once every vassal serves and the site
    answers, STATUS=, WATCHDOG=1 from the loop, ExecReload returning once reloaded,
    STOPPING=1 on SIGINT."""
    import shlex
    import socket

    root = tmp_path / "site"
    port, app_port = free_ports(2)
    assert run_toolkit("new", root).returncode == 0
    with (root / "deploy.ini").open("a") as stream:
        stream.write(f"http_port = {port}\napp_port = {app_port}\n")
    assert run_toolkit("render", root).returncode == 0
    unit = run_toolkit("export", "systemd", root).stdout
    start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    reload = next(line for line in unit.splitlines() if line.startswith("ExecReload="))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify"))
    listener.settimeout(0.2)
    said: list[str] = []
    done = threading.Event()

    def listen() -> None:
        """Read every message as it comes, as systemd does: a unix datagram queue holds
        only net.unix.max_dgram_qlen of them (10 here), and a full one drops the next."""
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                said.append(listener.recv(4096).decode())

    def heard(text: str) -> bool:
        return any(text in message for message in list(said))

    listening = threading.Thread(target=listen, daemon=True)
    listening.start()

    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "1000000"}
    process = subprocess.Popen(
        shlex.split(start.removeprefix("ExecStart=")), env=env, cwd=root,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: heard("READY=1"), what="READY=1")
        ready = next(message for message in said if "READY=1" in message)
        assert "STATUS=2 of 2 vassals serving" in ready
        assert get(port).status == 200
        wait_for(lambda: heard("WATCHDOG=1"), what="WATCHDOG=1 from the loop")
        reloaded = subprocess.run(
            shlex.split(reload.removeprefix("ExecReload=")), capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert reloaded.returncode == 0, reloaded.stderr
        assert "serving again: http, uwsgi" in reloaded.stdout
        assert run_toolkit("status", root).returncode == ExitCode.OK
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
    try:
        wait_for(lambda: heard("STOPPING=1"), what="STOPPING=1")
    finally:
        done.set()
        listening.join()
        listener.close()


def test_ready_is_said_again_when_the_notify_queue_was_full(tmp_path: Path) -> None:
    """A READY=1 that could not be sent (the unit's socket queue full) is sent at the next
    occasion (an event, or the watchdog's tick), not lost: systemd would wait for it."""
    import socket

    from toolkit.emperor.notify import Notifier

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify"))
    listener.setblocking(False)
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    try:
        for _ in range(100_000):
            if not notifier.send("STATUS=filling the queue"):
                break
        notifier.serving(2, 2)
        assert not notifier.ready
        listener.recv(4096)  # room for one
        notifier.serving(2, 2)
        assert notifier.ready
        said = []
        with contextlib.suppress(BlockingIOError):
            while True:
                said.append(listener.recv(4096).decode())
        assert said[-1] == "READY=1\nSTATUS=2 of 2 vassals serving"
    finally:
        notifier.close()
        listener.close()


def test_the_wheel_installs_outside_the_checkout_and_deploys(tmp_path: Path) -> None:
    """Built as the package index would ship it, installed in a fresh virtualenv, used from
    another folder: no file of the checkout is needed."""
    checkout = Path(__file__).parent.parent
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
         str(checkout)], check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    wheel = next(wheels.glob("uwsgi_toolkit-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    toolkit = venv / "bin" / "toolkit"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port, app_port = free_ports(2)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(toolkit), *args], cwd=elsewhere, capture_output=True, text=True, timeout=120
        )

    assert run("new", "site").returncode == 0
    started = run("up", "site", "--detach", "--set", f"http_port={port}",
                  "--set", f"app_port={app_port}")  # fmt: skip
    try:
        assert started.returncode == 0, started.stderr
        assert b"Hello from uWSGI" in get(port).body
        assert str(checkout) not in (elsewhere / "site" / "vassals" / "uwsgi.ini").read_text()
    finally:
        assert run("down", "site").returncode == 0
