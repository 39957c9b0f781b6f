"""The Emperor: run exactly the vassals the globs name, and serve the control socket."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

from toolkit.emperor import control, usage, watcher
from toolkit.emperor.child import UwsgiSpawner
from toolkit.emperor.config import VassalConfig
from toolkit.emperor.containment import ProcessTree, containment
from toolkit.emperor.events import EMPEROR, Event, Kind
from toolkit.emperor.health import LazyProber
from toolkit.emperor.listeners import Listeners
from toolkit.emperor.loop import Loop
from toolkit.emperor.machine import SERVING
from toolkit.emperor.notify import Notifier
from toolkit.emperor.options import EmperorOptions
from toolkit.emperor.printer import Printer
from toolkit.emperor.site import SiteCheck
from toolkit.emperor.vassal import Vassal
from toolkit.errors import ExitCode, ToolkitError

TYPE_CHECKING = False  # the Emperor never loads typing (toolkit/emperor/__init__.py)
if TYPE_CHECKING:
    from typing import Any

    from toolkit.emperor.child import Spawner
    from toolkit.emperor.clock import Cancellable, Timers


class Emperor:
    def __init__(
        self,
        patterns: list[str],
        options: EmperorOptions,
        *,
        printer: Printer,
        rescan_every: float = watcher.RESCAN_EVERY,
        spawner: Spawner | None = None,
        timers: Timers | None = None,
    ) -> None:
        self.patterns = patterns
        self.options = options
        self.uwsgi = options.uwsgi or Path("uwsgi")
        self.run_dir = options.run_dir
        self.printer = printer
        self.rescan_every = rescan_every
        self._failed = False
        # Vassals' uwsgi sockets, bound here so that they outlive a crashed vassal.
        self.listeners = Listeners() if options.hold_sockets else None
        self.loop = Loop()
        self.containment = containment() if options.cgroups and spawner is None else ProcessTree()
        self.spawner = spawner or UwsgiSpawner(self.uwsgi, self.loop, self.containment)
        self.timers = timers or self.loop
        self.prober = LazyProber(self.loop)
        self.site = SiteCheck(
            options.serving,
            self.prober,
            self.timers,
            self._all_serving,
            self._site_answered,
            partial(self.emit, Kind.WARNING),
        )
        self.vassals: dict[str, Vassal] = {}
        # Vassals removed from `vassals` and not stopped yet: their successor waits.
        self._stopping: dict[str, Vassal] = {}
        self._warned: dict[Path, str] = {}
        self._leaving = False
        self._watching: watcher.Watching | None = None
        self._server: control.Server | None = None
        self._rescan_soon: tuple[float, Cancellable] | None = None
        self.scanner = watcher.Scanner()
        self.notifier = Notifier()
        self._reserve: int | None = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self._last_usage: dict[int, usage.Usage] = {}

    def emit(self, kind: Kind, text: str) -> None:
        self.show(Event(EMPEROR, kind, text))

    def show(self, event: Event) -> None:
        self.printer.show(event)
        if event.kind not in {Kind.OUTPUT, Kind.INFO, Kind.WARNING}:
            self._count_serving()

    def _count_serving(self) -> None:
        """Tell systemd how many vassals serve, and that the site does once it answers (it
        is asked as soon as every vassal serves)."""
        self.site.ask()
        vassals = list(self.vassals.values())
        count = sum(v.state in SERVING for v in vassals)
        self.notifier.serving(count, len(vassals), answering=self.site.done)

    def _all_serving(self) -> bool:
        vassals = self.vassals.values()
        return not self._leaving and bool(vassals) and all(v.state in SERVING for v in vassals)

    def _site_answered(self) -> None:
        for address in self.options.serving:
            self.printer.show(Event(EMPEROR, Kind.INFO, f"serving {address}"))
        self._count_serving()

    def run(self) -> int:
        """Supervise until SIGINT, SIGTERM or `toolkit down`; always stop every vassal."""
        control.prepare_run_dir(self.run_dir)
        for number in (signal.SIGINT, signal.SIGTERM):
            reason = f"signal {number.name} from the user"
            self.loop.add_signal_handler(number, partial(self.shutdown, reason))
        self.loop.add_signal_handler(signal.SIGHUP, self._reopen_logs)
        self._server = control.Server(self.run_dir, self._handle, self.loop)
        if self.notifier.watchdog:
            self._watchdog()
        self.emit(Kind.INFO, f"pid {os.getpid()}, uwsgi {self.uwsgi}")
        self.emit(Kind.INFO, f"what a vassal leaves behind ends with it: {self.containment.kind}")
        self.emit(Kind.INFO, f"watching {', '.join(self.patterns)}")
        try:
            self._watching = watcher.Watching(
                self.patterns, self.loop, self.reconcile, self.rescan_every
            )
        except ToolkitError as error:
            self.emit(Kind.WARNING, str(error))
            self._failed = True
            self.shutdown(str(error))
        else:
            self.reconcile()
            self._count_serving()
        try:
            self.loop.run()
        finally:
            if self._reserve is not None:
                os.close(self._reserve)
            self.containment.close()
            self.notifier.close()
            control.cleanup(self.run_dir)
            self.emit(Kind.INFO, "bye")
            self.printer.close()
            self.loop.close()
        # Non-zero when it could not do its job, so systemd's Restart=on-failure restarts it.
        return ExitCode.USAGE if self._failed else ExitCode.OK

    def _watchdog(self) -> None:
        """WATCHDOG=1 at half the unit's WatchdogSec, from the loop: a loop that hangs stops
        it, and systemd restarts the Emperor."""
        if self._leaving or not self.notifier.watchdog:
            return
        self.notifier.send("WATCHDOG=1")
        self.notifier.send_ready()
        self.loop.call_later(self.notifier.watchdog / 2, self._watchdog)

    def _reopen_logs(self) -> None:
        """SIGHUP, as logrotate's postrotate sends it: every log is opened anew."""
        self.printer.logs.reopen()
        self.emit(Kind.INFO, "SIGHUP: log files opened anew")

    def shutdown(self, reason: str) -> None:
        """Stop watching and answering, stop every vassal, and end the loop once they are."""
        if self._leaving:
            return
        self._leaving = True
        if self._watching is not None:
            self._watching.close()
        if self._server is not None:
            self._server.close()
        if self._rescan_soon is not None:
            self._rescan_soon[1].cancel()
        self.site.cancel()
        self.emit(Kind.INFO, f"stopping every vassal ({reason})")
        leaving = self.every_vassal()
        remaining = set(map(id, leaving))

        def one_less(vassal: Vassal) -> None:
            remaining.discard(id(vassal))
            if not remaining:
                self.loop.stop()

        if not leaving:
            self.loop.stop()
        for vassal in leaving:
            vassal.when_stopped(partial(one_less, vassal))
            vassal.request_stop(reason)

    def reconcile(self) -> None:
        """Start, reload or stop whatever differs between the files and the running vassals."""
        with self._spare_fd():
            found = self.scanner.scan(self.patterns, trust=self.options.trust_any_config)
            if self._watching is not None:
                self._watching.watch.follow(config.path for config in found.configs.values())
        for config in found.configs.values():
            self._warned.pop(config.path, None)
        for path, digest in found.not_vassals.items():
            self._warn_once(
                path, digest, f"{path} has no [uwsgi] section: not a vassal, not started"
            )
        for path, reason in found.refused.items():
            self._warn_once(
                path, reason, f"{path} refused: {reason}; --trust-any-config runs it anyway"
            )
        for path, reason in found.rejected.items():
            self._warn_once(path, reason, f"{path} not run: {reason}")
        for path, reason in {**found.unreadable, **found.unlisted}.items():
            self._warn_once(
                path, reason, f"cannot read {path} now ({reason}): what runs keeps running"
            )
        running = {v.config.path for v in self.vassals.values()}
        for path, reason in found.held.items():
            keeps = "; its vassal is left as it is" if path in running else ""
            self._warn_once(
                path,
                reason,
                f"{path} not run: {reason}{keeps} (if it was edited by hand, render it again "
                "or delete that line)",
            )
        for name, vassal in list(self.vassals.items()):
            if name not in found.configs and not found.keeps(vassal.config.path):
                path = vassal.config.path
                refusal = found.refused.get(path) or found.rejected.get(path)
                self._retire(
                    name, f"config refused: {refusal}" if refusal else "config file removed"
                )
        for name, config in found.configs.items():
            current = self.vassals.get(name)
            if current is None:
                self._spawn(config)
            elif current.config.path != config.path or (
                current.done and current.config.digest != config.digest
            ):
                self._retire(name, f"config moved to {config.path}")
                self._spawn(config)
            elif current.config.digest != config.digest:
                current.reload(config, "config changed")
            elif current.config.stamp != config.stamp:
                # As with uWSGI's Emperor, touching a config reloads its vassal.
                current.reload(config, "config touched")
        if found.look_again_in is not None:
            self._look_again(found.look_again_in)

    @contextlib.contextmanager
    def _spare_fd(self) -> Iterator[None]:
        """One fd kept in reserve and given back for a scan, so that at the open-file limit
        the Emperor can still list and read its configs, and keeps what it runs."""
        if self._reserve is not None:
            os.close(self._reserve)
            self._reserve = None
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                self._reserve = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)

    def _warn_once(self, path: Path, why: str, text: str) -> None:
        """Say it once per file and reason, again only after the file was fine in between."""
        if self._warned.get(path) != why:
            self._warned[path] = why
            self.emit(Kind.WARNING, text)

    def _look_again(self, delay: float) -> None:
        when = self.timers.now() + delay
        if self._rescan_soon is not None:
            if self._rescan_soon[0] <= when:
                return
            self._rescan_soon[1].cancel()
        self._rescan_soon = (when, self.timers.call_later(delay, self._rescan))

    def _rescan(self) -> None:
        self._rescan_soon = None
        if not self._leaving:
            self.reconcile()

    def _spawn(self, config: VassalConfig) -> None:
        vassal = Vassal(
            config,
            spawner=self.spawner,
            timers=self.timers,
            publish=self.show,
            options=self.options,
            listeners=self.listeners,
            after=self._stopping.get(config.name),
            prober=self.prober,
        )
        self.vassals[config.name] = vassal
        vassal.start()

    def _retire(self, name: str, reason: str) -> None:
        """Stop it; a vassal spawned under its name meanwhile starts once it has stopped."""
        vassal = self.vassals.pop(name)
        self._stopping[name] = vassal

        def forget() -> None:
            if self._stopping.get(name) is vassal:
                del self._stopping[name]

        vassal.when_stopped(forget)
        vassal.request_stop(reason)

    def every_vassal(self) -> list[Vassal]:
        """The current ones and those still stopping."""
        return [*self.vassals.values(), *self._stopping.values()]

    def reload(self, chosen: list[Vassal]) -> None:
        """`toolkit reload`: running vassals reload gracefully, stopped ones start again."""
        for vassal in chosen:
            if vassal.done:
                self._spawn(vassal.config)
            else:
                vassal.reload(reason="asked by `toolkit reload`")

    def _handle(self, request: dict[str, Any], answer: control.Answer) -> None:
        """One control request: its command, from the table, with the vassal it names."""
        command = COMMANDS.get(str(request.get("command")))
        if command is None:
            answer({"ok": False, "error": f"unknown command {request.get('command')!r}"})
            return
        name = request.get("name")
        chosen = [
            vassal
            for key, vassal in self.vassals.items()
            if name is None or name in {key, vassal.config.service}
        ]
        if name is not None and not chosen:
            known = ", ".join(sorted({v.config.service for v in self.vassals.values()}))
            answer({"ok": False, "error": f"no vassal named {name!r} (running: {known or 'none'})"})
            return
        command(self, chosen, answer)

    def _status_command(self, chosen: list[Vassal], answer: control.Answer) -> None:
        used = usage.by_group({v.pid for v in chosen if v.pid})
        self._last_usage = used
        self._answer_status(chosen, answer, used)

    def _glance_command(self, chosen: list[Vassal], answer: control.Answer) -> None:
        """`status` with the memory and CPU the last `status` read, not read again (what
        `toolkit top` asks between its reads: the walk over /proc is most of the cost)."""
        self._answer_status(chosen, answer, self._last_usage)

    def _answer_status(
        self, chosen: list[Vassal], answer: control.Answer, used: dict[int, usage.Usage]
    ) -> None:
        vassals = []
        for vassal in chosen:
            found = used.get(vassal.pid or 0)
            status = replace(
                vassal.status(),
                log_problem=self.printer.logs.problem(vassal.config.service),
                rss=found.rss if found else None,
                cpu=found.cpu if found else None,
            )
            vassals.append(status.as_json())
        answer({"ok": True, "pid": os.getpid(), "vassals": vassals, "announced": self.site.done})

    def _reload_command(self, chosen: list[Vassal], answer: control.Answer) -> None:
        self.reload(chosen)
        answer({"ok": True, "reloaded": sorted({v.config.service for v in chosen})})

    def _stop_command(self, chosen: list[Vassal], answer: control.Answer) -> None:
        """Stop the named vassal (every instance of it); answer once all have stopped."""
        if len({v.config.service for v in chosen}) != 1:
            answer({"ok": False, "error": "name one vassal to stop"})
            return
        remaining = set(map(id, chosen))
        names = sorted({v.config.service for v in chosen})

        def one_less(vassal: Vassal) -> None:
            remaining.discard(id(vassal))
            if not remaining:
                answer({"ok": True, "stopped": names})

        for vassal in chosen:
            vassal.when_stopped(partial(one_less, vassal))
            vassal.request_stop("asked by `toolkit stop`")

    def _down_command(self, chosen: list[Vassal], answer: control.Answer) -> None:
        answer({"ok": True, "pid": os.getpid(), "stop_timeout": self.options.stop_timeout})
        self.shutdown("asked by `toolkit down`")


if TYPE_CHECKING:
    Command = Callable[[Emperor, list[Vassal], control.Answer], None]
COMMANDS: dict[str, Command] = {
    "status": Emperor._status_command,
    "glance": Emperor._glance_command,
    "reload": Emperor._reload_command,
    "stop": Emperor._stop_command,
    "down": Emperor._down_command,
}
"""What the control socket answers to: `toolkit status` (and `glance`, the same without
memory and CPU), `reload`, `stop` and `down`."""
