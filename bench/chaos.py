"""Fault injection against toolkit's Emperor: kill storms, edit storms, crash loops, its own death.

`make chaos` runs the long versions (60 s kill storm, 1,000-write edit storm) and prints a
table; the short versions run inside `make test` (tests/test_chaos.py). Every process
started here is ended by process group, even when a round fails halfway.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench.emperor import answer, free_port, free_ports, write
from toolkit import uwsgi_ini
from toolkit.seal import seal

BIN = Path(sys.executable).parent
APP = """import os

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [os.environ.get("CHECKSUM", "none").encode()]
"""
CRASHER = "raise SystemExit('crashing on purpose')\n"
# An app that, when imported, leaves a daemon behind: double fork, new session, a port held.
DAEMONIZING = """import os, socket, time

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        held = socket.socket()
        held.bind(("127.0.0.1", int(os.environ["DAEMON_PORT"])))
        held.listen(1)
        while True:
            time.sleep(1)
    os._exit(0)

from app import application
"""


def config(code: Path, port: int, version: str, module: str = "app", extra: str = "") -> str:
    """A sealed vassal config whose last line carries a checksum of the lines between the seal
    and it; the app echoes it, so what is served tells which content was started."""
    body = (
        "[uwsgi]\nstrict = true\nmaster = true\n"
        f"http-socket = 127.0.0.1:{port}\nprocesses = 1\npythonpath = {code}\n"
        f"module = {module}\nneed-app = true\n; version {version}\n{extra}"
    )
    return seal(body + f"env = CHECKSUM={hashlib.sha256(body.encode()).hexdigest()[:16]}\n")


def checksum_of(text: str) -> str | None:
    _seal, _, text = text.partition("\n")
    body, _, last = text.rstrip("\n").rpartition("\n")
    if not last.startswith("env = CHECKSUM="):
        return None
    expected = hashlib.sha256((body + "\n").encode()).hexdigest()[:16]
    return expected if last.endswith(expected) else None


@dataclass
class Figures:
    """One row of the chaos table per scenario; the zeros should stay zeros."""

    rows: dict[str, dict[str, object]] = field(default_factory=dict)

    def record(self, scenario: str, **values: object) -> None:
        self.rows.setdefault(scenario, {}).update(values)

    def table(self) -> str:
        lines = ["| scenario | figures |", "|---|---|"]
        for scenario, values in self.rows.items():
            figures = ", ".join(f"{name} {value}" for name, value in values.items())
            lines.append(f"| {scenario} | {figures} |")
        return "\n".join(lines)


@dataclass
class Site:
    """A watched folder of vassals under one toolkit Emperor."""

    root: Path
    ports: dict[str, int] = field(default_factory=dict)
    emperor: subprocess.Popen[bytes] | None = None

    @property
    def vassals(self) -> Path:
        return self.root / "vassals"

    @property
    def code(self) -> Path:
        return self.root / "code"

    def start(self, *extra: str, files: int | None = None, logs: Path | None = None) -> None:
        """The Emperor on this folder; `files` limits its open files, `logs` moves its logs."""
        self.vassals.mkdir(parents=True, exist_ok=True)
        self.code.mkdir(exist_ok=True)
        (self.code / "app.py").write_text(APP)
        (self.code / "crasher.py").write_text(CRASHER)
        (self.code / "daemonizing.py").write_text(DAEMONIZING)

        def limit() -> None:
            if files is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

        with (self.root / "emperor.out").open("ab") as stream:
            self.emperor = subprocess.Popen(
                [str(BIN / "python"), "-m", "toolkit.emperor", str(self.vassals / "*.ini"),
                 "--run-dir", str(self.root / "run"),
                 "--logs-dir", str(logs or self.root / "logs"), "--quiet", *extra],
                stdout=stream, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env={**os.environ, "NO_COLOR": "1"}, preexec_fn=limit,
            )  # fmt: skip

    def add(self, name: str, version: str = "1", module: str = "app", extra: str = "") -> None:
        port = self.ports.setdefault(name, free_port())
        write(self.vassals / f"{name}.ini", config(self.code, port, version, module, extra))

    def masters(self) -> dict[str, list[int]]:
        """Each config's uwsgi masters: processes whose parent is the Emperor."""
        found: dict[str, list[int]] = {}
        assert self.emperor is not None
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.emperor.pid).children():
                with contextlib.suppress(psutil.Error):
                    if child.status() == psutil.STATUS_ZOMBIE:
                        continue
                    arguments = child.cmdline()
                    ini = arguments[arguments.index("--ini") + 1].rpartition(":uwsgi")[0]
                    found.setdefault(Path(ini).stem, []).append(child.pid)
        return found

    def ours(self) -> list[psutil.Process]:
        mine = []
        for process in psutil.process_iter(["name", "cmdline"]):
            if process.info["name"] == "uwsgi" and any(
                str(self.root) in part for part in process.info["cmdline"] or []
            ):
                mine.append(process)
        return mine

    def zombies(self) -> int:
        count = 0
        for process in self.ours():
            with contextlib.suppress(psutil.Error):
                count += process.status() == psutil.STATUS_ZOMBIE
        return count

    def stop(self) -> int:
        """Stop the Emperor; return how many of its uwsgi processes outlived it by 3 s."""
        if self.emperor is not None:
            with contextlib.suppress(ProcessLookupError):
                self.emperor.send_signal(signal.SIGINT)
            try:
                self.emperor.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.emperor.pid, signal.SIGKILL)
                self.emperor.wait()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and self.alive():
            time.sleep(0.05)
        left = self.alive()
        for process in left:
            with contextlib.suppress(psutil.Error):
                process.kill()
        return len(left)

    def alive(self) -> list[psutil.Process]:
        live = []
        for process in self.ours():
            with contextlib.suppress(psutil.Error):
                if process.status() != psutil.STATUS_ZOMBIE:
                    live.append(process)
        return live


