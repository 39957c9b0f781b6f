"""Every shipped recipe scaffolds, renders, checks clean and serves under toolkit's Emperor."""

from __future__ import annotations

import gzip
import json
import os
import random
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import BIN, GZIP, free_ports, get, run_toolkit, try_get, wait_for
from toolkit.recipes import list_recipes


def consecutive_free_ports(count: int) -> int:
    """A first port such that it and the next count-1 are free on loopback."""
    while True:
        first = random.randint(20000, 60000)
        sockets = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()


def port_settings(recipe: str) -> tuple[list[str], int]:
    """--set pairs giving a recipe free ports, and the port to ask for a page."""
    port, other = free_ports(2)
    if recipe == "services":
        return [f"site_port={port}", f"blog_port={other}"], port
    if recipe == "balanced":
        return [f"http_port={port}", f"app_port={consecutive_free_ports(3)}", "apps=3"], port
    return [f"http_port={port}", f"app_port={other}"] if recipe != "single" else [
        f"http_port={port}"
    ], port


@pytest.fixture
def down() -> Iterator[list[Path]]:
    running: list[Path] = []
    yield running
    for root in running:
        run_toolkit("down", "-C", root)


def test_recipes_lists_every_shipped_recipe() -> None:
    result = run_toolkit("recipes")
    assert {line.split()[0] for line in result.stdout.splitlines()} == {
        "ground-up",
        "single",
        "balanced",
        "services",
        "tutorial",
    }


@pytest.mark.parametrize("recipe", [r.name for r in list_recipes()])
def test_recipe_scaffolds_renders_checks_and_serves(
    recipe: str, tmp_path: Path, down: list[Path]
) -> None:
    root = tmp_path / recipe
    assert run_toolkit("new", root, "--recipe", recipe).returncode == 0
    sets, port = port_settings(recipe)
    if recipe == "tutorial":
        sets += ["gzip = true", "router = true", "http_keepalive = true"]
    with (root / "deploy.ini").open("a") as stream:
        stream.write("".join(f"{pair.replace('=', ' = ')}\n" for pair in sets))
    assert run_toolkit("render", root).returncode == 0
    checked = run_toolkit("check", root)
    assert checked.returncode == 0, checked.stdout
    assert "0 error(s), 0 warning(s)" in checked.stdout
    down.append(root)
    result = run_toolkit("up", root, "--detach")
    assert result.returncode == 0, result.stderr + result.stdout
    plain, packed = get(port), get(port, "/", GZIP)
    assert plain.status == packed.status == 200
    assert "uwsgi-encoding" not in plain.headers and "uwsgi-encoding" not in packed.headers
    if recipe != "services":
        assert packed.headers.get("content-encoding") == "gzip"
        assert gzip.decompress(packed.body) == plain.body


def test_balanced_spreads_requests_over_three_app_vassals(tmp_path: Path, down: list[Path]) -> None:
    root = tmp_path / "balanced"
    run_toolkit("new", root, "--recipe", "balanced")
    sets, port = port_settings("balanced")
    options = [part for pair in sets for part in ("--set", pair)]
    down.append(root)
    result = run_toolkit("up", root, "--detach", *options)
    assert result.returncode == 0, result.stderr
    seen: set[int] = set()

    def pid(_: int) -> int:
        response = try_get(port, "/api/status")
        return json.loads(response.body)["pid"] if response and response.status == 200 else 0

    with ThreadPoolExecutor(6) as pool:
        wait_for(
            lambda: seen.update(pool.map(pid, range(30))) or len(seen - {0}) >= 3,
            what="seen.update(pool.map(pid, range(30))) or len(seen - {0}) >= 3",
        )


def test_scaling_down_removes_the_extra_vassal_file(tmp_path: Path) -> None:
    root = tmp_path / "balanced"
    run_toolkit("new", root, "--recipe", "balanced")
    assert run_toolkit("render", root, "--set", "apps=3").returncode == 0
    result = run_toolkit("render", root, "--set", "apps=2")
    assert f"{root / 'vassals' / 'app-3.ini'} (removed)" in result.stdout
    assert sorted(p.name for p in (root / "vassals").iterdir()) == [
        "app-1.ini",
        "app-2.ini",
        "http.ini",
    ]


def test_exported_systemd_unit_runs_the_emperor_and_verifies(deployment: Path) -> None:
    unit = deployment / "toolkit-site.service"
    result = run_toolkit("export", "systemd", deployment, "--output", unit)
    assert result.returncode == 0, result.stderr
    text = unit.read_text()
    assert "-m toolkit.emperor" in text
    assert f"'{deployment.resolve() / 'vassals' / '*.ini'}'" in text
    assert "KillSignal=SIGINT" in text
    assert "Type=notify\n" in text and "WatchdogSec=30\n" in text and "Delegate=yes\n" in text
    assert f"-m toolkit reload {deployment.resolve()} --wait" in text
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    verified = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr


def test_exported_playbook_renders_each_hosts_vassals(deployment: Path, tmp_path: Path) -> None:
    (deployment / "inventory.ini").write_text(
        "[groups]\n[[web]]\nhosts = localhost\nprocesses = 6\n"
        "[hosts]\n[[localhost]]\nhttp_port = 9123\n"
    )
    ansible = tmp_path / "ansible"
    result = run_toolkit("export", "ansible", deployment, "--output", ansible)
    assert result.returncode == 0, result.stderr
    assert "[web]\nlocalhost\n" in (ansible / "hosts.ini").read_text()
    playbook = [str(BIN / "ansible-playbook"), "-i", str(ansible / "hosts.ini"),
                str(ansible / "playbook.yml")]  # fmt: skip
    syntax = subprocess.run([*playbook, "--syntax-check"], capture_output=True, text=True)
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr
    dest = tmp_path / "dest"
    # Everything the play makes stays in the test's folder (toolkit_home is /srv/toolkit).
    extra = {"ansible_python_interpreter": sys.executable, "toolkit_dest": str(dest),
             "toolkit_home": str(tmp_path / "home"),
             "toolkit_venv": str(BIN.parent), "toolkit_install": "false",
             "toolkit_systemd": "false"}  # fmt: skip
    run = subprocess.run(
        [*playbook, "-c", "local", *(a for k, v in extra.items() for a in ("-e", f"{k}={v}"))],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"), "ANSIBLE_NOCOLOR": "1"},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:]
    assert "http = 127.0.0.1:9123" in (dest / "vassals" / "http.ini").read_text()
    assert "processes = 6" in (dest / "vassals" / "uwsgi.ini").read_text()
