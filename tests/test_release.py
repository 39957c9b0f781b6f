"""`toolkit release`, `rollback` and `releases` with real uWSGI under toolkit's Emperor: new
code proves itself on its own socket, takes traffic through the router's subscription
server, and a broken release never answers a client."""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from tests.support import (
    TOOLKIT,
    free_ports,
    get,
    own_virtualenv,
    port_closed,
    run_toolkit,
    serving,
    wait_for,
)

HEADER = "x-toolkit-release"


@dataclass
class Site:
    root: Path
    port: int
    versions: Path

    def version(self, name: str, change: str | None = None, append: str = "") -> Path:
        """A copy of the demo app, its greeting changed to `name` (and code appended)."""
        folder = self.versions / name
        shutil.copytree(self.root / "code", folder)
        app = folder / "app.py"
        text = app.read_text().replace("Hello from uWSGI", change or f"Hello from {name}")
        app.write_text(text + append)
        return folder

    def releases(self) -> list[dict[str, object]]:
        result = run_toolkit("releases", self.root, "--json")
        assert result.returncode == 0, result.stderr
        listed: list[dict[str, object]] = json.loads(result.stdout)
        return listed

    def live(self) -> str | None:
        return next((str(r["id"]) for r in self.releases() if r["live"]), None)

    def vassals(self) -> list[str]:
        return sorted(p.name for p in (self.root / "vassals").glob("*.ini"))


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    port, app_port, subscriptions = free_ports(3)
    root = tmp_path / "site"
    assert run_toolkit("new", root).returncode == 0
    with (root / "deploy.ini").open("a") as stream:
        stream.write(
            f"http_port = {port}\napp_port = {app_port}\nsubscription_port = {subscriptions}\n"
            "release_header = true\n"  # the load below counts answers by release
        )
    started = run_toolkit("up", root, "--detach")
    assert started.returncode == 0, started.stderr + started.stdout
    versions = tmp_path / "versions"
    versions.mkdir()
    yield Site(root, port, versions)
    run_toolkit("down", root)
    wait_for(port_closed(port), what="port_closed(port)")


@dataclass
class Load:
    """Clients on keep-alive connections asking for / until stopped, counting failures."""

    port: int
    clients: int = 10
    answers: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def client(self) -> None:
        connection: http.client.HTTPConnection | None = None
        while not self.stop.is_set():
            try:
                connection = connection or http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=10
                )
                connection.request("GET", "/")
                answer = connection.getresponse()
                body = answer.read()
                if answer.status != 200:
                    self.failures.append(f"{answer.status}")
                key = answer.getheader(HEADER) or "first"
                self.answers[key] = self.answers.get(key, 0) + 1
                assert b"<h1>" in body
            except Exception as error:  # every kind of failure counts
                self.failures.append(repr(error))
                if connection is not None:
                    connection.close()
                connection = None
        if connection is not None:
            connection.close()

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=self.client) for _ in range(self.clients)]
        for thread in self.threads:
            thread.start()
        wait_for(lambda: sum(self.answers.values()) > 20, what="20 answers before the command")
        return self

    def __exit__(self, *exc: object) -> None:
        """Once the command is done, 20 more answers: what the site serves after it."""
        after = sum(self.answers.values()) + 20
        wait_for(
            lambda: sum(self.answers.values()) >= after or len(self.failures) > 100,
            what="20 answers after the command",
        )
        self.stop.set()
        for thread in self.threads:
            thread.join(15)


def test_a_release_serves_new_code_with_no_failed_request(site: Site) -> None:
    two = site.version("two")
    with Load(site.port) as load:
        result = run_toolkit("release", site.root, "--from", two)
    assert result.returncode == 0, result.stderr
    assert "is live" in result.stdout and "healthy" in result.stdout
    live = site.live()
    assert live is not None and f"release {live} ({two}) is live" in result.stdout
    answer = get(site.port)
    assert b"Hello from two" in answer.body and answer.headers[HEADER] == live
    assert not load.failures, load.failures[:5]
    assert load.answers.get(live, 0) > 0
    assert site.vassals() == ["http.ini", f"uwsgi@{live}.ini"]
    assert (site.root / "releases" / live / "app.py").is_file()
    status = run_toolkit("status", site.root)
    assert f"uwsgi  {live}" in status.stdout and status.stdout.count("uwsgi ") == 1


