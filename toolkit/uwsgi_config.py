"""A config as uWSGI 2.0 itself reads it: magic variables, includes, logic blocks,
placeholders and environment references, in uWSGI's order (core/uwsgi.c, core/config.c).

The result says, for every option, where it was written and what uWSGI will do with it,
so the checker judges what runs, not what the file looks like."""

from __future__ import annotations

import dataclasses
import functools
import glob
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from toolkit import seal, uwsgi_ini
from toolkit.errors import ToolkitError
from toolkit.files import read_regular
from toolkit.uwsgi_options import OptionTable, ValueKind, option_table

# Keys that close a logic block (core/config.c, add_exported_option_do).
BLOCK_ENDS = frozenset({"end", "endfor", "endif", "end-if", "end-for"})
# The three passes uWSGI makes over every value, in its order (core/uwsgi.c:2262-2268).
ENV, FILE, PLACEHOLDER = "$", "@", "%"
# A value rewritten more often than this loops (`a = x%(a)`: uWSGI itself never ends).
MAX_EXPANSIONS = 64
DIGITS = re.compile(r"[0-9]+")  # is_a_number() (core/utils.c): digits only, no sign
MATH_WORDS = frozenset({"+", "-", "*", "/", "++", "--"})
# Deeper than this is a loop through links (uWSGI itself would recurse until it crashes).
MAX_INCLUDE_DEPTH = 32


@dataclass(frozen=True)
class Setting:
    """One option as uWSGI will apply it. `value` has `$(VAR)`, `%(name)` and a logic
    block's `%(_)` filled in where they can be known here; `written` is the file's text
    after magic variables. `condition` names the logic block it came from."""

    key: str
    value: str
    written: str
    file: Path
    line: int
    bare: bool = False
    condition: str | None = None

    @property
    def resolved(self) -> bool:
        """False while a reference is left that only the machine uWSGI runs on can fill."""
        return not any(references(self.value, symbol) for symbol in (ENV, FILE, PLACEHOLDER))


@dataclass(frozen=True)
class Issue:
    """Something about the file's structure: `kind` is one of the ISSUE_* names below."""

    kind: str
    file: Path
    line: int
    detail: str


MERGE_MARKER = "merge-marker"
MISSING_INCLUDE = "missing-include"
INCLUDE_LOOP = "include-loop"
NESTED_LOGIC = "nested-logic"
NO_SECTION = "no-section"


@dataclass
class Config:
    """Everything uWSGI would read for `--ini path:section`."""

    path: Path
    section: str
    files: list[uwsgi_ini.IniFile] = field(default_factory=list)
    settings: list[Setting] = field(default_factory=list)
    skipped: list[Setting] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    placeholders: set[str] = field(default_factory=set)
    declared: set[str] = field(default_factory=set)
    kinds: dict[ValueKind, list[Setting]] = field(default_factory=dict, repr=False)

    @property
    def top(self) -> uwsgi_ini.IniFile:
        return self.files[0]

    def all(self, *keys: str) -> list[Setting]:
        """The settings of these keys, in uWSGI's order."""
        found = [s for key in keys for s in self._by_key.get(key, [])]
        if len(keys) > 1 and len(found) > 1:
            order = self._order
            found.sort(key=lambda s: order[id(s)])
        return found

    @functools.cached_property
    def _order(self) -> dict[int, int]:
        return {id(s): i for i, s in enumerate(self.settings)}

    def of_kind(self, table: OptionTable, kind: ValueKind) -> list[Setting]:
        """The settings whose values uWSGI reads the `kind` way, with no reference left."""
        if not self.kinds:
            for setting in self.settings:
                if setting.resolved:
                    self.kinds.setdefault(table.kind(setting.key), []).append(setting)
        return self.kinds.get(kind, [])

    @functools.cached_property
    def _by_key(self) -> dict[str, list[Setting]]:
        """Built on first use, once loading is over (load() replaces settings as it goes)."""
        index: dict[str, list[Setting]] = {}
        for setting in self.settings:
            index.setdefault(setting.key, []).append(setting)
        return index

    def last(self, *keys: str) -> Setting | None:
        found = self.all(*keys)
        return found[-1] if found else None

    def first_value(self, key: str) -> str | None:
        """What uWSGI's `uwsgi_get_exported_opt` returns: the first setting of that key."""
        return next((s.value for s in self.settings if s.key == key), None)


