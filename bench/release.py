"""`toolkit release` and `rollback` under 50 keep-alive clients, measured through the router.

Part of `make bench` (bench.emperor adds its table to docs/BENCHMARKS.md); alone:
`python -m bench.release [--rounds N]`. A good release, a rollback, and two broken
releases (an import error; a health check answered 500) each run while 50 clients hold
keep-alive connections to the router; every answer is sorted by the X-Toolkit-Release
header the serving vassal adds. The figures that must stay zero: failed requests, and
answers from code that failed its health check.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.emperor import BENCH_MARK, TOOLKIT, end_everything, free_ports, start

CLIENTS = 50
# The other switch uWSGI offers: point http-to elsewhere and reload the router. Measured
# alone (`toolkit reload DIR http`) for what a router reload costs its clients.
ROUTER_RELOAD = "router reload (the other way)"
HEADER = "X-Toolkit-Release"
BROKEN = {
    "import error": "\nraise ImportError('a broken release')\n",
    "health check 500": (
        "\n_served = application\n\n"
        "def application(environ, start_response):\n"
        "    start_response('500 Internal Server Error', [('Content-Length', '0')])\n"
        "    return [b'']\n"
    ),
}


@dataclass
class Load:
    """CLIENTS threads, each on one keep-alive connection to the router, asking for /."""

    port: int
    by_release: dict[str, int] = field(default_factory=dict)
    first_seen: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    clients_hit: set[int] = field(default_factory=set)
    ok: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, number: int) -> None:
        connection: http.client.HTTPConnection | None = None
        while not self.stopping.is_set():
            try:
                connection = connection or http.client.HTTPConnection(
                    "127.0.0.1", self.port, timeout=10
                )
                connection.request("GET", "/")
                answer = connection.getresponse()
                answer.read()
                release = answer.getheader(HEADER) or "-"
                with self.lock:
                    if answer.status != 200:
                        self.failures.append(str(answer.status))
                        self.clients_hit.add(number)
                    else:
                        self.ok += 1
                    self.by_release[release] = self.by_release.get(release, 0) + 1
                    self.first_seen.setdefault(release, time.monotonic())
            except (OSError, http.client.HTTPException) as error:
                with self.lock:
                    self.failures.append(repr(error))
                    self.clients_hit.add(number)
                if connection is not None:
                    connection.close()
                connection = None
                time.sleep(0.01)  # a client that failed tries again, not in a tight loop
        if connection is not None:
            connection.close()

    @contextmanager
    def running(self) -> Iterator[Load]:
        threads = [
            threading.Thread(target=self.client, args=(n,), daemon=True) for n in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while self.ok < 200:  # the site serves before anything is measured
            if time.monotonic() > deadline:
                self.stopping.set()
                raise RuntimeError(f"the router on port {self.port} does not answer 200")
            time.sleep(0.01)
        with self.lock:  # refusals while a fresh site was still starting are not measured
            self.failures.clear()
            self.clients_hit.clear()
        try:
            yield self
        finally:
            time.sleep(0.5)  # answers after the switch count too
            self.stopping.set()
            for thread in threads:
                thread.join(15)


@dataclass
class Site:
    root: Path
    port: int

    def toolkit(self, *args: str | Path) -> tuple[subprocess.CompletedProcess[str], float]:
        started = time.monotonic()
        result = subprocess.run(
            [str(TOOLKIT), *map(str, args)], capture_output=True, text=True, timeout=120
        )
        return result, started

    def version(self, name: str, append: str = "") -> Path:
        folder = self.root.parent / "versions" / name
        shutil.copytree(self.root / "code", folder)
        with (folder / "app.py").open("a") as stream:
            stream.write(append)
        return folder

    def live(self) -> str:
        listed, _ = self.toolkit("releases", self.root)
        live = (line.split()[1] for line in listed.stdout.splitlines() if line[:1] == "*")
        return next(live, "-")


@contextmanager
def site(subscriptions: bool = True, emperor_options: tuple[str, ...] = ()) -> Iterator[Site]:
    """A ground-up deployment under toolkit's Emperor: `up --detach`, or with
    `emperor_options` the Emperor started as the systemd unit starts it."""
    work = Path(tempfile.mkdtemp(prefix=BENCH_MARK))
    root = work / "site"
    port, app_port, subscription_port = free_ports(3)
    try:
        subprocess.run([str(TOOLKIT), "new", str(root)], check=True, capture_output=True)
        with (root / "deploy.ini").open("a") as stream:
            stream.write(f"http_port = {port}\napp_port = {app_port}\nrelease_header = true\n")
            stream.write(f"subscription_port = {subscription_port if subscriptions else 0}\n")
        if emperor_options:
            subprocess.run([str(TOOLKIT), "render", str(root)], check=True, capture_output=True)
            glob = str(root / "vassals" / "*.ini")
            run, logs = str(root / "run"), str(root / "logs")
            emperor = [str(TOOLKIT), "emperor", glob, "--run-dir", run, "--logs-dir", logs]
            start([*emperor, *emperor_options], work / "emperor.log")
        else:
            up = [str(TOOLKIT), "up", str(root), "--detach"]
            subprocess.run(up, check=True, capture_output=True)
        yield Site(root, port)
    finally:
        subprocess.run([str(TOOLKIT), "down", str(root)], capture_output=True, timeout=60)
        end_everything()
        shutil.rmtree(work, ignore_errors=True)


@dataclass
class Row:
    """One scenario over its rounds."""

    failed: list[int] = field(default_factory=list)
    clients_hit: list[int] = field(default_factory=list)
    from_broken: list[int] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    to_new_code: list[float] = field(default_factory=list)
    command: list[float] = field(default_factory=list)
    exit_codes: set[int] = field(default_factory=set)
    what_failed: Counter[str] = field(default_factory=Counter)

    def count_failures(self, load: Load) -> None:
        self.failed.append(len(load.failures))
        self.clients_hit.append(len(load.clients_hit))
        self.what_failed.update(load.failures)


def switch(site: Site, row: Row, *args: str | Path) -> None:
    """Run `toolkit ARGS` under load; the new code is whatever the router serves afterwards."""
    before = site.live()
    with Load(site.port).running() as load:
        result, started = site.toolkit(*args)
        row.command.append(time.monotonic() - started)
    row.exit_codes.add(result.returncode)
    after = site.live()
    row.count_failures(load)
    row.answers.append(sum(load.by_release.values()))
    row.from_broken.append(
        sum(n for release, n in load.by_release.items() if release not in (before, after, "-"))
    )
    if after != before:
        row.to_new_code.append(load.first_seen[after] - started)


WAGTAIL_MIGRATION = """from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("home", "{previous}")]
    operations = [
        migrations.AddField(
            "homepage", "field_{number}", models.CharField(blank=True, max_length=9)
        ),
    ]
