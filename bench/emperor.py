"""toolkit's Emperor against uWSGI's own Emperor, measured the same way in the same run.

Run with `make bench` (`--quick` for fewer repetitions). Prints a markdown table, and
bench.release's table of releases under load, and writes both, with the machine they ran
on, to docs/BENCHMARKS.md; `--json FILE` for machines.
Every process it starts runs in a process group of its own and is ended at exit.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from toolkit import uwsgi_config
from toolkit.check import check, context_for
from toolkit.recipes import find_recipe
from toolkit.render import render
from toolkit.seal import seal
from toolkit.settings import RawValue, resolve

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
UWSGI = (BIN / "uwsgi").resolve()
TOOLKIT = BIN / "toolkit"
APP = """import os

def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [os.environ.get("VALUE", "none").encode()]
"""
GROUPS: list[int] = []


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free now: all held open while picking, since a port picked
    and closed can be handed out again (200 picks one by one collided)."""
    with contextlib.ExitStack() as stack:
        probes = [stack.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]


def vassal_ini(code: Path, port: int, value: str, extra: str = "") -> str:
    """Sealed, as `toolkit render` writes configs (uWSGI reads the seal line as a comment)."""
    return seal(
        f"[uwsgi]\n{extra}strict = true\nmaster = true\n"
        f"http-socket = 127.0.0.1:{port}\nprocesses = 1\npythonpath = {code}\n"
        f"module = app\nneed-app = true\nenv = VALUE={value}\npidfile = %d%n.pid\n"
    )


def write(path: Path, text: str) -> None:
    """Atomically, as a deployment tool would."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def answer(port: int) -> bytes | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        return response.read() if response.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def until(condition: Callable[[], object], timeout: float = 60.0, what: str = "") -> float:
    """Seconds until `condition()` holds, polling every 2 ms."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"{what or condition} not within {timeout} s")
        time.sleep(0.002)
    return time.perf_counter() - start


def refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def alive(pids: list[int]) -> bool:
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return True
    return False


