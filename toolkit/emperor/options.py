"""The Emperor's options, as one frozen value: parsed once from its command line, built once by
`toolkit up` and the systemd unit, and handed to the Emperor, which hands it to each vassal.

Each option is one field here; its flag, help and parsing come from the field, so the parser
and the command line that starts the Emperor cannot disagree. A new option is a field here
and the code that reads it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from toolkit.emperor.throttle import Throttle

TYPE_CHECKING = False  # the Emperor never loads typing (toolkit/emperor/__init__.py)
if TYPE_CHECKING:
    from typing import Any

PROG = "toolkit emperor"


def _at_least(low: float, kind: type[int] | type[float] = float) -> Callable[[str], float]:
    def read(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {low:g} or more")
        return value

    return read


def _about(help: str, parse: Callable[[str], Any] | None = None, **more: Any) -> dict[str, Any]:
    """A field's metadata as a command-line option (--name-with-dashes unless `flag`)."""
    return {"help": help, "parse": parse, **more}


@dataclass(frozen=True)
class EmperorOptions:
    uwsgi: Path | None = field(
        default=None,
        metadata=_about("the uwsgi executable (default: the one beside toolkit)", Path),
    )
    run_dir: Path = field(default=Path("run"), metadata=_about("control socket and pid file", Path))
    logs_dir: Path = field(default=Path("logs"), metadata=_about("one log file per vassal", Path))
    quiet: bool = field(default=False, metadata=_about("show the Emperor's events only"))
    timestamps: bool = field(
        default=True,
        metadata=_about("print no time before each line", flag="--no-timestamps"),
    )
    log_max_bytes: int = field(
        default=50 << 20,
        metadata=_about("rotate a vassal's log past this many bytes (0: never)", _at_least(0, int)),
    )
    log_backups: int = field(
        default=10,
        metadata=_about("older log files kept per vassal (NAME.log.1 newest)", _at_least(0, int)),
    )
    trust_any_config: bool = field(
        default=False,
        metadata=_about("also run configs that are world-writable or owned by another user"),
    )
    max_spawns: int = field(
        default=Throttle.max_spawns,
        metadata=_about(
            f"exits within --window, each before it served for {Throttle.stable_after:g} s, "
            "that throttle a vassal",
            _at_least(1, int),
        ),
    )
    window: float = field(
        default=Throttle.window, metadata=_about("seconds exits count", _at_least(0.1))
    )
    backoff: float = field(
        default=Throttle.first_delay,
        metadata=_about("first respawn delay after repeated exits (doubles)", _at_least(0)),
    )
    stop_timeout: float = field(
        default=5.0,
        metadata=_about(
            "seconds a vassal asked to stop gracefully has before its process group is killed",
            _at_least(0.1),
        ),
    )
    # uWSGI's own `emperor-required-heartbeat` default.
    heartbeat_tolerance: float = field(
        default=30.0,
        metadata=_about(
            "seconds of silence after which a vassal that sends heartbeats is respawned",
            _at_least(1),
        ),
    )
    hold_sockets: bool = field(
        default=True,
        metadata=_about(
            "let each vassal bind its `socket = IP:port` itself (by default the Emperor binds it "
            "and hands it over, so a crashed vassal's clients wait instead of failing)",
            flag="--no-hold-sockets",
        ),
    )
    cgroups: bool = field(
        default=True,
        metadata=_about(
            "end what a vassal leaves behind by its process tree (TOOLKIT_VASSAL_ID), even "
            "where the Emperor may make cgroups (by default: a cgroup per vassal there)",
            flag="--no-cgroups",
        ),
    )
    serving: tuple[str, ...] = field(
        default=(),
        metadata=_about(
            "the site's public address (http://HOST:PORT): announced, and READY=1 sent to "
            "systemd, once every vassal serves and it answers",
            str,
        ),
    )

    def throttle(self) -> Throttle:
        """A fresh throttle for one vassal."""
        return Throttle(self.max_spawns, self.window, self.backoff)

    def command(self, patterns: list[str]) -> list[str]:
        """The command line that starts the Emperor with these options (defaults left out)."""
        line = [sys.executable, "-m", "toolkit.emperor", *patterns]
        for option in fields(self):
            value = getattr(self, option.name)
            if value == option.default:
                continue
            flag = _flag(option.name, option.metadata)
            if isinstance(value, bool):
                line.append(flag)
            elif isinstance(value, tuple):
                line += [part for item in value for part in (flag, str(item))]
            else:
                line += [flag, str(value)]
        return line


def _flag(name: str, metadata: Any) -> str:
    return str(metadata.get("flag", "--" + name.replace("_", "-")))


class Help(argparse.RawDescriptionHelpFormatter):
    """The layout of the other commands' help (click's): `Usage:`, `Arguments:`, `Options:`."""

    def add_usage(self, usage: Any, actions: Any, groups: Any, prefix: str | None = None) -> None:
        super().add_usage(usage, actions, groups, "Usage: ")

    def start_section(self, heading: str | None) -> None:
        titles = {"positional arguments": "Arguments", "options": "Options"}
        super().start_section(titles.get(heading or "", heading))


def parser() -> argparse.ArgumentParser:
    """`toolkit emperor`, `python -m toolkit.emperor`, `toolkit up` and the systemd unit all
    go through this parser."""
    options = argparse.ArgumentParser(
        prog=PROG,
        usage=f"{PROG} [OPTIONS] GLOB...",
        formatter_class=Help,
        description="Run one uwsgi per config the globs match: respawn, reload on change, "
        "stop on removal.",
        epilog="Examples:\n  $ toolkit emperor 'vassals/*.ini' --run-dir run --logs-dir logs",
    )
    options.add_argument(
        "patterns", nargs="+", metavar="GLOB", help="configs to run, e.g. 'vassals/*.ini'"
    )
    for option in fields(EmperorOptions):
        flag, default = _flag(option.name, option.metadata), option.default
        assert default is not MISSING
        if isinstance(default, bool):
            action = "store_false" if default else "store_true"
            options.add_argument(
                flag, dest=option.name, action=action, help=option.metadata["help"]
            )
        elif isinstance(default, tuple):
            options.add_argument(
                flag, dest=option.name, action="append", default=[], help=option.metadata["help"]
            )
        else:
            options.add_argument(
                flag,
                dest=option.name,
                type=option.metadata["parse"],
                default=default,
                help=option.metadata["help"],
            )
    return options


def parse(arguments: list[str] | None = None) -> tuple[list[str], EmperorOptions]:
    """The globs and the options of an Emperor command line; argparse exits 2 on bad input."""
    parsed = vars(parser().parse_args(arguments))
    patterns = parsed.pop("patterns")
    parsed["serving"] = tuple(parsed["serving"])
    return patterns, EmperorOptions(**parsed)
