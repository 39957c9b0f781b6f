"""Every chapter of the tutorial, run with real uwsgi, does what its text claims."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import (
    GZIP,
    UWSGI,
    Processes,
    free_ports,
    get,
    run_toolkit,
    serving,
    try_get,
    wait_for,
)
from toolkit import tutorial


@dataclass
class Site:
    root: Path
    port: int
    app_port: int

    def status(self) -> dict[str, dict[str, object]]:
        result = run_toolkit("status", "-C", self.root, "--json")
        assert result.returncode == 0, result.stderr
        return {v["name"]: v for v in json.loads(result.stdout)}

    def log(self, name: str) -> str:
        path = self.root / "logs" / name
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def run_chapter(tmp_path: Path) -> Iterator[Callable[..., Site]]:
    """Runs a chapter from an empty working folder, which must stay empty: every file a
    chapter makes belongs inside its deployment folder."""
    started: list[Site] = []
    cwd = tmp_path / "cwd"
    cwd.mkdir()

    def run(number: int, *sets: str) -> Site:
        port, app_port = free_ports(2)
        root = tmp_path / f"chapter{number:02d}"
        ports = sets or (f"http_port={port}", f"app_port={app_port}")
        options = [part for pair in ports for part in ("--set", pair)]
        result = run_toolkit("tutorial", "run", str(number), root, *options, "--detach", cwd=cwd)
        site = Site(root, port, app_port)
        started.append(site)
        assert result.returncode == 0, result.stderr + result.stdout
        return site

    yield run
    for site in started:
        run_toolkit("down", "-C", site.root)
    assert not list(cwd.iterdir()), "a chapter wrote outside its deployment folder"


def test_list_shows_all_fourteen_chapters() -> None:
    result = run_toolkit("tutorial", "list")
    assert result.returncode == 0
    assert len(result.stdout.strip().splitlines()) == 14
    assert [c.number for c in tutorial.chapters()] == list(range(1, 15))
    assert "Our app" in run_toolkit("tutorial", "show", "1").stdout


def test_03_the_page_is_served(run_chapter: Callable[..., Site]) -> None:
    site = run_chapter(3)
    assert b"Hello from uWSGI" in get(site.port).body


def test_03_python_threads_are_on_without_enable_threads(
    tmp_path: Path, processes: Processes
) -> None:
    """The guide's 2.0.15 said "Python threads support is disabled"; 2.0.31 does not."""
    (tmp_path / "app.py").write_text("def application(e, s):\n    return [b'']\n")
    process = processes.start(
        UWSGI, "--http-socket", "127.0.0.1:0", "--module", "app", cwd=tmp_path
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line.decode(errors="replace"))
        if b"WSGI app 0" in line or b"unable to load app" in line:
            break
    output = "".join(lines)
    assert "python threads support enabled" in output
    assert "threads support is disabled" not in output


def test_04_css_is_served_via_offload(run_chapter: Callable[..., Site]) -> None:
    site = run_chapter(4)
    css = get(site.port, "/base.css")
    assert css.body == (site.root / "static" / "base.css").read_bytes()
    wait_for(lambda: "GET /base.css => generated" in site.log("uwsgi.log"))
    line = next(x for x in site.log("uwsgi.log").splitlines() if "GET /base.css" in x)
    assert "via offload()" in line


