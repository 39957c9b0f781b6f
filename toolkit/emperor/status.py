"""What the Emperor says of a vassal over its control socket: one value type, made by the
Emperor and read by `toolkit status`, `up --detach` and releases."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from toolkit.emperor.machine import SERVING, State

TYPE_CHECKING = False  # the Emperor never loads typing (toolkit/emperor/__init__.py)
if TYPE_CHECKING:
    from typing import Any

FAILED = frozenset({State.THROTTLED, State.BACKOFF})


@dataclass(frozen=True)
class VassalStatus:
    name: str
    """The service (`uwsgi`), whatever the file (`uwsgi@ID.ini`) it runs."""
    release: str
    """The release it runs (the part of its file name after `@`); "" for none."""
    state: State
    pid: int | None
    restarts: int
    uptime: float | None
    last_exit: str | None
    config: str
    digest: str
    log_problem: str | None = None
    """Why its log file is not written now (a full disk...), and how many lines were lost."""
    rss: int | None = None
    """Bytes its processes hold in memory, all of them (master, workers, gateways)."""
    cpu: float | None = None
    """Seconds of CPU its processes used, all of them."""
    health: str | None = None
    """Its last health check's failure; None when it passed (or it has none)."""
    worker_deaths: int = 0
    """Its workers' ends its master reported (crashes, harakiri, recycling)."""
    last_worker_death: str | None = None
    """The last of them, explained."""
    worker_deaths_by_cause: dict[str, int] | None = None
    """Their count by kind: harakiri, oom, crash, recycled, exit, signal (deaths.py)."""
    recent_worker_deaths: list[tuple[float, str]] | None = None
    """The last few of them: (when, as epoch seconds; what), oldest first."""

    @property
    def serving(self) -> bool:
        return self.state in SERVING

    @property
    def answering(self) -> bool:
        """Serving, or reloading gracefully (its socket stays open, requests wait in it):
        what `status` counts as healthy."""
        return self.serving or self.state is State.RELOADING

    @property
    def failed(self) -> bool:
        return self.state in FAILED

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "state": self.state.value}

    @classmethod
    def from_json(cls, data: Any) -> VassalStatus:
        """Raises ValueError for anything that is not a vassal's status."""
        if not isinstance(data, dict) or data.keys() != _FIELD_NAMES:
            raise ValueError(f"not a vassal status: {str(data)[:80]}")
        return cls(**{**data, "state": State(data["state"])})


_FIELD_NAMES = frozenset(f.name for f in fields(VassalStatus))