def start(args: list[str], log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as stream:
        process = subprocess.Popen(
            args,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
    GROUPS.append(process.pid)
    return process


def end_group(pgid: int, grace: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGINT)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and group_alive(pgid):
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def end_everything() -> None:
    for pgid in GROUPS:
        end_group(pgid, grace=2.0)
    for process in psutil.process_iter(["name", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if process.info["name"] == "uwsgi" and any(
                BENCH_MARK in part for part in process.info["cmdline"] or []
            ):
                process.kill()


BENCH_MARK = "toolkit-bench-"


@dataclass
class Contender:
    name: str
    folder: Path
    args: list[str]
    process: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = start(self.args, self.folder.parent / f"{self.folder.name}.log")
        time.sleep(0.3)

    def stop(self) -> None:
        if self.process is not None:
            end_group(self.process.pid)
            self.process.wait()
            self.process = None

    def own_processes(self) -> list[psutil.Process]:
        assert self.process is not None
        root = psutil.Process(self.process.pid)
        if self.name.startswith("uWSGI"):
            # The Emperor's master and the Emperor itself; not the vassals below it.
            return [root, *(c for c in root.children() if "--ini" not in " ".join(c.cmdline()))]
        return [root]


def contenders(work: Path) -> list[Contender]:
    def folder(name: str) -> Path:
        return work / name / "vassals"

    return [
        Contender(
            "toolkit",
            folder("toolkit"),
            [
                str(TOOLKIT),
                "emperor",
                str(folder("toolkit") / "*.ini"),
                "--quiet",
                "--run-dir",
                str(work / "toolkit" / "run"),
                "--logs-dir",
                str(work / "toolkit" / "logs"),
            ],
        ),
        Contender(
            "uWSGI (3 s)",
            folder("uwsgi3"),
            [str(UWSGI), "--master", "--emperor", str(folder("uwsgi3") / "*.ini")],
        ),
        Contender(
            "uWSGI (1 s)",
            folder("uwsgi1"),
            [
                str(UWSGI),
                "--master",
                "--emperor",
                str(folder("uwsgi1") / "*.ini"),
                "--emperor-freq",
                "1",
            ],
        ),
    ]


@dataclass
class Results:
    samples: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)

    misses: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, metric: str, contender: str, value: float) -> None:
        self.samples.setdefault(metric, {}).setdefault(contender, []).append(value)

    def miss(self, metric: str, contender: str) -> None:
        counts = self.misses.setdefault(metric, {})
        counts[contender] = counts.get(contender, 0) + 1


def measure_floor(work: Path, code: Path, results: Results, repeats: int) -> None:
    """Bare uwsgi: exec to first 200, and SIGINT to every process gone."""
    for index in range(repeats):
        port = free_port()
        ini = work / f"{BENCH_MARK}floor{index}.ini"
        ini.write_text(vassal_ini(code, port, "floor"))
        start_time = time.perf_counter()
        process = start([str(UWSGI), "--ini", str(ini)], work / "floor.log")
        until(lambda port=port: answer(port))
        results.add("start -> first 200 (floor)", "bare uwsgi", time.perf_counter() - start_time)
        pids = [process.pid, *(c.pid for c in psutil.Process(process.pid).children())]
        start_time = time.perf_counter()
        os.kill(process.pid, signal.SIGINT)
        until(lambda pids=pids: not alive(pids))
        process.wait()
        results.add("SIGINT -> stopped (floor)", "bare uwsgi", time.perf_counter() - start_time)
        start_time = time.perf_counter()
        process = start([str(UWSGI), "--ini", str(ini)], work / "floor.log")
        until(lambda port=port: answer(port))
        ini.write_text(vassal_ini(code, port, "reloaded"))
        start_time = time.perf_counter()
        os.kill(process.pid, signal.SIGHUP)
        until(lambda port=port: answer(port) == b"reloaded")
        results.add("reload -> serving new (floor)", "bare uwsgi", time.perf_counter() - start_time)
        end_group(process.pid)
        process.wait()


def measure_parallel_floor(work: Path, code: Path, results: Results, count: int) -> None:
    """`count` bare uwsgi started at once, to all serving: what a supervisor can approach."""
    ports = free_ports(count)
    processes = []
    start_time = time.perf_counter()
    for index, port in enumerate(ports):
        ini = work / f"{BENCH_MARK}parallel{index}.ini"
        ini.write_text(vassal_ini(code, port, "floor"))
        processes.append(start([str(UWSGI), "--ini", str(ini)], work / "parallel.log"))
    for port in ports:
        until(lambda port=port: answer(port), timeout=300)
    results.add(
        f"{count} vassals dropped in -> all serving",
        "bare uwsgi",
        time.perf_counter() - start_time,
    )
    for process in processes:  # a floor for starting: how they stop is not measured
        os.killpg(process.pid, signal.SIGKILL)
    for process in processes:
        process.wait()


def master_pid(ini: Path) -> int:
    return int(ini.with_suffix(".pid").read_text().strip())


def measure_latencies(
    work: Path, code: Path, competitors: list[Contender], results: Results, repeats: int
) -> None:
    for index in range(repeats):
        for contender in competitors:
            try:
                one_round(code, contender, index, results)
            except TimeoutError as error:
                log = contender.folder.parent / f"{contender.folder.name}.log"
                tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
                raise SystemExit(f"{contender.name}, round {index}: {error}\n{tail}") from None


def one_round(code: Path, contender: Contender, index: int, results: Results) -> None:
    port = free_port()
    ini = contender.folder / f"{BENCH_MARK}v{index}.ini"
    start_time = time.perf_counter()
    write(ini, vassal_ini(code, port, "first"))
    until(lambda port=port: answer(port))
    results.add("add -> serving", contender.name, time.perf_counter() - start_time)
    until(lambda ini=ini: ini.with_suffix(".pid").exists() and master_pid(ini))
    answer(port)  # a served request makes uWSGI's Emperor call the vassal loyal

    pid = master_pid(ini)
    start_time = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    until(lambda port=port: answer(port) is None, timeout=5)
    until(lambda port=port: answer(port))
    results.add("kill -> serving", contender.name, time.perf_counter() - start_time)

    failures = [0]
    stop = threading.Event()

    def client(port: int = port) -> None:
        while not stop.is_set():
            if answer(port) is None:
                failures[0] += 1
            time.sleep(0.001)

    looping = threading.Thread(target=client)
    looping.start()
    start_time = time.perf_counter()
    write(ini, vassal_ini(code, port, "second"))
    try:
        until(lambda port=port: answer(port) == b"second", timeout=10)
        results.add("modify -> serving new", contender.name, time.perf_counter() - start_time)
    except TimeoutError:
        # uWSGI's Emperor compares whole-second mtimes: an edit within the second of the
        # previous write is never seen. Count it, then make the change visible to it.
        results.miss("modify -> serving new", contender.name)
        time.sleep(1.1)
        write(ini, vassal_ini(code, port, "second"))
        until(lambda port=port: answer(port) == b"second")
    finally:
        stop.set()
        looping.join()
    results.add("requests failed during reload", contender.name, failures[0])

    until(lambda ini=ini: ini.with_suffix(".pid").exists())
    pid = master_pid(ini)
    pids = [pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))]
    start_time = time.perf_counter()
    ini.unlink()
    until(lambda port=port, pids=pids: refused(port) and not alive(pids))
    results.add("delete -> gone", contender.name, time.perf_counter() - start_time)


