"""What the structure promises a user: one writer of vassal files (a release is checked like a
render), one home for release records (a bad one is an error, never a silent fallback), a
bounded `down`, and exit codes that are the README's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import free_ports, run_toolkit, wait_for
from toolkit.check import RULES
from toolkit.errors import ExitCode

README = Path(__file__).parent.parent / "README.md"
RELEASE_ID = "20260101T000000000-dir"


def readme_table(header: str) -> list[list[str]]:
    """The rows of the README's Markdown table whose header row starts with `header`."""
    lines = README.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_readme_exit_code_table_is_the_code() -> None:
    assert {int(row[0]) for row in readme_table("exit code")} == {int(c) for c in ExitCode}


def test_the_readme_rule_table_is_the_code() -> None:
    rows = {row[0]: row[2] for row in readme_table("rule")}
    assert rows == {rule.id: rule.summary for rule in RULES}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    port, app_port, subscriptions = free_ports(3)
    assert run_toolkit("new", root).returncode == 0
    with (root / "deploy.ini").open("a") as stream:
        stream.write(
            f"http_port = {port}\napp_port = {app_port}\nsubscription_port = {subscriptions}\n"
        )
    return root


@pytest.mark.parametrize(
    ("live", "record", "named"),
    [
        (RELEASE_ID, "{not json", f"releases/{RELEASE_ID}.json"),
        (RELEASE_ID, '{"id": "x"}', f"releases/{RELEASE_ID}.json"),
        (RELEASE_ID, None, "releases/live"),
        ("../../elsewhere", None, "releases/live"),
        ("", None, "releases/live"),
    ],
    ids=["not-json", "missing-fields", "no-record", "outside", "empty"],
)
def test_a_bad_release_record_is_one_line_naming_it(
    site: Path, live: str, record: str | None, named: str
) -> None:
    releases = site / "releases"
    releases.mkdir()
    (releases / "live").write_text(live + "\n")
    if record is not None:
        (releases / f"{RELEASE_ID}.json").write_text(record)
    commands = [
        ["render", site],
        ["up", site, "--detach"],
        ["status", site],
        ["release", site, "--from", site / "code"],
        ["rollback", site],
        ["releases", site],
    ]
    for command in commands:
        result = run_toolkit(*command)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == ExitCode.USAGE, (command, result.stderr)
        assert len(lines) == 1 and named in lines[0], (command, result.stderr)
        assert "Traceback" not in result.stderr
    assert not (site / "vassals").exists(), "nothing was rendered from a bad record"


def test_a_release_whose_vassal_check_refuses_never_runs(site: Path, tmp_path: Path) -> None:
    """The release's vassal file goes through the same check as `render`: code without the
    app module is refused before a staging uwsgi starts or a file is written."""
    assert run_toolkit("up", site, "--detach").returncode == 0
    try:
        empty = tmp_path / "empty"
        empty.mkdir()
        (empty / "README").write_text("no app here\n")
        before = sorted(p.name for p in (site / "vassals").iterdir())
        result = run_toolkit("release", site, "--from", empty)
        assert result.returncode == ExitCode.PROBLEMS, result.stderr
        assert "W601 error: module 'app' not found" in result.stderr
        assert "nothing was written or started" in result.stderr
        assert sorted(p.name for p in (site / "vassals").iterdir()) == before
        assert not (site / "releases" / "live").exists()
        assert not list((site / "releases").glob("*.log")), "no staging uwsgi ran"
        assert not list((site / "run").glob("staging-*"))
    finally:
        run_toolkit("down", site)


def test_down_against_an_emperor_that_stopped_answering_returns_in_time(site: Path) -> None:
    assert run_toolkit("up", site, "--detach").returncode == 0
    pid = int((site / "run" / "emperor.pid").read_text())
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        result = run_toolkit("down", site, "--timeout", "1")
        took = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert result.returncode == ExitCode.USAGE
    assert f"the Emperor (pid {pid}) did not answer `down` within 1 s" in result.stderr
    assert "the request stays queued" in result.stderr
    assert took < 30, "bounded by its timeout, not by the Emperor"
    # Running again, it carries the queued `down` out.
    wait_for(lambda: not (site / "run" / "emperor.pid").exists(), what="the Emperor to end")
    assert run_toolkit("status", site).returncode == ExitCode.NO_EMPEROR


def test_every_command_takes_h_and_shows_examples() -> None:
    from typer.testing import CliRunner

    from toolkit.cli import ABOUT, app

    runner = CliRunner()
    emperor = run_toolkit("emperor", "-h")  # it execs the Emperor: not in this process
    assert emperor.returncode == 0 and "Examples:\n  $ toolkit emperor" in emperor.stdout
    for command in set(ABOUT) - {"emperor"}:
        shown = runner.invoke(app, [*command.split(), "-h"])
        assert shown.exit_code == 0, (command, shown.output)
        assert "Examples:\n    $ toolkit " in shown.output, command
    summary = runner.invoke(app, ["-h"]).output
    commands = summary.split("Commands:")[1]
    assert "..." not in commands, "no summary cut mid-sentence"


# What the Emperor's memory budget leaves out (docs/benchmark-analysis.md measures each):
# typing 0.5 MB, shutil 0.6 MB, logging 1.8 MB, asyncio 5.5 MB, OpenSSL's hashlib 3.9 MB,
# traceback 1.7 MB (loaded only on a bug), and the CLI's own libraries.
NOT_IN_THE_EMPEROR = (
    "typing", "shutil", "logging", "asyncio", "_hashlib", "ssl", "traceback",
    "jinja2", "typer", "configobj", "rich", "psutil",
)  # fmt: skip


def test_the_emperor_loads_none_of_what_its_memory_budget_leaves_out() -> None:
    """The Emperor's modules, probes and death reader included, as its process imports them."""
    modules = (
        "import sys, toolkit.emperor.main, toolkit.emperor.probe, toolkit.emperor.deaths; "
        "print(' '.join(sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", modules], capture_output=True, text=True, check=True
    ).stdout.split()
    assert [name for name in NOT_IN_THE_EMPEROR if name in loaded] == []