"""
FAILING_MIGRATION = """from django.db import migrations


def fail(apps, schema_editor):
    raise RuntimeError("a migration that fails")


class Migration(migrations.Migration):
    dependencies = [("home", "{previous}")]
    operations = [migrations.RunPython(fail)]
"""


@contextmanager
def wagtail_site() -> Iterator[Site]:
    """A Wagtail site (`wagtail start`, migrated, static collected, its own virtualenv),
    deployed with `toolkit new --app`, which proposes the release phase (migrate,
    collectstatic) and the shared state (the SQLite database, media/)."""
    import sysconfig

    work = Path(tempfile.mkdtemp(prefix=BENCH_MARK))
    app, root = work / "mysite", work / "deploy"
    port, app_port = free_ports(2)
    try:
        subprocess.run([str(TOOLKIT.parent / "wagtail"), "start", "mysite"], cwd=work,
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(app / ".venv")],
                       check=True, capture_output=True)  # fmt: skip
        packages = next((app / ".venv" / "lib").glob("python3*/site-packages"))
        (packages / "bench.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        python = str(app / ".venv" / "bin" / "python")
        for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"]):
            subprocess.run([python, "manage.py", *command], cwd=app, check=True,
                           capture_output=True)  # fmt: skip
        (app / "media").mkdir()
        subprocess.run([str(TOOLKIT), "new", str(root), "--app", str(app)], check=True,
                       capture_output=True)  # fmt: skip
        with (root / "deploy.ini").open("a") as stream:
            stream.write(f"http_port = {port}\napp_port = {app_port}\nrelease_header = true\n")
        # Deployed with its production settings: their hashed static files collected first.
        subprocess.run([str(TOOLKIT), "run", str(root), "--", "python", "manage.py",
                        "collectstatic", "--noinput"], check=True, capture_output=True)  # fmt: skip
        subprocess.run([str(TOOLKIT), "up", str(root), "--detach"], check=True,
                       capture_output=True)  # fmt: skip
        yield Site(root, port)
    finally:
        subprocess.run([str(TOOLKIT), "down", str(root)], capture_output=True, timeout=60)
        end_everything()
        shutil.rmtree(work, ignore_errors=True)


def wagtail_version(site: Site, number: int, migration: str) -> Path:
    """The Wagtail app with one more migration (after 0002, 0003, ...) and a stylesheet
    changed, as a user copies and edits it."""
    app = site.root.parent / "mysite"
    folder = site.root.parent / "versions" / f"v{number}"
    shutil.copytree(app, folder, symlinks=True, ignore=shutil.ignore_patterns("media", "*.sqlite3"))
    migrations = folder / "home" / "migrations"
    previous = sorted(p.stem for p in migrations.glob("0*.py"))[-1]
    (migrations / f"{number:04d}_bench.py").write_text(
        migration.format(previous=previous, number=number)
    )
    with (folder / "mysite" / "static" / "css" / "mysite.css").open("a") as stream:
        stream.write(f"\n/* version {number} */\n")
    return folder


WAGTAIL_ROWS = (
    "Wagtail release (migrate, collectstatic)",
    "Wagtail rollback",
    "Wagtail release, migration fails",
)


def measure_wagtail(rounds: int, rows: dict[str, Row]) -> None:
    release, rollback, failing = WAGTAIL_ROWS
    rows.update({name: Row() for name in WAGTAIL_ROWS})
    with wagtail_site() as deployment:
        root = deployment.root
        for number in range(3, 3 + rounds):
            good = wagtail_version(deployment, number, WAGTAIL_MIGRATION)
            switch(deployment, rows[release], "release", root, "--from", good)
            # The next release builds on this one: its migration is in the app folder now.
            app_migrations = root.parent / "mysite" / "home" / "migrations"
            shutil.copytree(good / "home" / "migrations", app_migrations, dirs_exist_ok=True)
            shipped = deployment.live()
            switch(deployment, rows[rollback], "rollback", root)
            switch(deployment, rows[rollback], "rollback", root, shipped)
            bad = wagtail_version(deployment, number + 100, FAILING_MIGRATION)
            switch(deployment, rows[failing], "release", root, "--from", bad)


def measure(rounds: int) -> dict[str, Row]:
    rows = {name: Row() for name in ("release", "rollback", *BROKEN, ROUTER_RELOAD)}
    with site() as deployment:
        root = deployment.root
        first = deployment.version("first")
        result, _ = deployment.toolkit("release", root, "--from", first)
        assert result.returncode == 0, result.stderr
        for round_number in range(rounds):
            good = deployment.version(f"good-{round_number}")
            switch(deployment, rows["release"], "release", root, "--from", good)
            switch(deployment, rows["rollback"], "rollback", root)
            for name, code in BROKEN.items():
                broken = deployment.version(f"{name.replace(' ', '-')}-{round_number}", code)
                switch(deployment, rows[name], "release", root, "--from", broken)
            switch(deployment, rows[ROUTER_RELOAD], "reload", root, "http")
            recovered = Load(deployment.port)
            with recovered.running():  # the app announces itself to the new router
                pass
    measure_wagtail(rounds, rows)
    for name, options in KILLS.items():
        rows[name] = Row()
        with site(subscriptions=False, emperor_options=("--quiet", *options)) as deployment:
            for _ in range(rounds):
                kill_app(deployment, rows[name])
                recovered = Load(deployment.port)
                with recovered.running():
                    pass
    return rows


KILLS = {
    "app SIGKILL, socket held by the Emperor": (),
    "app SIGKILL, --no-hold-sockets": ("--no-hold-sockets",),
}


def app_master(site: Site) -> int:
    listed, _ = site.toolkit("status", site.root, "--json")
    vassal = next(v for v in json.loads(listed.stdout) if v["name"] == "uwsgi")
    return int(vassal["pid"]) if vassal["pid"] and vassal["state"] in {"ready", "loyal"} else 0


def kill_app(site: Site, row: Row) -> None:
    """SIGKILL the app vassal's process group under load; `to_new_code` is the time until
    the Emperor's new app master is ready again."""
    load = Load(site.port)
    with load.running():
        killed = app_master(site)
        started = time.monotonic()
        os.killpg(killed, signal.SIGKILL)
        while app_master(site) in {0, killed}:
            if time.monotonic() - started > 30:
                raise RuntimeError("the Emperor did not bring the killed app vassal back")
            time.sleep(0.01)
        row.to_new_code.append(time.monotonic() - started)
    row.count_failures(load)
    row.answers.append(load.ok)
    row.exit_codes.add(0)


