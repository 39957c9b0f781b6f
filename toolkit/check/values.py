"""Rules on values: what uWSGI reads a number, a flag or an address as, set against what the line
seems to say (core/uwsgi.c uwsgi_opt_* handlers, core/socket.c)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from toolkit.check.keys import APP_KEYS, PATH_KEYS, VIRTUALENV_KEYS, inline_comment, valued
from toolkit.check.model import Context, Finding, at
from toolkit.check.paths import env_files, env_lines
from toolkit.check.reading import (
    AddressError,
    Reading,
    Verdict,
    read_address,
    read_flag,
    read_number,
)
from toolkit.settings import uwsgi_magic
from toolkit.uwsgi_config import FILE, PLACEHOLDER, Config, Setting, atoi, references
from toolkit.uwsgi_ini import WORKER_KEYS
from toolkit.uwsgi_options import ValueKind


def bad_address(config: Config, context: Context) -> Iterator[Finding]:
    for setting in [*valued(config, context, ValueKind.ADDRESS), *config.all("http-to")]:
        if not setting.resolved:
            continue
        try:
            read_address(setting.key, setting.value)
        except AddressError as error:
            yield at(
                setting,
                f"{setting.key} = {setting.value!r}: {error}",
                "use host:port, :port, a unix socket path or =N for a shared socket",
            )


def misread_number(config: Config, context: Context) -> Iterator[Finding]:
    """uwsgi_opt_set_int() (core/uwsgi.c): atoi(value), so `64k` is 64 and `1.5` is 1; below
    0 it exits ('must be > 0'). A blank and words after the number keep it (a warning)."""
    for setting in valued(config, context, ValueKind.NUMBER):
        reading = _number(setting, context)
        if reading.verdict is Verdict.WRONG:
            shown = "alone on its line" if setting.bare else f"= {setting.value!r}"
            flag_like = setting.bare or read_flag(setting.value).verdict is Verdict.PLAIN
            yield at(
                setting,
                f"{setting.key} {shown} is read by uWSGI as {reading.means}",
                "this option takes a number (1 to turn it on)"
                if flag_like
                else "write a whole number in the option's unit (uWSGI reads no k, M or minutes)",
            )
        elif int(reading.means) < 0 and context.table.handler(setting.key) == ("uwsgi_opt_set_int"):
            yield at(
                setting,
                f"{setting.key} = {setting.value!r}: uWSGI exits ('invalid value ... must be > 0')",
                "write 0 or more",
            )


def _number(setting: Setting, context: Context) -> Reading:
    megabytes = context.table.handler(setting.key) == "uwsgi_opt_set_megabytes"
    return read_number(setting.value, in_megabytes=megabytes)


def odd_number(config: Config, context: Context) -> Iterator[Finding]:
    for setting in valued(config, context, ValueKind.NUMBER):
        reading = _number(setting, context)
        if reading.verdict is Verdict.ODD:
            yield at(
                setting,
                f"{setting.key} = {setting.value!r} is read as {reading.means}: uWSGI has no "
                "inline comments; atoi() stops before the rest",
                "put the comment on its own line",
            )


def misread_flag(config: Config, context: Context) -> Iterator[Finding]:
    """uwsgi_opt_true(): true unless the value is false, off, no or 0."""
    for setting in valued(config, context, ValueKind.FLAG):
        if read_flag(setting.value).verdict is Verdict.WRONG:
            yield at(
                setting,
                f"{setting.key} = {setting.value!r} is TRUE to uWSGI "
                "(only false, off, no and 0 are false)",
                "write true or false, and any comment on its own line",
            )


def odd_flag(config: Config, context: Context) -> Iterator[Finding]:
    for setting in valued(config, context, ValueKind.FLAG):
        if read_flag(setting.value).verdict is Verdict.ODD:
            yield at(
                setting,
                f"{setting.key} = {setting.value!r} is read as true",
                "write true or false, and any comment on its own line",
            )


def cheaper_not_below_processes(config: Config, context: Context) -> Iterator[Finding]:
    """uWSGI refuses to start when cheaper >= processes (core/master_utils.c)."""
    cheaper, processes = config.last("cheaper"), config.last(*WORKER_KEYS)
    if not cheaper or not processes or not cheaper.resolved or not processes.resolved:
        return
    low, high = atoi(cheaper.value), atoi(processes.value)
    if low and low >= high:
        yield at(
            cheaper,
            f"cheaper ({low}) must be lower than processes ({high})",
            "uWSGI refuses to start; lower cheaper or raise processes",
        )


def comment_in_app_value(config: Config, context: Context) -> Iterator[Finding]:
    """uWSGI has no inline comments: a `# note` after a module or path is part of it."""
    for setting in config.settings:
        if setting.key in (*APP_KEYS, *PATH_KEYS, *VIRTUALENV_KEYS) and inline_comment(setting):
            yield at(
                setting,
                f"{setting.key} = {setting.value!r}: uWSGI takes the comment as part of it",
                "put the comment on its own line",
            )


def comment_in_value(config: Config, context: Context) -> Iterator[Finding]:
    for setting in config.settings:
        kind = context.table.kind(setting.key)
        if (
            setting.key not in (*APP_KEYS, *PATH_KEYS, *VIRTUALENV_KEYS)
            and kind not in {ValueKind.NUMBER, ValueKind.FLAG, ValueKind.ROUTE}
            and inline_comment(setting)
        ):
            yield at(
                setting,
                f"{setting.key} = {setting.value!r}: if that is a comment, uWSGI keeps it "
                "in the value",
                "put the comment on its own line",
            )


# `@(scheme://...)` readers that run something (core/io.c uwsgi_open_and_read, plugins).
RUNS = ("exec://", "call://", "callint://")


def _magic(text: str) -> Iterator[str]:
    """What each `@(...)` in a value does, in words."""
    for target in references(text, FILE):
        if target.startswith(RUNS):
            yield f"`@({target})` runs {target.partition('://')[2]!r}"
        else:
            yield f"`@({target})` reads {target!r}"


def magic_that_runs(config: Config, context: Context) -> Iterator[Finding]:
    """uWSGI expands `@(...)` in every value (core/uwsgi.c:2265): `@(exec://CMD)` runs CMD
    and puts its output in the value, when the file is read. An env file fed to `env = %(_)`
    goes through the same passes, line by line."""
    for setting in config.settings:
        for what in _magic(setting.written):
            yield at(setting, f"{what} when uWSGI reads this file", "write the value itself")
    for _, path, expanded in env_files(config, context):
        if not expanded:
            continue
        for number, line in enumerate(env_lines(path), start=1):
            magic = uwsgi_magic(line)
            if magic is not None:
                yield Finding(
                    Path(path),
                    number,
                    f"{magic!r} in an env file read with for-readline is uWSGI's config "
                    "language: the app gets the line rewritten"
                    + "".join(f"; {what}" for what in _magic(line)),
                    "use toolkit's env_file, which the app reads as written",
                )


QUOTES = ('"', "'")
# `$NAME` or `${NAME}` as a shell writes it; uWSGI's own references are `$(NAME)`.
SHELL_VARIABLE = re.compile(r"\$(\{?)([A-Za-z_][A-Za-z0-9_]*)\}?")
# Options whose value a shell runs (`/bin/sh -c`), or that uWSGI's routing and log formats
# read with `${...}` of their own: there `$NAME` means what it says.
SHELL_OR_ROUTING = ("daemon", "cron", "exec", "hook", "route", "log", "alarm", "rpc", "spool")


def _in_quotes(value: str) -> bool:
    return len(value) > 1 and value[0] in QUOTES and value[-1] == value[0]


def quoted_value(config: Config, context: Context) -> Iterator[Finding]:
    """uWSGI's ini reader keeps quotes (core/ini.c has no quoting): `env = "A=b"` puts a
    variable named `"A` (putenv of the raw value, core/uwsgi.c uwsgi_opt_set_env), and a
    quoted path or module names a file whose name starts with a quote."""
    for setting in config.settings:
        value = setting.value
        if setting.key == "env" and value.startswith(QUOTES):
            name = value.partition("=")[0]
            yield at(
                setting,
                f"env = {value}: uWSGI sets a variable named {name!r}, quotes included "
                "(uWSGI's ini has no quoting), so the app never sees "
                f"{name.strip(''.join(QUOTES))}",
                f"write `env = {value.strip(''.join(QUOTES))}`",
            )
        elif setting.key in (*APP_KEYS, *PATH_KEYS, *VIRTUALENV_KEYS) and _in_quotes(value):
            yield at(
                setting,
                f"{setting.key} = {value}: the quotes are part of the value to uWSGI (its ini "
                "has no quoting)",
                f"write `{setting.key} = {value[1:-1]}`",
            )


def quotes_kept(config: Config, context: Context) -> Iterator[Finding]:
    """The same quotes where the value may still work: the app or uWSGI gets them."""
    for setting in config.settings:
        value = setting.value
        if setting.key in (*APP_KEYS, *PATH_KEYS, *VIRTUALENV_KEYS) or not value:
            continue
        if setting.key == "env":
            name, _, value = value.partition("=")
            if name.startswith(QUOTES):
                continue
        if _in_quotes(value):
            yield at(
                setting,
                f"{setting.key} = {setting.value}: the quotes are part of the value "
                "(uWSGI's ini has no quoting)",
                "drop the quotes",
            )


def shell_variable(config: Config, context: Context) -> Iterator[Finding]:
    """uWSGI expands `$(NAME)` only (core/uwsgi.c:2262, getenv); `$HOME` and `${HOME}`
    stay as written, so a path or value that uses them is wrong on every machine."""
    for setting in config.settings:
        if context.table.kind(setting.key) is ValueKind.ROUTE or any(
            word in setting.key for word in SHELL_OR_ROUTING
        ):
            continue
        match = SHELL_VARIABLE.search(setting.value)
        if match:
            yield at(
                setting,
                f"{setting.key} = {setting.value}: uWSGI does not expand {match.group(0)} "
                "(a shell's syntax); it stays in the value as written",
                f"write $({match.group(2)}) for the environment variable",
            )


def math_with_parentheses(config: Config, context: Context) -> Iterator[Finding]:
    """uwsgi_manage_placeholder() (core/config.c) splits `%(...)` at blanks and computes left
    to right; it knows no parentheses, so `(2` and `2)` are option names (empty values):
    `%((2 * 2) + 1)` is 1."""
    for setting in config.settings:
        if any("(" in key for key in references(setting.written, PLACEHOLDER)):
            yield at(
                setting,
                f"{setting.key} = {setting.written}: uWSGI's placeholder math has no "
                f"parentheses (it reads `(2` as an option's name), so this is {setting.value!r}",
                "write it without parentheses: uWSGI computes from left to right "
                "(`%(%k * 2 + 1)` is twice the cores plus one)",
            )