@dataclass(frozen=True)
class LocalMachine:
    """What the logic blocks and magic variables may ask of the machine uWSGI runs on."""

    cwd: Path
    env: Mapping[str, str]
    plugins: frozenset[str] = frozenset()
    binary: str = ""  # the uwsgi executable, as uWSGI finds itself (/proc/self/exe): `%b`

    @property
    def hostname(self) -> str:
        return socket.gethostname()


def magic_table(
    path: Path, section: str, first: Mapping[str, str] | None, binary: str = ""
) -> dict[str, str]:
    """config_magic_table_fill() (core/uwsgi.c:1045): per-file variables; the upper-case
    ones keep the values of the first file read."""
    full = os.path.abspath(path)
    name = os.path.basename(full)
    folder = full[: len(full) - len(name)]
    try:
        inode = str(os.lstat(full).st_ino)
    except OSError:
        inode = ""
    table = {
        "b": binary,
        "i": inode,
        "j": _name_hash(full),
        "o": str(path),
        "p": full,
        "s": name,
        "d": folder,
        "c": os.path.basename(folder.rstrip("/")),
        "e": name.rpartition(".")[2] if "." in name else "",
        "n": name.rpartition(".")[0] if "." in name else name,
        "x": section,
        **_machine_magic(),
    }
    for index, part in enumerate([p for p in folder.split("/") if p][:10]):
        table[str(index)] = part
    if first is None:
        table.update({k.upper(): table[k] for k in "odspcenxij"})
    else:
        table.update({k: v for k, v in first.items() if k.isupper()})
    return table


def _name_hash(full: str) -> str:
    """`%j`: djb33x_hash() (core/hash.c) of the full name, its four bytes in upper-case hex
    as they lie in memory (little-endian); C's `char` is signed: bytes past 127 are negative."""
    value = 5381
    for byte in os.fsencode(full):
        value = (((value << 5) + value) ^ ((byte - 256 if byte > 127 else byte) & 0xFFFFFFFF)) & (
            0xFFFFFFFF
        )
    return value.to_bytes(4, "little").hex().upper()


MAGIC = re.compile(r"%(.)", re.DOTALL)


@functools.cache
def _machine_magic() -> dict[str, str]:
    """The variables uWSGI sets once per process (core/uwsgi.c, before reading configs)."""
    return {
        "%": "%",
        "(": "%(",
        "k": str(os.cpu_count() or 1),
        "h": socket.gethostname(),
        "u": str(os.getuid()),
        "g": str(os.getgid()),
    }


def substitute_magic(text: str, table: Mapping[str, str]) -> str:
    """magic_sub() (core/utils.c): `%X` becomes the table's value, and "" for any letter the
    table lacks; `%%` is `%` and `%(` stays for the placeholder pass."""
    if "%" not in text:
        return text
    return MAGIC.sub(lambda match: table.get(match.group(1), ""), text)


def split_target(value: str) -> tuple[str, str | None]:
    """`FILE:section` as uwsgi_ini_config() splits it: at the last colon."""
    head, colon, section = value.rpartition(":")
    if not colon:
        return value, None
    return head, section or None


