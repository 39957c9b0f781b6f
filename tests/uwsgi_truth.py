"""Ground truth for the checker: which lines real uWSGI refuses.

`uwsgi --strict --get socket --ini FILE` reads the config, applies every option and exits
before binding anything; with `strict` an unknown key stops it. It stops at the first
refusal, so the culprit line is found (by the key uWSGI names, else by the shortest
failing prefix of the file), commented out, and the run repeated until uWSGI is content.
The environment is empty: uWSGI turns every UWSGI_* variable into an option.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support import UWSGI

UNKNOWN = re.compile(r"unknown config directive: (.*)$", re.MULTILINE)
NEUTRALISED = "; neutralised by the ground-truth run"
MAX_REFUSALS = 30


@dataclass(frozen=True)
class Verdict:
    code: int
    output: str

    @property
    def refused(self) -> bool:
        return self.code != 0


def ask_uwsgi(path: Path, cwd: Path, section: str | None = None) -> Verdict:
    target = f"{path}:{section}" if section else str(path)
    result = subprocess.run(
        [str(UWSGI), "--strict", "--get", "socket", "--ini", target],
        cwd=cwd,
        env={},
        capture_output=True,
        text=True,
        timeout=20,
        stdin=subprocess.DEVNULL,
    )
    return Verdict(result.returncode, result.stdout + result.stderr)


def _key_of(line: str) -> str:
    text = line.strip(" \t\r")
    if not text or text[0] in ";#[":
        return "\0"
    return text.partition("=")[0].rstrip(" \t\r")


def _culprit(lines: list[str], path: Path, cwd: Path, verdict: Verdict) -> int:
    """The line (0-based) uWSGI refused: the only line with the key it names, or else the
    last line of the shortest prefix of the file that it refuses."""
    named = UNKNOWN.search(verdict.output)
    if named:
        matches = [i for i, line in enumerate(lines) if _key_of(line) == named.group(1)]
        if len(matches) == 1:
            return matches[0]
    low, high = 0, len(lines) - 1
    while low < high:
        middle = (low + high) // 2
        path.write_text("\n".join(lines[: middle + 1] + [""] * (len(lines) - middle - 1)))
        if ask_uwsgi(path, cwd).refused:
            high = middle
        else:
            low = middle + 1
    return low


def _neutralised(line: str) -> str:
    """A refused line made harmless; `end` keeps closing its block, as it did for uWSGI
    before the lookup that refused it (core/config.c, add_exported_option_do)."""
    return "endif =" if _key_of(line) == "end" else NEUTRALISED


def refused_lines(path: Path, cwd: Path) -> set[int]:
    """1-based numbers of the lines of `path` that uWSGI refuses; the file is left as found.

    Only for files whose refusals are their own lines (includes point at files that pass)."""
    original = path.read_text()
    lines = original.split("\n")
    refused: set[int] = set()
    try:
        for _ in range(MAX_REFUSALS):
            path.write_text("\n".join(lines))
            verdict = ask_uwsgi(path, cwd)
            if not verdict.refused:
                return refused
            index = _culprit(lines, path, cwd, verdict)
            refused.add(index + 1)
            lines[index] = _neutralised(lines[index])
        raise AssertionError(f"{path}: more than {MAX_REFUSALS} refusals")
    finally:
        path.write_text(original)
