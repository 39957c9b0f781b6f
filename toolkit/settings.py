"""Deployment variables: typed by the recipe's configspec, layered defaults < deploy.ini < --set."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from configobj import ConfigObj, ConfigObjError
from validate import ValidateError, Validator, VdtTypeError, VdtValueError

from toolkit.errors import ToolkitError, did_you_mean
from toolkit.recipes import DERIVED, Recipe

SET_SOURCE = "--set"
MAX_VALUE_LENGTH = 4096
_MODULE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*(:[A-Za-z_][\w]*(\(\))?)?$")
# A URL prefix for a static map: it is also written into a route (`startswith:...;PREFIX`),
# where a blank, `;` or `$` would add an argument, an action or a variable.
_URL_PREFIX = re.compile(r"^/[A-Za-z0-9._~/@+-]*$")
_URL_PATH = re.compile(r"^/[^\s\x00-\x1f\x7f]*$")
# A user or group: a name or a number.
_ACCOUNT = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*\$?|[0-9]+)$")
# A program uWSGI runs through the shell (`attach-daemon`): one word, no shell syntax.
_PROGRAM = re.compile(r"^[A-Za-z0-9_./+-]+$")
# A name that becomes a path (a release ID, an inventory host): no separator, no `..`.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# A path that uWSGI would read as a URL or a command (`exec://`, `http://`, `data://`...).
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# uWSGI expands these in every option value, in this order (core/uwsgi.c:2262-2268): the
# environment, a file's content (or a command's output: `@(exec://...)`), a placeholder.
MAGIC = {
    "$(": "reads an environment variable",
    "@(": "reads a file or runs a command (`@(exec://...)`)",
    "%(": "reads another option or placeholder",
}
_CHECK = re.compile(r"^\s*(\w+)\s*\((.*)\)\s*$")
_ENV_ITEM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def unsafe_character(text: str) -> str | None:
    """The first character that could break an INI line (control, line or paragraph separator)."""
    for char in text:
        if unicodedata.category(char) in {"Cc", "Zl", "Zp"}:
            return char
    return None


def uwsgi_magic(text: str) -> str | None:
    """The first sequence of uWSGI's config language in `text`, which would make a value
    code; None when it is data. (A lone `%` is data: render writes it as `%%`.)"""
    found = [(text.index(seq), seq) for seq in MAGIC if seq in text]
    return min(found)[1] if found else None


def is_name(text: str) -> bool:
    """A name that is safe as one path component."""
    return bool(_NAME.match(text)) and ".." not in text


def _host(value: Any) -> str:
    text = _string(value)
    if text != "localhost":
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise VdtValueError(value) from None
    return text


def _module(value: Any) -> str:
    text = _string(value)
    if not _MODULE.match(text):
        raise VdtValueError(value)
    return text


def _path(value: Any) -> str:
    text = _string(value)
    if not text or text.startswith("-") or _SCHEME.match(text):
        raise VdtValueError(value)
    return text


def _account(value: Any) -> str:
    """A user or group name or number, or empty for none."""
    text = _string(value)
    if text and not _ACCOUNT.match(text):
        raise VdtValueError(value)
    return text


def _program(value: Any) -> str:
    text = _string(value)
    if not _PROGRAM.match(text) or text.startswith("-"):
        raise VdtValueError(value)
    return text


def _name(value: Any) -> str:
    """A name that becomes a path, or empty for none."""
    text = _string(value)
    if text and not is_name(text):
        raise VdtValueError(value)
    return text


def _optional_path(value: Any) -> str:
    """A path, or empty for none."""
    text = _string(value)
    return text and _path(text)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise VdtTypeError(value)
    return value


def _items(value: Any) -> list[str]:
    """A list from deploy.ini (configobj splits at commas, honouring quotes) or from
    `--set name=a, b` (split here)."""
    if isinstance(value, str):
        value = [item for item in value.split(",") if item.strip()]
    if not isinstance(value, list | tuple):
        raise VdtTypeError(value)
    return [_string(item).strip() for item in value]


def _path_list(value: Any) -> list[str]:
    """Paths relative to the app folder: never absolute, never `..`, never a URL."""
    items = _items(value)
    for item in items:
        _path(item)
        if item.startswith("/") or ".." in Path(item).parts:
            raise VdtValueError(item)
    return items


def _command_list(value: Any) -> list[str]:
    """Commands, each split as a shell would (quotes honoured) but never run by one."""
    import shlex

    items = _items(value)
    for item in items:
        try:
            words = shlex.split(item)
        except ValueError:
            raise VdtValueError(item) from None
        if not words:
            raise VdtValueError(item)
    return items


def _url_path(value: Any) -> str:
    """A path a request asks for: `/`, then no blank (it goes into a request line and into
    the health check line the Emperor reads)."""
    text = _string(value)
    if not _URL_PATH.match(text):
        raise VdtValueError(text)
    return text


def _env_list(value: Any) -> list[str]:
    items = _items(value)
    for item in items:
        if not _ENV_ITEM.match(item):
            raise VdtValueError(item)
    return items


def _url_map_list(value: Any) -> list[str]:
    items = _items(value)
    for item in items:
        prefix, equal, folder = item.partition("=")
        if not equal or not _URL_PREFIX.match(prefix):
            raise VdtValueError(item)
        _path(folder.strip())
    return items


VALIDATOR = Validator(
    {
        "host": _host,
        "module": _module,
        "path": _path,
        "optional_path": _optional_path,
        "env_list": _env_list,
        "url_map_list": _url_map_list,
        "path_list": _path_list,
        "command_list": _command_list,
        "account": _account,
        "name": _name,
        "program": _program,
        "url_path": _url_path,
    }
)
LIST_CHECKS = ("env_list", "url_map_list", "string_list", "path_list", "command_list")

_EXPECTED = {
    "integer": "an integer",
    "boolean": "true or false",
    "string": "a string",
    "host": "an IP address or localhost",
    "module": "a Python module name like app or pkg.app:application",
    "path": "a path (not starting with '-', not a URL)",
    "optional_path": "a path (not starting with '-', not a URL), or empty for none",
    "account": "a user or group name or number, or empty",
    "name": "letters, digits, '.', '_' and '-' (no '/', no '..'), or empty",
    "program": "a program name or path, one word without shell syntax",
    "url_path": "a path starting with '/', without blanks (e.g. /healthz?full=1)",
    "option": "one of",
    "env_list": "NAME=value items, comma-separated",
    "url_map_list": "/prefix=folder items, comma-separated (a prefix of letters, digits and "
    "/._~@+-)",
    "path_list": "paths relative to the app folder, comma-separated (no '..', not absolute)",
    "command_list": "commands, comma-separated (quotes as in a shell; no shell runs them)",
}


def expected(check: str) -> str:
    """Say in words what a configspec check accepts, for error messages."""
    match = _CHECK.match(check)
    name, args = (match.group(1), match.group(2)) if match else (check.strip(), "")
    words = _EXPECTED.get(name, name)
    bounds = dict(re.findall(r"(min|max)\s*=\s*(-?\d+)", args))
    if "min" in bounds and "max" in bounds:
        words += f" from {bounds['min']} to {bounds['max']}"
    elif "min" in bounds:
        words += f" >= {bounds['min']}"
    elif "max" in bounds:
        words += f" <= {bounds['max']}"
    if name == "option":
        choices = [c.strip().strip("'\"") for c in args.split(",") if "=" not in c]
        words += " " + ", ".join(choices)
    return words


@dataclass(frozen=True)
class RawValue:
    """A value as written, where it was written, and its items when deploy.ini gave a list."""

    text: str
    source: str
    items: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Variables:
    """Validated values with where each came from ("recipe default", "file:line" or "--set")."""

    recipe: Recipe
    values: Mapping[str, Any]
    sources: Mapping[str, str]


def defaults(recipe: Recipe) -> dict[str, Any]:
    return {v.name: VALIDATOR.get_default_value(v.check) for v in recipe.variables}


def key_lines(text: str) -> dict[tuple[str, ...], int]:
    """Line of each `key =` and `[section]`, by section path; configobj keeps no line numbers."""
    lines: dict[tuple[str, ...], int] = {}
    sections: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^\s*(\[+)\s*([^\]]+?)\s*\]+", line)
        if header:
            sections = [*sections[: len(header.group(1)) - 1], header.group(2)]
            lines.setdefault(tuple(sections), number)
            continue
        match = re.match(r"^\s*([^#;=\[\s][^=]*?)\s*=", line)
        if match:
            lines.setdefault((*sections, match.group(1).strip("'\"")), number)
    return lines


def read_ini(path: Path, what: str) -> tuple[ConfigObj, dict[tuple[str, ...], int]]:
    """A configobj file and the line of each key, or one error line naming the file and the
    line that broke it. Read once, as a regular file of bounded size."""
    from toolkit.files import read_regular

    try:
        text = read_regular(path, what).decode("utf-8")
    except OSError as error:
        raise ToolkitError(f"cannot read: {error.strerror}", file=path) from error
    except UnicodeDecodeError as error:
        raise ToolkitError("not UTF-8 text", file=path, hint="save the file as UTF-8") from error
    try:
        # No interpolation: `%(name)s` in a value is those characters, not another value.
        parsed = ConfigObj(text.splitlines(), encoding="utf-8", interpolation=False)
    except ConfigObjError as error:
        line = getattr(error, "line_number", None)
        raise ToolkitError(
            f"not a valid {what}: {error}",
            file=path,
            line=line,
            hint="each line is `name = value`; quote a value that contains a comma",
        ) from error
    return parsed, key_lines(text)


def raw_values(
    section: Mapping[str, Any],
    path: Path,
    lines: Mapping[tuple[str, ...], int],
    where: tuple[str, ...] = (),
    skip: tuple[str, ...] = (),
) -> dict[str, RawValue]:
    """Plain `name = value` entries of a section, each with its file:line."""
    values: dict[str, RawValue] = {}
    for key, value in section.items():
        line = lines.get((*where, key))
        if key in skip:
            continue
        if isinstance(value, dict):
            raise ToolkitError(
                f"unexpected section [{key}]",
                file=path,
                line=line,
                hint="only `name = value` lines belong here",
            )
        source = f"{path}:{line or 1}"
        if isinstance(value, list):
            values[key] = RawValue(", ".join(value), source, tuple(value))
        else:
            values[key] = RawValue(str(value), source)
    return values


def read_deploy_ini(path: Path) -> tuple[str | None, dict[str, RawValue]]:
    """The recipe a deployment names and its raw values, each with file:line."""
    parsed, lines = read_ini(path, "deploy.ini")
    values = raw_values(parsed, path, lines)
    recipe = values.pop("recipe", None)
    return (recipe.text if recipe else None), values


def parse_overrides(pairs: Iterable[str]) -> dict[str, RawValue]:
    """`--set name=value` pairs, last one wins."""
    values: dict[str, RawValue] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ToolkitError(
                f"--set {pair!r}: expected name=value", hint="for example --set http_port=8080"
            )
        values[name.strip()] = RawValue(value, SET_SOURCE)
    return values


def _fail(name: str, raw: RawValue, message: str, hint: str | None = None) -> ToolkitError:
    file, _, line = raw.source.rpartition(":")
    if raw.source == SET_SOURCE or not line.isdigit():
        return ToolkitError(f"{name}: {message}", file=raw.source, hint=hint)
    return ToolkitError(f"{name}: {message}", file=file, line=int(line), hint=hint)


def resolve(recipe: Recipe, *layers: Mapping[str, RawValue]) -> Variables:
    """Validate every layer's values against the recipe's spec; later layers win."""
    merged: dict[str, RawValue] = {}
    for layer in layers:
        merged.update(layer)
    values = defaults(recipe)
    sources = dict.fromkeys(values, "recipe default")
    known = [v.name for v in recipe.variables]
    for name, raw in merged.items():
        variable = recipe.variable(name)
        if variable is None:
            hint = did_you_mean(name, known, f"known: {', '.join(known)}")
            raise _fail(name, raw, f"unknown variable for recipe {recipe.name!r}", hint)
        bad = unsafe_character(raw.text)
        if bad is not None:
            raise _fail(
                name,
                raw,
                f"control character {bad!r} not allowed",
                "a value must stay on one line; it could otherwise add a uWSGI option",
            )
        if len(raw.text) > MAX_VALUE_LENGTH:
            raise _fail(name, raw, f"value longer than {MAX_VALUE_LENGTH} characters")
        magic = uwsgi_magic(raw.text)
        if magic is not None:
            raise _fail(
                name,
                raw,
                f"{magic!r} is uWSGI's config language (it {MAGIC[magic]}), not data",
                "a value is written as data; put a secret or any value holding it in env_file, "
                "which reaches the app as written",
            )
        is_list = variable.check.split("(")[0].strip() in LIST_CHECKS
        if raw.items is not None and not is_list:
            raise _fail(
                name, raw, "expected one value, got a list", "quote a value that contains a comma"
            )
        try:
            given = list(raw.items) if raw.items is not None else raw.text
            values[name] = VALIDATOR.check(variable.check, given)
        except ValidateError:
            raise _fail(
                name, raw, f"got {raw.text!r}, expected {expected(variable.check)}"
            ) from None
        sources[name] = raw.source
    _derive(values, sources)
    _check_relations(values, sources, merged)
    return Variables(recipe, values, sources)


def _derive(values: dict[str, Any], sources: dict[str, str]) -> None:
    """A variable left unset whose default follows another one: `subscription_port` is
    `http_port + 2`, so two deployments on other ports never share a subscription server."""
    for name, (base, offset) in DERIVED.items():
        if name in values and values[name] is None and isinstance(values.get(base), int):
            values[name] = values[base] + offset
            sources[name] = f"{base} + {offset}"


def _check_relations(
    values: Mapping[str, Any], sources: Mapping[str, str], raw: Mapping[str, RawValue]
) -> None:
    """Rules across variables, reported against the variable the user set."""
    processes, cheaper = values.get("processes"), values.get("cheaper")
    if isinstance(processes, int) and isinstance(cheaper, int) and 0 < processes <= cheaper:
        name = "cheaper" if "cheaper" in raw else "processes"
        where = raw.get(name, RawValue(str(values[name]), sources[name]))
        raise _fail(
            name,
            where,
            f"cheaper ({cheaper}) must be lower than processes ({processes})",
            "uWSGI refuses to start otherwise; lower cheaper or raise processes",
        )
