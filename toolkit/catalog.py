"""What the installed uWSGI build offers, asked of the binary once and cached: its options
(`--help`), its plugins and routing actions (`--plugins-list`, `--router-list`). Builds
differ by their plugins, so these facts come from the binary."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from toolkit.errors import ExitCode, ToolkitError

CACHE_FORMAT = 4
_HELP_LINE = re.compile(r"^\s{4}(?:-(\w)\|)?--(\S+)\s+(.*)$")
_LIST_HEADER = re.compile(r"^\*\*\* uWSGI loaded (.+?) \*\*\*$")


@dataclass(frozen=True)
class Catalog:
    """Option names (long, without dashes) with their help text; plugin and routing action
    names."""

    version: str
    options: dict[str, str]
    plugins: frozenset[str] = frozenset()
    routers: frozenset[str] = frozenset()
    python: str = ""

    def knows(self, key: str) -> bool:
        return key in self.options


def parse_help(text: str, version: str) -> Catalog:
    options: dict[str, str] = {}
    for line in text.splitlines():
        match = _HELP_LINE.match(line)
        if match:
            options.setdefault(match.group(2), match.group(3).strip())
    return Catalog(version, options)


def parse_lists(text: str) -> dict[str, frozenset[str]]:
    """The names under each `*** uWSGI loaded X ***` header, until `--- end of ... ---`.

    Request plugins are listed as `0: python`; the name is what `plugins =` takes."""
    found: dict[str, set[str]] = {"plugins": set(), "routers": set()}
    current: set[str] | None = None
    for line in text.splitlines():
        header = _LIST_HEADER.match(line.strip())
        if header:
            what = header.group(1)
            current = found.get("plugins" if "plugins" in what else what)
        elif line.startswith("--- end of") or line.startswith("***"):
            current = None
        elif current is not None and line.strip():
            current.add(line.split(":", 1)[-1].strip())
    return {k: frozenset(v) for k, v in found.items()}


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "toolkit"


def _binary_key(uwsgi: Path) -> str:
    """Same path, size and mtime: same build, same options (plugins differ between builds)."""
    info = uwsgi.stat()
    text = f"{CACHE_FORMAT}:{uwsgi}:{info.st_size}:{info.st_mtime_ns}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _ask(uwsgi: Path) -> Catalog:
    """Three runs in an empty folder with an empty environment (uWSGI reads UWSGI_*
    variables as options); the lists run exits 1 once it finds no socket to serve."""
    import tempfile

    import sh

    with tempfile.TemporaryDirectory() as folder:
        command = sh.Command(str(uwsgi)).bake(
            _timeout=20, _env={}, _cwd=folder, _in="", _ok_code=[0, 1], _err_to_out=True
        )
        version = str(command("--version")).strip()
        help_text = str(command("--help"))
        listed = command("--plugins-list", "--router-list")
        python = str(command("--python-version")).strip()
    lists = parse_lists(str(listed))
    catalog = parse_help(help_text, version)
    return Catalog(version, catalog.options, **lists, python=python)


def load_catalog(uwsgi: Path) -> Catalog:
    """The catalog of this uwsgi build, from the cache or by asking the binary once."""
    try:
        key = _binary_key(uwsgi)
    except OSError:
        raise ToolkitError(
            "no uwsgi executable",
            file=uwsgi,
            hint="pip install uwsgi, or pass --uwsgi PATH",
            exit_code=ExitCode.USAGE,
        ) from None
    cached = cache_dir() / f"catalog-{key}.json"
    try:
        data = json.loads(cached.read_text())
        return Catalog(
            data["version"],
            data["options"],
            **{k: frozenset(data[k]) for k in ("plugins", "routers")},
            python=data["python"],
        )
    except (OSError, ValueError, KeyError, TypeError):
        pass
    import sh

    try:
        catalog = _ask(uwsgi)
    except (sh.ErrorReturnCode, sh.TimeoutException, sh.CommandNotFound, OSError) as error:
        raise ToolkitError(
            f"cannot ask uwsgi for its options: {error}", file=uwsgi, exit_code=ExitCode.USAGE
        ) from None
    if not catalog.options:
        raise ToolkitError("uwsgi --help listed no options", file=uwsgi, exit_code=ExitCode.USAGE)
    data = {k: sorted(v) if isinstance(v, frozenset) else v for k, v in asdict(catalog).items()}
    from toolkit.apply import write_atomically

    # A read-only cache folder only costs the next run another three `uwsgi` calls.
    with contextlib.suppress(ToolkitError):
        write_atomically(cached, json.dumps(data))
    return catalog
