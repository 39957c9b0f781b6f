"""One look at a whole Emperor: what it says of each vassal (state, release, restarts, deaths)
with what each vassal's own stats server says of its workers, or of a router's nodes.
`toolkit top`, the metrics and the status page are three views of these samples."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from toolkit import stats, uwsgi_config
from toolkit.emperor import control
from toolkit.emperor.status import VassalStatus
from toolkit.errors import ToolkitError

# What a sample waits for the Emperor and for the stats servers (a stopped master never
# answers: its vassal shows without workers, the others are not held up).
ANSWER_WITHIN = 2.0


@dataclass(frozen=True)
class VassalView:
    status: VassalStatus
    stats: stats.InstanceStats | None
    problem: str | None = None
    """Why there are no stats: no stats server in its file, not answering..."""
    read: float = 0.0
    """time.monotonic() when its stats were read (`top` reads those off its screen less
    often)."""
    rates: Mapping[str, float] = field(default_factory=dict)
    """Requests per second between its last two reads, by counter (InstanceStats.counters);
    empty after its first read."""

    @property
    def key(self) -> str:
        """The vassal's file: two releases of one service are two vassals for a while."""
        return self.status.config


@dataclass(frozen=True)
class Sample:
    wall: float
    """time.time() when it was taken."""
    vassals: tuple[VassalView, ...]

    def find(self, key: str) -> VassalView | None:
        return self._by_key.get(key)

    @functools.cached_property
    def _by_key(self) -> dict[str, VassalView]:
        return {v.key: v for v in self.vassals}


@dataclass
class Watch:
    """What a viewer keeps from one sample to the next: where each vassal's stats server
    listens (read from its file once per content), each vassal's last view (for its rates,
    and for `top`, which reads a vassal off its screen only every `every` seconds), its
    workers' memory (read again every `every` seconds), and when the Emperor last read its
    vassals' memory and CPU (again every `every` seconds: it costs the Emperor a walk over
    /proc)."""

    run_dir: Path
    base: Path
    """Where the Emperor's relative vassal paths start: its working folder."""
    every: float = 0.0
    memory: stats.ResidentMemory = field(default_factory=stats.ResidentMemory)
    sockets: dict[tuple[str, str], Path | str] = field(default_factory=dict)
    usage_read: float = float("-inf")
    last: dict[str, VassalView] = field(default_factory=dict)

    @classmethod
    def of_emperor(cls, run_dir: Path, every: float = 0.0) -> Watch:
        base = control.emperor_cwd(run_dir) or Path.cwd()
        return cls(run_dir, base, every, stats.ResidentMemory(every))

    def socket_of(self, vassal: VassalStatus) -> Path | str:
        key = (vassal.config, vassal.digest)
        if key not in self.sockets:
            self.sockets[key] = stats_socket(self.base / vassal.config)
        return self.sockets[key]

    def statuses(self) -> list[VassalStatus]:
        """Every `every` seconds with memory and CPU read again; between, a glance: the
        Emperor's figures from then."""
        now = time.monotonic()
        fresh = now - self.usage_read >= self.every
        if fresh:
            self.usage_read = now
        return control.status(self.run_dir, timeout=ANSWER_WITHIN, usage=fresh)

    def take(self, first: Collection[str] | None = None) -> Sample:
        """A sample of every vassal; ToolkitError (NoEmperor) when no Emperor answers.
        `first`: the vassals (keys) whose stats are read now; the others keep their last
        read until it is `every` seconds old, or they changed. None: every vassal's now."""
        vassals = self.statuses()
        now = time.monotonic()
        due = [v for v in vassals if first is None or v.config in first or self._aged(v, now)]
        where = {v.config: self.socket_of(v) for v in due}
        answers = stats.read_all(
            {key: path for key, path in where.items() if isinstance(path, Path)}, ANSWER_WITHIN
        )
        views = []
        for vassal in vassals:
            if vassal.config not in where:
                views.append(replace(self.last[vassal.config], status=vassal))
                continue
            found: stats.InstanceStats | None = None
            problem = where[vassal.config] if isinstance(where[vassal.config], str) else None
            answer = answers.get(vassal.config)
            if isinstance(answer, str):
                problem = answer if vassal.pid else "not running"
            elif answer is not None:
                try:
                    found = stats.parse(answer, self.memory.of)
                except ValueError as error:
                    problem = str(error)
            rates = _rates(self.last.get(vassal.config), found, now)
            views.append(VassalView(vassal, found, str(problem) if problem else None, now, rates))
        self.last = {view.key: view for view in views}
        running = {w.pid for v in views if v.stats for w in v.stats.workers if w.running}
        self.memory.keep_only(running)
        return Sample(time.time(), tuple(views))

    def _aged(self, vassal: VassalStatus, now: float) -> bool:
        """Its last read is old, or no longer its own (another file, another master)."""
        last = self.last.get(vassal.config)
        return (
            last is None
            or now - last.read >= self.every
            or (last.status.digest, last.status.pid) != (vassal.digest, vassal.pid)
        )


def stats_socket(config: Path) -> Path | str:
    """The stats socket of the vassal file `config`, or why it has none."""
    try:
        machine = uwsgi_config.LocalMachine(cwd=config.parent, env=os.environ)
        loaded = uwsgi_config.load(config, machine)
    except (OSError, ToolkitError) as error:
        return f"its file cannot be read: {error}"
    setting = loaded.last("stats", "stats-server", "http-stats", "http-stats-server", "http-ss")
    if setting is None:
        return "no stats server in its file"
    if ":" in setting.value and not setting.value.startswith(("/", ".")):
        return f"its stats server is not a unix socket: {setting.value}"
    chdir = loaded.last("chdir")
    base = Path(chdir.value) if chdir is not None else config.parent
    return Path(os.path.normpath(base / setting.value))


def _rates(
    earlier: VassalView | None, found: stats.InstanceStats | None, now: float
) -> dict[str, float]:
    """Requests per second since the `earlier` read. A counter that went down (a respawned
    worker, a restarted vassal) counts from zero."""
    if earlier is None or earlier.stats is None or found is None or now <= earlier.read:
        return {}
    elapsed, then = now - earlier.read, earlier.stats.counters
    rates = {}
    for name, count in found.counters.items():
        previous = then.get(name, 0)
        rates[name] = (count - previous if count >= previous else count) / elapsed
    return rates


def as_json(sample: Sample) -> list[dict[str, Any]]:
    """A sample for machines: each vassal's status as `toolkit status --json` gives it, with
    its stats (workers, nodes, listen queue) or why there are none."""
    return [
        {
            **view.status.as_json(),
            "stats": asdict(view.stats) if view.stats is not None else None,
            "stats_problem": view.problem,
        }
        for view in sample.vassals
    ]