def facts(process: psutil.Process, what: str) -> float:
    """RSS in bytes, CPU seconds, or voluntary context switches (each one a wake-up after
    sleeping); a process that has left counts as 0."""
    try:
        if what == "rss":
            return float(process.memory_info().rss)
        if what == "wakeups":
            return float(process.num_ctx_switches().voluntary)
        times = process.cpu_times()
        return float(times.user + times.system)
    except psutil.NoSuchProcess:
        return 0.0


def measure_scale(
    work: Path, code: Path, contender: Contender, count: int, results: Results, idle: float
) -> None:
    ports = free_ports(count)
    contender.run()
    start_time = time.perf_counter()
    for index, port in enumerate(ports):
        write(contender.folder / f"{BENCH_MARK}s{index}.ini", vassal_ini(code, port, "s"))
    for port in ports:
        until(lambda port=port: answer(port), timeout=300)
    results.add(
        f"{count} vassals dropped in -> all serving",
        contender.name,
        time.perf_counter() - start_time,
    )
    own = contender.own_processes()
    results.add(
        f"supervisor RSS with {count} vassals (MB)",
        contender.name,
        sum(facts(p, "rss") for p in own) / 2**20,
    )
    if idle:
        before = sum(facts(p, "cpu") for p in own)
        woken = sum(facts(p, "wakeups") for p in own)
        time.sleep(idle)
        used = sum(facts(p, "cpu") for p in own) - before
        results.add(
            f"supervisor idle CPU with {count} vassals (%)", contender.name, 100 * used / idle
        )
        results.add(
            f"supervisor wake-ups per second at rest, {count} vassals",
            contender.name,
            (sum(facts(p, "wakeups") for p in own) - woken) / idle,
        )
    assert contender.process is not None
    everyone = [c.pid for c in psutil.Process(contender.process.pid).children(recursive=True)]
    start_time = time.perf_counter()
    contender.process.send_signal(signal.SIGINT)
    with contextlib.suppress(TimeoutError):
        until(lambda: not alive(everyone), timeout=120)
        results.add(
            f"stop everything, {count} vassals", contender.name, time.perf_counter() - start_time
        )
    contender.stop()
    for path in contender.folder.glob("*"):
        path.unlink()