@pytest.mark.parametrize(
    "broken",
    [
        "\nimport no_such_module\n",
        "\nraise RuntimeError('broken at import')\n",
        "\n_ok = application\n"
        "def application(environ, start):\n"
        "    start('500 Internal Server Error', [])\n"
        "    return [b'<h1>broken</h1>']\n",
    ],
    ids=["import-error", "raises-at-import", "answers-500"],
)
def test_a_broken_release_never_serves(site: Site, broken: str) -> None:
    bad = site.version("bad", append=broken)
    before = site.vassals()
    with Load(site.port) as load:
        result = run_toolkit("release", site.root, "--from", bad)
    assert result.returncode == 1
    if "no_such_module" in broken:  # refused before it runs: the app's Python lacks it
        assert "P407 error: no_such_module cannot be imported by" in result.stderr
        assert "nothing was written or started" in result.stderr
    else:
        assert "failed its health check" in result.stderr
        assert "the live release still serves" in result.stderr
    if "RuntimeError" in broken:
        assert "RuntimeError: broken at import" in result.stderr
        assert "(exit code 22: the app did not load) before answering" in result.stderr
    elif "500" in broken:
        assert "answered 500, not 200" in result.stderr
    assert not load.failures, load.failures[:5]
    assert set(load.answers) == {"first"}, "no answer may come from the broken code"
    assert site.vassals() == before
    assert site.releases() == []
    assert not list((site.root / "releases").glob("*-*")), "no code is left behind"
    # This site's staging only: the other broken releases may be staging in other workers.
    staging = f"{site.root}/run/staging-"
    assert not [p for p in psutil.process_iter(["cmdline"]) if staging in str(p.info["cmdline"])]


# Each worker of this code answers 500 from its 31st request on.
BREAKS_AFTER_30 = (
    "\n_ok, _served = application, 0\n"
    "def application(environ, start):\n"
    "    global _served\n"
    "    _served += 1\n"
    "    if _served > 30:\n"
    "        start('500 Internal Server Error', [])\n"
    "        return [b'<h1>broken</h1>']\n"
    "    return _ok(environ, start)\n"
)


def test_a_release_failing_while_watched_is_switched_back_with_an_app_always_in_the_router(
    site: Site,
) -> None:
    """A fleet's switch step (`--switch ID --watch S`) on one host: a release that starts
    failing once live goes back to the one before. The router has an app to send to
    throughout: every failed request is the failing release's own 500, none a connection
    closed without an answer (the release switched back to was once withdrawn instead of the
    failing one, leaving a stopping app alone in the router)."""
    assert run_toolkit("release", site.root, "--from", site.version("one")).returncode == 0
    first = site.live()
    failing = "20300101T000000-failing"
    staged = run_toolkit(
        "release",
        site.root,
        "--stage",
        failing,
        "--from",
        site.version("two", append=BREAKS_AFTER_30),
    )
    assert staged.returncode == 0, staged.stdout + staged.stderr
    with Load(site.port) as load:
        result = run_toolkit("release", site.root, "--switch", failing, "--watch", "10")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"release {failing} failed after switching" in result.stderr
    assert f"switched back to {first}" in result.stderr
    assert site.live() == first
    assert set(load.failures) <= {"500"}, [f for f in load.failures if f != "500"][:5]
    assert load.answers.get(failing, 0) > 0, "the failing release did serve for a while"


def test_rollback_and_a_named_release(site: Site) -> None:
    assert run_toolkit("release", site.root, "--from", site.version("two")).returncode == 0
    second = site.live()
    assert run_toolkit("release", site.root, "--from", site.version("three")).returncode == 0
    third = site.live()
    with Load(site.port) as load:
        back = run_toolkit("rollback", site.root)
    assert back.returncode == 0, back.stderr
    assert site.live() == second and b"Hello from two" in get(site.port).body
    assert not load.failures, load.failures[:5]
    forward = run_toolkit("rollback", site.root, str(third))
    assert forward.returncode == 0, forward.stderr
    assert site.live() == third and b"Hello from three" in get(site.port).body
    again = run_toolkit("rollback", site.root, str(third))
    assert again.returncode == 1 and "already live" in again.stderr
    # A restarted router knows no app until it announces itself: every second, not every 10.
    assert run_toolkit("reload", site.root, "http").returncode == 0
    wait_for(serving(site.port), what="serving(site.port)", timeout=5)


