"""Fixtures shared by every test: process groups ended at teardown, and a check for orphans."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import Processes, free_ports, run_toolkit, uwsgi_pids
from toolkit.uwsgi_options import option_table


@pytest.fixture(autouse=True)
def no_orphans(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every uwsgi a test started must be gone once it ends; leftovers fail the test.

    Tests keep their configs under pytest's temporary folder, so their uwsgi processes are
    told apart from any other uwsgi on the machine by the path on their command line.
    """
    ours = tmp_path_factory.getbasetemp()
    before = uwsgi_pids(ours)
    yield
    deadline = time.monotonic() + 5
    while (left := uwsgi_pids(ours) - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"uwsgi processes left behind: {sorted(left)}"


CHECKOUT = Path(__file__).resolve().parent.parent


def _untracked() -> set[str]:
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=CHECKOUT, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return set(done.stdout.splitlines()) if done.returncode == 0 else set()


@pytest.fixture(autouse=True, scope="session")
def the_checkout_stays_clean() -> Iterator[None]:
    """No test writes into the checkout (a relative logs folder, a run folder): what git
    sees as new or changed after the session is what was there before it."""
    before = _untracked()
    yield
    written = sorted(_untracked() - before)
    assert not written, f"tests wrote into the checkout: {written}"


@pytest.fixture
def processes() -> Iterator[Processes]:
    started = Processes()
    yield started
    started.stop_all()


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    """A fresh deployment scaffolded by `toolkit new` from the default recipe."""
    root = tmp_path / "site"
    result = run_toolkit("new", root)
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def free_pair() -> tuple[int, int]:
    first, second = free_ports(2)
    return first, second


@pytest.fixture(scope="session")
def uwsgi_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The C source of the uWSGI installed here, unpacked from its sdist (pip has it cached
    from building it): what the option table and the tutorial's citations are checked on."""
    version = option_table().version
    folder = tmp_path_factory.mktemp("uwsgi-sdist")
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
    subprocess.run(
        [*pip, f"uwsgi=={version}", "-d", str(folder)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with tarfile.open(folder / f"uwsgi-{version}.tar.gz") as archive:
        archive.extractall(folder, filter="data")
    return folder / f"uwsgi-{version}"
