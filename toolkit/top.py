"""`toolkit top`: every vassal of an Emperor and its workers on one screen, redrawn every
second. `frame` makes the lines from samples (pure, tested as text); `watch` is the
terminal's loop (curses), `once` the one frame printed where there is no terminal."""

from __future__ import annotations

import contextlib
import curses
import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from toolkit.observe import Sample, VassalView

# Sort keys: the key pressed (and `--sort`'s value) -> what it orders by, largest first
# except the name.
SORTS: dict[str, str] = {
    "n": "name",
    "r": "req/s",
    "t": "requests",
    "m": "memory",
    "s": "restarts",
}
MB = 1024 * 1024
# Seconds between two reads of a worker's memory, and of a vassal off the screen (what the
# screen shows is read every refresh).
SLOWER_EVERY = 5.0
# The lines above the vassals: title, keys, a blank line, the column names.
HEADER_LINES = 4


# Takes a sample: `Watch.take`, reading the stats of the vassals named now (None: all).
Taker = Callable[[Collection[str] | None], Sample]


@dataclass
class View:
    """What the reader chose, and the listen-queue peaks seen since `top` started."""

    sort: str = "n"
    filter: str = ""
    peaks: dict[str, int] = field(default_factory=dict)

    def note(self, sample: Sample) -> None:
        for view in sample.vassals:
            if view.stats is not None:
                seen = self.peaks.get(view.key, 0)
                self.peaks[view.key] = max(seen, view.stats.listen_queue)


COLUMNS = (
    ("VASSAL", 20, "<"),
    ("STATE", 10, "<"),
    ("RELEASE", 16, "<"),
    ("PID", 7, ">"),
    ("RESTARTS", 8, ">"),
    ("REQUESTS", 9, ">"),
    ("REQ/S", 8, ">"),
    ("AVG MS", 8, ">"),
    ("EXC", 5, ">"),
    ("RSS MB", 8, ">"),
    ("LISTEN Q", 9, ">"),
)


def _row(*cells: str) -> str:
    parts = []
    for (_, width, align), cell in zip(COLUMNS, cells, strict=False):
        text = cell if len(cell) <= width else cell[: width - 1] + "…"
        parts.append(f"{text:{align}{width}}")
    return " ".join(parts).rstrip()


def frame(sample: Sample, view: View, width: int, height: int | None, title: str) -> list[str]:
    """The screen: a header, a line per vassal, a line per worker or router node under it;
    cut to `width`, and to `height` lines with a last line saying how many were left out."""
    # What the apps served (a router's requests are the same ones, passed on).
    apps = [v for v in sample.vassals if v.stats and v.stats.workers]
    timed = any(v.rates for v in apps)
    total = sum(v.rates.get("", 0.0) for v in apps)
    clock = time.strftime("%H:%M:%S", time.localtime(sample.wall))
    lines = [
        f"toolkit top · {title} · {len(sample.vassals)} vassal(s) · "
        f"{_rate(total) if timed else '-'} req/s · {clock}",
        f"sort: {SORTS.get(view.sort, view.sort)} (n r t m s) · filter: "
        f"{view.filter or '-'} (/) · q quits",
        "",
        _row(*(name for name, _, _ in COLUMNS)),
    ]
    shown = _listed(sample, view)
    if not shown:
        lines.append("(no vassal matches)" if view.filter else "(no vassal)")
    # Only what fits is formatted (100 vassals of 4 workers are 600 lines a second); the
    # rest is counted, and one last line says so.
    left_out = 0
    for vassal, fitting in _fitted(shown, height):
        if fitting:
            lines += _vassal_lines(vassal, view)[:fitting]
        left_out += _line_count(vassal) - fitting
    if left_out:
        lines.append(f"… {left_out} more line(s): a taller terminal shows them")
    return [line[:width] for line in lines]


def on_screen(sample: Sample, view: View, height: int) -> set[str]:
    """The vassals (keys) `frame` shows at least a line of: the ones read every second."""
    return {vassal.key for vassal, fitting in _fitted(_listed(sample, view), height) if fitting}


def _listed(sample: Sample, view: View) -> list[VassalView]:
    shown = [v for v in sample.vassals if view.filter in v.status.name]
    shown.sort(key=_order(view.sort))
    return shown


def _fitted(shown: list[VassalView], height: int | None) -> list[tuple[VassalView, int]]:
    """Each vassal with how many of its lines fit under the header (and above the line
    saying how many did not)."""
    counts = [(vassal, _line_count(vassal)) for vassal in shown]
    if height is None or HEADER_LINES + sum(count for _, count in counts) <= height:
        return counts
    room = height - HEADER_LINES - 1
    fitted = []
    for vassal, count in counts:
        fitted.append((vassal, min(count, max(room, 0))))
        room -= count
    return fitted


