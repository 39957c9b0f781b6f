"""The one exception root: every failure a user can cause, with where and how to fix it."""

from __future__ import annotations

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