def until(condition: object, timeout: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.02)
    return None


def serving_all(site: Site) -> bool:
    return all(answer(port) is not None for port in site.ports.values())


def kill_storm(work: Path, figures: Figures, seconds: float, vassals: int = 10) -> None:
    """SIGKILL random masters and workers; then every vassal must serve again, exactly once."""
    site = Site(work / "kill-storm")
    site.start("--max-spawns", "100000")  # the storm tests recovery; throttling is tested apart
    try:
        for index in range(vassals):
            site.add(f"v{index}")
        assert until(lambda: serving_all(site), 60) is not None, "vassals never served"
        kills, slowest, end = 0, 0.0, time.monotonic() + seconds
        while time.monotonic() < end:
            targets = [p for p in site.ours() if p.pid != site.emperor.pid]  # type: ignore[union-attr]
            if targets:
                with contextlib.suppress(psutil.Error):
                    random.choice(targets).kill()
                    kills += 1
            time.sleep(random.uniform(0.05, 0.3))
        recovery = until(lambda: serving_all(site), 30)
        slowest = recovery if recovery is not None else float("inf")
        time.sleep(0.5)
        masters = site.masters()
        duplicates = sum(len(pids) - 1 for pids in masters.values() if len(pids) > 1)
        recovered = sum(answer(port) is not None for port in site.ports.values())
        figures.record("kill storm", vassals=vassals, **{
            "kills sent": kills, "recovered": f"{recovered}/{vassals}",
            "max recovery (s)": f"{slowest:.2f}", "zombies": site.zombies(),
            "duplicates": duplicates,
        })  # fmt: skip
    finally:
        figures.record("kill storm", orphans=site.stop())


