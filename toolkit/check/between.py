"""Rules between the vassals of one deployment: two binding one address, an http-to that nobody
binds."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

from toolkit.check.keys import APP_SOCKET_KEYS
from toolkit.check.model import Context, Finding, at
from toolkit.check.reading import Address, AddressError, read_address, same_place
from toolkit.uwsgi_config import Config, Setting
from toolkit.uwsgi_options import ValueKind

T = TypeVar("T")


def _binds(
    config: Config, context: Context, keys: tuple[str, ...] | None = None
) -> Iterator[tuple[Setting, Address]]:
    for setting in config.settings:
        wanted = (
            setting.key in keys if keys else context.table.kind(setting.key) is ValueKind.ADDRESS
        )
        if wanted and setting.resolved:
            try:
                yield setting, read_address(setting.key, setting.value)
            except AddressError:
                continue


def _place(address: Address) -> tuple[str | int, str]:
    """The key two clashing binds share: their path, or their port (and host)."""
    if address.path:
        return address.path, ""
    return address.port or 0, address.host


def _clashes(
    address: Address, index: dict[str | int, list[T]], key: Callable[[T], Address]
) -> Iterator[T]:
    for item in index.get(_place(address)[0], []):
        if same_place(address, key(item)):
            yield item


def address_clash(configs: list[Config], context: Context) -> Iterator[Finding]:
    seen: dict[str | int, list[tuple[Config, Setting, Address]]] = {}
    for config in configs:
        for setting, address in _binds(config, context):
            if address.shared is not None:
                continue
            for other_config, other, _ in _clashes(address, seen, lambda item: item[2]):
                if other_config is not config:
                    yield at(
                        setting,
                        f"{setting.value} is also bound by {other.file}:{other.line}",
                        "give each vassal its own port or socket",
                    )
                    break
            seen.setdefault(_place(address)[0], []).append((config, setting, address))


def unbound_backend(configs: list[Config], context: Context) -> Iterator[Finding]:
    sockets: dict[str | int, list[tuple[Config, Address]]] = {}
    for config in configs:
        for _, address in _binds(config, context, APP_SOCKET_KEYS):
            sockets.setdefault(_place(address)[0], []).append((config, address))
    for config in configs:
        for setting, target in _binds(config, context, ("http-to",)):
            if not any(c is not config for c, _ in _clashes(target, sockets, lambda item: item[1])):
                yield at(
                    setting,
                    f"http-to {setting.value} is not bound by any vassal's socket",
                    "point it at an app vassal's `socket` address",
                )
