"""What each vassal's processes use, read from /proc when `status` asks: the resident memory
and CPU time of every process in the vassal's process group (its master, workers, router
gateways), summed."""

from __future__ import annotations

import os
from dataclasses import dataclass

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    rss: int
    """Bytes resident in memory."""
    cpu: float
    """Seconds of CPU, user and system, since each process started."""
    processes: int


def by_group(groups: set[int]) -> dict[int, Usage]:
    """Usage of each process group in `groups`; a group with no process left is absent."""
    totals: dict[int, list[float]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stream:
                fields = stream.read().rpartition(b")")[2].split()
        except OSError:
            continue
        # After the command's closing parenthesis: state, ppid, pgrp, ... utime (12),
        # stime (13), ... rss in pages (22).
        group = int(fields[2])
        if group in groups and fields[0] != b"Z":
            total = totals.setdefault(group, [0, 0.0, 0])
            total[0] += int(fields[21]) * PAGE
            total[1] += (int(fields[11]) + int(fields[12])) / TICKS
            total[2] += 1
    return {group: Usage(int(t[0]), round(t[1], 2), int(t[2])) for group, t in totals.items()}
