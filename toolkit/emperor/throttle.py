"""When to respawn a vassal that exited unasked: a pure policy, with the clock passed in."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Throttle:
    """Exponential backoff per vassal; `max_spawns` exits within `window` seconds throttle it.

    A vassal that had been serving for `stable_after` seconds, or exits for the first
    time in the window, is respawned at once: a killed vassal should serve again as fast
    as a fresh one. An exit after settling also starts the count again, as uWSGI's
    Emperor throttles only vassals that never became loyal (core/emperor.c:695) and
    supervisord counts only retries that never reached `startsecs`: a serving app killed
    again and again (an OOM killer) keeps coming back. One that dies before settling
    waits `first_delay`, doubled per recent exit, up to `max_delay`; a throttled vassal
    stays down until its config changes or someone reloads it.
    """

    max_spawns: int = 5
    window: float = 30.0
    first_delay: float = 0.25
    # Reached only with --max-spawns raised; it bounds how long a vassal killed over and
    # over stays down once the kills stop.
    max_delay: float = 2.0
    stable_after: float = 1.0
    exits: list[float] = field(default_factory=list)

    def record_exit(self, now: float, served_for: float = 0.0) -> float | None:
        """Seconds to wait before respawning, or None when the vassal is now throttled."""
        if served_for >= self.stable_after:
            self.exits = [now]
            return 0.0
        self.exits = [t for t in self.exits if now - t < self.window] + [now]
        recent = len(self.exits)
        if recent >= self.max_spawns:
            return None
        if recent == 1:
            return 0.0
        return float(min(self.max_delay, self.first_delay * 2.0 ** (recent - 2)))

    def clear(self) -> None:
        self.exits.clear()
