"""What each uWSGI option does with its value, from uWSGI 2.0's own option table.

`uwsgi --help` names the options a build has; only the C source says how each reads its
value: `uwsgi_opt_set_int` is atoi(), `uwsgi_opt_true` is "true unless false/off/no/0",
and options sharing a handler and a target are one setting under two names. The table
(`uwsgi_options.json`, made by `python -m tests.option_table` from the sdist) keeps, per
option, its handler, target, argument kind, plugin and the source line that declares it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

TABLE_FILE = Path(__file__).parent / "uwsgi_options.json"


class ValueKind(StrEnum):
    """How uWSGI reads a value, by the handler that reads it."""

    FLAG = "flag"
    INVERTED_FLAG = "inverted flag"
    NUMBER = "number"
    ADDRESS = "address"
    ROUTE = "route"
    TEXT = "text"
    OTHER = "other"


KIND_OF_HANDLER = {
    "uwsgi_opt_true": ValueKind.FLAG,
    "uwsgi_opt_false": ValueKind.INVERTED_FLAG,
    "uwsgi_opt_set_int": ValueKind.NUMBER,
    "uwsgi_opt_set_rawint": ValueKind.NUMBER,
    "uwsgi_opt_set_64bit": ValueKind.NUMBER,
    "uwsgi_opt_set_16bit": ValueKind.NUMBER,
    "uwsgi_opt_set_megabytes": ValueKind.NUMBER,
    "uwsgi_opt_add_socket": ValueKind.ADDRESS,
    "uwsgi_opt_add_ssl_socket": ValueKind.ADDRESS,
    "uwsgi_opt_add_shared_socket": ValueKind.ADDRESS,
    "uwsgi_opt_add_socket_no_defer": ValueKind.ADDRESS,
    "uwsgi_opt_add_lazy_socket": ValueKind.ADDRESS,
    "uwsgi_opt_corerouter": ValueKind.ADDRESS,
    "uwsgi_opt_undeferred_corerouter": ValueKind.ADDRESS,
    "uwsgi_opt_https": ValueKind.ADDRESS,
    "uwsgi_opt_http_to_https": ValueKind.ADDRESS,
    "uwsgi_opt_add_route": ValueKind.ROUTE,
    "uwsgi_opt_set_str": ValueKind.TEXT,
    "uwsgi_opt_set_str_spaced": ValueKind.TEXT,
}
# Handlers that store one value: set twice, the last one silently wins.
SINGLE_VALUE_HANDLERS = frozenset(
    {
        "uwsgi_opt_true",
        "uwsgi_opt_false",
        "uwsgi_opt_set_int",
        "uwsgi_opt_set_rawint",
        "uwsgi_opt_set_64bit",
        "uwsgi_opt_set_16bit",
        "uwsgi_opt_set_megabytes",
        "uwsgi_opt_set_str",
        "uwsgi_opt_set_str_spaced",
        "uwsgi_opt_set_uid",
        "uwsgi_opt_set_gid",
        "uwsgi_opt_uid",
        "uwsgi_opt_gid",
        "uwsgi_opt_set_umask",
    }
)


@dataclass(frozen=True)
class Entry:
    handler: str
    target: str
    argument: str
    plugin: str
    source: str


class OptionTable:
    """Lookups into the table; unknown names (another build's plugins) are OTHER."""

    def __init__(self, version: str, entries: dict[str, Entry], conditions: dict[str, str]):
        self.version = version
        self.entries = entries
        self.route_conditions = conditions
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for name, entry in entries.items():
            if entry.handler in SINGLE_VALUE_HANDLERS and entry.target not in {"NULL", "0"}:
                groups[entry.handler, entry.target].append(name)
        self._aliases = {name: tuple(group) for group in groups.values() for name in group}
        self._kinds = {
            name: KIND_OF_HANDLER.get(entry.handler, ValueKind.OTHER)
            for name, entry in entries.items()
        }

    def handler(self, key: str) -> str:
        entry = self.entries.get(key)
        return entry.handler if entry else ""

    def target(self, key: str) -> str:
        entry = self.entries.get(key)
        return entry.target if entry else ""

    def kind(self, key: str) -> ValueKind:
        return self._kinds.get(key, ValueKind.OTHER)

    def plugin(self, key: str) -> str | None:
        entry = self.entries.get(key)
        return entry.plugin if entry else None

    def source(self, key: str) -> str:
        entry = self.entries.get(key)
        return entry.source if entry else ""

    def single_value(self, key: str) -> bool:
        return self.handler(key) in SINGLE_VALUE_HANDLERS

    def setting_of(self, key: str) -> tuple[str, ...]:
        """Every name of the setting `key` sets (`processes`, `workers`), `key` included."""
        return self._aliases.get(key, (key,))


@cache
def option_table() -> OptionTable:
    data = json.loads(TABLE_FILE.read_text())
    entries = {name: Entry(*fields) for name, fields in data["options"].items()}
    return OptionTable(data["version"], entries, data["route_conditions"])
