"""One look at a whole Emperor: what it says of each vassal (state, release, restarts, deaths)
with what each vassal's own stats server says of its workers, or of a router's nodes.
`toolkit top`, the metrics and the status page are three views of these samples."""

from __future__ import annotations

import functools
import os
import time
from dataclasses import asdict, dataclass, field
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

    @property
    def key(self) -> str:
        """The vassal's file: two releases of one service are two vassals for a while."""
        return self.status.config


@dataclass(frozen=True)
class Sample:
    taken: float
    """time.monotonic() when it was taken."""
    wall: float
    vassals: tuple[VassalView, ...]

    def find(self, key: str) -> VassalView | None:
        return self._by_key.get(key)

    @functools.cached_property
    def _by_key(self) -> dict[str, VassalView]:
        return {v.key: v for v in self.vassals}


@dataclass
class Watch:
    """What a viewer keeps from one sample to the next: where each vassal's stats server
    listens (read from its file once per content), its workers' memory (read again every
    `every` seconds), and when the Emperor last read its vassals' memory and CPU (again every
    `every` seconds: it costs the Emperor a walk over /proc)."""

    run_dir: Path
    base: Path
    """Where the Emperor's relative vassal paths start: its working folder."""
    every: float = 0.0
    memory: stats.ResidentMemory = field(default_factory=stats.ResidentMemory)
    sockets: dict[tuple[str, str], Path | str] = field(default_factory=dict)
    usage_read: float = float("-inf")

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

    def take(self) -> Sample:
        """A sample of every vassal; ToolkitError (NoEmperor) when no Emperor answers."""
        vassals = self.statuses()
        where = {v.config: self.socket_of(v) for v in vassals}
        answers = stats.read_all(
            {key: path for key, path in where.items() if isinstance(path, Path)}, ANSWER_WITHIN
        )
        views = []
        for vassal in vassals:
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
            views.append(VassalView(vassal, found, str(problem) if problem else None))
        running = {w.pid for v in views if v.stats for w in v.stats.workers if w.running}
        self.memory.keep_only(running)
        return Sample(time.monotonic(), time.time(), tuple(views))


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


def per_second(before: Sample | None, after: Sample) -> dict[tuple[str, str], float]:
    """Requests per second between two samples: per vassal (key, ""), per worker
    (key, "worker N"), per router node (key, "node NAME"). A counter that went down
    (a respawned worker, a restarted vassal) counts from zero."""
    if before is None or after.taken <= before.taken:
        return {}
    elapsed = after.taken - before.taken
    rates: dict[tuple[str, str], float] = {}
    for view in after.vassals:
        earlier = before.find(view.key)
        if view.stats is None or earlier is None or earlier.stats is None:
            continue
        then = earlier.stats.counters
        for name, count in view.stats.counters.items():
            previous = then.get(name, 0)
            rates[(view.key, name)] = (count - previous if count >= previous else count) / elapsed
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
