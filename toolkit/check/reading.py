"""How uWSGI 2.0 reads a value, and what a reader of the file would think it says.

Each function returns a Reading: what uWSGI does (`means`) and whether that is what the
value looks like it says. The C behind each: `uwsgi_opt_true` and `uwsgi_opt_set_int`
(core/uwsgi.c), `socket_to_in_addr` (core/socket.c), `uwsgi_opt_https`
(plugins/http/https.c)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from toolkit.uwsgi_config import atoi

# uwsgi_opt_true(): these, compared without case ("0" exactly), are false; all else is true.
FALSE_WORDS = frozenset({"false", "off", "no", "0"})
TRUE_WORDS = frozenset({"", "true", "on", "yes", "1", "y", "t"})
# Values that a reader takes for "false" but uWSGI reads as true.
LOOKS_FALSE = re.compile(r"^(?:n|f|0+|off|no|false|disabled?|none|never|nope)\b", re.IGNORECASE)
INLINE_COMMENT = re.compile(r"\s[;#]")
# After a number, what changes it (`64k`, `5 minutes`, `1.5`, `2 * 1024`), and what keeps
# it (seconds, the unit of uWSGI's timeouts: `harakiri = 30s`).
MULTIPLIER = re.compile(
    r"\s*(?:[kmgt]i?b?|mins?|minutes?|h|hrs?|hours?|days?|weeks?|thousand|million|x|\*|e\d)(?:\W|$)",
    re.IGNORECASE,
)
MEGABYTES = re.compile(r"\s*mi?b?(?:\W|$)", re.IGNORECASE)  # uwsgi_opt_set_megabytes
SECONDS = re.compile(r"\s*(?:s|secs?|seconds?)(?:\W|$)", re.IGNORECASE)
NUMBER = re.compile(r"[ \t\n\v\f\r]*[+-]?\d+")


class Verdict(Enum):
    PLAIN = "plain"  # read as it looks
    ODD = "odd"  # works as meant, but not for the reason the reader thinks
    WRONG = "wrong"  # uWSGI does something other than it looks


@dataclass(frozen=True)
class Reading:
    verdict: Verdict
    means: str = ""


def read_flag(value: str) -> Reading:
    word = value.lower()
    if word in FALSE_WORDS:
        return Reading(Verdict.PLAIN, "false")
    if word in TRUE_WORDS:
        return Reading(Verdict.PLAIN, "true")
    if LOOKS_FALSE.match(value):
        return Reading(Verdict.WRONG, "true")
    return Reading(Verdict.ODD, "true")


def read_number(value: str, in_megabytes: bool = False) -> Reading:
    """atoi(): leading blanks and digits; the rest of the value is ignored. That is what the
    line says when the rest is set apart by a blank (a comment, a word), and not when it
    changes the number: `64k`, `1.5`, `1,000`, `5 minutes`."""
    number = NUMBER.match(value)
    means = str(atoi(value))
    if number is None:
        return Reading(Verdict.WRONG, means)
    rest = value[number.end() :]
    if not rest:
        return Reading(Verdict.PLAIN, means)
    if SECONDS.match(rest) or (in_megabytes and MEGABYTES.match(rest)):
        return Reading(Verdict.ODD, means)
    if not rest[0].isspace() or MULTIPLIER.match(rest):
        return Reading(Verdict.WRONG, means)
    return Reading(Verdict.ODD, means)


@dataclass(frozen=True)
class Address:
    """Where a socket option binds: (host, port) for TCP, a path for a unix socket, or a
    reference to a shared socket (`=0`)."""

    host: str = ""
    port: int | None = None
    path: str = ""
    shared: int | None = None


class AddressError(ValueError):
    pass


def read_address(key: str, value: str) -> Address:
    """The first comma field (https carries `,cert,key[,ciphers[,ca]]` after it); a name
    with a colon is TCP, split at the last colon, its port read by atoi()."""
    name = value.split(",", 1)[0] if key in {"https", "https-socket"} else value
    if key in {"https", "https-socket"} and value.count(",") < 2:
        raise AddressError("needs address,certificate,key")
    if name.startswith("="):
        return Address(shared=atoi(name[1:]))
    if ":" not in name:
        return Address(path=name)
    host, _, port = name.rpartition(":")
    if not NUMBER.fullmatch(port):
        raise AddressError(f"port {port!r} is not a number (uWSGI would bind a random port)")
    number = atoi(port)
    if not 0 <= number <= 65535:
        raise AddressError(f"port {number} is out of range (uWSGI would wrap it around)")
    return Address(host=host.strip("[]"), port=number)


def same_place(a: Address, b: Address) -> bool:
    """Two binds that would clash: one path, or one port on overlapping hosts."""
    if a.path or b.path:
        return bool(a.path) and a.path == b.path
    if a.port is None or b.port is None or not a.port:
        return False
    wildcard = {"", "0.0.0.0", "::", "*"}
    return a.port == b.port and (a.host == b.host or a.host in wildcard or b.host in wildcard)
