"""Events are data: vassal tasks put them on one queue; the printer alone formats them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

EMPEROR = "emperor"


class Kind(StrEnum):
    OUTPUT = "output"
    SPAWNED = "spawned"
    READY = "ready"
    LOYAL = "loyal"
    RELOADING = "reloading"
    CRASHED = "crashed"
    BACKOFF = "backoff"
    THROTTLED = "throttled"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DIED = "died"
    UNHEALTHY = "unhealthy"
    HEALTHY = "healthy"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Event:
    vassal: str
    kind: Kind
    text: str = ""
    time: float = field(default_factory=time.time)