def test_05_a_typo_stops_uwsgi_under_strict(tmp_path: Path) -> None:
    deployment = tutorial.build(5, tmp_path / "site", [])
    assert run_toolkit("render", deployment.root).returncode == 0
    ini = deployment.root / "vassals" / "uwsgi.ini"
    ini.write_text(ini.read_text() + "proceses = 4\n")
    result = subprocess.run(
        [str(UWSGI), "--ini", str(ini)],
        capture_output=True,
        text=True,
        timeout=20,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode != 0
    assert "unknown config directive: proceses" in result.stdout + result.stderr
    report = run_toolkit("check", ini).stdout
    assert "did you mean 'processes'?" in report
    assert f"{ini}:1: U002 error: its content does not match its toolkit-sha256 seal" in report


def test_06_several_workers_answer(run_chapter: Callable[..., Site]) -> None:
    site = run_chapter(6)
    seen: set[int] = set()

    def worker_pid(_: int) -> int:
        response = try_get(site.port, "/api/status")
        return json.loads(response.body)["pid"] if response else 0

    with ThreadPoolExecutor(8) as pool:
        wait_for(lambda: seen.update(pool.map(worker_pid, range(32))) or len(seen - {0}) >= 2)


def test_07_html_json_gzipped_and_precompressed_css(run_chapter: Callable[..., Site]) -> None:
    site = run_chapter(7)
    result = run_toolkit("compress", site.root / "static")
    assert "gzipped" in result.stdout
    for path in ("/", "/api/status"):
        packed = get(site.port, path, GZIP)
        assert packed.headers["content-encoding"] == "gzip"
        assert packed.headers["transfer-encoding"] == "chunked"
        assert "uwsgi-encoding" not in packed.headers
    assert gzip.decompress(get(site.port, "/", GZIP).body).startswith(b"<!doctype html>")
    css = get(site.port, "/base.css", GZIP)
    assert css.headers["content-encoding"] == "gzip"
    assert css.body == (site.root / "static" / "base.css.gz").read_bytes()
    assert gzip.decompress(css.body) == (site.root / "static" / "base.css").read_bytes()


def test_08_router_forwards_to_the_app_over_its_uwsgi_socket(
    run_chapter: Callable[..., Site],
) -> None:
    site = run_chapter(8)
    assert sorted(site.status()) == ["http", "uwsgi"]
    app = (site.root / "vassals" / "uwsgi.ini").read_text()
    router = (site.root / "vassals" / "http.ini").read_text()
    assert f"socket = 127.0.0.1:{site.app_port}" in app
    assert f"http-to = 127.0.0.1:{site.app_port}" in router
    assert b"Hello from uWSGI" in get(site.port).body
    assert try_get(site.app_port) is None, "the app socket speaks uwsgi, not HTTP"


def test_09_a_killed_vassal_comes_back_and_a_touched_one_reloads(
    run_chapter: Callable[..., Site],
) -> None:
    site = run_chapter(9)
    pid = site.status()["uwsgi"]["pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: site.status()["uwsgi"]["restarts"] == 1)
    wait_for(serving(site.port))
    os.utime(site.root / "vassals" / "uwsgi.ini")
    wait_for(lambda: "reloading: config touched" in site.log("emperor.log"))


def test_10_request_lines_land_in_the_request_log(run_chapter: Callable[..., Site]) -> None:
    site = run_chapter(10)
    get(site.port, "/api/status")
    wait_for(lambda: "GET /api/status" in site.log("app-requests.log"))
    assert site.log("http-requests.log") == "", "the HTTP router logs no requests"


def test_11_two_services_run_from_one_glob(run_chapter: Callable[..., Site]) -> None:
    site_port, blog_port = free_ports(2)
    site = run_chapter(11, f"site_port={site_port}", f"blog_port={blog_port}")
    assert sorted(site.status()) == ["blog", "site"]
    assert b"Hello from the site service" in get(site_port).body
    assert b"Hello from the blog service" in get(blog_port).body


def test_12_a_cached_value_is_served_from_the_cache(run_chapter: Callable[..., Site]) -> None:
    site = run_chapter(12)
    first, second = get(site.port, "/cached"), get(site.port, "/cached")
    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit"
    assert second.body == first.body


def test_13_a_spooled_job_runs(run_chapter: Callable[..., Site]) -> None:
    site = run_chapter(13)
    assert get(site.port, "/job?report").body == b"queued report\n"
    wait_for(lambda: (site.root / "logs" / "jobs" / "report").exists())
    assert (site.root / "spool").is_dir()


def test_14_the_daemon_is_started_and_restarted(run_chapter: Callable[..., Site]) -> None:
    site = run_chapter(14)
    pid_file = site.root / "logs" / "daemon.pid"
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip())
    first = int(pid_file.read_text())
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: pid_file.read_text().strip() not in {"", str(first)})
