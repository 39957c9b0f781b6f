"""Rules for uWSGI configs, alone and as a deployment: each returns problems, never raises."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path

from toolkit.catalog import Catalog
from toolkit.errors import did_you_mean
from toolkit.options import (
    APP_KEYS,
    APP_SOCKET_KEYS,
    BIND_KEYS,
    BOOLEAN_KEYS,
    BOOLEAN_WORDS,
    INTEGER_KEYS,
    LOGGER_KEYS,
    OUTPUT_REDIRECT_KEYS,
    PATH_KEYS,
    ROUTE_ACTIONS,
    ROUTE_CONDITIONS,
    ROUTE_KEYS,
    SINGLE_KEYS,
)
from toolkit.uwsgi_ini import SECTION, WORKER_KEYS, IniFile, Option

MAGIC = re.compile(r"%\(([^)]*)\)")
ENV_REF = re.compile(r"\$\(([^)]*)\)")


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    rule: str
    severity: Severity
    message: str
    hint: str

    def __str__(self) -> str:
        hint = f" ({self.hint})" if self.hint else ""
        return f"{self.file}:{self.line}: {self.rule} {self.severity.value}: {self.message}{hint}"

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _problem(
    ini: IniFile, line: int, rule: str, severity: Severity, message: str, hint: str = ""
) -> Problem:
    return Problem(str(ini.path), line, rule, severity, message, hint)


def expand(value: str, ini: IniFile) -> str:
    """Resolve the magic variables toolkit can know before uWSGI runs (`%d`, `%n`, `%%`)."""
    folder = os.path.abspath(ini.path.parent) + "/"
    return (
        value.replace("%%", "\0")
        .replace("%d", folder)
        .replace("%n", ini.path.stem)
        .replace("%s", ini.path.name)
        .replace("%p", os.path.abspath(ini.path))
        .replace("\0", "%")
    )


def unresolved(value: str) -> bool:
    return bool(MAGIC.search(value) or ENV_REF.search(value) or re.search(r"%[a-zA-Z]", value))


# --- one file -------------------------------------------------------------------------------


def check_options(ini: IniFile, catalog: Catalog) -> Iterator[Problem]:
    strict = _is_true(ini.last("strict"))
    options = ini.in_section()
    used_placeholders = {m for o in options for m in MAGIC.findall(o.value)}
    for option in options:
        if catalog.knows(option.key):
            continue
        if not strict and option.key in used_placeholders:
            continue
        plugin = catalog.missing_plugin(option.key)
        if plugin is not None:
            yield _problem(
                ini,
                option.line,
                "U102",
                Severity.ERROR,
                f"option {option.key!r} needs the {plugin} plugin, which this uWSGI "
                f"({catalog.version}) lacks",
                f"build uWSGI with the {plugin} plugin or remove the option",
            )
            continue
        hint = did_you_mean(option.key, catalog.options, "see `uwsgi --help`", cutoff=0.75)
        yield _problem(
            ini, option.line, "U100", Severity.ERROR, f"unknown option {option.key!r}", hint
        )


def check_repeats(ini: IniFile) -> Iterator[Problem]:
    seen: dict[str, Option] = {}
    for option in ini.in_section():
        if option.key in SINGLE_KEYS and option.key in seen:
            first = seen[option.key]
            yield _problem(
                ini,
                option.line,
                "U101",
                Severity.WARNING,
                f"{option.key!r} repeated (first on line {first.line}); the last one silently wins",
                "keep one",
            )
        seen.setdefault(option.key, option)


def parse_address(value: str) -> tuple[str, int] | str | None:
    """(host, port) for TCP, the path for a unix socket, None when it is neither."""
    value = value.split(",")[0].strip()
    if value.startswith(("/", "./", "@", "%d")) or ("/" in value and ":" not in value):
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        return None
    host = host.strip("[]")
    if host and host != "localhost" and not unresolved(host):
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9.-]+", host):
                return None
    return host or "0.0.0.0", int(port)


def check_values(ini: IniFile) -> Iterator[Problem]:
    for option in ini.in_section():
        value = option.value
        if unresolved(value):
            continue
        if option.key in (*BIND_KEYS, "http-to"):
            address = parse_address(value)
            if address is None:
                yield _problem(
                    ini,
                    option.line,
                    "V200",
                    Severity.ERROR,
                    f"{option.key} = {value!r} is not an address",
                    "use host:port, :port or a unix socket path",
                )
            elif isinstance(address, tuple) and not 1 <= address[1] <= 65535:
                yield _problem(
                    ini,
                    option.line,
                    "V200",
                    Severity.ERROR,
                    f"{option.key}: port {address[1]} is out of range",
                    "ports go from 1 to 65535; uWSGI would silently wrap it",
                )
        elif option.key in INTEGER_KEYS and not re.fullmatch(r"\d+", value):
            yield _problem(
                ini,
                option.line,
                "V201",
                Severity.ERROR,
                f"{option.key} = {value!r} is not a whole number",
                "uWSGI would read it as 0",
            )
        elif option.key in BOOLEAN_KEYS and value.lower() not in BOOLEAN_WORDS:
            yield _problem(
                ini,
                option.line,
                "V202",
                Severity.ERROR,
                f"{option.key} = {value!r} is not a boolean",
                "use true or false",
            )
    yield from _check_cheaper(ini)


def _check_cheaper(ini: IniFile) -> Iterator[Problem]:
    cheaper = [o for o in ini.in_section() if o.key == "cheaper"]
    processes = ini.last(*WORKER_KEYS)
    if cheaper and processes and cheaper[-1].value.isdigit() and processes.isdigit():
        low, high = int(cheaper[-1].value), int(processes)
        if low and low >= high:
            yield _problem(
                ini,
                cheaper[-1].line,
                "V203",
                Severity.ERROR,
                f"cheaper ({low}) must be lower than processes ({high})",
                "uWSGI refuses to start; lower cheaper or raise processes",
            )


def check_routes(ini: IniFile) -> Iterator[Problem]:
    for option in ini.in_section():
        if option.key not in ROUTE_KEYS:
            continue
        condition, _, rest = option.value.partition(":")
        action = rest.split(" ", 1)[1].strip() if " " in rest else ""
        action_name = action.split(":", 1)[0].strip()
        if condition not in ROUTE_CONDITIONS:
            yield _problem(
                ini,
                option.line,
                "R500",
                Severity.ERROR,
                f"unknown route condition {condition!r}",
                did_you_mean(condition, ROUTE_CONDITIONS, "e.g. equal, startswith"),
            )
        elif not action_name:
            yield _problem(
                ini,
                option.line,
                "R501",
                Severity.ERROR,
                "route rule without an action",
                "write `condition:subject;value action:args`",
            )
        elif action_name not in ROUTE_ACTIONS:
            yield _problem(
                ini,
                option.line,
                "R501",
                Severity.ERROR,
                f"unknown route action {action_name!r}",
                did_you_mean(action_name, ROUTE_ACTIONS, "e.g. addheader, log"),
            )


def _is_true(value: str | None) -> bool:
    return value is not None and value.lower() in {"", "true", "yes", "on", "1", "y", "t"}


def base_folder(ini: IniFile, cwd: Path) -> Path:
    """Where uWSGI resolves relative paths: after `chdir` if set, else the folder it runs in."""
    chdir = ini.last("chdir")
    if chdir is None or unresolved(expand(chdir, ini)):
        return cwd
    return _join(cwd, expand(chdir, ini))


def _join(base: Path, value: str) -> Path:
    """Lexically, so `vassals/..` holds before render has created vassals/."""
    return Path(os.path.normpath(base / value))


def check_paths(ini: IniFile, cwd: Path) -> Iterator[Problem]:
    base = base_folder(ini, cwd)
    for option in ini.in_section():
        value = expand(option.value, ini)
        if unresolved(value):
            continue
        if option.key in PATH_KEYS:
            target = _join(cwd if option.key == "chdir" else base, value)
            if option.key == "pythonpath" and glob_magic(value):
                continue
            if not target.exists():
                yield _problem(
                    ini,
                    option.line,
                    "P400",
                    Severity.ERROR,
                    f"{option.key}: {target} does not exist",
                    "create it, or fix the path (relative paths follow chdir)",
                )
        elif option.key in LOGGER_KEYS:
            spec = value.split(":", 1)
            if spec[0] == "file" and len(spec) == 2:
                folder = _join(base, spec[1]).parent
                if not folder.is_dir():
                    yield _problem(
                        ini,
                        option.line,
                        "P401",
                        Severity.ERROR,
                        f"{option.key}: log folder {folder} does not exist",
                        "create it; uWSGI will not",
                    )
                elif not os.access(folder, os.W_OK):
                    yield _problem(
                        ini,
                        option.line,
                        "P402",
                        Severity.ERROR,
                        f"{option.key}: log folder {folder} is not writable",
                        "uWSGI would exit at start, again and again; fix the folder or the path",
                    )


def glob_magic(value: str) -> bool:
    return any(c in value for c in "*?[")


def check_app(ini: IniFile, cwd: Path) -> Iterator[Problem]:
    options = ini.in_section()
    keys = {o.key for o in options}
    has_router = bool(keys & {"http", "https"}) and "http-to" in keys
    if has_router and ini.last(*WORKER_KEYS) != "0" and not keys & set(APP_KEYS):
        line = next(o.line for o in options if o.key == "http-to")
        yield _problem(
            ini,
            line,
            "W600",
            Severity.WARNING,
            "a router-only vassal still starts workers",
            "add `processes = 0`",
        )
    app = next((o for o in options if o.key in APP_KEYS), None)
    if app is None:
        return
    if not _is_true(ini.last("need-app")) and "need-app" not in keys:
        yield _problem(
            ini,
            app.line,
            "W602",
            Severity.WARNING,
            "an app vassal without need-app keeps running when its app fails to load",
            "add `need-app = true`",
        )
    if app.key == "module" and not unresolved(app.value):
        yield from _check_module(ini, app, cwd)


def _check_module(ini: IniFile, app: Option, cwd: Path) -> Iterator[Problem]:
    base = base_folder(ini, cwd)
    module = app.value.split(":")[0].strip()
    first = module.split(".")[0]
    folders = [base / expand(p, ini) for p in ini.values("pythonpath")] + [base]
    for folder in folders:
        if (folder / f"{first}.py").exists() or (folder / first / "__init__.py").exists():
            return
    yield _problem(
        ini,
        app.line,
        "W601",
        Severity.WARNING,
        f"module {module!r} not found in the pythonpath folders",
        "check `pythonpath` and `module`; it may still import from site-packages",
    )


def check_output(ini: IniFile) -> Iterator[Problem]:
    """Under an Emperor these only redirect the output, away from the Emperor's log."""
    for option in ini.in_section():
        if option.key in OUTPUT_REDIRECT_KEYS:
            yield _problem(
                ini,
                option.line,
                "W603",
                Severity.WARNING,
                f"{option.key} sends this vassal's output to {option.value}: the Emperor shows "
                "none of it, nor sees uWSGI say it has read its config",
                "use `logger = file:PATH` and `logger = stdio` to have both",
            )


