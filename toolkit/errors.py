"""The one exception root: every failure a user can cause, with where and how to fix it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """Every exit code toolkit gives, as the README's table lists them (a test holds the two
    equal)."""

    OK = 0
    PROBLEMS = 1  # check found errors, a change --check would make, a refused command
    USAGE = 2  # bad input, or it cannot be done: a missing file, no uwsgi, no Emperor
    NOT_SERVING = 3  # `status`: a vassal (a named one, or any) is not serving
    NO_EMPEROR = 4  # `status`: no Emperor runs here
    INTERNAL = 70  # sysexits EX_SOFTWARE: a bug in toolkit, not in the input
    INTERRUPTED = 130  # Ctrl-C, outside the Emperor


@dataclass
class ToolkitError(Exception):
    """A failure the user can fix; the CLI prints it as one line and exits with `exit_code`."""

    message: str
    file: Path | str | None = None
    line: int | None = None
    hint: str | None = None
    exit_code: int = ExitCode.USAGE

    def __str__(self) -> str:
        where = ""
        if self.file is not None:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{where}{self.message}{hint}"


def did_you_mean(word: str, choices: Iterable[str], otherwise: str, cutoff: float = 0.6) -> str:
    """The hint for a misspelt name: the closest known one, or `otherwise`."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return f"did you mean {close[0]!r}?" if close else otherwise
