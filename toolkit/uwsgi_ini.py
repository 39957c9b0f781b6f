"""uWSGI's INI dialect, line by line as core/ini.c reads it: repeated keys kept in order, each
with its line, keys alone on a line kept as flags, and nothing uWSGI would not read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from toolkit import seal

SECTION = "uwsgi"
WORKER_KEYS = ("processes", "workers")
UWSGI_SOCKET_KEYS = ("socket", "uwsgi-socket")
TCP_ADDRESS = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}:\d{1,5}")
BLANKS = " \t\r"
# `# toolkit-NAME: value` lines: what toolkit's Emperor reads that uWSGI skips (a comment).
DIRECTIVE = re.compile(r"#\s*toolkit-([a-z][a-z0-9-]*):\s*(.*)")
# What git leaves in a file with an unresolved merge conflict.
MERGE_MARKERS = ("<<<<<<< ", "<<<<<<<", "=======", ">>>>>>> ", ">>>>>>>", "||||||| ")


@dataclass(frozen=True)
class Option:
    """One `key = value` line. `bare` is a key alone on its line, which uWSGI reads with the
    value "" (a flag option set, a number option 0)."""

    key: str
    value: str
    line: int
    section: str
    bare: bool = False


@dataclass(frozen=True)
class IniFile:
    path: Path
    options: tuple[Option, ...]
    sections: tuple[str, ...]
    broken_seal: str | None = None
    merge_markers: tuple[int, ...] = ()
    directives: tuple[tuple[str, str, int], ...] = ()
    """`# toolkit-NAME: value` comment lines (name, value, line), in order (the seal's among
    them)."""

    def directive(self, name: str) -> str | None:
        return next((value for key, value, _ in self.directives if key == name), None)

    def in_section(self, section: str = SECTION) -> list[Option]:
        return [o for o in self.options if o.section == section]

    def values(self, *keys: str, section: str = SECTION) -> list[str]:
        return [o.value for o in self.in_section(section) if o.key in keys]

    def last(self, *keys: str, section: str = SECTION) -> str | None:
        found = self.values(*keys, section=section)
        return found[-1] if found else None

    @property
    def has_workers(self) -> bool:
        """False for a pure gateway (`processes = 0`): uWSGI never says it accepts requests."""
        return self.last(*WORKER_KEYS) not in {"0"}

    @property
    def uwsgi_tcp_sockets(self) -> tuple[str, ...]:
        """`socket = IPv4:port` addresses (uwsgi protocol, a fixed port): the ones someone
        else (toolkit's Emperor) can bind and hand over, as uWSGI adopts `fd://N` sockets."""
        found = (v for v in self.values(*UWSGI_SOCKET_KEYS) if TCP_ADDRESS.fullmatch(v))
        return tuple(dict.fromkeys(v for v in found if not v.endswith(":0")))


def split_line(line: str) -> tuple[str, str, bool]:
    """(key, value, bare) as ini.c splits a stripped line: at the first `=`, both sides
    stripped of spaces, tabs and `\\r`; no `=` at all is a bare key with the value ""."""
    key, sep, value = line.partition("=")
    return key.rstrip(BLANKS), value.strip(BLANKS), not sep


def parse(text: str, path: Path = Path("<string>")) -> IniFile:
    """Read like uWSGI: lines end at `\\n` only; `[name]` starts a section (uWSGI drops the
    last character, whatever it is, and strips nothing inside); `;` or `#` starts a comment
    line; there are no inline comments."""
    options: list[Option] = []
    sections: list[str] = []
    markers: list[int] = []
    directives: list[tuple[str, str, int]] = []
    section = ""
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip(BLANKS)
        if not line or line[0] in ";#":
            if line.startswith("#") and (directive := DIRECTIVE.fullmatch(line)):
                directives.append((directive.group(1), directive.group(2), number))
            continue
        if line.startswith(MERGE_MARKERS):
            markers.append(number)
        if line[0] == "[":
            section = line[1:-1]
            sections.append(section)
            continue
        key, value, bare = split_line(line)
        if section:
            options.append(Option(key, value, number, section, bare))
    return IniFile(
        path,
        tuple(options),
        tuple(sections),
        seal.broken(text.encode()),
        tuple(markers),
        tuple(directives),
    )
