"""`toolkit top`, the metrics and the status page on a real deployment under real load: what
they show agrees with what the clients sent, in a real terminal and a real browser."""

from __future__ import annotations

import dataclasses
import fcntl
import http.client
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import termios
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pyte
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import TOOLKIT, free_ports, get, port_closed, run_toolkit, wait_for

# Requests counted by the views may differ from those sent by what else asks the app: none
# here (no health checks), but the bound stays loose enough to say "agrees".
WITHIN = 0.03


@dataclass
class Watched:
    root: Path
    port: int
    app_port: int
    status_port: int

    def metrics(self) -> str:
        answer = get(self.status_port, "/metrics")
        assert answer.status == 200
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        return answer.body.decode()


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[Watched]:
    root = tmp_path / "site"
    port, app_port, subscriptions, status_port = free_ports(4)
    assert run_toolkit("new", root).returncode == 0
    with (root / "deploy.ini").open("a") as stream:
        stream.write(
            f"http_port = {port}\napp_port = {app_port}\nsubscription_port = {subscriptions}\n"
            f"status_port = {status_port}\nhealth_every = 0\nprocesses = 4\ncheaper = 0\n"
        )
    started = run_toolkit("up", root, "--detach")
    assert started.returncode == 0, started.stderr
    try:
        yield Watched(root, port, app_port, status_port)
    finally:
        run_toolkit("down", root)
        wait_for(port_closed(port), what=f"the router's port {port} closed after down")


@dataclass
class Clients:
    """Keep-alive clients asking for / until stopped; `sent` counts the answers."""

    port: int
    clients: int = 6
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def client(self, limit: int | None) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        done = 0
        while not self.stop.is_set() and (limit is None or done < limit):
            try:
                connection.request("GET", "/")
                answer = connection.getresponse()
                answer.read()
                with self.lock:
                    self.sent += answer.status == 200
                done += 1
            except (OSError, http.client.HTTPException) as error:
                self.failures.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.close()

    def start(self, each: int | None = None) -> Clients:
        self.threads = [
            threading.Thread(target=self.client, args=(each,)) for _ in range(self.clients)
        ]
        for thread in self.threads:
            thread.start()
        return self

    def join(self) -> None:
        """Wait for clients started with a number of requests each to have sent them; stop
        the others."""
        for thread in self.threads:
            thread.join(60)

    def finish(self) -> None:
        self.stop.set()
        self.join()