def edit_storm(work: Path, figures: Figures, writes: int, vassals: int = 5) -> None:
    """Rewrites, renames into place, truncate-then-write, deletes and re-creates, quickly."""
    site = Site(work / "edit-storm")
    site.start()
    try:
        names = [f"e{index}" for index in range(vassals)]
        for name in names:
            site.add(name, "0")
        until(lambda: serving_all(site), 60)
        half_started, storming = [0], threading.Event()

        def watch_answers() -> None:
            """A config served without its last (checksum) line was started half-written."""
            while not storming.is_set():
                half_started[0] += sum(answer(p) == b"none" for p in site.ports.values())
                time.sleep(0.005)

        watcher = threading.Thread(target=watch_answers)
        watcher.start()
        for number in range(writes):
            name = random.choice(names)
            path = site.vassals / f"{name}.ini"
            text = config(site.code, site.ports[name], str(number))
            how = random.choice(["rewrite", "rename", "truncate", "delete"])
            if how == "rename":
                write(path, text)
            elif how == "truncate":
                with path.open("w") as stream:
                    stream.write(text[: len(text) // 2])
                    stream.flush()
                    stream.write(text[len(text) // 2 :])
            elif how == "delete":
                path.unlink(missing_ok=True)
                time.sleep(0.001)
                path.write_text(text)
            else:
                path.write_text(text)
            time.sleep(0.002)

        def settled() -> bool:
            for name in names:
                expected = checksum_of((site.vassals / f"{name}.ini").read_text())
                if answer(site.ports[name]) != (expected or "").encode():
                    return False
            return set(site.masters()) == set(names)

        until(settled, 60)
        storming.set()
        watcher.join()
        output = (site.root / "emperor.out").read_text()
        crashed = output.count("▸ crashed")
        # uWSGI reads a config by path after the Emperor did; changed in between, it is
        # restarted before it serves (or it exited, the file gone): counted, not a fault.
        reread = output.count("changed while uWSGI read it") + output.count("exited while its")
        mismatches = sum(
            answer(site.ports[n])
            != (checksum_of((site.vassals / f"{n}.ini").read_text()) or "").encode()
            for n in names
        )
        masters = site.masters()
        figures.record("edit storm", vassals=vassals, writes=writes, mismatches=mismatches,
                       **{"half-written started": half_started[0] + crashed,
                          "restarted to re-read": reread},
                       duplicates=sum(len(p) - 1 for p in masters.values() if len(p) > 1),
                       zombies=site.zombies())  # fmt: skip
    finally:
        figures.record("edit storm", orphans=site.stop())


def crash_loop(work: Path, figures: Figures, vassals: int = 3) -> None:
    """One vassal that exits at once, forever: throttled, cheap, and harmless to the others."""
    site = Site(work / "crash-loop")
    site.start("--max-spawns", "5", "--window", "30", "--backoff", "0.05")
    try:
        for index in range(vassals):
            site.add(f"ok{index}")
        site.add("crasher", module="crasher")
        healthy = {k: v for k, v in site.ports.items() if k != "crasher"}
        until(lambda: all(answer(p) for p in healthy.values()), 60)
        emperor = psutil.Process(site.emperor.pid)  # type: ignore[union-attr]
        until(lambda: "crasher ▸ throttled" in (site.root / "emperor.out").read_text(), 30)
        before = sum(emperor.cpu_times()[:2])
        time.sleep(3)
        cpu = 100 * (sum(emperor.cpu_times()[:2]) - before) / 3
        spawns = (site.root / "emperor.out").read_text().count("crasher ▸ spawned")
        figures.record("crash loop", vassals=vassals + 1, **{
            "recovered": f"{sum(bool(answer(p)) for p in healthy.values())}/{vassals}",
            "emperor CPU (%)": f"{cpu:.1f}", "spawns": f"{spawns}, then throttled",
            "zombies": site.zombies(),
        })  # fmt: skip
    finally:
        figures.record("crash loop", orphans=site.stop())


def emperor_death(work: Path, figures: Figures, vassals: int = 5) -> None:
    """SIGKILL the Emperor: its vassals go; a new one on the same folder serves them all again."""
    site = Site(work / "emperor-death")
    site.start()
    try:
        for index in range(vassals):
            site.add(f"d{index}")
        until(lambda: serving_all(site), 60)
        assert site.emperor is not None
        site.emperor.kill()
        site.emperor.wait()
        gone = until(lambda: not site.alive(), 10)
        site.start()
        again = until(lambda: serving_all(site), 60)
        masters = site.masters()
        figures.record("emperor SIGKILL + restart", vassals=vassals, **{
            "max recovery (s)": f"{gone:.2f} gone, {again:.2f} back" if gone and again else "no",
            "recovered": f"{sum(answer(p) is not None for p in site.ports.values())}/{vassals}",
            "duplicates": sum(len(p) - 1 for p in masters.values() if len(p) > 1),
            "zombies": site.zombies(),
        })  # fmt: skip
    finally:
        figures.record("emperor SIGKILL + restart", orphans=site.stop())


@dataclass
class Traffic:
    """Requests to every vassal, one after another, from a thread, until stopped."""

    site: Site
    answers: int = 0
    failed: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            for port in list(self.site.ports.values()):
                if answer(port) is None:
                    self.failed += 1
                else:
                    self.answers += 1

    @contextlib.contextmanager
    def flowing(self) -> Iterator[Traffic]:
        thread = threading.Thread(target=self.run)
        thread.start()
        try:
            yield self
        finally:
            self.stop.set()
            thread.join(30)


def status(site: Site) -> list[dict[str, object]]:
    """The Emperor's own answer over its control socket, or [] if it gives none."""
    from toolkit.emperor import control

    with contextlib.suppress(Exception):
        return [v.as_json() for v in control.status(site.root / "run", timeout=5)]
    return []


def full_logs_disk(work: Path, figures: Figures, seconds: float, vassals: int = 3) -> None:
    """The logs folder on a small tmpfs, filled while vassals serve and print: log lines are
    lost (and counted), no vassal and not the Emperor. Needs root to mount."""
    disk = work / "full-disk" / "logs"
    disk.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)])
    if mounted.returncode != 0:
        figures.record("full logs disk", skipped="cannot mount a tmpfs (needs root)")
        return
    site = Site(work / "full-disk")
    site.start(logs=disk)
    try:
        for index in range(vassals):
            site.add(f"f{index}")
        until(lambda: serving_all(site), 60)
        with Traffic(site).flowing() as traffic:
            with (disk / "filler").open("wb", buffering=0) as filler, contextlib.suppress(OSError):
                while True:
                    filler.write(b"\0" * 65536)
            time.sleep(seconds)  # every request is a line uWSGI prints, for the Emperor to log
            problems = [v for v in status(site) if v["log_problem"]]
        (disk / "filler").unlink()
        figures.record("full logs disk", vassals=vassals, **{
            "answers": traffic.answers, "failed": traffic.failed,
            "emperor alive": site.emperor is not None and site.emperor.poll() is None,
            "status names the log problem": f"{len(problems)}/{vassals}",
            "serving after": f"{sum(answer(p) is not None for p in site.ports.values())}/{vassals}",
        })  # fmt: skip
    finally:
        figures.record("full logs disk", orphans=site.stop())
        subprocess.run(["umount", "-l", str(disk)])


def fd_limit(work: Path, figures: Figures, vassals: int = 12, files: int = 48) -> None:
    """The Emperor with few file descriptors and more vassals than fit: those that start
    keep serving, the others are throttled saying why, the control socket answers."""
    site = Site(work / "fd-limit")
    site.start(files=files)
    try:
        for index in range(vassals):
            site.add(f"n{index}")

        def settled() -> bool:
            states = [v["state"] for v in status(site)]
            return len(states) == vassals and set(states) <= {"ready", "loyal", "throttled"}

        until(settled, 90)
        listed = status(site)
        throttled = [v for v in listed if v["state"] == "throttled"]
        with Traffic(site).flowing() as traffic:
            time.sleep(5)
        started = time.monotonic()
        status(site)
        figures.record(f"open-file limit ({files})", vassals=vassals, **{
            "serving": len(listed) - len(throttled),
            "throttled, saying why": sum("open-file limit" in str(v["last_exit"])
                                         for v in throttled),
            "answers": traffic.answers,
            "failed (throttled ones)": traffic.failed,
            "status answered in (ms)": f"{(time.monotonic() - started) * 1000:.0f}",
            "emperor alive": site.emperor is not None and site.emperor.poll() is None,
        })  # fmt: skip
    finally:
        figures.record(f"open-file limit ({files})", orphans=site.stop())


def long_pause(work: Path, figures: Figures, seconds: float, vassals: int = 3) -> None:
    """SIGSTOP the Emperor and every vassal (a frozen machine) for longer than the heartbeat
    tolerance, then SIGCONT: no vassal is killed for the heartbeats it could not send."""
    site = Site(work / "pause")
    tolerance = max(1.0, seconds / 3)
    site.start("--heartbeat-tolerance", f"{tolerance:g}")
    try:
        for index in range(vassals):
            site.add(f"p{index}", extra="heartbeat = 1\n")
        until(lambda: serving_all(site), 60)
        until(lambda: {v["state"] for v in status(site)} == {"loyal"}, 30)
        before = {v["name"]: v["pid"] for v in status(site)}
        assert site.emperor is not None
        groups = [site.emperor.pid, *(int(str(pid)) for pid in before.values())]
        for group in groups:
            os.killpg(group, signal.SIGSTOP)
        time.sleep(seconds)
        for group in reversed(groups):
            os.killpg(group, signal.SIGCONT)
        back = until(lambda: serving_all(site), 30)
        time.sleep(tolerance * 2)
        after = {v["name"]: v["pid"] for v in status(site)}
        text = (site.root / "emperor.out").read_text()
        figures.record(f"SIGSTOP {seconds:g} s (tolerance {tolerance:g} s)", vassals=vassals, **{
            "serving again (s)": f"{back:.2f}" if back is not None else "no",
            "killed for missed heartbeats": text.count("killing it to respawn it"),
            "same masters": f"{sum(before[n] == after.get(n) for n in before)}/{vassals}",
        })  # fmt: skip
    finally:
        figures.record(f"SIGSTOP {seconds:g} s (tolerance {tolerance:g} s)", orphans=site.stop())


def daemonizing_app(work: Path, figures: Figures, rounds: int = 5) -> None:
    """An app that leaves a daemon holding a port at each start: removed, reloaded or
    brought down, the daemon ends with its vassal; with cgroups and by the process tree."""
    for mode, extra in (("cgroup", ()), ("process tree", ("--no-cgroups",))):
        site = Site(work / f"daemonizing-{mode.replace(' ', '-')}")
        site.start(*extra)
        left = 0
        try:
            for index in range(rounds):
                daemon = free_port()
                site.add("d", version=str(index), module="daemonizing",
                         extra=f"env = DAEMON_PORT={daemon}\n")  # fmt: skip
                until(lambda d=daemon: answer_or_listening(d), 30)  # type: ignore[misc]
                (site.vassals / "d.ini").unlink()
                until(lambda d=daemon: not answer_or_listening(d), 10)  # type: ignore[misc]
                left += answer_or_listening(daemon)
            kind = "cgroup v2" if "cgroup v2" in (site.root / "emperor.out").read_text() else mode
            figures.record(f"daemonizing app ({kind})", **{
                "daemons started": rounds, "left after their vassal": left,
            })  # fmt: skip
        finally:
            figures.record(f"daemonizing app ({kind})", orphans=site.stop())


HANGING = """import os, time


def application(environ, start_response):
    while os.path.exists(os.environ["HANG_FILE"]):
        time.sleep(0.05)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def hung_app(work: Path, figures: Figures, seconds: float) -> None:
    """A router in front of three app vassals (toolkit's ground-up recipe, the app copied
    twice on ports of their own), 50 keep-alive clients, one app hanging for `seconds`: its
    health check (every 1 s, out after 2 failures) takes it out of the rotation. Requests
    the router sent it before that wait for it: the bound is interval x failures x its
    share of the request rate, at most one per client (each waits on one)."""
    from bench.release import CLIENTS, Load

    root = work / "hung-app"
    port, *apps = free_ports(4)
    subprocess.run([str(BIN / "toolkit"), "new", str(root)], check=True, capture_output=True)
    (root / "code" / "app.py").write_text(HANGING)
    markers = [work / f"hang-{n}" for n in range(3)]
    with (root / "deploy.ini").open("a") as stream:
        stream.write(f"http_port = {port}\napp_port = {apps[0]}\nenv = HANG_FILE={markers[0]}\n")
        stream.write("health_every = 1\nhealth_wait = 0.5\nhealth_out_after = 2\n")
        stream.write("health_restart_after = 0\nprocesses = 2\ncheaper = 0\n")
    label = "one of 3 apps hangs, 50 clients"
    try:
        subprocess.run([str(BIN / "toolkit"), "up", str(root), "--detach"], check=True,
                       capture_output=True)  # fmt: skip
        rendered = (root / "vassals" / "uwsgi.ini").read_text().splitlines()
        base = "\n".join(line for line in rendered if not line.startswith("# toolkit-sha256"))
        for number in (1, 2):
            copy = base.replace(f":{apps[0]}\n", f":{apps[number]}\n").replace(
                str(markers[0]), str(markers[number])
            )
            (root / "vassals" / f"app{number}.ini").write_text(copy.replace(
                "# Rendered by toolkit", "# Copied from uwsgi.ini") + "\n")  # fmt: skip
        until(lambda: len({v["name"] for v in deployment_status(root)}) == 4, 60)
        until(lambda: {v["state"] for v in deployment_status(root)} <= {"ready", "loyal"}, 60)
        load = Load(port)
        with load.running():
            time.sleep(2)
            before = load.ok
            time.sleep(2)
            rate = (load.ok - before) / 2
            markers[0].touch()
            hung_at = time.monotonic()
            out = until(lambda: any(v["state"] == "unhealthy" for v in deployment_status(root)), 30)
            time.sleep(max(0.0, seconds - (time.monotonic() - hung_at)))
            markers[0].unlink()
            back = until(
                lambda: all(v["state"] != "unhealthy" for v in deployment_status(root)), 30
            )
        bound = min(CLIENTS, 1.0 * 2 * rate / 3)
        figures.record(label, **{
            "answers": load.ok, "requests per second": f"{rate:.0f}",
            "out of rotation after (s)": f"{out:.1f}" if out is not None else "never",
            "failed": len(load.failures), "bound (1 s x 2 x its share)": f"{bound:.0f}",
            "back after release (s)": f"{back:.1f}" if back is not None else "never",
        })  # fmt: skip
    finally:
        for marker in markers:
            marker.unlink(missing_ok=True)
        subprocess.run([str(BIN / "toolkit"), "down", str(root)], capture_output=True)
        figures.record(label, orphans=left_behind(root))


def left_behind(root: Path) -> int:
    """Processes that name `root` in their command line and still run 3 s after `down`."""

    def alive() -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter(["cmdline", "status"]):
            if process.info["status"] != psutil.STATUS_ZOMBIE and str(root) in " ".join(
                process.info["cmdline"] or []
            ):
                found.append(process)
        return found

    until(lambda: not alive(), 3)
    left = alive()
    for process in left:
        with contextlib.suppress(psutil.Error):
            process.kill()
    return len(left)


def deployment_status(root: Path) -> list[dict[str, object]]:
    done = subprocess.run([str(BIN / "toolkit"), "status", str(root), "--json"],
                          capture_output=True, text=True)  # fmt: skip
    try:
        found = json.loads(done.stdout)
    except ValueError:
        return []
    return found if isinstance(found, list) else []


def answer_or_listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


HOSTILE = [
    "\n",
    "\r",
    "\x00",
    "\u2028",
    "\u2029",
    "\x85",
    ";",
    "#",
    "=",
    "[uwsgi]",
    "%(x)",
    "$(HOME)",
    "é",
    "\ufeff",
    "x" * 5000,
    "exec-as-root = id",
    "../" * 20,
    "-",
    "'",
    '"',
]


def hostile(rng: random.Random) -> str:
    return "".join(rng.choice([*HOSTILE, "a", "1", " ", "app"]) for _ in range(rng.randint(0, 6)))


def option_keys(text: str) -> set[str]:
    """Every option and section uWSGI would read from the text: comments are not options."""
    ini = uwsgi_ini.parse(text)
    return {f"[{o.section}] {o.key}" for o in ini.options} | {f"[{n}]" for n in ini.sections}


def fuzz(work: Path, figures: Figures, cases: int) -> None:
    """Hostile deploy.ini, --set values, uWSGI INI files, inventories and templates, through
    the real CLI.

    Counts tracebacks (any exception but a clean exit), exit codes other than 0, 1 and 2,
    rendered files changed by a failed render, and rendered lines no template wrote.
    """
    from typer.testing import CliRunner

    from toolkit.cli import app

    runner, rng = CliRunner(), random.Random(1234)
    root = work / "fuzz"
    assert runner.invoke(app, ["new", str(root)]).exit_code == 0
    assert runner.invoke(app, ["render", str(root), "--no-check"]).exit_code == 0
    rendered = {p: p.read_text() for p in (root / "vassals").iterdir()}
    allowed = {key for text in rendered.values() for key in option_keys(text)}
    tracebacks = odd_exits = clobbered = injected = 0
    for case in range(cases):
        kind = case % 5
        (root / "inventory.ini").unlink(missing_ok=True)
        shutil.rmtree(root / "templates", ignore_errors=True)
        if kind == 0:
            (root / "deploy.ini").write_bytes(
                b"recipe = ground-up\n"
                + rng.randbytes(rng.randint(0, 200))
                + hostile(rng).encode("utf-8", "surrogatepass")
            )
            arguments = ["render", str(root), "--no-check"]
        elif kind == 1:
            (root / "deploy.ini").write_text("recipe = ground-up\n")
            name = rng.choice(["app_module", "pythonpath", "http_port", "static_dir", "nope"])
            arguments = ["render", str(root), "--no-check", "--set", f"{name}={hostile(rng)}"]
        elif kind == 2:
            ini = root / "fuzz.ini"
            ini.write_bytes(rng.randbytes(rng.randint(0, 100)) + hostile(rng).encode())
            arguments = ["check", str(ini)]
        elif kind == 3:
            (root / "deploy.ini").write_text("recipe = ground-up\n")
            (root / "inventory.ini").write_text(
                f"[groups]\n[[g]]\nhosts = h{hostile(rng)}\nthreads = {hostile(rng)}\n"
                f"[hosts]\n[[h]]\n{hostile(rng)} = {hostile(rng)}\n"
            )
            arguments = ["render", str(root), "--no-check", "--host", "h"]
        else:
            (root / "deploy.ini").write_text("recipe = ground-up\n")
            (root / "templates").mkdir()
            template = rng.choice(
                [
                    "{{ ",
                    "{% if %}",
                    "{{ nope }}",
                    "{{ 1/0 }}",
                    "{% extends 'x' %}",
                    "{{ http_port + 'a' }}",
                    "[uwsgi]\n{{ app_module }}",
                ]
            )
            (root / "templates" / "http.ini.j2").write_text(template + hostile(rng))
            arguments = ["render", str(root), "--no-check"]
        result = runner.invoke(app, arguments)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            tracebacks += 1
        odd_exits += result.exit_code not in {0, 1, 2}
        for path, text in rendered.items():
            now = path.read_text()
            if now != text and result.exit_code != 0:
                clobbered += 1
            # A template may write any option; values must not.
            injected += kind != 4 and bool(option_keys(now) - allowed)
            path.write_text(text)
    figures.record("fuzz: deploy.ini, --set, INI, inventory, templates", **{
        "fuzz cases": cases, "tracebacks": tracebacks, "odd exit codes": odd_exits,
        "files clobbered": clobbered, "options injected": injected,
    })  # fmt: skip


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="toolkit-chaos-") as folder:
        yield Path(folder)


LEGEND = """\
How to read it:

- *kill storm*: SIGKILLs to random masters and workers for 60 s (throttling off, so
  the figure is recovery); *max recovery* is from the storm's end until every vassal
  answers; *duplicates* counts second masters for one config.
- *edit storm*: every config is sealed (`# toolkit-sha256:` of the rest) and ends with
  `env = CHECKSUM=...`, which the app echoes. *half-written started* counts answers
  without that line during the storm plus crashed starts; *mismatches* counts vassals
  not serving their file's final content afterwards. *restarted to re-read* counts the
  times uWSGI read a file after it changed under the Emperor (uWSGI reads by path,
  after the Emperor did): each was killed before it served and started again on the
  finished file. Not a fault, the guard at work.
- *crash loop*: a vassal whose app raises at import, with 3 healthy ones beside it.
- *emperor SIGKILL + restart*: *gone* is until no vassal process remains, *back* is a
  new Emperor on the same folder (stale socket and pid file) serving all again.
- *fuzz*: hostile `deploy.ini`, `--set`, uWSGI INI, inventory and template inputs
  through the real CLI; *options injected* counts rendered options (as uWSGI reads
  them) that no template wrote.
- *full logs disk*: the logs folder on a 512 kB tmpfs, filled while every vassal serves
  (uWSGI prints a line per request, which the Emperor logs): *answers* and *failed* are
  requests during that time; the lost lines are counted in each vassal's log once the
  disk has room again.
- *open-file limit*: the Emperor started with that many file descriptors and more
  vassals than fit; those that fail say which limit to raise; *failed* are requests to
  the throttled ones.
- *SIGSTOP*: the Emperor and every vassal stopped together (a frozen machine) for longer
  than the heartbeat tolerance, then continued.
- *daemonizing app*: an app that double-forks a daemon holding a port at each start;
  *left* counts daemons still there after their vassal was removed.
- *one of 3 apps hangs*: three app vassals behind one router (subscriptions), 50
  keep-alive clients; one app's view starts hanging. Its health check (every 1 s, out
  after 2 failures) takes it out of the rotation; *failed* are requests the router had
  sent it before, each client waiting on one (the bound: at most one per client, or
  interval x failures x its share of the rate); *back after release* is from the view
  answering again until the app is back in the rotation.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the versions `make test` runs")
    options = parser.parse_args()
    figures = Figures()
    with workspace() as work:
        kill_storm(work, figures, seconds=10 if options.short else 60)
        edit_storm(work, figures, writes=200 if options.short else 1000)
        crash_loop(work, figures)
        emperor_death(work, figures)
        fuzz(work, figures, cases=300 if options.short else 3000)
        full_logs_disk(work, figures, seconds=5 if options.short else 20)
        fd_limit(work, figures)
        long_pause(work, figures, seconds=5 if options.short else 30)
        daemonizing_app(work, figures)
        hung_app(work, figures, seconds=5 if options.short else 15)
    report = figures.table()
    print(report)
    if not options.short:
        (Path(__file__).resolve().parent.parent / "docs" / "CHAOS.md").write_text(
            "# Chaos: toolkit's Emperor under faults\n\n"
            f"`make chaos`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{os.cpu_count()} cores.\n\n{report}\n\n{LEGEND}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