class _Reader:
    """Feeds lines to a model of add_exported_option_do(), one config at a time."""

    def __init__(self, config: Config, machine: LocalMachine, table: OptionTable) -> None:
        self.config = config
        self.machine = machine
        self.table = table
        self.logic: tuple[str, str, Setting] | None = None
        self.reading: list[tuple[Path, str]] = []
        self.first_magic: dict[str, str] | None = None
        self.last_file: Path | None = None

    def read_file(
        self, path: Path, section: str, origin: Setting | None, text: str | None = None
    ) -> None:
        real = (Path(os.path.abspath(path)), section)
        where = (origin.file, origin.line) if origin else (path, 1)
        if real in self.reading or len(self.reading) > MAX_INCLUDE_DEPTH:
            chain = " -> ".join(f"{p.name}:{s}" for p, s in [*self.reading, real])
            self.config.issues.append(Issue(INCLUDE_LOOP, *where, chain))
            return
        if text is None:
            try:
                text = read_regular(path, "config").decode("utf-8", errors="replace")
            except OSError as error:
                reason = error.strerror or str(error)
                self.config.issues.append(Issue(MISSING_INCLUDE, *where, reason))
                return
            except ToolkitError as error:
                self.config.issues.append(Issue(MISSING_INCLUDE, *where, error.message))
                return
        self.last_file = path
        table = magic_table(path, section, self.first_magic, self.machine.binary)
        if self.first_magic is None:
            self.first_magic = table
        ini = dataclasses.replace(
            uwsgi_ini.parse(substitute_magic(text, table), path),
            broken_seal=seal.broken(text.encode()),
        )
        self.config.files.append(ini)
        for line in ini.merge_markers:
            self.config.issues.append(Issue(MERGE_MARKER, path, line, ""))
        if section not in ini.sections:
            self.config.issues.append(Issue(NO_SECTION, *where, section))
        self.reading.append(real)
        for option in ini.in_section(section):
            setting = Setting(
                option.key, option.value, option.value, path, option.line, option.bare
            )
            self.feed(setting)
        self.reading.pop()

    def feed(self, setting: Setting) -> None:
        if setting.key in BLOCK_ENDS:
            self.logic = None
        if self.logic is not None:
            kind, argument, opener = self.logic
            values = LOGIC[kind](self, argument, setting.value)
            condition = f"{opener.key} = {opener.value}"
            if not values:
                self.config.skipped.append(_with(setting, condition=condition))
            for value in values:
                self.add(_with(setting, value=value, condition=condition))
            return
        self.add(setting)

    def add(self, setting: Setting) -> None:
        self.config.settings.append(setting)
        handler, target = self.table.handler(setting.key), self.table.target(setting.key)
        if handler == "uwsgi_opt_logic":
            if self.logic is not None:
                self.config.issues.append(
                    Issue(NESTED_LOGIC, setting.file, setting.line, setting.key)
                )
                return
            self.logic = (target.rpartition(" ")[2], setting.value, setting)
        elif handler == "uwsgi_opt_load_ini" or (
            handler == "uwsgi_opt_load" and setting.value.endswith(".ini")
        ):
            self.include(setting)
        elif handler == "uwsgi_opt_set_placeholder":
            name, equal, value = setting.value.partition("=")
            if equal and target != "NULL":
                self.config.placeholders.add(name)
            elif equal:
                self.add(_with(setting, key=name, value=value, written=value))
        elif handler == "uwsgi_opt_add_custom_option":
            self.config.declared.add(setting.value.partition("=")[0])

    def include(self, setting: Setting) -> None:
        """`ini = FILE`, `ini = FILE:section` and `ini = :section` (the last file read)."""
        name, section = split_target(setting.value)
        if not name:
            path = self.last_file or self.config.path
        else:
            path = self.machine.cwd / expand_env(name, self.machine.env)
        self.read_file(path, section or uwsgi_ini.SECTION, setting)


def _with(setting: Setting, **changes: object) -> Setting:
    return dataclasses.replace(setting, **changes)  # type: ignore[arg-type]


# --- logic blocks: each returns the values to add (after `%(_)`), [] when not taken -----------


def _fill(value: str, data: str) -> str:
    return value.replace("%(_)", data)


def _env_test(reader: _Reader, argument: str) -> tuple[bool, str]:
    name, equal, wanted = argument.partition("=")
    found = reader.machine.env.get(name)
    if found is None:
        return False, ""
    return (not equal or found == wanted), found


