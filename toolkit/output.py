"""What the CLI prints: lines, coloured only on a terminal (NO_COLOR honoured), and aligned
tables, with a few escape codes instead of a terminal library to keep commands quick."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TextIO

COLOURS = {"red": "31", "green": "32", "yellow": "33", "dim": "2", "bold": "1"}


def coloured(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR")


def paint(text: str, colour: str | None, stream: TextIO) -> str:
    if colour is None or not coloured(stream):
        return text
    return f"\033[{COLOURS[colour]}m{text}\033[0m"


def say(text: str = "", colour: str | None = None) -> None:
    sys.stdout.write(paint(text, colour, sys.stdout) + "\n")


def warn(text: str, colour: str | None = None) -> None:
    sys.stderr.write(paint(text, colour, sys.stderr) + "\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, one space apart, a header line first."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [
        " ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)