def test_a_release_from_git_records_its_commit_and_the_code_before_it(site: Site) -> None:
    """The first release also records the code that ran before it: `rollback` goes back."""
    repo = site.version("from-git")
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "v"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    result = run_toolkit("release", site.root, "--git", "HEAD", "--repo", repo)
    assert result.returncode == 0, result.stderr
    before, entry = site.releases()
    assert entry["commit"] == commit.stdout.strip() and entry["live"]
    assert str(entry["id"]).endswith(commit.stdout.strip()[:8])
    assert str(before["id"]).endswith("-before") and not before["live"]
    assert b"Hello from from-git" in get(site.port).body
    assert run_toolkit("release", site.root, "--git", "nosuchref", "--repo", repo).returncode == 2
    back = run_toolkit("rollback", site.root)
    assert back.returncode == 0, back.stderr
    assert f"toolkit rollback {site.root} {entry['id']}" in back.stdout
    assert b"Hello from uWSGI" in get(site.port).body


def test_old_releases_are_pruned_but_not_the_live_one_nor_the_one_before(site: Site) -> None:
    with (site.root / "deploy.ini").open("a") as stream:
        stream.write("keep_releases = 2\n")
    for name in ("two", "three", "four"):
        assert run_toolkit("release", site.root, "--from", site.version(name)).returncode == 0
    ids = [str(r["id"]) for r in site.releases()]
    assert len(ids) == 2 and site.live() == ids[-1]
    assert b"Hello from four" in get(site.port).body
    assert run_toolkit("rollback", site.root).returncode == 0
    assert b"Hello from three" in get(site.port).body


def test_one_release_at_a_time(site: Site) -> None:
    lock = site.root / "run" / "release.lock"
    with lock.open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_toolkit("release", site.root, "--from", site.version("two"))
    assert result.returncode == 1 and "another release is under way" in result.stderr


