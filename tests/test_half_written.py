"""A config caught mid-write is never taken: sealed files are checked, fresh ones waited on."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from toolkit.emperor.watcher import PATIENCE_SECONDS, SETTLE_SECONDS, Scanner, scan
from toolkit.seal import broken, seal

CONFIG = "[uwsgi]\nstrict = true\nhttp-socket = 127.0.0.1:9\n"


@given(st.text(min_size=1).map(lambda text: text + "\n"), st.data())
def test_no_proper_prefix_of_a_sealed_file_passes_for_finished(
    text: str, data: st.DataObject
) -> None:
    content = seal(text).encode()
    assert broken(content) is None
    cut = data.draw(st.integers(0, len(content) - 1))
    part = content[:cut]
    assert broken(part) is not None or not part.endswith(b"\n"), "a prefix must look unfinished"


def test_a_file_without_seal_is_not_judged_by_it() -> None:
    assert broken(CONFIG.encode()) is None
    assert broken(b"") is None


def put(folder: Path, name: str, content: str, age: float) -> float:
    """Write a file and date it `age` seconds back; return the scan's "now"."""
    path = folder / name
    path.write_text(content)
    mtime = path.stat().st_mtime
    os.utime(path, (mtime - age, mtime - age))
    return mtime


def test_fresh_files_wait_and_then_are_taken_or_held(tmp_path: Path) -> None:
    """A fresh unsealed file waits to settle; a fresh sealed one that matches is complete
    by proof and is taken at once."""
    sealed = seal(CONFIG)
    now = put(tmp_path, "fresh.ini", CONFIG, SETTLE_SECONDS / 2)
    put(tmp_path, "fresh-sealed.ini", sealed, SETTLE_SECONDS / 2)
    put(tmp_path, "whole.ini", sealed, 2)
    put(tmp_path, "cut-recent.ini", sealed[:-5], PATIENCE_SECONDS / 2)
    put(tmp_path, "cut-old.ini", sealed[:-5], PATIENCE_SECONDS * 2)
    put(tmp_path, "midline-recent.ini", CONFIG[:-5], PATIENCE_SECONDS / 2)
    put(tmp_path, "midline-old.ini", CONFIG[:-5], PATIENCE_SECONDS * 2)
    put(tmp_path, "future.ini", CONFIG, -3600)
    found = scan([str(tmp_path / "*.ini")], now=now)
    assert sorted(found.configs) == ["fresh-sealed", "future", "midline-old", "whole"]
    assert sorted(p.name for p in found.waiting) == [
        "cut-recent.ini",
        "fresh.ini",
        "midline-recent.ini",
    ]
    assert [p.name for p in found.held] == ["cut-old.ini"]
    assert "does not match" in found.held[tmp_path / "cut-old.ini"]
    assert 0 < (found.look_again_in or 0) <= SETTLE_SECONDS


def test_a_scanner_rereads_a_file_it_read_while_fresh(tmp_path: Path) -> None:
    """A read made in the settle window may be mid-write, so it is not remembered, even if
    the rest of the write lands in the same clock tick (same size, same mtime)."""
    path = tmp_path / "web.ini"
    path.write_text(CONFIG)
    stamp, now = path.stat().st_mtime_ns, path.stat().st_mtime  # the scanner's own float
    scanner = Scanner()
    assert path in scanner.scan([str(tmp_path / "*.ini")], now=now).waiting
    path.write_text(CONFIG.replace("9", "8"))
    os.utime(path, ns=(stamp, stamp))
    later = scanner.scan([str(tmp_path / "*.ini")], now=now + 2).configs["web"]
    assert later.digest == scan([str(tmp_path / "*.ini")], now=now + 2).configs["web"].digest
    assert later.stamp == (path.stat().st_ino, len(CONFIG), stamp)


def test_a_scanner_reads_a_settled_file_once_until_its_stamp_moves(tmp_path: Path) -> None:
    path = tmp_path / "web.ini"
    path.write_text(CONFIG)
    os.utime(path, (1_000_000, 1_000_000))
    scanner = Scanner()
    first = scanner.scan([str(tmp_path / "*.ini")]).configs["web"]
    path.write_text(CONFIG.replace("9", "8"))  # same size; only the mtime tells
    os.utime(path, (1_000_001, 1_000_001))
    second = scanner.scan([str(tmp_path / "*.ini")]).configs["web"]
    assert second.digest != first.digest
