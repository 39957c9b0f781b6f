"""Every chapter of the tutorial, run with real uwsgi, does what its text claims."""

from __future__ import annotations

import ast
import contextlib
import grp
import gzip
import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support import (
    GZIP,
    TOOLKIT,
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
        # 3: one is not serving (a killed vassal, until it is back); the JSON says which.
        assert result.returncode in (0, 3), result.stderr
        return {v["name"]: v for v in json.loads(result.stdout)}

    def log(self, name: str) -> str:
        path = self.root / "logs" / name
        return path.read_text(errors="replace") if path.exists() else ""


@pytest.fixture
def processes(processes: Processes) -> Iterator[Processes]:
    """The type-along runs end with SIGKILL: nothing is learned from their stop, and a
    SIGINT stop of these foreground instances took seconds."""
    yield processes
    for process in processes.started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


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


# The guide's table of contents (funkybob/ugu docs/index.rst, its toctree), in its order;
# its stability page has two parts, chapters 10 and 11.
GUIDE_PAGES = [
    "prep", "venv", "our_app", "install", "app_server", "web_server", "config", "scaling",
    "compress", "stability", "stability", "emperor", "logging", "https", "security", "tasks",
    "caching", "jobq", "daemon",
]  # fmt: skip


def test_a_chapter_for_every_page_of_the_guide_in_its_order() -> None:
    result = run_toolkit("tutorial", "list")
    assert result.returncode == 0
    assert len(result.stdout.strip().splitlines()) == 1 + len(GUIDE_PAGES)
    chapters = tutorial.chapters()
    assert [c.number for c in chapters] == list(range(1, len(GUIDE_PAGES) + 1))
    assert [c.guide.split(".rst")[0] for c in chapters] == GUIDE_PAGES
    assert "our_app.rst (Our app)" in result.stdout
    assert "Our app" in run_toolkit("tutorial", "show", "3").stdout


def test_show_prints_every_code_line_whole() -> None:
    """A copied line must run: no wrapping or cutting, even in a narrow terminal."""
    env = {**os.environ, "COLUMNS": "40"}
    for chapter in tutorial.chapters():
        shown = subprocess.run(
            [str(TOOLKIT), "tutorial", "show", str(chapter.number)],
            capture_output=True, text=True, env=env, check=True,
        ).stdout  # fmt: skip
        assert shown == chapter.text


def test_05_the_page_is_served(run_chapter: Callable[..., Site]) -> None:
    site = run_chapter(5)
    assert b"Hello from uWSGI" in get(site.port).body


def test_05_python_threads_are_on_without_enable_threads(
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
    os.killpg(process.pid, signal.SIGKILL)  # nothing to learn from its stop
    output = "".join(lines)
    assert "python threads support enabled" in output
    assert "threads support is disabled" not in output


def test_06_css_is_served_via_offload(run_chapter: Callable[..., Site]) -> None:
    site = run_chapter(6)
    css = get(site.port, "/base.css")
    assert css.body == (site.root / "static" / "base.css").read_bytes()
    wait_for(
        lambda: "GET /base.css => generated" in site.log("uwsgi.log"),
        what='"GET /base.css => generated" in site.log("uwsgi.log")',
    )
    line = next(x for x in site.log("uwsgi.log").splitlines() if "GET /base.css" in x)
    assert "via offload()" in line


def test_07_a_typo_stops_uwsgi_under_strict(tmp_path: Path) -> None:
    deployment = tutorial.build(7, tmp_path / "site", [])
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


def test_08_several_workers_answer(run_chapter: Callable[..., Site]) -> None:
    site = run_chapter(8)
    seen: set[str] = set()

    def served_by(_: int) -> str:
        response = try_get(site.port, "/")
        found = re.search(rb"Served by worker (\d+)\.", response.body) if response else None
        return found.group(1).decode() if found else ""

    with ThreadPoolExecutor(8) as pool:
        wait_for(
            lambda: seen.update(pool.map(served_by, range(32))) or len(seen - {""}) >= 2,
            what='two different "Served by worker N" pages',
        )


def test_09_html_json_gzipped_and_precompressed_css(run_chapter: Callable[..., Site]) -> None:
    site = run_chapter(9)
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


def test_10_router_forwards_to_the_app_over_its_uwsgi_socket(
    run_chapter: Callable[..., Site],
) -> None:
    site = run_chapter(10)
    assert sorted(site.status()) == ["http", "uwsgi"]
    app = (site.root / "vassals" / "uwsgi.ini").read_text()
    router = (site.root / "vassals" / "http.ini").read_text()
    assert f"socket = 127.0.0.1:{site.app_port}" in app
    assert f"http-to = 127.0.0.1:{site.app_port}" in router
    assert b"Hello from uWSGI" in get(site.port).body
    assert try_get(site.app_port) is None, "the app socket speaks uwsgi, not HTTP"


def test_10_check_names_an_http_to_that_no_vassal_binds(project: Path) -> None:
    """Chapter 10's pair as the reader has it, then with the app moved to another port."""
    router, extra = re.findall(r"```ini\n(.*?)```", tutorial.chapter(10).text, re.DOTALL)[:2]
    (project / "http.ini").write_text(router + extra)
    (project / "uwsgi.ini").write_text(readers_app_file(through=10))
    fitting = run_toolkit("check", project / "http.ini", project / "uwsgi.ini")
    assert "http-to" not in fitting.stdout, fitting.stdout
    (project / "uwsgi.ini").write_text(readers_app_file(through=10).replace(":8001", ":8009"))
    moved = run_toolkit("check", project / "http.ini", project / "uwsgi.ini").stdout
    assert "X300 warning: http-to 127.0.0.1:8001 is not bound by any vassal's socket" in moved
    (project / "uwsgi.ini").write_text(readers_app_file(through=10).replace(":8001", ":8000"))
    clashing = run_toolkit("check", project / "http.ini", project / "uwsgi.ini")
    assert clashing.returncode == 1 and "X301 error" in clashing.stdout


def test_12_a_killed_vassal_comes_back_and_a_touched_one_reloads(
    run_chapter: Callable[..., Site],
) -> None:
    site = run_chapter(12)
    pid = site.status()["uwsgi"]["pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: site.status()["uwsgi"]["restarts"] == 1,
        what='site.status()["uwsgi"]["restarts"] == 1',
    )
    wait_for(serving(site.port), what="serving(site.port)")
    os.utime(site.root / "vassals" / "uwsgi.ini")
    wait_for(
        lambda: "[toolkit] reloading config touched" in site.log("uwsgi.log"),
        what="the reload in the app vassal's log",
    )


def test_13_request_lines_land_in_the_request_log(run_chapter: Callable[..., Site]) -> None:
    site = run_chapter(13)
    get(site.port, "/api/status")
    wait_for(
        lambda: "GET /api/status" in site.log("app-requests.log"),
        what='"GET /api/status" in site.log("app-requests.log")',
    )
    assert site.log("http-requests.log") == "", "the HTTP router logs no requests"


def test_16_two_services_run_from_one_glob(run_chapter: Callable[..., Site]) -> None:
    site_port, blog_port = free_ports(2)
    site = run_chapter(16, f"site_port={site_port}", f"blog_port={blog_port}")
    assert sorted(site.status()) == ["blog", "site"]
    assert b"Hello from the site service" in get(site_port).body
    assert b"Hello from the blog service" in get(blog_port).body


def test_17_a_cached_value_is_served_from_the_cache(run_chapter: Callable[..., Site]) -> None:
    site = run_chapter(17)
    first, second = get(site.port, "/cached"), get(site.port, "/cached")
    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit"
    assert second.body == first.body
    app = (site.root / "code" / "app.py").read_text()
    function = next(
        node for node in ast.parse(app).body
        if isinstance(node, ast.FunctionDef) and node.name == "cached_time"
    )  # fmt: skip
    readers = ast.parse(apply_diff(GUIDE_APP, re.findall(
        r"```diff\n(.*?)```", tutorial.chapter(17).text, re.DOTALL)[1]))  # fmt: skip
    shown = next(
        n for n in readers.body if isinstance(n, ast.FunctionDef) and n.name == "cached_time"
    )
    assert ast.unparse(shown) == ast.unparse(function), "chapter 17 shows the code that ran"


def test_18_a_spooled_job_runs(run_chapter: Callable[..., Site]) -> None:
    site = run_chapter(18)
    assert get(site.port, "/job?report").body == b"queued report\n"
    wait_for(
        lambda: (site.root / "logs" / "jobs" / "report").exists(),
        what='(site.root / "logs" / "jobs" / "report").exists()',
    )
    assert (site.root / "spool").is_dir()
    tasks = (site.root / "code" / "tasks.py").read_text()
    assert shown_code(18, "python") == tasks, "chapter 18 shows the tasks.py that ran"


def test_19_the_daemon_is_started_and_restarted(run_chapter: Callable[..., Site]) -> None:
    site = run_chapter(19)
    pid_file = site.root / "logs" / "daemon.pid"
    wait_for(
        lambda: pid_file.exists() and pid_file.read_text().strip(),
        what="pid_file.exists() and pid_file.read_text().strip()",
    )
    first = int(pid_file.read_text())
    os.kill(first, signal.SIGKILL)
    wait_for(
        lambda: pid_file.read_text().strip() not in {"", str(first)},
        what='pid_file.read_text().strip() not in {"", str(first)}',
    )


def test_01_sys_is_sysfs_not_a_place_for_projects() -> None:
    """The guide's "/sys namespace" means /srv: /sys is the kernel's sysfs."""
    mounts = Path("/proc/mounts").read_text().splitlines()
    assert any(line.split()[1:3] == ["/sys", "sysfs"] for line in mounts)


def test_01_02_type_along_the_folders_and_the_venv(tmp_path: Path) -> None:
    """Chapters 01 and 02's commands, typed in one shell from an empty folder: the folders,
    then a venv whose Python is the one in use."""
    blocks = [re.findall(r"```\n(.*?)```", tutorial.chapter(n).text, re.DOTALL)[0] for n in (1, 2)]
    typed_in = "\n".join(blocks).replace("python3 -m venv", f"{sys.executable} -m venv")
    shown = subprocess.run(
        ["sh", "-ec", typed_in], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    project = tmp_path / "project"
    assert all((project / name).is_dir() for name in ("code", "static", "logs", "venv"))
    assert shown.stdout.strip() == str(project / "venv")


def test_04_this_build_has_internal_routing_and_is_the_version_checked() -> None:
    help_text = subprocess.run([str(UWSGI), "--help"], capture_output=True, text=True).stdout
    assert help_text.count("response-route") > 0
    version = subprocess.run([str(UWSGI), "--version"], capture_output=True, text=True)
    assert version.stdout.strip() == "2.0.31"


def started(processes: Processes, folder: Path, ini: str) -> Path:
    """uwsgi --ini INI in `folder`, its output in INI's name with .log."""
    return typed(processes, folder, f"{ini.replace('.ini', '.log')}", "--ini", ini)


def typed(processes: Processes, folder: Path, log_name: str, *args: str) -> Path:
    """`uwsgi ARGS` as a reader types it in `folder`; its output lands in `log_name`."""
    log = folder / log_name
    log.touch()
    command = " ".join([f"'{UWSGI}'", *args])
    processes.start("sh", "-c", f"exec {command} > {log.name} 2>&1", cwd=folder)
    return log


def shown_code(number: int, language: str) -> str:
    """The first ```LANGUAGE block of chapter NUMBER, as the reader copies it."""
    found = re.search(rf"```{language}\n(.*?)```", tutorial.chapter(number).text, re.DOTALL)
    assert found is not None, f"chapter {number} shows no {language} block"
    return found.group(1)


GUIDE_APP = shown_code(3, "python")


def typed_commands(number: int, port: int) -> list[list[str]]:
    """Chapter NUMBER's `uwsgi ...` lines as the reader types them, on `port`."""
    lines = re.findall(r"^ *(uwsgi --.*)$", tutorial.chapter(number).text, re.MULTILINE)
    return [line.replace(":8000", f":{port}").split()[1:] for line in lines]


def guide_page() -> bytes:
    """What the reader's app answers: chapter 03's code, called as a server would."""
    namespace: dict[str, Any] = {}
    exec(GUIDE_APP, namespace)
    return b"".join(namespace["application"]({}, lambda *_: None))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The guide's project folder: code/app.py (chapter 03) and static/base.css (chapter 06)."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text(GUIDE_APP)
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "base.css").write_text(shown_code(6, "css"))
    return tmp_path


def test_05_type_along_the_first_run_has_no_socket(project: Path) -> None:
    first = typed_commands(5, 8000)[0]
    run = subprocess.run(
        [str(UWSGI), *first], cwd=project, capture_output=True, text=True, timeout=20
    )
    assert run.returncode == 1
    assert "*** WARNING: you are running uWSGI without its master process manager ***" in (
        run.stdout + run.stderr
    )
    assert (
        (run.stdout + run.stderr)
        .rstrip()
        .endswith("The -s/--socket option is missing and stdin is not a socket.")
    )


def test_05_type_along_without_pythonpath_every_request_is_a_500(
    project: Path, processes: Processes
) -> None:
    port = free_ports(1)[0]
    log = typed(processes, project, "run2.log", *typed_commands(5, port)[1])
    wait_for(
        lambda: "spawned uWSGI worker 1" in log.read_text(),
        what='"spawned uWSGI worker 1" in log.read_text()',
    )
    text = log.read_text()
    assert "ModuleNotFoundError: No module named 'app'" in text
    assert "*** no app loaded. going in full dynamic mode ***" in text
    assert get(port).status == 500


def test_05_need_app_refuses_to_start_with_code_22(project: Path) -> None:
    """Step 2's command, which served 500s, with `need-app`: uWSGI exits 22 instead."""
    port = free_ports(1)[0]
    run = subprocess.run(
        [str(UWSGI), *typed_commands(5, port)[1], "--need-app"],
        cwd=project, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert run.returncode == 22, run.stdout + run.stderr
    assert "no app loaded. GAME OVER" in run.stdout + run.stderr


def test_05_type_along_with_pythonpath_it_serves_and_sigterm_reloads(
    project: Path, processes: Processes
) -> None:
    port = free_ports(1)[0]
    log = typed(processes, project, "run3.log", *typed_commands(5, port)[2])
    wait_for(
        lambda: "WSGI app 0 (mountpoint='') ready" in log.read_text(),
        what="\"WSGI app 0 (mountpoint='') ready\" in log.read_text()",
    )
    assert "added code/ to pythonpath." in log.read_text()
    page = guide_page()
    assert get(port).body == page
    logged = f"GET / => generated {len(page)} bytes"
    assert f"generated {len(page)}" in tutorial.chapter(5).text, "the chapter's sample log line"
    wait_for(lambda: logged in log.read_text(), what=f"{logged!r} in log.read_text()")
    assert "|app: 0|req: 1/1] 127.0.0.1 ()" in log.read_text()
    master = processes.started[-1]
    os.kill(master.pid, signal.SIGTERM)
    wait_for(
        lambda: "binary reloading uWSGI..." in log.read_text(),
        what='"binary reloading uWSGI..." in log.read_text()',
    )
    wait_for(serving(port), what="serving(port)")
    assert master.poll() is None, "SIGTERM reloaded uWSGI; it did not stop"


def test_11_type_along_port_0_and_hostnames_from_a_file(
    project: Path, processes: Processes
) -> None:
    """Chapter 11's files as shown: the OS-picked port is announced, each line of
    hostnames.txt is a name, the name includes the port, and an unknown name gets no
    answer at all."""
    port, subscriptions = free_ports(2)
    write_readers_pair(project, {":8000": port, ":8001": subscriptions})
    (project / "hostnames.txt").write_text(f"localhost:{port}\nlocalhost\n")
    router_log = started(processes, project, "http.ini")
    app_log = started(processes, project, "uwsgi.ini")
    wait_for(
        lambda: "(port auto-assigned)" in app_log.read_text(),
        what='"(port auto-assigned)" in app_log.read_text()',
    )
    chosen = app_log.read_text().split("bound to TCP address 127.0.0.1:")[1].split()[0]
    names = [f"localhost:{port} => new node: 127.0.0.1:{chosen}",
             f"localhost => new node: 127.0.0.1:{chosen}"]  # fmt: skip
    wait_for(
        lambda: all(name in router_log.read_text() for name in names),
        what="the router's new node for each line of hostnames.txt (in either order)",
    )
    page = guide_page()
    assert get(port, headers={"Host": f"localhost:{port}"}).body == page
    assert get(port, headers={"Host": "localhost"}).body == page
    with pytest.raises(http.client.RemoteDisconnected):
        get(port, headers={"Host": "nope"})


def test_11_apps_announce_themselves_to_the_router(run_chapter: Callable[..., Site]) -> None:
    port, subscriptions = free_ports(2)
    site = run_chapter(11, f"http_port={port}", f"subscription_port={subscriptions}")
    app = (site.root / "vassals" / "uwsgi.ini").read_text()
    assert "socket = 127.0.0.1:0\n" in app and "subscribe-freq = 1\n" in app
    assert b"Hello from uWSGI" in get(port).body
    wait_for(
        lambda: "toolkit => new node: 127.0.0.1:" in site.log("http.log"),
        what="the router's new-node line, as the Emperor logs it",
    )


def test_14_type_along_a_relative_certificate_path_is_read_before_chdir(
    tmp_path: Path, processes: Processes
) -> None:
    project = tmp_path / "project"
    (project / "tls").mkdir(parents=True)
    command = ["openssl", *tutorial.OPENSSL_ARGS]
    subprocess.run(
        [*command, "-keyout", "tls/key.pem", "-out", "tls/cert.pem"],
        cwd=project, check=True, capture_output=True,
    )  # fmt: skip
    (project / "http.ini").write_text(
        f"[uwsgi]\nmaster = true\nchdir = {project}\nprocesses = 0\n"
        f"https = 127.0.0.1:{free_ports(1)[0]},tls/cert.pem,tls/key.pem\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    log = elsewhere / "http.log"
    log.touch()
    processes.start(
        "sh", "-c", f"exec '{UWSGI}' --ini {project / 'http.ini'} > {log} 2>&1", cwd=elsewhere
    )
    wait_for(
        lambda: "unable to assign certificate tls/cert.pem" in log.read_text(),
        what='"unable to assign certificate tls/cert.pem" in log.read_text()',
    )


def test_14_type_along_the_readers_router_speaks_tls_from_anywhere(
    project: Path, processes: Processes, tmp_path: Path
) -> None:
    """Chapters 11 and 13's files with chapter 14's certificate, `https` line and name, both
    started from another folder: the page comes over TLS, trusted with the chapter's cert."""
    port, subscriptions, https_port = free_ports(3)
    ports = {":8000": port, ":8001": subscriptions, ":8443": https_port}
    write_readers_pair(project, ports, through=14)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("http.ini", "uwsgi.ini"):
        started(processes, elsewhere, str(project / name))
    trusting = ssl.create_default_context(cafile=project / "tls" / "cert.pem")

    def page() -> bytes | None:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", https_port, context=trusting, timeout=5
        )
        try:
            connection.request("GET", "/")
            return connection.getresponse().read()
        except (OSError, http.client.HTTPException):
            return None
        finally:
            connection.close()

    wait_for(lambda: page() == guide_page(), what=f"the page over TLS on port {https_port}")


def test_14_the_router_speaks_tls_with_the_chapters_certificate(
    run_chapter: Callable[..., Site],
) -> None:
    port, app_port, https_port = free_ports(3)
    site = run_chapter(14, f"http_port={port}", f"app_port={app_port}", f"https_port={https_port}")
    cert = site.root / "tls" / "cert.pem"
    trusting = ssl.create_default_context(cafile=cert)
    connection = http.client.HTTPSConnection("127.0.0.1", https_port, context=trusting, timeout=5)
    connection.request("GET", "/")
    assert b"Hello from uWSGI" in connection.getresponse().read()
    connection.close()
    stranger = http.client.HTTPSConnection(
        "127.0.0.1", https_port, context=ssl.create_default_context(), timeout=5
    )
    with pytest.raises(ssl.SSLCertVerificationError, match="self-signed certificate"):
        stranger.request("GET", "/")
    stranger.close()


def test_15_the_router_uses_shared_sockets_and_drops_to_nobody(
    run_chapter: Callable[..., Site],
) -> None:
    port, app_port, https_port = free_ports(3)
    group = "nogroup" if "nogroup" in {g.gr_name for g in grp.getgrall()} else "nobody"
    privileges = ["router_user=nobody", f"router_group={group}"] if os.geteuid() == 0 else []
    site = run_chapter(
        15, f"http_port={port}", f"app_port={app_port}", f"https_port={https_port}", *privileges
    )
    router = (site.root / "vassals" / "http.ini").read_text()
    assert f"shared-socket = 127.0.0.1:{port}\nhttp = =0\n" in router
    assert b"Hello from uWSGI" in get(port).body
    if privileges:
        master = psutil.Process(int(site.status()["http"]["pid"]))  # type: ignore[call-overload]
        assert master.username() == "root"
        assert [child.username() for child in master.children()] == ["nobody"]
        wait_for(
            lambda: "setuid() to 65534" in site.log("http.log"),
            what="the router's setuid line, as the Emperor logs it",
        )


# Chapter 15 drops the router to `nobody`: only root can; a reader who is not skips it.
AS_ROOT = os.geteuid() == 0
READERS_LAST_ROUTER_CHAPTER = 15 if AS_ROOT else 14


@pytest.mark.skipif(not AS_ROOT, reason="chapter 15 is typed as root (setuid to nobody)")
def test_15_type_along_the_router_binds_as_root_and_serves_as_nobody(
    project: Path, processes: Processes
) -> None:
    """Chapters 11 to 14's files with chapter 15's lines and commands, as root: the master
    stays root, the router process is `nobody`, and the page comes through the shared
    socket (on a free port here, not 80) for the plain Host name a browser sends on 80."""
    port, subscriptions, https_port, shared = free_ports(4)
    ports = {":8000": port, ":8001": subscriptions, ":8443": https_port, ":80": shared}
    write_readers_pair(project, ports, through=15)
    commands = re.findall(r"^uwsgi --ini (\S+) &$", tutorial.chapter(15).text, re.MULTILINE)
    assert commands == ["http.ini", "uwsgi.ini"], "chapter 15 starts both"
    router_log = project / "logs" / "uwsgi.log"
    for name in commands:
        started(processes, project, name)
    host = {"Host": "127.0.0.1"}

    def served() -> bool:
        with contextlib.suppress(OSError, http.client.HTTPException):
            return get(shared, headers=host).body == guide_page()
        return False

    wait_for(served, what=f"the page for Host 127.0.0.1 through the shared socket {shared}")
    master = psutil.Process(processes.started[0].pid)
    assert master.username() == "root"
    assert [child.username() for child in master.children()] == ["nobody"]
    wait_for(
        lambda: "uWSGI http 1 setuid() to 65534" in router_log.read_text(errors="replace"),
        what="the router's setuid line in its logs/uwsgi.log",
    )


def test_10_type_along_the_router_runs_no_worker_and_waits_out_a_refusal(
    project: Path, processes: Processes
) -> None:
    """2.0.31 starts no worker in an instance without a socket of its own; a router that
    found the app down keeps failing for http-gracetime (30 s by default) after it is up."""
    port, app_port = free_ports(2)
    router_file = shown_code(10, "ini")
    (project / "http.ini").write_text(
        router_file.replace(":8000", f":{port}").replace(":8001", f":{app_port}")
    )
    router = started(processes, project, "http.ini")
    wait_for(
        lambda: "spawned uWSGI http 1" in router.read_text(),
        what='"spawned uWSGI http 1" in router.read_text()',
    )
    assert "*** Operational MODE: no-workers ***" in router.read_text()
    assert "spawned uWSGI worker" not in router.read_text()
    with pytest.raises(http.client.RemoteDisconnected):
        get(port)
    app_file = readers_app_file(through=10)
    (project / "uwsgi.ini").write_text(app_file.replace(":8001", f":{app_port}"))
    app = started(processes, project, "uwsgi.ini")
    wait_for(
        lambda: "WSGI app 0 (mountpoint='') ready" in app.read_text(),
        what="\"WSGI app 0 (mountpoint='') ready\" in app.read_text()",
    )
    wait_for(
        lambda: "spawned uWSGI worker 1" in app.read_text(),
        what='"spawned uWSGI worker 1" in app.read_text()',
    )
    with pytest.raises(http.client.RemoteDisconnected):
        get(port)  # the app is up, and the router still counts it dead
    assert try_get(app_port) is None, "the app's :8001 speaks uwsgi, not HTTP: no page"
    assert "marking 127.0.0.1:" in router.read_text()


@dataclass
class ReadersEmperor:
    """The reader's folders after chapter 16 (`srv/http/`, `srv/project/`) under the
    Emperor of chapter 16's command, started in `srv/`; `log` is its terminal."""

    srv: Path
    log: Path
    port: int
    host: str

    def get(self, path: str = "/") -> Any:
        return get(self.port, path, headers={"Host": self.host})

    def page(self, path: str = "/") -> bytes | None:
        with contextlib.suppress(OSError, http.client.HTTPException):
            return self.get(path).body
        return None


def readers_emperor(
    project: Path, processes: Processes, through: int = 16, toolkits: bool = False
) -> ReadersEmperor:
    """Chapters 11 to 15's files (15 only as root), chapter 16's moves, the edits of chapters
    17 to `through`, then chapter 16's Emperor (uWSGI's, or with `toolkits` toolkit's, as the
    chapter shows both); returns once the page is served."""
    srv = project / "srv"
    shutil.copytree(project, srv / "project", ignore=shutil.ignore_patterns("srv"))
    mine = srv / "project"
    port, subscriptions, https_port, shared = free_ports(4)
    ports = {":8000": port, ":8001": subscriptions, ":8443": https_port, ":80": shared}
    write_readers_pair(mine, ports, through=READERS_LAST_ROUTER_CHAPTER)
    shown = tutorial.chapter(16).text
    steps = re.search(r"```\n(mkdir -p \.\./http/logs\n.*?)```", shown, re.DOTALL)
    assert steps is not None, "chapter 16 shows the move and the Emperor"
    *moves, cd, emperor = steps.group(1).splitlines()
    assert cd == "cd .." and emperor.startswith("uwsgi --master --emperor ")
    subprocess.run(["sh", "-c", " && ".join(moves)], cwd=mine, check=True, capture_output=True)
    for number in range(17, through + 1):
        edit_as_chapter(number, mine)
    if toolkits:
        command = re.search(r"`toolkit emperor '([^']+)'`", shown)
        assert command is not None, "chapter 16 shows toolkit's Emperor"
        log = srv / "emperor.log"
        log.touch()
        run = f"exec '{TOOLKIT}' emperor '{command.group(1)}' > {log.name} 2>&1"
        processes.start("sh", "-c", run, cwd=srv)
    else:
        log = typed(processes, srv, "emperor.log", *emperor.split()[1:])
    served = (
        ReadersEmperor(srv, log, shared, "127.0.0.1")
        if READERS_LAST_ROUTER_CHAPTER >= 15
        else ReadersEmperor(srv, log, port, f"localhost:{port}")
    )
    wait_for(
        lambda: served.page() == guide_page(),
        what=f"the page through http/uwsgi.ini's router on port {served.port}",
    )
    return served


def edit_as_chapter(number: int, project: Path) -> None:
    """Chapter NUMBER's (17 to 19) edits, as shown: its diffs to `uwsgi.ini` and
    `code/app.py`, and the files it shows whole."""
    text = tutorial.chapter(number).text
    for name, diff in re.findall(r"In\s+`([\w/.]+)`:\n\n```diff\n(.*?)```", text, re.DOTALL):
        (project / name).write_text(apply_diff((project / name).read_text(), diff))
    for name, code in re.findall(r"`([\w/]+\.py)`, whole:\n\n```python\n(.*?)```", text, re.DOTALL):
        (project / name).write_text(code)


def test_16_type_along_the_guides_layout_under_one_emperor(
    project: Path, processes: Processes
) -> None:
    """Chapters 11 to 15's files, then chapter 16's commands as shown: the router moved to
    its own folder beside the project, one Emperor over `*/uwsgi.ini`, the page served."""
    emperor = readers_emperor(project, processes)
    assert "vassal http/uwsgi.ini has been spawned" in emperor.log.read_text()
    assert (emperor.srv / "http" / "logs" / "uwsgi.log").exists(), "the router's log moved"


def test_16_type_along_toolkits_emperor_names_each_vassal_after_its_folder(
    project: Path, processes: Processes
) -> None:
    emperor = readers_emperor(project, processes, toolkits=True)
    output = emperor.log.read_text()
    assert re.search(r"^\S+ http +▸ spawned: pid \d+, http/uwsgi.ini$", output, re.MULTILINE)
    assert re.search(r"^\S+ project ▸ spawned: pid \d+, project/uwsgi.ini$", output, re.MULTILINE)
    toolkit = processes.started[-1]
    toolkit.send_signal(signal.SIGINT)  # its vassals are not in its process group: stop it
    wait_for(lambda: toolkit.poll() is not None, what="toolkit's Emperor gone after Ctrl-C")


def test_17_type_along_the_cache_answers_miss_then_hit(project: Path, processes: Processes) -> None:
    emperor = readers_emperor(project, processes, through=17)
    first, second = emperor.get("/cached"), emperor.get("/cached")
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert second.body == first.body


def test_18_type_along_a_spooled_job_runs(project: Path, processes: Processes) -> None:
    emperor = readers_emperor(project, processes, through=18)
    mine = emperor.srv / "project"
    assert emperor.get("/job?report").body == b"queued report\n"
    wait_for(
        lambda: (mine / "logs" / "jobs" / "report").exists(),
        what="logs/jobs/report in the reader's project",
    )
    wait_for(
        lambda: "job report done" in (mine / "logs" / "app-messages.log").read_text(),
        what='"job report done" in logs/app-messages.log',
    )
    assert (mine / "spool").is_dir()


def test_19_type_along_the_daemon_is_spawned_again_when_killed(
    project: Path, processes: Processes
) -> None:
    emperor = readers_emperor(project, processes, through=19)
    mine = emperor.srv / "project"
    pid_file, log = mine / "logs" / "daemon.pid", mine / "logs" / "app-messages.log"
    wait_for(
        lambda: pid_file.exists() and pid_file.read_text().strip(),
        what="logs/daemon.pid written by the daemon",
    )
    assert '[uwsgi-daemons] spawning "python3 code/daemon.py"' in log.read_text()
    first = int(pid_file.read_text())
    subprocess.run(["sh", "-c", "kill $(cat logs/daemon.pid)"], cwd=mine, check=True)
    wait_for(
        lambda: pid_file.read_text().strip() not in {"", str(first)},
        what="a new pid in logs/daemon.pid",
    )


def test_16_type_along_procname_prefix_is_glued_and_the_spaced_one_is_not(
    project: Path, processes: Processes
) -> None:
    for option, expected in (("procname-prefix", "httpuWSGI master"),
                             ("procname-prefix-spaced", "http uWSGI master")):  # fmt: skip
        port = free_ports(1)[0]
        folder = project / "http"  # %c is the name of the folder: the router's own
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "uwsgi.ini").write_text(
            f"[uwsgi]\nmaster = true\n{option} = %c\nhttp-socket = 127.0.0.1:{port}\n"
            f"pythonpath = {project / 'code'}\nmodule = app\n"
        )
        log = typed(processes, folder, f"{option}.log", "--ini", "uwsgi.ini")
        wait_for(
            lambda log=log: "spawned uWSGI worker 1" in log.read_text(),  # type: ignore[misc]
            what='"spawned uWSGI worker 1" in log.read_text()',
        )
        master = psutil.Process(processes.started[-1].pid)
        wait_for(
            lambda master=master, expected=expected: (  # type: ignore[misc]
                " ".join(master.cmdline()).startswith(expected)
            ),
            what='" ".join(master.cmdline()).startswith(expected)',
        )
        os.killpg(master.pid, signal.SIGKILL)  # nothing to learn from its stop
        processes.stop_all()
        processes.started.clear()


SIZED_APP = """\
def application(env, start_response):
    body = b"<p>" + b"Welcome! " * 50 + b"</p>"
    headers = [("Content-Type", "text/html")]
    if env["PATH_INFO"] == "/sized":
        headers.append(("Content-Length", str(len(body))))
    start_response("200 OK", headers)
    return [body]
"""


def guide_compression(project: Path, processes: Processes, keepalive: str) -> int:
    """The guide's compression config, its last line included; returns its port."""
    port = free_ports(1)[0]
    (project / "code" / "sized.py").write_text(SIZED_APP)
    (project / f"gzip-{keepalive}.ini").write_text(
        f"[uwsgi]\nstrict = true\nmaster = true\nhttp = 127.0.0.1:{port}\n"
        f"http-keepalive = {keepalive}\nhttp-auto-gzip = true\n"
        "pythonpath = code\nmodule = sized\n"
        "collect-header = Content-Type RESPONSE_CONTENT_TYPE\n"
        "response-route-if = startswith:${RESPONSE_CONTENT_TYPE};text/html "
        "addheader:uWSGI-Encoding: gzip\n"
        "response-route-run = delheader:uWSGI-Encoding\n"
    )
    started(processes, project, f"gzip-{keepalive}.ini")
    wait_for(serving(port), what="serving(port)")
    return port


def second_request_on_one_connection(port: int, path: str) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        for _ in range(2):
            connection.request("GET", path, headers=GZIP)
            connection.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def test_09_type_along_the_guides_compression_and_its_three_faults(
    project: Path, processes: Processes
) -> None:
    port = guide_compression(project, processes, "true")
    unsized, sized = get(port, "/", GZIP), get(port, "/sized", GZIP)
    assert unsized.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in sized.headers, "a Content-Length answer goes out as is"
    assert unsized.headers["uwsgi-encoding"] == "gzip", "delheader did not remove it"
    assert not second_request_on_one_connection(port, "/"), "keepalive = true is 0: off"
    assert second_request_on_one_connection(guide_compression(project, processes, "1"), "/")
    report = run_toolkit("check", project / "gzip-true.ini").stdout
    assert "V201 error: http-keepalive = 'true' is read by uWSGI as 0" in report


def test_09_the_guides_find_gzips_css_and_js_and_its_old_version_nothing(
    tmp_path: Path,
) -> None:
    commands = {
        "now": 'find static/ \\( -name "*.css" -or -name "*.js" \\) -exec gzip -9fk {} +',
        "old": 'find static/ -name "*.css" -o -name "*.js" -exec gzip -9fk \\+',
        "old with {}": 'find static/ -name "*.css" -o -name "*.js" -exec gzip -9fk {} +',
    }
    made, errors = {}, {}
    for version, command in commands.items():
        static = tmp_path / version.replace(" ", "-") / "static"
        static.mkdir(parents=True)
        (static / "base.css").write_text("html { box-sizing: border-box }\n" * 20)
        (static / "app.js").write_text("console.log('hi');\n" * 20)
        run = subprocess.run(["sh", "-c", command], cwd=static.parent, capture_output=True)
        made[version] = sorted(p.name for p in static.glob("*.gz"))
        errors[version] = run.stderr.decode()
    assert made == {"now": ["app.js.gz", "base.css.gz"], "old": [], "old with {}": ["app.js.gz"]}
    assert "missing argument to `-exec'" in errors["old"]


def test_08_cheaper_starts_one_worker_and_spawns_more_under_load(
    run_chapter: Callable[..., Site],
) -> None:
    port, app_port = free_ports(2)
    site = run_chapter(8, f"http_port={port}", f"app_port={app_port}", "cheaper=1")
    assert "spawned uWSGI worker 2" not in site.log("uwsgi.log")
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: try_get(port, "/slow"), range(12)))
    assert any(a is not None and a.body.startswith(b"slept 1 s") for a in answers)
    wait_for(
        lambda: "spawned uWSGI worker 2" in site.log("uwsgi.log"),
        what='"spawned uWSGI worker 2" in site.log("uwsgi.log")',
    )