def metric_sum(text: str, name: str, **labels: str) -> float:
    """The sum of a family's samples with these labels, as Prometheus' own parser reads it."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def agrees(counted: float, sent: int) -> bool:
    return abs(counted - sent) <= max(2, sent * WITHIN)


def test_the_metrics_count_what_the_clients_sent(watched: Watched) -> None:
    def app_requests() -> float:
        return metric_sum(watched.metrics(), "uwsgi_worker_requests_total", vassal="uwsgi")

    def routed() -> float:
        return metric_sum(watched.metrics(), "toolkit_router_node_requests_total", vassal="http")

    before, before_routed = app_requests(), routed()
    clients = Clients(watched.port).start(each=100)
    clients.join()
    assert not clients.failures and clients.sent == 600
    wait_for(
        lambda: agrees(app_requests() - before, clients.sent),
        what=f"the metrics' uwsgi requests up by {clients.sent}, as sent",
    )
    wait_for(
        lambda: agrees(routed() - before_routed, clients.sent),
        what=f"the router node's requests up by {clients.sent}, as sent",
    )
    text = watched.metrics()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["uwsgi_worker_requests"].type == "counter"
    assert families["toolkit_vassal_up"].type == "gauge"
    for family in families.values():
        for sample in family.samples:
            if family.name != "toolkit_scrape_duration_seconds":
                assert {"vassal", "release"} <= set(sample.labels), sample
    assert metric_sum(text, "toolkit_vassal_up") == 3  # http, uwsgi, and the page's own
    assert metric_sum(text, "uwsgi_workers", vassal="uwsgi") == 4


def test_top_and_the_page_show_the_requests_sent(watched: Watched) -> None:
    def top_json() -> dict[str, dict[str, object]]:
        shown = run_toolkit("top", watched.root, "--json")
        assert shown.returncode == 0, shown.stderr
        return {v["name"]: v for v in json.loads(shown.stdout)}

    def requests_in_top() -> int:
        workers = top_json()["uwsgi"]["stats"]["workers"]  # type: ignore[index]
        return sum(w["requests"] for w in workers)  # type: ignore[attr-defined]

    def requests_on_page() -> int:
        page = get(watched.status_port, "/").body.decode()
        row = re.search(
            r"<tr><td>uwsgi</td><td[^>]*>\w+</td>(?:<td>[^<]*</td>){3}<td>(\d+)</td>", page
        )
        assert row is not None, page[:500]
        return int(row.group(1))

    before_top, before_page = requests_in_top(), requests_on_page()
    clients = Clients(watched.port).start(each=50)
    clients.join()
    assert not clients.failures and clients.sent == 300
    wait_for(
        lambda: agrees(requests_in_top() - before_top, clients.sent),
        what=f"top --json's uwsgi requests up by {clients.sent}",
    )
    wait_for(
        lambda: agrees(requests_on_page() - before_page, clients.sent),
        what=f"the status page's uwsgi requests up by {clients.sent}",
    )
    frame = run_toolkit("top", watched.root, "--interval", "0.2")
    assert frame.returncode == 0, frame.stderr
    line = next(s for s in frame.stdout.splitlines() if s.startswith("uwsgi "))
    assert agrees(int(line.split()[5]) - before_top, clients.sent), line
    assert re.search(r"^  worker 4 +idle", frame.stdout, re.MULTILINE), frame.stdout
    assert re.search(r"^  → 127\.0\.0\.1:\d+ +node +toolkit", frame.stdout, re.MULTILINE)


def test_nothing_listens_on_tcp_for_the_stats(watched: Watched) -> None:
    status = json.loads(run_toolkit("status", watched.root, "--json").stdout)
    pids = {
        p.pid
        for v in status
        for p in [psutil.Process(v["pid"]), *psutil.Process(v["pid"]).children(recursive=True)]
    }
    listening = {
        c.laddr.port
        for c in psutil.net_connections("tcp")
        if c.pid in pids and c.status == psutil.CONN_LISTEN
    }
    assert listening == {watched.port, watched.app_port, watched.status_port}
    assert sorted(p.name for p in (watched.root / "run").glob("*.stats")) == [
        "http.stats",
        "status.stats",
        "uwsgi.stats",
    ]


def test_a_status_page_beyond_loopback_is_a_warning_in_check(deployment: Path) -> None:
    port = free_ports(1)[0]
    rendered = run_toolkit(
        "render", deployment, "--set", f"status_port={port}", "--set", "status_address=0.0.0.0"
    )
    assert rendered.returncode == 0, rendered.stderr
    report = run_toolkit("check", deployment).stdout
    assert f"status.ini:9: W605 warning: http-socket = 0.0.0.0:{port} is reachable" in report


class Terminal:
    """`toolkit top` in a pseudo-terminal it controls (setsid --ctty: a resize signals it as
    a real one does), drawn on a terminal emulator's screen."""

    def __init__(self, root: Path, columns: int, lines: int) -> None:
        self.master, slave = os.openpty()
        self.resize(columns, lines)
        self.screen = pyte.Screen(columns, lines)
        self.stream = pyte.ByteStream(self.screen)
        self.lock = threading.Lock()
        self.process = subprocess.Popen(
            [shutil.which("setsid") or "setsid", "--ctty", str(TOOLKIT), "top", str(root)],
            stdin=slave, stdout=slave, stderr=slave,
            env={**os.environ, "TERM": "xterm-256color"},
        )  # fmt: skip
        os.close(slave)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.stream.feed(data)

    def resize(self, columns: int, lines: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))

    def shown(self) -> list[str]:
        with self.lock:
            return list(self.screen.display)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        os.close(self.master)


