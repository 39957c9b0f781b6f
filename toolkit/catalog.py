"""What the installed uWSGI understands: every option, read once from `uwsgi --help`, cached."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import sh

from toolkit.apply import write_atomically
from toolkit.errors import ToolkitError

EXIT_CANNOT_RUN = 2
_HELP_LINE = re.compile(r"^\s{4}(?:-(\w)\|)?--(\S+)\s+(.*)$")

# Options of plugins that the `uwsgi` package does not compile in, by prefix, for a precise hint.
PLUGIN_PREFIXES = {
    "php-": "php",
    "psgi": "psgi",
    "perl-": "psgi",
    "rack": "rack",
    "rb-": "rack",
    "ruby-": "rack",
    "lua": "lua",
    "gevent": "gevent",
    "greenlet": "greenlet",
    "asyncio": "asyncio",
    "tornado": "tornado",
    "carbon": "carbon",
    "rrdtool": "rrdtool",
    "jvm": "jvm",
    "mono": "mono",
    "cgi": "cgi",
    "emperor-zeromq": "emperor_zeromq",
    "zmq": "zeromq",
    "v8-": "v8",
    "glusterfs": "glusterfs",
    "rados": "rados",
    "xslt": "xslt",
    "ldap": "ldap",
    "pty": "pty",
    "python3-": "python3",
    "erlang": "erlang",
    "go-": "gccgo",
}


@dataclass(frozen=True)
class Catalog:
    """Option names (long, without dashes) with their help text, and short-letter aliases."""

    version: str
    options: dict[str, str]

    def knows(self, key: str) -> bool:
        return key in self.options

    def missing_plugin(self, key: str) -> str | None:
        """The plugin that would provide an unknown option, when its name says so."""
        return next((p for prefix, p in PLUGIN_PREFIXES.items() if key.startswith(prefix)), None)


def parse_help(text: str, version: str) -> Catalog:
    options: dict[str, str] = {}
    for line in text.splitlines():
        match = _HELP_LINE.match(line)
        if match:
            options.setdefault(match.group(2), match.group(3).strip())
    return Catalog(version, options)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "toolkit"


def _binary_key(uwsgi: Path) -> str:
    """Same path, size and mtime: same build, same options (plugins differ between builds)."""
    info = uwsgi.stat()
    return hashlib.sha256(f"{uwsgi}:{info.st_size}:{info.st_mtime_ns}".encode()).hexdigest()[:16]


def load_catalog(uwsgi: Path) -> Catalog:
    """The catalog of this uwsgi build, from the cache or by asking the binary once."""
    try:
        key = _binary_key(uwsgi)
    except OSError:
        raise ToolkitError(
            "no uwsgi executable",
            file=uwsgi,
            hint="pip install uwsgi, or pass --uwsgi PATH",
            exit_code=EXIT_CANNOT_RUN,
        ) from None
    cached = cache_dir() / f"catalog-{key}.json"
    try:
        data = json.loads(cached.read_text())
        return Catalog(data["version"], data["options"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        command = sh.Command(str(uwsgi))
        version = str(command("--version", _timeout=20)).strip()
        help_text = str(command("--help", _timeout=20, _ok_code=[0, 1]))
    except (sh.ErrorReturnCode, sh.TimeoutException, sh.CommandNotFound, OSError) as error:
        raise ToolkitError(
            f"cannot ask uwsgi for its options: {error}", file=uwsgi, exit_code=EXIT_CANNOT_RUN
        ) from None
    catalog = parse_help(help_text, version)
    if not catalog.options:
        raise ToolkitError("uwsgi --help listed no options", file=uwsgi, exit_code=EXIT_CANNOT_RUN)
    # A read-only cache folder only costs the next run another `uwsgi --help`.
    with contextlib.suppress(ToolkitError):
        write_atomically(cached, json.dumps({"version": version, "options": catalog.options}))
    return catalog
