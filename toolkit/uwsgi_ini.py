"""uWSGI's INI dialect: repeated keys kept in order, each with its line; only what uWSGI reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from toolkit import seal

SECTION = "uwsgi"
WORKER_KEYS = ("processes", "workers")
BLANKS = " \t\r"


@dataclass(frozen=True)
class Option:
    key: str
    value: str
    line: int
    section: str


@dataclass(frozen=True)
class IniFile:
    path: Path
    options: tuple[Option, ...]
    sections: tuple[str, ...]
    broken_seal: str | None = None

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


def parse(text: str, path: Path = Path("<string>")) -> IniFile:
    """Read like uWSGI: lines end at `\\n` only, `[section]` headers, `;` or `#` comment lines,
    `key = value` split at the first `=`, spaces, tabs and `\\r` stripped; no inline comments."""
    options: list[Option] = []
    sections: list[str] = []
    section = ""
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip(BLANKS)
        if not line or line[0] in ";#":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip(BLANKS)
            sections.append(section)
            continue
        key, sep, value = line.partition("=")
        if sep and section:
            options.append(Option(key.strip(BLANKS), value.strip(BLANKS), number, section))
    return IniFile(path, tuple(options), tuple(sections), seal.broken(text.encode()))


def read(path: Path) -> IniFile:
    """Read a file as uWSGI would; undecodable bytes become U+FFFD rather than an error."""
    return parse(path.read_bytes().decode("utf-8", errors="replace"), path)