def test_top_in_a_real_terminal_while_load_runs(watched: Watched) -> None:
    terminal = Terminal(watched.root, 120, 40)
    clients = Clients(watched.port, clients=4).start()
    try:

        def rate_shown(name: str) -> float:
            """The REQ/S column of the vassal's line; 0 while it shows none."""
            line = next((s for s in terminal.shown() if s.startswith(name + " ")), "")
            cells = line.split()
            return float(cells[6]) if len(cells) > 6 and cells[6] != "-" else 0.0

        wait_for(
            lambda: rate_shown("uwsgi") > 0,
            what="top's uwsgi line with requests per second above 0, while the clients run",
            timeout=20,
        )
        assert any(line.startswith("  worker 4 ") for line in terminal.shown())
        terminal.type(b"r")
        wait_for(
            lambda: any("sort: req/s" in line for line in terminal.shown()),
            what="top sorted by requests per second after the `r` key",
        )
        terminal.type(b"/")
        terminal.type(b"http\r")
        wait_for(
            lambda: (
                any("filter: http" in line for line in terminal.shown())
                and not any(line.startswith("uwsgi ") for line in terminal.shown())
            ),
            what="top showing only the http vassal after `/http`",
        )
        terminal.type(b"/\r")  # an empty filter: every vassal again
        wait_for(
            lambda: any("filter: - " in line for line in terminal.shown()),
            what="top showing every vassal again after an empty filter",
        )
        with terminal.lock:
            terminal.screen.resize(12, 70)
        terminal.resize(70, 12)
        wait_for(
            lambda: (
                terminal.shown()[0].startswith("toolkit top")
                and terminal.shown()[11].startswith("… ")
            ),
            what="top redrawn for 12 lines of 70 columns, saying what it left out",
        )
        assert all(len(line.rstrip()) <= 70 for line in terminal.shown())
        terminal.type(b"q")
        wait_for(lambda: terminal.process.poll() is not None, what="top gone after `q`")
        assert terminal.process.returncode == 0
    finally:
        clients.finish()
        terminal.close()
    assert not clients.failures


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (`make test` installs it as root)")
def test_the_status_page_in_a_real_browser(watched: Watched, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    clients = Clients(watched.port).start(each=20)
    clients.join()
    browser = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    url = f"http://127.0.0.1:{watched.status_port}/"
    dom = subprocess.run(
        [*browser, "--dump-dom", url], capture_output=True, text=True, timeout=120
    ).stdout
    text = re.sub(r"<[^>]+>", " ", dom)
    assert re.search(r"\buwsgi\s+loyal\b", text), text[:800]
    assert "Last worker deaths" in text and "listen queue" in text
    assert '<meta http-equiv="refresh" content="2">' in dom and "<script" not in dom
    shot = tmp_path / "status.png"
    subprocess.run(
        [*browser, "--window-size=1000,900", f"--screenshot={shot}", url],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_label_values_are_data_in_the_metrics() -> None:
    """A vassal's name and release are the user's: quotes, backslashes and newlines in them
    stay inside their label, as Prometheus' own parser reads it."""
    from toolkit.emperor.machine import State
    from toolkit.emperor.status import VassalStatus
    from toolkit.metrics import exposition
    from toolkit.observe import Sample, VassalView
    from toolkit.stats import InstanceStats, Worker

    odd = 'a"b\\c\nd'
    status = VassalStatus(
        name=odd, release=odd, state=State.LOYAL, pid=1, restarts=2, uptime=1.0,
        last_exit=None, config="x.ini", digest="", worker_deaths=3,
        worker_deaths_by_cause={"harakiri": 2, "oom": 1},
    )  # fmt: skip
    worker = Worker(id=1, pid=2, status="busy", requests=7, exceptions=0, avg_rt=1500,
                    respawns=1, rss=4096)  # fmt: skip
    found = InstanceStats(pid=1, listen_queue=3, listen_queue_errors=0, workers=(worker,), nodes=())
    text = exposition(Sample(0.0, (VassalView(status, found),)), 0.01)
    assert metric_sum(text, "uwsgi_worker_requests_total", vassal=odd, release=odd) == 7
    assert metric_sum(text, "toolkit_vassal_worker_deaths_total", cause="harakiri") == 2
    assert metric_sum(text, "uwsgi_worker_busy", vassal=odd) == 1
    assert metric_sum(text, "uwsgi_worker_average_response_time_seconds") == 0.0015


def test_a_killed_worker_is_a_death_by_cause_on_the_page_and_in_the_metrics(
    watched: Watched,
) -> None:
    shown = json.loads(run_toolkit("top", watched.root, "--json").stdout)
    app = next(v for v in shown if v["name"] == "uwsgi")
    victim = next(w["pid"] for w in app["stats"]["workers"] if w["pid"])
    os.kill(victim, signal.SIGKILL)
    wait_for(
        lambda: (
            metric_sum(
                watched.metrics(),
                "toolkit_vassal_worker_deaths_total",
                vassal="uwsgi",
                cause="signal",
            )
            == 1
        ),
        what="one death by a signal for uwsgi in the metrics",
    )
    page = get(watched.status_port, "/").body.decode()
    assert re.search(rf"<td>uwsgi</td><td>worker \d+ \(pid {victim}\) killed by SIGKILL", page)


def test_a_stats_socket_deeper_than_a_unix_path_allows_is_still_read(tmp_path: Path) -> None:
    """sun_path holds 107 bytes: a deployment in a deep folder has its stats socket past that,
    and is read through its folder's descriptor."""
    import socket as sockets

    from toolkit.stats import read_all

    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    path = deep / "uwsgi.stats"
    assert len(str(path)) > 107
    server = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    cwd = os.getcwd()
    os.chdir(deep)  # bind by a short relative name, as uWSGI does from its chdir
    try:
        server.bind("uwsgi.stats")
    finally:
        os.chdir(cwd)
    server.listen(1)

    def answer() -> None:
        connection, _ = server.accept()
        connection.sendall(b'{"pid": 7, "workers": []}')
        connection.close()

    thread = threading.Thread(target=answer)
    thread.start()
    try:
        assert read_all({"deep": path}) == {"deep": b'{"pid": 7, "workers": []}'}
    finally:
        thread.join(10)
        server.close()


def test_top_reads_the_vassals_off_its_screen_less_often(watched: Watched) -> None:
    """Each second `top` reads the stats of the vassals it shows; the others keep their
    last read until it is `every` seconds old, and their rates from it."""
    from toolkit.observe import Watch

    watch = Watch.of_emperor(watched.root / "run", every=600)
    first = watch.take()
    keys = {view.status.name: view.key for view in first.vassals}
    app, router = keys["uwsgi"], keys["http"]
    clients = Clients(watched.port, clients=2).start(each=30)
    clients.join()
    assert not clients.failures and clients.sent == 60
    second = watch.take({router})
    app_then, router_then = first.find(app), first.find(router)
    kept, again = second.find(app), second.find(router)
    assert app_then and router_then and kept and again
    assert kept == dataclasses.replace(app_then, status=kept.status)  # as read the first time
    assert again.read > router_then.read

    def app_read_anew() -> bool:
        view = watch.take({app}).find(app)
        assert view is not None and view.stats is not None and kept.stats is not None
        return agrees(view.stats.requests - kept.stats.requests, clients.sent)

    wait_for(app_read_anew, what=f"the app's requests up by {clients.sent} once read again")


def test_top_knows_which_vassals_it_shows() -> None:
    from toolkit.emperor.machine import State
    from toolkit.emperor.status import VassalStatus
    from toolkit.observe import Sample, VassalView
    from toolkit.stats import InstanceStats, Worker
    from toolkit.top import View, frame, on_screen

    def vassal(name: str) -> VassalView:
        status = VassalStatus(
            name=name, release=None, state=State.READY, pid=1, restarts=0, uptime=1.0,
            last_exit=None, config=f"{name}.ini", digest="",
        )  # fmt: skip
        workers = tuple(Worker(n, 10 + n, "idle", 0, 0, 0, 0) for n in (1, 2, 3, 4))
        return VassalView(status, InstanceStats(1, 0, 0, workers, ()))

    sample = Sample(0.0, tuple(vassal(name) for name in ("a", "b", "c", "d")))
    # 4 header lines, then 5 lines a vassal: 12 lines show a whole and a part of another.
    assert on_screen(sample, View(), 12) == {"a.ini", "b.ini"}
    assert on_screen(sample, View(filter="c"), 12) == {"c.ini"}
    assert on_screen(sample, View(), 100) == {"a.ini", "b.ini", "c.ini", "d.ini"}
    shown = frame(sample, View(), 80, 12, "t")
    assert len(shown) == 12 and shown[-1].startswith("… 13 more line(s)")