HEALTH_EVERY = 5.0


def measure_health_at_rest(
    work: Path, code: Path, contender: Contender, count: int, results: Results, idle: float
) -> None:
    """`count` vassals, each with a uwsgi socket its health check asks every HEALTH_EVERY
    seconds: the Emperor's memory, and how often it wakes at rest (the probes' own rate,
    count / HEALTH_EVERY, is the floor: one wake-up per probe at least)."""
    ports = free_ports(2 * count)
    contender.run()
    for index in range(count):
        http, uwsgi = ports[2 * index], ports[2 * index + 1]
        extra = (
            f"# toolkit-health: path=/ every={HEALTH_EVERY:g} timeout=2\n"
            f"socket = 127.0.0.1:{uwsgi}\n"
        )
        write(contender.folder / f"{BENCH_MARK}h{index}.ini", vassal_ini(code, http, "h", extra))
    for index in range(count):
        until(lambda port=ports[2 * index]: answer(port), timeout=300)
    own = contender.own_processes()
    time.sleep(2 * HEALTH_EVERY)  # every vassal probed: the probes' steady state
    woken = sum(facts(p, "wakeups") for p in own)
    time.sleep(idle)
    label = f"{count} vassals probed every {HEALTH_EVERY:g} s"
    results.add(f"supervisor RSS, {label} (MB)", contender.name, facts(own[0], "rss") / 2**20)
    results.add(
        f"supervisor wake-ups per second, {label} (probes: {count / HEALTH_EVERY:g}/s)",
        contender.name,
        (sum(facts(p, "wakeups") for p in own) - woken) / idle,
    )
    contender.stop()
    for path in contender.folder.glob("*"):
        path.unlink()


def measure_up(work: Path, results: Results, repeats: int) -> None:
    demo = work / "up-demo"
    subprocess.run([str(TOOLKIT), "new", str(demo)], check=True, capture_output=True)
    for _ in range(repeats):
        http_port, app_port = free_ports(2)
        overrides = ["--set", f"http_port={http_port}", "--set", f"app_port={app_port}"]
        start_time = time.perf_counter()
        subprocess.run(
            [str(TOOLKIT), "up", str(demo), "--detach", *overrides], check=True, capture_output=True
        )
        until(lambda port=http_port: answer(port))
        results.add("up --detach -> first 200", "toolkit", time.perf_counter() - start_time)
        subprocess.run([str(TOOLKIT), "down", "-C", str(demo)], check=True, capture_output=True)


