"""The one exception root: every failure a user can cause, with where and how to fix it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

EXIT_USAGE = 2


@dataclass
class ToolkitError(Exception):
    """A failure the user can fix; the CLI prints it as one line and exits with `exit_code`."""

    message: str
    file: Path | str | None = None
    line: int | None = None
    hint: str | None = None
    exit_code: int = EXIT_USAGE

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