def _opt_test(reader: _Reader, argument: str) -> tuple[bool, str]:
    name, equal, wanted = argument.partition("=")
    found = reader.config.first_value(name)
    if found is None:
        return False, ""
    return (not equal or found == wanted), found


def _path(reader: _Reader, argument: str) -> Path:
    return reader.machine.cwd / argument


def _when(test: bool, value: str, data: str) -> list[str]:
    return [_fill(value, data)] if test else []


def _for_each(reader: _Reader, argument: str, value: str) -> list[str]:
    return [_fill(value, token) for token in argument.split(" ") if token]


def _for_glob(reader: _Reader, argument: str, value: str) -> list[str]:
    pattern = str(_path(reader, argument))
    matches = sorted(glob.glob(pattern)) or [argument]
    return [_fill(value, m + ("/" if os.path.isdir(m) else "")) for m in matches]


def _for_times(reader: _Reader, argument: str, value: str) -> list[str]:
    return [_fill(value, str(i)) for i in range(1, atoi(argument) + 1)]


def _for_readline(reader: _Reader, argument: str, value: str) -> list[str]:
    try:
        data = read_regular(_path(reader, argument), "file")
    except (OSError, ToolkitError):
        return []
    lines = data.decode(errors="replace").splitlines()
    return [_fill(value, line) for line in lines]


LOGIC: dict[str, Callable[[_Reader, str, str], list[str]]] = {
    "uwsgi_logic_opt_for": _for_each,
    "uwsgi_logic_opt_for_glob": _for_glob,
    "uwsgi_logic_opt_for_times": _for_times,
    "uwsgi_logic_opt_for_readline": _for_readline,
    "uwsgi_logic_opt_if_env": lambda r, a, v: _when(_env_test(r, a)[0], v, _env_test(r, a)[1]),
    "uwsgi_logic_opt_if_not_env": lambda r, a, v: _when(not _env_test(r, a)[0], v, ""),
    "uwsgi_logic_opt_if_opt": lambda r, a, v: _when(_opt_test(r, a)[0], v, _opt_test(r, a)[1]),
    "uwsgi_logic_opt_if_not_opt": lambda r, a, v: _when(not _opt_test(r, a)[0], v, ""),
    "uwsgi_logic_opt_if_exists": lambda r, a, v: _when(_path(r, a).exists(), v, a),
    "uwsgi_logic_opt_if_not_exists": lambda r, a, v: _when(not _path(r, a).exists(), v, a),
    "uwsgi_logic_opt_if_file": lambda r, a, v: _when(_path(r, a).is_file(), v, a),
    "uwsgi_logic_opt_if_not_file": lambda r, a, v: _when(not _path(r, a).is_file(), v, a),
    "uwsgi_logic_opt_if_dir": lambda r, a, v: _when(_path(r, a).is_dir(), v, a),
    "uwsgi_logic_opt_if_not_dir": lambda r, a, v: _when(not _path(r, a).is_dir(), v, a),
    "uwsgi_logic_opt_if_reload": lambda r, a, v: [],
    "uwsgi_logic_opt_if_not_reload": lambda r, a, v: [v],
    "uwsgi_logic_opt_if_plugin": lambda r, a, v: _when(a in r.machine.plugins, v, a),
    "uwsgi_logic_opt_if_not_plugin": lambda r, a, v: _when(a not in r.machine.plugins, v, a),
    "uwsgi_logic_opt_if_hostname": lambda r, a, v: _when(r.machine.hostname == a, v, a),
    "uwsgi_logic_opt_if_not_hostname": lambda r, a, v: _when(r.machine.hostname != a, v, a),
    "uwsgi_logic_opt_if_hostname_match": lambda r, a, v: _when(
        bool(re.search(a, r.machine.hostname)), v, a
    ),
    "uwsgi_logic_opt_if_not_hostname_match": lambda r, a, v: _when(
        not re.search(a, r.machine.hostname), v, a
    ),
}


# --- the passes uWSGI makes over every value once all files are read -----------------------