def measure_check(work: Path, results: Results, count: int = 1000) -> None:
    recipe = find_recipe("ground-up")
    folder = work / "check" / "vassals"
    folder.mkdir(parents=True)
    context = context_for(UWSGI, here=True, cwd=work / "check")
    start_time = time.perf_counter()
    for index in range(count // 2):
        values = resolve(
            recipe,
            {
                "http_port": RawValue(str(10000 + index), "bench"),
                "app_port": RawValue(str(20000 + index), "bench"),
            },
        ).values
        for name, text in render(recipe, values).items():
            (folder / f"{index}-{name}").write_text(text)
    rendered = time.perf_counter() - start_time
    start_time = time.perf_counter()
    configs = [uwsgi_config.load(p, context.machine) for p in sorted(folder.iterdir())]
    problems = check(configs, context)
    checked = time.perf_counter() - start_time
    results.add(f"render {count} configs", "toolkit", rendered)
    results.add(f"check {count} rendered configs (one deployment)", "toolkit", checked)
    results.notes["check"] = f"{len(problems)} problems (logs/static folders are absent on purpose)"
    corpus = sorted(Path("tests/realworld").glob("*.ini"))
    start_time = time.perf_counter()
    loose = context_for(UWSGI, here=False, cwd=work / "check")
    found = 0
    for index in range(count):  # the corpus cycled: every file read and checked anew
        config = uwsgi_config.load(corpus[index % len(corpus)], loose.machine)
        found += len(check([config], loose))
    results.add(
        f"check {count} real-world configs (one by one)",
        "toolkit",
        time.perf_counter() - start_time,
    )


def measure_cli(work: Path, results: Results, repeats: int) -> None:
    """Wall time of whole `toolkit` commands, as a user waits for them."""
    site = work / "cli-site"
    subprocess.run([str(TOOLKIT), "new", str(site)], check=True, capture_output=True)
    subprocess.run([str(TOOLKIT), "render", str(site)], check=True, capture_output=True)
    commands = {
        "CLI: toolkit --version": [str(TOOLKIT), "--version"],
        "CLI: toolkit status (no Emperor)": [str(TOOLKIT), "status", str(site)],
        "CLI: toolkit render (already rendered)": [str(TOOLKIT), "render", str(site)],
    }
    for name, command in commands.items():
        for _ in range(repeats):
            start_time = time.perf_counter()
            subprocess.run(command, capture_output=True)
            results.add(name, "toolkit", time.perf_counter() - start_time)
    python = [sys.executable, "-c", "import typer"]
    for _ in range(repeats):
        start_time = time.perf_counter()
        subprocess.run(python, capture_output=True)
        results.add(
            "CLI: python -c 'import typer' (the floor)", "toolkit", time.perf_counter() - start_time
        )


def measure_inventory(work: Path, results: Results, hosts: int = 1000) -> None:
    """render --all-hosts of a 1,000-host inventory; in /dev/shm when it exists, so the figure
    is toolkit's and not the disk's (2,000 files and 1,000 folders created)."""
    shm = Path("/dev/shm")
    base = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else work
    try:
        site = base / "inventory-site"
        subprocess.run([str(TOOLKIT), "new", str(site)], check=True, capture_output=True)
        lines = ["[groups]", "[[web]]", "hosts = " + ", ".join(f"h{i}" for i in range(hosts))]
        lines.append("[hosts]")
        for i in range(hosts):
            lines += [f"[[h{i}]]", f"http_port = {10000 + i}"]
        (site / "inventory.ini").write_text("\n".join(lines) + "\n")
        for label, extra in (("", []), (" --no-check", ["--no-check"])):
            shutil.rmtree(site / "hosts", ignore_errors=True)
            start_time = time.perf_counter()
            subprocess.run(
                [str(TOOLKIT), "render", str(site), "--all-hosts", *extra],
                check=True,
                capture_output=True,
            )
            name = f"render --all-hosts{label}, {hosts} hosts"
            results.add(name, "toolkit", time.perf_counter() - start_time)
    finally:
        if base != work:
            shutil.rmtree(base, ignore_errors=True)


def table(results: Results) -> str:
    names = ["bare uwsgi", "toolkit", "uWSGI (3 s)", "uWSGI (1 s)"]
    lines = [
        "| metric | " + " | ".join(names) + " | toolkit / uWSGI (3 s) |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for metric, by_contender in results.samples.items():
        cells = []
        for name in names:
            values = by_contender.get(name)
            cell = format_cell(metric, values) if values else ""
            missed = results.misses.get(metric, {}).get(name)
            cells.append(f"{cell}, missed {missed}" if missed else cell)
        ratio = ""
        ours, theirs = by_contender.get("toolkit"), by_contender.get("uWSGI (3 s)")
        if ours and theirs and statistics.median(theirs) > 0:
            ratio = f"{statistics.median(ours) / statistics.median(theirs):.2f}"
        lines.append(f"| {metric} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def format_cell(metric: str, values: list[float]) -> str:
    median, worst = statistics.median(values), max(values)
    if "(MB)" in metric or "(%)" in metric or "failed" in metric or "per second" in metric:
        return f"{median:.1f} (max {worst:.1f})" if len(values) > 1 else f"{median:.1f}"
    unit = (lambda s: f"{s * 1000:.0f} ms") if worst < 1 else (lambda s: f"{s:.2f} s")
    return f"{unit(median)} (max {unit(worst)})" if len(values) > 1 else unit(median)


def machine() -> str:
    version = subprocess.run([str(UWSGI), "--version"], capture_output=True, text=True).stdout
    return (
        f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"uWSGI {version.strip()}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
    )


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    work = Path(tempfile.mkdtemp(prefix=BENCH_MARK))
    try:
        yield work
    finally:
        end_everything()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions, 20 and 40 vassals")
    parser.add_argument("--json", type=Path, help="also write the raw samples here")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "BENCHMARKS.md")
    options = parser.parse_args()
    repeats = 3 if options.quick else 10
    scales = (20, 40) if options.quick else (100, 200)
    results = Results()
    with workspace() as work:
        code = work / "code"
        code.mkdir()
        (code / "app.py").write_text(APP)
        print("floor (bare uwsgi)...", flush=True)
        measure_floor(work, code, results, repeats)
        competitors = contenders(work)
        for contender in competitors:
            contender.run()
        try:
            print(f"latencies, {repeats} rounds, alternating contenders...", flush=True)
            measure_latencies(work, code, competitors, results, repeats)
        finally:
            for contender in competitors:
                contender.stop()
        # One start of 200 processes on 2 cores varies by 10-20 %: the floor and the
        # Emperors alternate over a few rounds; the 60 s at rest is measured once.
        at_rest = 10 if options.quick else 60
        for count in scales:
            for scale_round in range(1 if options.quick else 3):
                print(f"scale: {count} bare uwsgi at once...", flush=True)
                measure_parallel_floor(work, code, results, count)
                idle = at_rest if scale_round == 0 and count == scales[0] else 0
                for contender in competitors[:2]:
                    print(f"scale: {count} vassals under {contender.name}...", flush=True)
                    measure_scale(work, code, contender, count, results, idle=idle)
        print(f"health probes on {scales[0]} vassals at rest...", flush=True)
        measure_health_at_rest(work, code, competitors[0], scales[0], results, at_rest)
        from bench import observe

        print(f"top and metrics on {observe.VASSALS} vassals x {observe.WORKERS}...", flush=True)
        observe.measure_watching(work, code, results, at_rest)
        print("a vassal's stats server against uWSGI's metrics subsystem...", flush=True)
        observe.measure_vassal_cost(work, code, results, 10 if options.quick else 30)
        observe.measure_page_in_the_emperor(results)
        print("up --detach...", flush=True)
        measure_up(work, results, max(3, repeats // 2))
        print("render + check 1,000 configs...", flush=True)
        measure_check(work, results)
        print("CLI start, render --all-hosts...", flush=True)
        measure_cli(work, results, repeats)
        measure_inventory(work, results)
    from bench import release

    rounds = 1 if options.quick else 3
    print(f"releases under {release.CLIENTS} clients, {rounds} rounds...", flush=True)
    releases = release.table(release.measure(rounds), rounds)
    from bench import fleet

    print(f"fleet releases of {fleet.SIZES} hosts over SSH...", flush=True)
    releases += "\n" + fleet.table(fleet.measure())
    report = (
        "# Benchmarks: toolkit's Emperor and uWSGI's Emperor\n\n"
        f"Measured by `make bench` on: {machine()}.\n\n"
        "Median (max) over the repetitions; latency metrics alternate contenders each round.\n"
        "uWSGI's Emperor runs with its defaults (`--emperor-freq 3`) and with\n"
        "`--emperor-freq 1`.\n\n" + table(results) + "\n"
    )
    for key, note in results.notes.items():
        report += f"\n{key}: {note}\n"
    report += "\n" + releases
    print()
    print(report)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(report)
    if options.json:
        options.json.write_text(json.dumps(results.samples, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