def cell(values: list[float] | list[int], unit: str = "") -> str:
    if not values:
        return "-"
    if all(isinstance(v, int) for v in values):
        return f"{sum(values)}"
    return f"{statistics.median(values):.2f}{unit} ({max(values):.2f})"


def table(rows: dict[str, Row], rounds: int) -> str:
    lines = [
        f"## Releases under {CLIENTS} keep-alive clients ({rounds} rounds each)\n",
        "Times are median (max). *failed* counts errors and non-200 answers seen by the",
        "clients, in all rounds (in the worst round), from the moment the site serves (a",
        "client that fails waits 10 ms and tries again); *clients hit* is how",
        "many of them saw one, in the worst round; *from broken code* counts answers from a",
        "release that failed its health check. A broken release must exit 1 and leave the",
        "live release serving. The last row is not a release: the router's graceful reload,",
        "which a switch by `http-to` would need, under the same clients. The SIGKILL rows",
        "kill the app vassal's process group (router with `http-to`); their *command to new",
        "code* is the time until the Emperor's new app master is ready.\n",
        "| scenario | answers | failed | clients hit (most) | from broken code | "
        "command to new code | command total | exit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {sum(row.answers)} | {sum(row.failed)} ({max(row.failed, default=0)}) | "
            f"{max(row.clients_hit, default=0)} of {CLIENTS} | {sum(row.from_broken)} | "
            f"{cell(row.to_new_code, ' s')} | {cell(row.command, ' s')} | "
            f"{','.join(map(str, sorted(row.exit_codes)))} |"
        )
    failed = [(name, row.what_failed) for name, row in rows.items() if row.what_failed]
    if failed:
        lines.append("\nWhat the clients saw fail (a status, or the client's exception):\n")
        for name, seen in failed:
            kinds = ", ".join(f"{count} x `{what}`" for what, count in seen.most_common(3))
            lines.append(f"- {name}: {kinds}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    print(table(measure(options.rounds), options.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
