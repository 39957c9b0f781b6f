"""The only writer to the terminal and the per-vassal log files: one line per event, never mixed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TextIO

from rich.console import Console
from rich.text import Text

from toolkit.emperor.events import EMPEROR, Event, Kind

PALETTE = (
    "cyan",
    "magenta",
    "green",
    "yellow",
    "blue",
    "bright_red",
    "bright_cyan",
    "bright_magenta",
)
EVENT_STYLES = {
    Kind.READY: "bold green",
    Kind.LOYAL: "green",
    Kind.CRASHED: "bold red",
    Kind.THROTTLED: "bold red",
    Kind.BACKOFF: "yellow",
    Kind.WARNING: "yellow",
    Kind.STOPPED: "dim",
}


class Printer:
    """Prefixes each line with its vassal's name in a colour of its own; also logs to files."""

    def __init__(self, console: Console, *, quiet: bool = False, logs_dir: Path | None = None):
        self.console = console
        self.quiet = quiet
        self.logs_dir = logs_dir
        self._colours: dict[str, str] = {EMPEROR: "bold white"}
        self._width = len(EMPEROR)
        self._logs: dict[str, TextIO] = {}

    def show(self, event: Event) -> None:
        colour = self._colour(event.vassal)
        if event.kind is Kind.OUTPUT:
            if not self.quiet:
                self.console.print(
                    Text.assemble((f"{event.vassal:<{self._width}} | ", colour), event.text),
                    soft_wrap=True,
                )
        else:
            words = event.kind.value if event.kind is not Kind.INFO else ""
            detail = f"{words}: {event.text}" if words and event.text else words or event.text
            style = EVENT_STYLES.get(event.kind, "bold")
            self.console.print(
                Text.assemble((f"{event.vassal:<{self._width}} ▸ ", colour), (detail, style)),
                soft_wrap=True,
            )
        self._log(event)

    def _colour(self, name: str) -> str:
        if name not in self._colours:
            self._colours[name] = PALETTE[(len(self._colours) - 1) % len(PALETTE)]
            self._width = max(self._width, len(name))
        return self._colours[name]

    def _log(self, event: Event) -> None:
        if self.logs_dir is None or event.vassal == EMPEROR:
            return
        stream = self._logs.get(event.vassal)
        if stream is None:
            try:
                self.logs_dir.mkdir(parents=True, exist_ok=True)
                path = self.logs_dir / f"{event.vassal.replace('/', '_')}.log"
                stream = self._logs[event.vassal] = path.open("a", encoding="utf-8", buffering=1)
            except OSError as error:
                self.logs_dir = None
                self.console.print(f"{EMPEROR} ▸ warning: cannot write logs: {error}")
                return
        if event.kind is Kind.OUTPUT:
            stream.write(event.text + "\n")
        else:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.time))
            stream.write(f"[toolkit {stamp}] {event.kind.value} {event.text}\n")

    def close(self) -> None:
        for stream in self._logs.values():
            stream.close()
        self._logs.clear()
