"""The Emperor's own process: `python -m toolkit.emperor`, importing only what supervising needs.

`toolkit up` and `toolkit emperor` exec into it once rendering and checking are done, so
the long-running supervisor carries neither Jinja2 nor typer in its memory.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from toolkit.emperor.emperor import Emperor, run
from toolkit.emperor.printer import Printer
from toolkit.emperor.throttle import Throttle
from toolkit.emperor.vassal import HEARTBEAT_TOLERANCE
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


def main(arguments: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="toolkit emperor", description=__doc__)
    parser.add_argument("patterns", nargs="+")
    parser.add_argument("--uwsgi", type=Path)
    parser.add_argument("--run-dir", type=Path, default=Path("run"))
    parser.add_argument("--logs-dir", type=Path, default=Path("logs"))
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--trust-any-config", action="store_true")
    parser.add_argument("--max-spawns", type=int, default=Throttle.max_spawns)
    parser.add_argument("--window", type=float, default=Throttle.window)
    parser.add_argument("--backoff", type=float, default=Throttle.first_delay)
    parser.add_argument("--heartbeat-tolerance", type=float, default=HEARTBEAT_TOLERANCE)
    parser.add_argument("--serving", action="append", default=[])
    options = parser.parse_args(arguments)
    console = Console(highlight=False, soft_wrap=True, markup=False)
    limits = Throttle(options.max_spawns, options.window, options.backoff)
    try:
        emperor = Emperor(
            options.patterns,
            uwsgi=uwsgi_executable(options.uwsgi),
            run_dir=options.run_dir,
            printer=Printer(console, quiet=options.quiet, logs_dir=options.logs_dir),
            throttle=lambda: replace(limits, exits=[]),
            trust_any_config=options.trust_any_config,
            heartbeat_tolerance=options.heartbeat_tolerance,
            serving=options.serving,
        )
        return run(emperor)
    except ToolkitError as error:
        Console(stderr=True, highlight=False, soft_wrap=True).print(f"error: {error}", markup=False)
        return error.exit_code