def _line_count(vassal: VassalView) -> int:
    found = vassal.stats
    if found is None:
        return 2 if vassal.problem and vassal.status.pid else 1
    return 1 + len(found.workers) + len(found.nodes)


def _order(sort: str) -> Callable[[VassalView], tuple[Any, ...]]:
    if sort == "r":
        return lambda v: (-v.rates.get("", 0.0), v.status.name)
    if sort == "t":
        return lambda v: (-(v.stats.requests if v.stats else 0), v.status.name)
    if sort == "m":
        return lambda v: (-(v.status.rss or 0), v.status.name)
    if sort == "s":
        return lambda v: (-v.status.restarts, v.status.name)
    return lambda v: (v.status.name, v.status.release)


def _vassal_lines(vassal: VassalView, view: View) -> list[str]:
    status, found, rates = vassal.status, vassal.stats, vassal.rates
    rate = rates.get("")
    running = [w for w in found.workers if w.running and w.requests] if found else []
    average = sum(w.avg_rt for w in running) / len(running) / 1000 if running else None
    queue = f"{found.listen_queue} ({view.peaks.get(vassal.key, 0)})" if found else "-"
    lines = [
        _row(
            status.name,
            str(status.state),
            status.release or "-",
            str(status.pid or "-"),
            str(status.restarts),
            str(found.requests) if found else "-",
            _rate(rate) if rate is not None else "-",
            f"{average:.2f}" if average is not None else "-",
            str(found.exceptions) if found and found.workers else "-",
            f"{status.rss / MB:.1f}" if status.rss else "-",
            queue if found and found.workers else "-",
        )
    ]
    if found is None:
        if vassal.problem and status.pid:
            lines.append(f"  (no stats: {vassal.problem})")
        return lines
    for worker in found.workers:
        worker_rate = rates.get(f"worker {worker.id}")
        lines.append(
            _row(
                f"  worker {worker.id}",
                worker.status,
                "",
                str(worker.pid or "-"),
                str(worker.respawns) if worker.running else "",
                str(worker.requests),
                _rate(worker_rate) if worker_rate is not None else "-",
                f"{worker.avg_rt / 1000:.2f}" if worker.requests else "-",
                str(worker.exceptions),
                f"{worker.rss / MB:.1f}" if worker.rss else "-",
            )
        )
    for node in found.nodes:
        node_rate = rates.get(f"node {node.name}")
        state = "dead" if node.dead else "node"
        lines.append(
            _row(
                f"  → {node.name}",
                state,
                node.key,
                "",
                "",
                str(node.requests),
                _rate(node_rate) if node_rate is not None else "-",
            )
        )
    return lines


def _rate(value: float) -> str:
    return f"{value:.1f}"


def watch(take: Taker, view: View, interval: float, title: str) -> None:
    """The live view, until `q` (or Ctrl-C)."""
    # The terminal's own size, followed as it changes: LINES and COLUMNS in the environment
    # would pin it (ncurses prefers them to asking the terminal).
    for pinned in ("LINES", "COLUMNS"):
        os.environ.pop(pinned, None)
    with contextlib.suppress(KeyboardInterrupt):
        curses.wrapper(_loop, take, view, interval, title)


def _loop(
    screen: curses.window,
    take: Taker,
    view: View,
    interval: float,
    title: str,
) -> None:
    curses.curs_set(0)
    drawn_for = screen.getmaxyx()
    wanted: set[str] | None = None  # every vassal, the first time
    while True:
        sample = take(wanted)
        view.note(sample)
        deadline = time.monotonic() + interval
        while True:
            height, width = screen.getmaxyx()
            if (height, width) != drawn_for:
                screen.clear()  # repaint it all: the terminal has reflowed what it showed
                drawn_for = (height, width)
            screen.erase()
            for row, line in enumerate(frame(sample, view, width - 1, height, title)[:height]):
                screen.addnstr(row, 0, line, width - 1)
            screen.refresh()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            screen.timeout(max(1, int(left * 1000)))
            key = screen.getch()
            if key == -1:
                break  # time for the next sample
            if key in (ord("q"), ord("Q")):
                return
            if key == ord("/"):
                view.filter = _ask(screen, "filter (vassal name contains, empty: all): ")
            elif 0 <= key < 256 and chr(key) in SORTS:
                view.sort = chr(key)
            # anything else (a resize: KEY_RESIZE) only redraws
        wanted = on_screen(sample, view, screen.getmaxyx()[0])


def _ask(screen: curses.window, prompt: str) -> str:
    height, width = screen.getmaxyx()
    screen.move(height - 1, 0)
    screen.clrtoeol()
    screen.addnstr(height - 1, 0, prompt, width - 1)
    curses.echo()
    curses.curs_set(1)
    screen.timeout(-1)
    try:
        answer = screen.getstr(height - 1, min(len(prompt), width - 2), 40)
    finally:
        curses.noecho()
        curses.curs_set(0)
    return answer.decode(errors="replace").strip()
