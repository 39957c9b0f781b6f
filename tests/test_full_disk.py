"""Disk full and read-only folders: a clear one-line error, the old files intact, no crash loop."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import run_toolkit


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs (needs root and mount rights; skipped elsewhere)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def deployment_on(disk: Path) -> Path:
    root = disk / "site"
    assert run_toolkit("new", root).returncode == 0
    assert run_toolkit("render", root).returncode == 0
    return root


def test_disk_full_render_fails_in_one_line_and_keeps_the_old_file(small_disk: Path) -> None:
    root = deployment_on(small_disk)
    before = (root / "vassals" / "http.ini").read_text()
    with (small_disk / "filler").open("wb", buffering=0) as filler, contextlib.suppress(OSError):
        while True:
            filler.write(b"\0" * 4096)
    result = run_toolkit("render", root, "--set", "http_port=8100")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {root / 'vassals' / 'http.ini'}: cannot write: No space left on device"
    ]
    assert (root / "vassals" / "http.ini").read_text() == before
    assert sorted(p.name for p in (root / "vassals").iterdir()) == ["http.ini", "uwsgi.ini"]


def test_read_only_folder_render_fails_in_one_line(small_disk: Path) -> None:
    root = deployment_on(small_disk)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = run_toolkit("render", root, "--set", "http_port=8100", "--no-check")
    assert result.returncode == 2
    assert "cannot write: Read-only file system" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_read_only_log_folder_is_an_error_before_anything_starts(small_disk: Path) -> None:
    root = deployment_on(small_disk)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = run_toolkit("up", root, "--detach")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {root / 'logs'}: the logs folder is not writable: every vassal's lines would "
        "be lost (hint: make it writable for this user, or set log_dir in deploy.ini)"
    ]
    assert not list((root / "run").glob("emperor.*")), "nothing started"
