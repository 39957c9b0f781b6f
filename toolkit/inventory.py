"""An inventory: groups of hosts and per-host variables, layered the way Ansible layers them.

    [groups]
    [[web]]
    hosts = web1, web2
    processes = 8            # a group variable
    [hosts]
    [[web2]]
    http_port = 8080         # a host variable

A host's value comes from, lowest first: the recipe's default, deploy.ini, its groups
(in name order), the host itself, then `--set`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import ToolkitError
from toolkit.settings import RawValue, is_name, raw_values, read_ini

FILE_NAME = "inventory.ini"


@dataclass(frozen=True)
class Group:
    hosts: tuple[str, ...]
    variables: dict[str, RawValue]


@dataclass(frozen=True)
class Inventory:
    path: Path
    groups: dict[str, Group]
    hosts: dict[str, dict[str, RawValue]]

    @functools.cached_property
    def _names(self) -> tuple[list[str], frozenset[str]]:
        named = {h for group in self.groups.values() for h in group.hosts} | set(self.hosts)
        return sorted(named), frozenset(named)

    def host_names(self) -> list[str]:
        return self._names[0]

    def layers(self, host: str) -> list[dict[str, RawValue]]:
        """The host's groups' variables (by group name), then its own."""
        if host not in self._names[1]:
            known = ", ".join(self.host_names()) or "none"
            raise ToolkitError(f"no host {host!r} in the inventory", file=self.path,
                               hint=f"known hosts: {known}")  # fmt: skip
        groups = [self.groups[name].variables for name in sorted(self.groups)
                  if host in self.groups[name].hosts]  # fmt: skip
        return [*groups, self.hosts.get(host, {})]


def _section(parsed: Any, name: str) -> dict[str, Any]:
    section = parsed.get(name, {})
    return section if isinstance(section, dict) else {}


def read_inventory(path: Path) -> Inventory:
    if not path.is_file():
        raise ToolkitError(
            "no inventory", file=path, hint=f"create {FILE_NAME} with [groups] and [hosts]"
        )
    parsed, lines = read_ini(path, FILE_NAME)
    unknown = [key for key in parsed if key not in {"groups", "hosts"}]
    if unknown:
        raise ToolkitError(f"unexpected [{unknown[0]}]", file=path, line=lines.get((unknown[0],)),
                           hint="an inventory has [groups] and [hosts]")  # fmt: skip
    groups = {}
    for name, section in _section(parsed, "groups").items():
        members = section.get("hosts", []) if isinstance(section, dict) else []
        members = [members] if isinstance(members, str) else list(members)
        variables = raw_values(section, path, lines, ("groups", name), skip=("hosts",))
        groups[name] = Group(tuple(m.strip() for m in members if m.strip()), variables)
    hosts = {
        name: raw_values(section, path, lines, ("hosts", name))
        for name, section in _section(parsed, "hosts").items()
    }
    named = [(h, ("groups", g)) for g, group in groups.items() for h in group.hosts]
    for host, where in [*named, *((h, ("hosts", h)) for h in hosts)]:
        if not is_name(host):
            raise ToolkitError(
                f"host name {host!r}: a host's vassals go into hosts/NAME/, so a name is "
                "letters, digits, '.', '_' and '-' (no '/', no '..')",
                file=path,
                line=lines.get(where),
            )
    return Inventory(path, groups, hosts)