def test_a_release_killed_half_way_leaves_the_old_one_serving(site: Site) -> None:
    slow = site.version("slow", append="\nimport time\ntime.sleep(30)\n")
    process = subprocess.Popen(
        [str(TOOLKIT), "release", str(site.root), "--from", str(slow)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )

    def staging() -> list[psutil.Process]:
        return [
            p
            for p in psutil.process_iter(["cmdline", "status"])
            if f"{site.root}/run/staging-" in str(p.info["cmdline"])
            and p.info["status"] != "zombie"
        ]

    wait_for(staging, what="staging")
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    wait_for(lambda: not staging(), what="not staging()")
    assert b"Hello from uWSGI" in get(site.port).body
    assert site.vassals() == ["http.ini", "uwsgi.ini"]
    assert site.releases() == []
    result = run_toolkit("release", site.root, "--from", site.version("two"))
    assert result.returncode == 0, result.stderr
    assert not list((site.root / "run").glob("staging-*"))
    assert len(list((site.root / "releases").glob("*-dir"))) == 1
    assert len(list((site.root / "releases").glob("*-before"))) == 1


def test_releases_need_a_running_emperor_and_the_subscription_server(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    assert run_toolkit("new", root).returncode == 0
    with (root / "deploy.ini").open("a") as stream:
        stream.write("subscription_port = 0\n")
    refused = run_toolkit("release", root, "--from", root / "code")
    assert refused.returncode == 2 and "subscription_port is 0" in refused.stderr
    (root / "deploy.ini").write_text((root / "deploy.ini").read_text().replace(
        "subscription_port = 0\n", ""))  # fmt: skip
    stopped = run_toolkit("release", root, "--from", root / "code")
    assert stopped.returncode == 2 and "no Emperor is running" in stopped.stderr
    assert run_toolkit("releases", root).stdout.strip() == "no releases yet"
    assert run_toolkit("release", root).returncode == 2


def test_a_django_project_is_released(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "django", "startproject", "mysite"], cwd=tmp_path, check=True
    )
    project = tmp_path / "mysite"
    own_virtualenv(project)
    port, app_port, subscriptions = free_ports(3)
    root = tmp_path / "deploy"
    made = run_toolkit("new", root, "--app", project)
    assert "health_path = /admin/login/  (mysite/urls.py routes nothing at /" in made.stdout
    with (root / "deploy.ini").open("a") as stream:
        stream.write(
            f"http_port = {port}\napp_port = {app_port}\nsubscription_port = {subscriptions}\n"
            "release_header = true\n"
        )
    assert run_toolkit("up", root, "--detach").returncode == 0
    try:
        (project / "mysite" / "urls.py").write_text(
            (project / "mysite" / "urls.py").read_text() + "\n# release two\n"
        )
        result = run_toolkit("release", root, "--from", project)
        assert result.returncode == 0, result.stderr
        listed = json.loads(run_toolkit("releases", root, "--json").stdout)
        live = next(entry["id"] for entry in listed if entry["live"])
        login = get(port, "/admin/login/")
        assert login.status == 200 and login.headers[HEADER] == live
        assert (
            (root / "releases" / live / "mysite" / "urls.py")
            .read_text()
            .endswith("# release two\n")
        )
    finally:
        run_toolkit("down", root)


def test_the_ansible_playbook_ships_a_release_on_each_host(tmp_path: Path) -> None:
    """The exported playbook, run with `-c local`: the host renders, then with
    toolkit_release_commit ships that commit of the app's repository."""
    port, app_port, subscriptions = free_ports(3)
    root = tmp_path / "site"
    assert run_toolkit("new", root).returncode == 0
    with (root / "deploy.ini").open("a") as stream:
        stream.write(f"subscription_port = {subscriptions}\n")
    (root / "inventory.ini").write_text(
        f"[groups]\n[[web]]\nhosts = localhost\n[hosts]\n[[localhost]]\n"
        f"http_port = {port}\napp_port = {app_port}\n"
    )
    # The app's repository as each host keeps it (a clone), outside the shipped folder.
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    app = (root / "code" / "app.py").read_text()
    (repo / "app.py").write_text(app.replace("Hello from uWSGI", "Hello from the commit"))
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "v"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    ansible = tmp_path / "ansible"
    assert run_toolkit("export", "ansible", root, "--output", ansible).returncode == 0
    # The fleet's playbooks come with it, and read where each host keeps things from here.
    assert {"release.yml", "rollback.yml"} <= {p.name for p in ansible.iterdir()}
    shared = (ansible / "group_vars" / "all.yml").read_text()
    assert "toolkit_bin:" in shared and "toolkit_inventory: true" in shared
    dest = tmp_path / "dest"
    playbook = [str(Path(sys.executable).parent / "ansible-playbook"), "-c", "local",
                "-i", str(ansible / "hosts.ini"), str(ansible / "playbook.yml")]  # fmt: skip
    # Everything the play makes stays in the test's folder (toolkit_home is /srv/toolkit).
    extra = {"ansible_python_interpreter": sys.executable, "toolkit_dest": str(dest),
             "toolkit_home": str(tmp_path / "home"),
             "toolkit_venv": str(Path(sys.executable).parent.parent),
             "toolkit_install": "false", "toolkit_systemd": "false"}  # fmt: skip
    env = {**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_NOCOLOR": "1"}

    def play(*options: str, **more: str) -> None:
        pairs = {**extra, **more}
        run = subprocess.run(
            [*playbook, *options, *(a for k, v in pairs.items() for a in ("-e", f"{k}={v}"))],
            capture_output=True, text=True, timeout=180, env=env,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-3000:]

    play()
    # What the systemd unit runs on the host: the Emperor over the rendered vassals.
    emperor = subprocess.Popen(
        [str(TOOLKIT), "emperor", str(dest / "vassals" / "*.ini"), "--run-dir",
         str(dest / "run"), "--logs-dir", str(dest / "logs")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(serving(port), what="serving(port)")
        play(
            "--tags", "release",
            toolkit_release_commit=commit.stdout.strip(), toolkit_release_repo=str(repo),
        )  # fmt: skip
        listed = json.loads(run_toolkit("releases", dest, "--json").stdout)
        entry = next(entry for entry in listed if entry["live"])
        assert entry["commit"] == commit.stdout.strip()
        assert b"Hello from the commit" in get(port).body
    finally:
        os.killpg(emperor.pid, signal.SIGINT)
        emperor.wait(15)


def scaffold_ports() -> tuple[int, int]:
    """http_port and app_port free, and http_port + 2 too (the derived subscription port)."""
    while True:
        port, app_port = free_ports(2)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("127.0.0.1", port + 2))
            except OSError:
                continue
        return port, app_port


def test_a_fresh_scaffold_releases_with_nothing_else_set(tmp_path: Path) -> None:
    """`new`, `up`, `release --from`: the router's subscription server is on by default
    (http_port + 2), and no client sees which release answered."""
    port, app_port = scaffold_ports()
    root = tmp_path / "x"
    assert run_toolkit("new", root).returncode == 0
    with (root / "deploy.ini").open("a") as stream:
        stream.write(f"http_port = {port}\napp_port = {app_port}\n")
    assert run_toolkit("up", root, "--detach").returncode == 0
    try:
        code = tmp_path / "code"
        shutil.copytree(root / "code", code)
        app = code / "app.py"
        app.write_text(app.read_text().replace("Hello from uWSGI", "Hello again"))
        for _ in range(3):
            shipped = run_toolkit("release", root, "--from", code)
            assert shipped.returncode == 0, shipped.stderr
        answer = get(port)
        assert b"Hello again" in answer.body
        assert HEADER not in answer.headers, "no release header without release_header"
        live = json.loads(run_toolkit("releases", root, "--json").stdout)[-1]["id"]
        status = run_toolkit("status", root)
        assert f"uwsgi  {live}" in status.stdout and f"live release: {live}" in status.stdout
        reloaded = run_toolkit("reload", root, "uwsgi")
        assert reloaded.returncode == 0 and reloaded.stdout.strip() == "reloading uwsgi"
        wait_for(serving(port), what="the site serving after the reload")
        logs = run_toolkit("logs", root, "uwsgi", "-n", "200")
        assert logs.returncode == 0, logs.stderr
        assert f"(release {live})" in logs.stdout, "the log marks where the live release began"
    finally:
        run_toolkit("down", root)


def test_a_failing_release_command_stops_the_release(site: Site) -> None:
    """The release phase runs in the new release's folder; the first command that fails
    stops it, with its output and exit code, and the live release serves on."""
    with (site.root / "deploy.ini").open("a") as stream:
        stream.write("release_commands = python3 where.py, python3 migrate.py --fail\n")
    two = site.version("two")
    (two / "where.py").write_text("import os\nprint(os.getcwd())\n")
    (two / "migrate.py").write_text("import sys\nprint('no migration today')\nsys.exit(3)\n")
    before = site.vassals()
    with Load(site.port) as load:
        result = run_toolkit("release", site.root, "--from", two)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "release | $ python3 migrate.py --fail" in result.stdout
    assert "release | no migration today" in result.stdout
    assert re.search(r"release \| /.*/releases/\d{8}T\d+-dir", result.stdout), result.stdout
    assert "`python3 migrate.py --fail` failed (exit code 3); the live release still serves" in (
        result.stderr
    )
    assert not load.failures and set(load.answers) == {"first"}
    assert site.vassals() == before and site.releases() == []


HANGING = """
import time


def application(environ, start_response):
    time.sleep(60)
"""
DJANGO_LIKE = """
def application(environ, start_response):
    start_response("500 Internal Server Error", [("Content-Type", "text/html")])
    return [b"<!doctype html><title>Server Error (500)</title><h1>Server Error (500)</h1>"]
"""


@pytest.mark.parametrize(
    ("code", "said"),
    [
        (HANGING, "it accepted the connection but did not answer within 1 s (a hang)"),
        (DJANGO_LIKE, "Django answered its plain 500 page and logged nothing"),
    ],
    ids=["hang", "django-500"],
)
def test_a_failed_health_check_says_why(site: Site, code: str, said: str) -> None:
    with (site.root / "deploy.ini").open("a") as stream:
        stream.write("health_timeout = 1\nhealth_tries = 1\n")
    bad = site.version("bad")
    (bad / "app.py").write_text(code)
    result = run_toolkit("release", site.root, "--from", bad)
    assert result.returncode == 1
    assert said in result.stderr
    assert "Its own output:" in result.stderr and "uWSGI" in result.stderr
