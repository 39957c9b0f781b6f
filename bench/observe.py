"""What seeing every vassal costs: `toolkit top` live on 100 vassals of 4 workers, one metrics
scrape of them, the Emperor's memory meanwhile; and what a vassal pays for its stats server
against uWSGI's metrics subsystem. Part of `make bench` (bench.emperor adds the rows)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

from bench.emperor import (
    BENCH_MARK,
    TOOLKIT,
    UWSGI,
    Contender,
    Results,
    answer,
    end_group,
    facts,
    free_ports,
    start,
    until,
    write,
)
from toolkit.render import own_path
from toolkit.seal import seal

VASSALS = 100
WORKERS = 4
SCRAPES = 20


def worker_vassal(code: Path, run_dir: Path, port: int, extra: str) -> str:
    return seal(
        f"[uwsgi]\nstrict = true\nmaster = true\nhttp-socket = 127.0.0.1:{port}\n"
        f"processes = {WORKERS}\npythonpath = {code}\nmodule = app\nneed-app = true\n"
        f"{extra.format(run=run_dir)}"
    )


STATS = "stats = {run}/%n.stats\nstats-minified = true\nstats-no-cores = true\n"


def status_vassal(root: Path, port: int) -> str:
    toolkit = own_path(Path(__file__).resolve().parent.parent)
    return seal(
        f"[uwsgi]\nstrict = true\nmaster = true\nchdir = {root}\n"
        f"http-socket = 127.0.0.1:{port}\nprocesses = 1\nthreads = 2\n"
        f"pythonpath = {toolkit}\nmodule = toolkit.dashboard\nneed-app = true\n"
    )


def measure_watching(work: Path, code: Path, results: Results, window: float) -> None:
    """VASSALS vassals of WORKERS workers under toolkit's Emperor; top watching them in a
    pseudo-terminal for `window` seconds; the metrics scraped SCRAPES times."""
    root = work / "watched"
    run_dir = root / "run"
    emperor = Contender(
        "toolkit",
        root / "vassals",
        [str(TOOLKIT), "emperor", str(root / "vassals" / "*.ini"), "--quiet",
         "--run-dir", str(run_dir), "--logs-dir", str(root / "logs")],
    )  # fmt: skip
    emperor.run()
    try:
        ports = free_ports(VASSALS + 1)
        for index, port in enumerate(ports[:VASSALS]):
            text = worker_vassal(code, run_dir, port, STATS)
            write(emperor.folder / f"{BENCH_MARK}w{index}.ini", text)
        write(emperor.folder / "status.ini", status_vassal(root, ports[-1]))
        for port in ports:
            until(lambda port=port: answer(port), timeout=600, what=f"port {port} serving")
        label = f"{VASSALS} vassals x {WORKERS} workers"
        own = emperor.own_processes()
        scrape = []
        for _ in range(SCRAPES):
            started = time.perf_counter()
            body = answer_path(ports[-1], "/metrics")
            scrape.append(time.perf_counter() - started)
            workers = body.count(b"uwsgi_worker_requests_total{") if body else 0
            assert workers == VASSALS * WORKERS, f"{workers} workers in the scrape"
        for took in scrape:
            results.add(f"one metrics scrape of {label} (GET /metrics)", "toolkit", took)
        top_cpu, emperor_cpu = watch_with_top(root, own[0], window)
        results.add(f"toolkit top on {label}, 1 s refresh: CPU of one core (%)", "toolkit", top_cpu)
        results.add(
            f"Emperor CPU answering top's status every second, {label} (%)", "toolkit", emperor_cpu
        )
        results.add(
            f"supervisor RSS, {label} watched by top and scraped (MB)",
            "toolkit",
            facts(own[0], "rss") / 2**20,
        )
        status = next(
            p
            for p in psutil.Process(own[0].pid).children()
            if "status.ini" in " ".join(p.cmdline())
        )
        page_rss = sum(facts(p, "rss") for p in [status, *status.children()]) / 2**20
        results.add("the status page's vassal, master + 1 worker: RSS (MB)", "toolkit", page_rss)
    finally:
        emperor.stop()


def answer_path(port: int, path: str) -> bytes | None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.read() if response.status == 200 else None
    finally:
        connection.close()


def watch_with_top(root: Path, emperor: psutil.Process, window: float) -> tuple[float, float]:
    """`toolkit top` in a pseudo-terminal of 200x60, its output drained; its CPU and the
    Emperor's over `window` seconds, after a few seconds to settle."""
    master, slave = os.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 200, 0, 0))
    process = subprocess.Popen(
        [str(TOOLKIT), "top", str(root)],
        stdin=slave, stdout=slave, stderr=slave,
        env={**os.environ, "TERM": "xterm-256color"}, start_new_session=True,
    )  # fmt: skip
    os.close(slave)

    def drain() -> None:
        while True:
            try:
                if not os.read(master, 65536):
                    return
            except OSError:
                return

    threading.Thread(target=drain, daemon=True).start()
    try:
        top = psutil.Process(process.pid)
        time.sleep(5)
        top_before, emperor_before = facts(top, "cpu"), facts(emperor, "cpu")
        time.sleep(window)
        top_used = facts(top, "cpu") - top_before
        emperor_used = facts(emperor, "cpu") - emperor_before
    finally:
        end_group(process.pid, grace=2.0)
        process.wait()
        os.close(master)
    return 100 * top_used / window, 100 * emperor_used / window


def measure_vassal_cost(work: Path, code: Path, results: Results, idle: float) -> None:
    """One vassal of WORKERS workers, alone: with neither, with the stats server, with
    uWSGI's metrics subsystem (`enable-metrics`): memory of all its processes (PSS: shared
    pages split between them) and its master's CPU at rest."""
    variants = {
        "neither": "",
        "stats server": STATS,
        "metrics subsystem": "enable-metrics = true\n",
    }
    run_dir = work / "cost-run"
    run_dir.mkdir(exist_ok=True)
    for name, extra in variants.items():
        port = free_ports(1)[0]
        ini = work / f"{BENCH_MARK}cost-{name.replace(' ', '-')}.ini"
        ini.write_text(worker_vassal(code, run_dir, port, extra))
        process = start([str(UWSGI), "--ini", str(ini)], work / "cost.log")
        try:
            until(lambda port=port: answer(port), timeout=60, what=f"{name} vassal serving")
            time.sleep(2)
            master = psutil.Process(process.pid)
            everyone = [master, *master.children(recursive=True)]
            before = facts(master, "cpu")
            time.sleep(idle)
            cpu = 100 * (facts(master, "cpu") - before) / idle
            pss = sum(p.memory_full_info().pss for p in everyone) / 2**20
            results.add(
                f"a vassal of {WORKERS} workers at rest, {name}: PSS (MB)", "bare uwsgi", pss
            )
            results.add(
                f"a vassal of {WORKERS} workers at rest, {name}: master CPU (%)", "bare uwsgi", cpu
            )
        finally:
            end_group(process.pid)
            process.wait()


def measure_page_in_the_emperor(results: Results) -> None:
    """What the Emperor would hold had it served the page itself: its own imports, then
    with the page's (metrics, status page, stats, observe) added; resident memory of each."""
    for label, modules in (
        ("the Emperor's imports", "toolkit.emperor.main"),
        ("the Emperor's imports + the page's", "toolkit.emperor.main, toolkit.dashboard"),
    ):
        code = f"import {modules}; print(open('/proc/self/statm').read().split()[1])"
        pages = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        size = int(pages) * os.sysconf("SC_PAGE_SIZE") / 2**20
        results.add(f"{label}: RSS of a fresh Python (MB)", "toolkit", size)
