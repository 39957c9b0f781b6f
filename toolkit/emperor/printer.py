"""The only writer to the terminal and the per-vassal log files: one line per event, never mixed.

Colour is a few ANSI escape codes, only on a terminal and without NO_COLOR: the Emperor is a
long-running process whose memory counts, and a terminal library would double it."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from toolkit.emperor.events import EMPEROR, Event, Kind
from toolkit.emperor.logfiles import LogFiles

TYPE_CHECKING = False  # the Emperor never loads typing (toolkit/emperor/__init__.py)
if TYPE_CHECKING:
    from typing import TextIO

# Foreground colours, one per vassal in turn (cyan, magenta, green, yellow, blue, bright...).
PALETTE = ("36", "35", "32", "33", "34", "91", "96", "95")
EVENT_STYLES = {
    Kind.READY: "1;32",
    Kind.LOYAL: "32",
    Kind.CRASHED: "1;31",
    Kind.THROTTLED: "1;31",
    Kind.BACKOFF: "33",
    Kind.UNHEALTHY: "1;33",
    Kind.DIED: "31",
    Kind.HEALTHY: "32",
    Kind.WARNING: "33",
    Kind.STOPPED: "2",
}
BOLD = "1"


class Printer:
    """Prefixes each line with its vassal's name in a colour of its own; also logs to files."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        quiet: bool = False,
        logs_dir: Path | None = None,
        colour: bool | None = None,
        timestamps: bool = False,
        log_max_bytes: int = 50 << 20,
        log_backups: int = 10,
    ):
        self.stream = stream or sys.stdout
        self.colour = (
            colour
            if colour is not None
            else self.stream.isatty() and not os.environ.get("NO_COLOR")
        )
        self.quiet = quiet
        self._colours: dict[str, str] = {EMPEROR: BOLD}
        self._width = len(EMPEROR)
        self.timestamps = timestamps
        self.logs = LogFiles(logs_dir, self._warn, max_bytes=log_max_bytes, backups=log_backups)

    def _paint(self, text: str, style: str) -> str:
        return f"\033[{style}m{text}\033[0m" if self.colour else text

    def _write(self, line: str) -> None:
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            # A closed terminal, or a full disk under the Emperor's own log (`up --detach`),
            # must not stop it: the line is lost, the vassals go on.
            pass

    def show(self, event: Event) -> None:
        colour = self._colour(event.vassal)
        clock = self._paint(time.strftime("%H:%M:%S ", time.localtime(event.time)), "2")
        when = clock if self.timestamps else ""
        if event.kind is Kind.OUTPUT:
            if not self.quiet:
                name = self._paint(f"{event.vassal:<{self._width}} | ", colour)
                self._write(when + name + event.text)
        else:
            words = event.kind.value if event.kind is not Kind.INFO else ""
            detail = f"{words}: {event.text}" if words and event.text else words or event.text
            name = self._paint(f"{event.vassal:<{self._width}} ▸ ", colour)
            self._write(when + name + self._paint(detail, EVENT_STYLES.get(event.kind, BOLD)))
        self._log(event)

    def _colour(self, name: str) -> str:
        if name not in self._colours:
            self._colours[name] = PALETTE[(len(self._colours) - 1) % len(PALETTE)]
            self._width = max(self._width, len(name))
        return self._colours[name]

    def _log(self, event: Event) -> None:
        if event.kind is Kind.OUTPUT:
            self.logs.write(event.vassal, event.text, event.time)
        else:
            self.logs.write(event.vassal, f"[toolkit] {event.kind.value} {event.text}", event.time)

    def _warn(self, text: str) -> None:
        self._write(f"{EMPEROR} ▸ " + self._paint(f"warning: {text}", EVENT_STYLES[Kind.WARNING]))

    def close(self) -> None:
        self.logs.close()