def check_seal(ini: IniFile) -> Iterator[Problem]:
    if ini.broken_seal:
        yield _problem(
            ini,
            1,
            "U002",
            Severity.ERROR,
            f"{ini.broken_seal} (cut short, or edited after rendering): the Emperor won't run it",
            "render it again, or delete line 1 to run it as it is",
        )


def check_file(ini: IniFile, catalog: Catalog, cwd: Path) -> list[Problem]:
    if SECTION not in ini.sections:
        return [
            *check_seal(ini),
            _problem(
                ini,
                1,
                "U001",
                Severity.ERROR,
                "no [uwsgi] section",
                "uWSGI reads only [uwsgi]; add the section header",
            ),
        ]
    return [
        *check_seal(ini),
        *check_options(ini, catalog),
        *check_repeats(ini),
        *check_values(ini),
        *check_routes(ini),
        *check_paths(ini, cwd),
        *check_app(ini, cwd),
        *check_output(ini),
    ]


# --- a deployment ---------------------------------------------------------------------------


def _binds(ini: IniFile, keys: Iterable[str]) -> Iterator[tuple[Option, tuple[str, int] | str]]:
    for option in ini.in_section():
        if option.key in keys and not unresolved(option.value):
            address = parse_address(expand(option.value, ini))
            if address is not None:
                yield option, address


