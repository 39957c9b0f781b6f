"""The site's public address (`up` passes it: `--serving http://HOST:PORT`), asked once every
vassal serves. A router answers only once its apps announced themselves to it (`subscribe-to`,
sent by their masters on their own clock), which can be after every vassal said it is ready:
until the site answers, it is not announced (`up` prints its URL, systemd hears READY=1, the
status answer says `announced`, which `up --detach` waits for)."""

from __future__ import annotations

from collections.abc import Callable

from toolkit.emperor.health import site_check

TYPE_CHECKING = False  # the Emperor never loads typing (toolkit/emperor/__init__.py)
if TYPE_CHECKING:
    from toolkit.emperor.clock import Cancellable, Timers
    from toolkit.emperor.health import LazyProber

# How soon a site that did not answer yet is asked again, and after how long without an
# answer that is said (once).
RETRY = 0.1
PATIENCE = 10.0


class SiteCheck:
    """Asks each address in turn until it answers, while `all_serving()`; `answered()` once
    they all did; `warn(text)` once when one stays silent for PATIENCE seconds."""

    def __init__(
        self,
        urls: tuple[str, ...],
        prober: LazyProber,
        timers: Timers,
        all_serving: Callable[[], bool],
        answered: Callable[[], None],
        warn: Callable[[str], None],
    ) -> None:
        self.unanswered = [(url, site_check(url)) for url in urls]
        self.prober, self.timers = prober, timers
        self.all_serving, self.answered, self.warn = all_serving, answered, warn
        self._asking: Cancellable | None = None
        self._silent_since: float | None = None
        self._silence_said = False

    @property
    def done(self) -> bool:
        return not self.unanswered

    def ask(self) -> None:
        """Start asking, unless it is already, or every address answered."""
        if self.unanswered and self._asking is None:
            self._ask()

    def cancel(self) -> None:
        if self._asking is not None:
            self._asking.cancel()
            self._asking = None

    def _ask(self) -> None:
        self._asking = None
        if self.all_serving():  # else asked again once they all serve
            self._asking = self.prober.probe(self.unanswered[0][1], self._heard)

    def _heard(self, problem: str | None) -> None:
        if problem is not None:
            now = self.timers.now()
            if self._silent_since is None:
                self._silent_since = now
            if now - self._silent_since >= PATIENCE and not self._silence_said:
                self._silence_said = True
                self.warn(
                    f"every vassal is ready, but {self.unanswered[0][0]} has not answered "
                    f"for {PATIENCE:g} s: {problem} (still asking)"
                )
            self._asking = self.timers.call_later(RETRY, self._ask)
            return
        self.unanswered.pop(0)
        if self.unanswered:
            self._ask()
            return
        self._asking = None
        self.answered()
