"""One look at a whole Emperor: what it says of each vassal (state, release, restarts, deaths)
with what each vassal's own stats server says of its workers, or of a router's nodes.
`toolkit top`, the metrics and the status page are three views of these samples."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
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
        return next((v for v in self.vassals if v.key == key), None)


@dataclass
class StatsSockets:
    """Where each vassal's stats server listens, as uWSGI reads its file (`stats`, or a
    router's `http-stats`, relative to its `chdir`); read once per file content."""

    base: Path
    """Where the Emperor's relative vassal paths start: its working folder."""
    known: dict[tuple[str, str], Path | str] = field(default_factory=dict)

    @classmethod
    def of_emperor(cls, run_dir: Path) -> StatsSockets:
        return cls(control.emperor_cwd(run_dir) or Path.cwd())

    def of(self, vassal: VassalStatus) -> Path | str:
        key = (vassal.config, vassal.digest)
        if key not in self.known:
            self.known[key] = stats_socket(self.base / vassal.config)
        return self.known[key]


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


def take(run_dir: Path, sockets: StatsSockets, rss: bool = True) -> Sample:
    """A sample of every vassal; ToolkitError (NoEmperor) when no Emperor answers."""
    vassals = control.status(run_dir, timeout=ANSWER_WITHIN)
    where = {v.config: sockets.of(v) for v in vassals}
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
                found = stats.parse(answer)
            except ValueError as error:
                problem = str(error)
        if found is not None and rss:
            found = stats.with_rss(found)
        views.append(VassalView(vassal, found, str(problem) if problem else None))
    return Sample(time.monotonic(), time.time(), tuple(views))


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
        then = dict(_counters(earlier.stats))
        for name, count in _counters(view.stats):
            previous = then.get(name, 0)
            rates[(view.key, name)] = (count - previous if count >= previous else count) / elapsed
    return rates


def _counters(found: stats.InstanceStats) -> Iterable[tuple[str, int]]:
    yield "", found.requests
    for worker in found.workers:
        if worker.running:
            yield f"worker {worker.id}", worker.requests
    for node in found.nodes:
        yield f"node {node.name}", node.requests


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