def _overlap(a: tuple[str, int] | str, b: tuple[str, int] | str) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    wildcard = {"0.0.0.0", "::", ""}
    return a[1] == b[1] and (a[0] == b[0] or a[0] in wildcard or b[0] in wildcard)


def check_deployment(files: list[IniFile]) -> Iterator[Problem]:
    bound = [(ini, option, address) for ini in files for option, address in _binds(ini, BIND_KEYS)]
    for index, (ini, option, address) in enumerate(bound):
        for other_ini, other, other_address in bound[:index]:
            if other_ini is not ini and _overlap(address, other_address):
                yield _problem(
                    ini,
                    option.line,
                    "X301",
                    Severity.ERROR,
                    f"{option.value} is also bound by {other_ini.path}:{other.line}",
                    "give each vassal its own port or socket",
                )
    app_sockets = [(ini, a) for ini in files for _, a in _binds(ini, APP_SOCKET_KEYS)]
    for ini in files:
        for option, target in _binds(ini, ("http-to",)):
            if not any(o is not ini and _overlap(target, a) for o, a in app_sockets):
                yield _problem(
                    ini,
                    option.line,
                    "X300",
                    Severity.ERROR,
                    f"http-to {option.value} is not bound by any vassal's socket",
                    "point it at an app vassal's `socket` address",
                )


def check(files: list[IniFile], catalog: Catalog, cwd: Path) -> list[Problem]:
    """Every problem in every file, then the problems between files, in file and line order."""
    problems = [p for ini in files for p in check_file(ini, catalog, cwd)]
    problems += check_deployment([f for f in files if SECTION in f.sections])
    return sorted(problems, key=lambda p: (p.file, p.line, p.rule))
