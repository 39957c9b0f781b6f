"""The Emperor's own process: `python -m toolkit.emperor`, importing only what supervising needs.

`toolkit up` and `toolkit emperor` exec into it once rendering and checking are done, so
the long-running supervisor carries neither Jinja2 nor typer in its memory.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from toolkit.emperor.emperor import Emperor
from toolkit.emperor.machine import HEARTBEAT_TOLERANCE
from toolkit.emperor.printer import Printer
from toolkit.emperor.throttle import Throttle
from toolkit.errors import ToolkitError
from toolkit.installed import uwsgi_executable


def argv(
    patterns: list[str],
    *,
    uwsgi: Path,
    run_dir: Path,
    logs_dir: Path,
    quiet: bool = False,
    throttle: Throttle | None = None,
    trust_any_config: bool = False,
    heartbeat_tolerance: float = HEARTBEAT_TOLERANCE,
    serving: list[str] | None = None,
) -> list[str]:
    """The command line that starts this module with these settings."""
    limits = throttle or Throttle()
    return [
        sys.executable, "-m", "toolkit.emperor", *patterns,
        "--uwsgi", str(uwsgi), "--run-dir", str(run_dir), "--logs-dir", str(logs_dir),
        "--max-spawns", str(limits.max_spawns), "--window", str(limits.window),
        "--backoff", str(limits.first_delay), *(["--quiet"] if quiet else []),
        *(["--trust-any-config"] if trust_any_config else []),
        "--heartbeat-tolerance", str(heartbeat_tolerance),
        *[part for url in serving or [] for part in ("--serving", url)],
    ]  # fmt: skip


def at_least(low: float, kind: type[int] | type[float] = float) -> Callable[[str], float]:
    def read(text: str) -> float:
        value = kind(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {low:g} or more")
        return value

    return read


def parser() -> argparse.ArgumentParser:
    """The Emperor's options, defined once: `toolkit emperor`, `python -m toolkit.emperor`,
    `toolkit up` and the systemd unit all go through this parser."""
    options = argparse.ArgumentParser(
        prog="toolkit emperor",
        description="Run one uwsgi per config the globs match: respawn, reload on change, "
        "stop on removal.",
    )
    add = options.add_argument
    add("patterns", nargs="+", metavar="GLOB", help="configs to run, e.g. 'vassals/*.ini'")
    add("--uwsgi", type=Path, help="the uwsgi executable (default: the one beside toolkit)")
    add("--run-dir", type=Path, default=Path("run"), help="control socket and pid file")
    add("--logs-dir", type=Path, default=Path("logs"), help="one log file per vassal")
    add("--quiet", action="store_true", help="show the Emperor's events only")
    add(
        "--trust-any-config",
        action="store_true",
        help="also run configs that are world-writable or owned by another user",
    )
    add(
        "--max-spawns",
        type=at_least(1, int),
        default=Throttle.max_spawns,
        help=f"exits within --window, each before it served for {Throttle.stable_after:g} s, "
        "that throttle a vassal",
    )
    add("--window", type=at_least(0.1), default=Throttle.window, help="seconds exits count")
    add(
        "--backoff",
        type=at_least(0),
        default=Throttle.first_delay,
        help="first respawn delay after repeated exits (doubles)",
    )
    add(
        "--heartbeat-tolerance",
        type=at_least(1),
        default=HEARTBEAT_TOLERANCE,
        help="seconds of silence after which a vassal that sends heartbeats is respawned",
    )
    add(
        "--no-hold-sockets",
        dest="hold_sockets",
        action="store_false",
        help="let each vassal bind its `socket = IP:port` itself (by default the Emperor "
        "binds it and hands it over, so a crashed vassal's clients wait instead of failing)",
    )
    add("--serving", action="append", default=[], help="address to announce once all serve")
    return options


def main(arguments: list[str] | None = None) -> int:
    options = parser().parse_args(arguments)
    limits = Throttle(options.max_spawns, options.window, options.backoff)
    try:
        emperor = Emperor(
            options.patterns,
            uwsgi=uwsgi_executable(options.uwsgi),
            run_dir=options.run_dir,
            printer=Printer(quiet=options.quiet, logs_dir=options.logs_dir),
            throttle=lambda: replace(limits, exits=[]),
            trust_any_config=options.trust_any_config,
            heartbeat_tolerance=options.heartbeat_tolerance,
            serving=options.serving,
            hold_sockets=options.hold_sockets,
        )
        return emperor.run()
    except ToolkitError as error:
        sys.stderr.write(f"error: {error}\n")
        return error.exit_code