def atoi(text: str) -> int:
    """C's atoi(): leading blanks, an optional sign, then digits; 0 when there are none."""
    match = re.match(r"[ \t\n\v\f\r]*([+-]?\d+)", text)
    return int(match.group(1)) if match else 0


def references(value: str, symbol: str) -> list[str]:
    """What uWSGI's pass for `symbol` would look up in `value`: `%((2 * 2) + 1)` asks for
    `(2 * 2) + 1` (parentheses nest), `%()` and `%(a%b)` ask for nothing."""
    found: list[str] = []
    _config_pass(value, symbol, lambda key: found.append(key))
    return found


def expand_pass(value: str, symbol: str, lookup: Callable[[str], str | None]) -> str:
    """uwsgi_apply_config_pass() (core/utils.c:3008): each `symbol(key)` whose lookup
    answers is replaced and the scan starts again (at the value's second character, as the
    C loop's `j = 0` is followed by its `j++`); a key with no answer is left as written."""
    return _config_pass(value, symbol, lookup)


def _config_pass(value: str, symbol: str, lookup: Callable[[str], str | None]) -> str:
    state = depth = start = expansions = 0
    index = 0
    while index < len(value):
        char = value[index]
        index += 1
        if char == symbol:
            state = 1
        elif char == "(" and state == 1:
            state, depth, start = 2, 0, index
        elif state > 1:
            if char == "(":
                state, depth = state + 1, depth + 1
            elif char == ")" and depth > 0:
                state, depth = state + 1, depth - 1
            elif char == ")":
                found = lookup(value[start : start + state - 2]) if state > 2 else None
                if found is not None and expansions < MAX_EXPANSIONS:
                    value = value[: start - 2] + found + value[start + state - 1 :]
                    expansions += 1
                    index = 1
                state = 0
            else:
                state += 1
        else:
            state = 0
    return value


def expand_env(value: str, env: Mapping[str, str]) -> str:
    """`$(NAME)` from the environment; an unset name is left as it is, as uWSGI leaves it."""
    if "$(" not in value:
        return value
    return expand_pass(value, ENV, env.get)


def _placeholder(config: Config, name: str) -> str | None:
    """uwsgi_manage_placeholder(): an option's first value, or words joined or summed."""
    if " " not in name:
        return config.first_value(name)
    current: str | None = None
    operator = ""
    for word in name.split(" "):
        if not word:
            continue
        if word in MATH_WORDS:
            if word in {"++", "--"} and current is not None:
                current = str(atoi(current) + (1 if word == "++" else -1))
            operator = "" if word in {"++", "--"} else word
            continue
        value = word if DIGITS.fullmatch(word) else (config.first_value(word) or "")
        if not operator:
            current = (current or "") + value
        else:
            current = str(_arithmetic(operator, atoi(current or ""), atoi(value)))
        operator = ""
    return current


def _arithmetic(operator: str, left: int, right: int) -> int:
    """C's int64 arithmetic: division truncates toward zero, and by zero is 0."""
    if operator == "+":
        return left + right
    if operator == "-":
        return left - right
    if operator == "*":
        return left * right
    if not right:
        return 0
    quotient = abs(left) // abs(right)
    return quotient if (left < 0) == (right < 0) else -quotient


def _fill_placeholders(config: Config) -> None:
    for index, setting in enumerate(config.settings):
        value = setting.value
        if "%(" in value:
            value = expand_pass(value, PLACEHOLDER, lambda name: _placeholder(config, name))
            config.settings[index] = _with(setting, value=value)


def load(
    path: Path,
    machine: LocalMachine,
    section: str = uwsgi_ini.SECTION,
    text: str | None = None,
    table: OptionTable | None = None,
) -> Config:
    """Read `path` (or `text`, a file about to be written there) the way `uwsgi --ini
    path:section` would on `machine`."""
    config = Config(path, section)
    reader = _Reader(config, machine, table or option_table())
    reader.read_file(path, section, None, text)
    config.settings = [
        _with(s, value=expand_env(s.value, machine.env)) if "$(" in s.value else s
        for s in config.settings
    ]
    _fill_placeholders(config)
    return config