def test_03_type_along_the_app_called_by_hand(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(GUIDE_APP)
    command = re.search(r"```\n(python -c .*)\n```", tutorial.chapter(3).text)
    assert command is not None, "chapter 03 shows the call by hand"
    shown = subprocess.run(
        ["sh", "-c", command.group(1).replace("python", sys.executable, 1)],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    status, page = shown.splitlines()
    assert status == "200 OK [('Content-Type', 'text/html')]"
    assert page == repr([guide_page()])
    assert page.startswith("[b'\\n <!DOCTYPE html>\\n <html>")
    reported: list[tuple[str, list[tuple[str, str]]]] = []
    namespace: dict[str, Any] = {}
    exec(GUIDE_APP, namespace)
    body = namespace["application"]({}, lambda *args: reported.append(args))
    assert reported == [], "a generator: start_response runs with the first part of the body"
    assert b"".join(body) == guide_page()
    assert reported == [("200 OK", [("Content-Type", "text/html")])]


def test_03_the_tutorial_sites_app_names_its_worker_and_sends_no_content_length(
    tmp_path: Path,
) -> None:
    assert run_toolkit("new", tmp_path / "site", "--recipe", "tutorial").returncode == 0
    namespace: dict[str, Any] = {}
    exec((tmp_path / "site" / "code" / "app.py").read_text(), namespace)
    reported: list[tuple[str, list[tuple[str, str]]]] = []
    body = b"".join(namespace["application"]({"PATH_INFO": "/"}, lambda *a: reported.append(a)))
    [(status, headers)] = reported
    assert status == "200 OK" and "Content-Length" not in dict(headers)
    assert f"Served by worker {os.getpid()}.".encode() in body


def test_06_type_along_check_static_then_an_offload_thread(
    project: Path, processes: Processes
) -> None:
    """Chapter 06's two commands, as shown: a worker sends the file, then an offload thread."""
    commands = re.findall(r"^uwsgi --master .*$", tutorial.chapter(6).text, re.MULTILINE)
    assert len(commands) == 2, "chapter 06 shows the guide's two runs"
    stylesheet = (project / "static" / "base.css").read_bytes()
    logged = f"GET /base.css => generated {len(stylesheet)} bytes"
    logs = []
    for number, command in enumerate(commands):
        port = free_ports(1)[0]
        args = command.replace("127.0.0.1:8000", f"127.0.0.1:{port}").split()[1:]
        logs.append(typed(processes, project, f"web{number}.log", *args))
        wait_for(serving(port, "/base.css"), what=f"serving(port {port}, '/base.css')")
        assert get(port, "/base.css").body == stylesheet
    without, offloaded = (log.read_text for log in logs)
    wait_for(lambda: logged in without() and logged in offloaded(), what=f"{logged!r} twice")
    assert "via offload()" not in without()
    assert "via offload()" in offloaded()
    assert "spawned 1 offload threads for uWSGI worker 1" in offloaded()
    assert f"generated {len(stylesheet)} bytes" in tutorial.chapter(6).text


def test_07_type_along_the_ini_file_serves_like_the_command(
    project: Path, processes: Processes
) -> None:
    port = free_ports(1)[0]
    shown = shown_code(7, "ini")
    (project / "uwsgi.ini").write_text(shown.replace("127.0.0.1:8000", f"127.0.0.1:{port}"))
    started(processes, project, "uwsgi.ini")
    wait_for(serving(port), what="serving(port)")
    assert get(port).body == guide_page()
    assert get(port, "/base.css").body == (project / "static" / "base.css").read_bytes()


def apply_diff(text: str, diff: str) -> str:
    """A chapter's ```diff block applied as the reader edits: ` ` lines are where, `-` lines
    go, `+` lines come in at that place (at the end of the file when the block says nowhere)."""
    lines = text.splitlines()
    anchored = any(line[:1] in " -" for line in diff.splitlines())
    at = 0 if anchored else len(lines)
    for line in diff.splitlines():
        mark, body = line[:1], line[1:]
        if mark == " ":
            at = lines.index(body, at) + 1
        elif mark == "-":
            at = lines.index(body, at)
            del lines[at]
        elif mark == "+":
            lines.insert(at, body)
            at += 1
    return "\n".join(lines) + "\n"


def readers_app_file(through: int) -> str:
    """The reader's `uwsgi.ini` as chapters 07 to `through` have them edit it, in order."""
    text = apply_diff(shown_code(7, "ini"), shown_code(7, "diff"))
    address = "http-socket = 127.0.0.1:8000\n"
    text = apply_diff(text.replace(address, address + shown_code(8, "ini")), shown_code(8, "diff"))
    if through >= 9:
        static, dynamic = re.findall(r"```diff\n(.*?)```", tutorial.chapter(9).text, re.DOTALL)[:2]
        text = apply_diff(apply_diff(text, static), dynamic)
    if through >= 10:
        text = apply_diff(text, shown_code(10, "diff"))
    return text


def write_readers_pair(folder: Path, ports: dict[str, int], through: int = 11) -> None:
    """The reader's `http.ini` and `uwsgi.ini` in `folder` as chapters 11 to `through` have
    them typed, in order: 11's files and hostnames.txt, 13's lines for each (and logs/), 14's
    certificate, `https` line and name, 15's shared socket and user. The chapters' ports
    (":8000", ":80", ...) become `ports`' numbers."""
    chapter_11 = tutorial.chapter(11).text
    router, app = re.findall(r"```ini\n(.*?)```", chapter_11, re.DOTALL)[:2]
    steps = re.findall(r"^(echo localhost:8000 > hostnames\.txt)$", chapter_11, re.MULTILINE)
    if through >= 13:
        chapter_13 = tutorial.chapter(13).text
        for_router, for_app = re.findall(r"```diff\n(.*?)```", chapter_13, re.DOTALL)
        router, app = apply_diff(router, for_router), apply_diff(app, for_app)
        steps.append("mkdir logs")
    if through >= 14:
        chapter_14 = tutorial.chapter(14).text
        router += shown_code(14, "ini")
        making = re.search(r"```\n(mkdir -p tls\nopenssl req .*?)```", chapter_14, re.DOTALL)
        assert making is not None, "chapter 14 shows how to make the certificate"
        steps += [making.group(1), *names_added(chapter_14)]
    if through >= 15:
        router = apply_diff(router, shown_code(15, "diff"))
        steps += names_added(tutorial.chapter(15).text)
    for name, text in (("http.ini", router), ("uwsgi.ini", app)):
        (folder / name).write_text(with_ports(text, ports))
    for step in steps:
        command = ["sh", "-c", with_ports(step, ports)]
        subprocess.run(command, cwd=folder, check=True, capture_output=True)


def names_added(text: str) -> list[str]:
    """A chapter's `echo NAME >> hostnames.txt` lines."""
    return re.findall(r"^(echo .* >> hostnames\.txt)$", text, re.MULTILINE)


def with_ports(text: str, ports: dict[str, int]) -> str:
    """`text` with each chapter port (":8000") replaced by the test's free one, whole numbers
    only (":80" is not the start of ":8000")."""
    for shown, mine in ports.items():
        text = re.sub(rf"{re.escape(shown)}(?!\d)", f":{mine}", text)
    return text


def test_08_type_along_the_router_and_one_cheaper_worker_of_two_threads(
    project: Path, processes: Processes
) -> None:
    """Chapter 07's file with 07's strict line, then 08's lines under the address and its
    switch to the router, as the chapters show them."""
    port = free_ports(1)[0]
    chapter_07 = apply_diff(shown_code(7, "ini"), shown_code(7, "diff"))
    address = "http-socket = 127.0.0.1:8000\n"
    with_workers = chapter_07.replace(address, address + shown_code(8, "ini"))
    chapter_08 = apply_diff(with_workers, shown_code(8, "diff"))
    assert "strict = true" in chapter_08 and "http = 127.0.0.1:8000" in chapter_08
    (project / "uwsgi.ini").write_text(chapter_08.replace(":8000", f":{port}"))
    log = started(processes, project, "uwsgi.ini")
    wait_for(
        lambda: "spawned uWSGI http 1" in log.read_text(),
        what='"spawned uWSGI http 1" in log.read_text()',
    )
    wait_for(serving(port), what="serving(port)")
    # The master prints it after the fork: the worker may answer before it does.
    wait_for(
        lambda: re.search(r"spawned uWSGI worker 1 \(pid: \d+, cores: 2\)", log.read_text()),
        what="the master's line for worker 1 with 2 cores",
    )
    assert "spawned uWSGI worker 2" not in log.read_text()


def test_13_type_along_the_routers_request_log_never_appears(
    project: Path, processes: Processes
) -> None:
    """Chapter 11's two files with chapter 13's lines for each: the router's request log
    never appears, the app's has the request."""
    port, subscriptions = free_ports(2)
    write_readers_pair(project, {":8000": port, ":8001": subscriptions}, through=13)
    started(processes, project, "http.ini")
    started(processes, project, "uwsgi.ini")
    host = {"Host": f"localhost:{port}"}

    def served() -> bool:
        with contextlib.suppress(OSError, http.client.HTTPException):
            return get(port, "/?logged", headers=host).status == 200
        return False

    wait_for(served, what=f"a page for Host localhost:{port} through the router")
    requests = project / "logs" / "app-requests.log"
    wait_for(
        lambda: requests.exists() and "GET /?logged" in requests.read_text(),
        what="the request line in logs/app-requests.log",
    )
    assert (project / "logs" / "uwsgi.log").read_text(), "the router's messages"
    router_requests = project / "logs" / "request.log"
    assert not router_requests.exists(), "uWSGI opens a file logger at its first line"


def test_12_type_along_uwsgis_emperor_spawns_both_and_only_the_app_is_ready_and_loyal(
    project: Path, processes: Processes
) -> None:
    """Chapter 11's two files where the reader has them, and chapter 12's command as shown."""
    port, subscription_port = free_ports(2)
    write_readers_pair(project, {":8000": port, ":8001": subscription_port})
    command = re.search(r"^uwsgi --master --emperor .*$", tutorial.chapter(12).text, re.MULTILINE)
    assert command is not None, "chapter 12 shows the Emperor's command"
    log = typed(processes, project, "emperor.log", *command.group(0).split()[1:])
    # uWSGI's Emperor prints each vassal's events as it reads them, in no set order.
    events = ["vassal uwsgi.ini is ready to accept requests", "vassal http.ini has been spawned"]
    wait_for(
        lambda: all(event in log.read_text() for event in events),
        what="the app ready and the router spawned, in either order",
    )
    host = {"Host": f"localhost:{port}"}

    def served() -> bool:
        with contextlib.suppress(OSError, http.client.HTTPException):
            return get(port, headers=host).status == 200
        return False

    wait_for(served, what=f"a page for Host localhost:{port} through the router")
    wait_for(
        lambda: "vassal uwsgi.ini is now loyal" in log.read_text(),
        what='"vassal uwsgi.ini is now loyal" in log.read_text()',
    )
    assert "announcing my loyalty to the Emperor..." in log.read_text()
    assert "http.ini is ready" not in log.read_text()
    assert "http.ini is now loyal" not in log.read_text()


def test_a_later_chapter_in_the_same_folder_keeps_the_readers_set_values(tmp_path: Path) -> None:
    """`tutorial run 5 --set http_port=P`, then `tutorial run 6` in the same folder: the
    reader's port stays theirs (it is below a mark in deploy.ini that later runs read)."""
    root = tmp_path / "tutorial"
    port, app_port = free_ports(2)
    given = ("--set", f"http_port={port}", "--set", f"app_port={app_port}")
    first = run_toolkit("tutorial", "run", "5", root, *given, "--detach")
    assert first.returncode == 0, first.stderr
    run_toolkit("down", root)
    second = run_toolkit("tutorial", "run", "6", root, "--detach")
    try:
        assert second.returncode == 0, second.stderr
        assert f"http_port = {port}" in (root / "deploy.ini").read_text()
        wait_for(serving(port), what="chapter 6 on the port given to chapter 5")
    finally:
        run_toolkit("down", root)
