"""The rule table: one function per rule, each yielding findings for one config (or for the
configs of one deployment). Every rule cites the uWSGI behaviour it models."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from toolkit.check.model import Context, Finding, Rule, Weight
from toolkit.check.values import (
    Address,
    AddressError,
    Verdict,
    read_address,
    read_flag,
    read_number,
    same_place,
)
from toolkit.errors import did_you_mean
from toolkit.uwsgi_config import (
    INCLUDE_LOOP,
    MERGE_MARKER,
    MISSING_INCLUDE,
    NESTED_LOGIC,
    NO_SECTION,
    PLACEHOLDER,
    Config,
    Setting,
    atoi,
)
from toolkit.uwsgi_ini import MERGE_MARKERS, WORKER_KEYS
from toolkit.uwsgi_options import Kind

# Keys uWSGI 2.0 does not have that people write after reading newer docs.
NOT_IN_2_0 = {
    "else": "uWSGI 2.0 has no `else`: close the block and open its opposite (if-not-...)",
    "end": "uWSGI 2.0 closes blocks with `endif` or `endfor`, not `end`",
}
APP_KEYS = ("module", "wsgi", "wsgi-file", "file", "mount", "callable", "eval", "pymodule-alias")
PATH_KEYS = ("chdir", "pythonpath", "python-path", "pp", "wsgi-file", "file", "check-static")
VIRTUALENV_KEYS = ("home", "virtualenv", "venv", "pyhome")
OUTPUT_REDIRECT_KEYS = ("logto", "logto2", "daemonize", "daemonize2")
FILE_FOLDER_KEYS = ("pidfile", "pidfile2", *OUTPUT_REDIRECT_KEYS)
LOGGER_KEYS = ("logger", "req-logger")
APP_SOCKET_KEYS = ("socket", "uwsgi-socket")
LOGIC_OPT_KEYS = ("if-opt", "if-not-opt")
TYPO_CUTOFF = 0.8
ENV_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# What a static folder must not hold: uWSGI would send it to anyone who asks.
CODE_FILES = re.compile(
    r"(\.py|\.pyc|\.env|\.sqlite3?|\.db|\.ini|\.cfg|\.toml|\.pem|\.key)$|^(\.git|\.env)$"
)
MAX_STATIC_SCAN = 20000
T = TypeVar("T")


def _at(setting: Setting, message: str, hint: str = "") -> Finding:
    return Finding(setting.file, setting.line, message, hint)


def _issues(config: Config, kind: str) -> Iterator[tuple[Path, int, str]]:
    for issue in config.issues:
        if issue.kind == kind:
            yield issue.file, issue.line, issue.detail


# --- structure ------------------------------------------------------------------------------


def no_section(config: Config, context: Context) -> Iterator[Finding]:
    """uwsgi_ini_config() only warns and goes on with no options at all."""
    top = config.top
    if config.section in top.sections:
        return
    near = did_you_mean(config.section, [s.strip() for s in top.sections], "")
    hint = (
        f"uWSGI compares section names exactly: write [{config.section}]"
        if near
        else f"uWSGI reads only [{config.section}]; add the section header"
    )
    yield Finding(top.path, 1, f"no [{config.section}] section", hint)


def broken_seal(config: Config, context: Context) -> Iterator[Finding]:
    if config.top.broken_seal:
        yield Finding(
            config.top.path,
            1,
            f"{config.top.broken_seal} (cut short, or edited after rendering): "
            "the Emperor won't run it",
            "render it again, or delete line 1 to run it as it is",
        )


def merge_markers(config: Config, context: Context) -> Iterator[Finding]:
    for file, line, _ in _issues(config, MERGE_MARKER):
        yield Finding(
            file,
            line,
            "git merge conflict marker: uWSGI reads it as an option",
            "resolve the conflict and delete the <<<<<<< / ======= / >>>>>>> lines",
        )


def missing_include(config: Config, context: Context) -> Iterator[Finding]:
    for file, line, reason in _issues(config, MISSING_INCLUDE):
        yield Finding(
            file,
            line,
            f"included file cannot be read ({reason}): uWSGI exits",
            "fix the path (relative paths start from uWSGI's working folder; %d is this "
            "file's folder)",
        )


def include_loop(config: Config, context: Context) -> Iterator[Finding]:
    for file, line, chain in _issues(config, INCLUDE_LOOP):
        yield Finding(
            file,
            line,
            f"include loop ({chain}): uWSGI 2.0 recurses until it crashes",
            "include each file once; move shared options to a third file",
        )


def nested_logic(config: Config, context: Context) -> Iterator[Finding]:
    for file, line, key in _issues(config, NESTED_LOGIC):
        yield Finding(
            file,
            line,
            f"{key} inside another if/for block: uWSGI exits "
            "('recursive logic in options is not supported')",
            "close the outer block with endif/endfor first",
        )


def included_section_missing(config: Config, context: Context) -> Iterator[Finding]:
    for file, line, section in _issues(config, NO_SECTION):
        if file != config.top.path or line != 1:
            yield Finding(
                file,
                line,
                f"the included file has no [{section}] section: uWSGI reads nothing from it",
                "name a section the file has (FILE:section)",
            )


# --- options --------------------------------------------------------------------------------


def _is_strict(config: Config) -> bool:
    strict = config.last("strict")
    return strict is not None and read_flag(strict.value).means == "true"


def _known(key: str, config: Config, context: Context) -> bool:
    """Known to this build, declared by the file, or a merge marker (U003 says so)."""
    return (
        context.catalog.knows(key)
        or key in config.declared
        or key in config.placeholders
        or key.startswith(MERGE_MARKERS)
        or not key.strip("=")
    )


def _used_as_placeholders(config: Config) -> set[str]:
    """Names read back with `%(name)` (words of `%(a + b)` too) or tested by if-opt."""
    used: set[str] = set()
    for setting in [*config.settings, *config.skipped]:
        for inside in PLACEHOLDER.findall(setting.written):
            used.update(inside.split())
        if setting.key in LOGIC_OPT_KEYS:
            used.add(setting.value.partition("=")[0])
    return used


def _missing_plugins(config: Config, context: Context) -> set[str]:
    return {
        name
        for setting in config.all("plugins", "plugin", "need-plugin", "need-plugins")
        for name in _plugin_names(setting.value)
        if _base_plugin(name) not in context.catalog.plugins
    }


def _plugin_names(value: str) -> list[str]:
    names = [n.strip() for n in re.split(r"[,\s]+", value) if n.strip()]
    return [os.path.basename(n).removesuffix("_plugin.so") for n in names]


def _base_plugin(name: str) -> str:
    """Distributions name the python plugin python3, python311...: one plugin to uWSGI."""
    return re.sub(r"^(python|pypy|rack|ruby|lua|php|psgi)\d*$", r"\1", name)


def unknown_option(config: Config, context: Context) -> Iterator[Finding]:
    """uwsgi_opt_get(): with `strict`, an unknown key stops the start; without it, the key
    is silently a placeholder, so a misspelt option does nothing."""
    strict = _is_strict(config)
    missing = _missing_plugins(config, context)
    for setting in config.settings:
        key = setting.key
        if _known(key, config, context):
            continue
        if key in NOT_IN_2_0:
            yield _at(setting, f"unknown option {key!r}", NOT_IN_2_0[key])
            continue
        plugin = context.table.plugin(key)
        if plugin is not None:
            if plugin not in missing:
                yield _at(
                    setting,
                    f"option {key!r} belongs to the {plugin} plugin, which this uWSGI "
                    f"({context.catalog.version}) lacks",
                    f"build uWSGI with the {plugin} plugin or remove the option",
                )
            continue
        if strict or _looks_like_typo(key, context):
            hint = did_you_mean(key, context.catalog.options, "see `uwsgi --help`", TYPO_CUTOFF)
            yield _at(setting, f"unknown option {key!r}", hint)


def placeholder_option(config: Config, context: Context) -> Iterator[Finding]:
    """Without `strict`, uWSGI takes an unknown key as a placeholder; with it, it refuses."""
    if _is_strict(config):
        return
    missing = _missing_plugins(config, context)
    used = _used_as_placeholders(config)
    for setting in config.settings:
        key = setting.key
        if (
            _known(key, config, context)
            or key in NOT_IN_2_0
            or context.table.plugin(key) is not None
            or _looks_like_typo(key, context)
        ):
            continue
        if missing:
            yield _at(
                setting,
                f"unknown option {key!r}: perhaps from the {', '.join(sorted(missing))} "
                "plugin this build lacks",
            )
        else:
            how = "read back as %(" + key + ")" if key in used else "never read back"
            yield _at(
                setting,
                f"{key!r} is not a uWSGI option: a placeholder ({how}); "
                "`uwsgi --strict` refuses it",
                f"declare it with `set-placeholder = {key}=...`",
            )


def _looks_like_typo(key: str, context: Context) -> bool:
    """Close to a real option and shaped like one (options use dashes, never underscores)."""
    if "_" in key:
        return False
    return bool(did_you_mean(key, context.catalog.options, "", TYPO_CUTOFF))


def unknown_in_untaken_branch(config: Config, context: Context) -> Iterator[Finding]:
    """uWSGI only looks up the keys of the branches it takes."""
    for setting in config.skipped:
        if _known(setting.key, config, context) or context.table.plugin(setting.key):
            continue
        hint = NOT_IN_2_0.get(setting.key) or did_you_mean(
            setting.key, context.catalog.options, "see `uwsgi --help`"
        )
        yield _at(
            setting,
            f"unknown option {setting.key!r}, not read here ({setting.condition} does not "
            "hold); uWSGI would refuse it where it does",
            hint,
        )


def missing_plugin(config: Config, context: Context) -> Iterator[Finding]:
    """uwsgi_load_plugin(): a plugin neither built in nor found as a .so file is an error
    message at start, and uWSGI refuses its options; one finding names them all."""
    for setting in config.all("plugins", "plugin", "need-plugin", "need-plugins"):
        for name in _plugin_names(setting.value):
            base = _base_plugin(name)
            if base in context.catalog.plugins:
                continue
            lines = [str(s.line) for s in plugin_options(config, context, base)]
            refused = f"; uWSGI refuses its options (line {', '.join(lines)})" if lines else ""
            yield _at(
                setting,
                f"this uWSGI ({context.catalog.version}) has no {name!r} plugin{refused}",
                f"install the {name} plugin, or use a uWSGI built with it",
            )


def plugin_options(config: Config, context: Context, plugin: str) -> list[Setting]:
    """The settings of `plugin` by uWSGI's table, or by the plugin's name as their prefix."""
    return [
        s
        for s in config.settings
        if not context.catalog.knows(s.key)
        and (context.table.plugin(s.key) == plugin or s.key.startswith(f"{plugin}-"))
    ]


def built_in_plugin(config: Config, context: Context) -> Iterator[Finding]:
    for setting in config.all("plugins", "plugin"):
        for name in _plugin_names(setting.value):
            base = _base_plugin(name)
            if base in context.catalog.plugins and name not in context.catalog.plugins:
                yield _at(
                    setting,
                    f"{name!r} is built into this uWSGI as {base!r}: uWSGI prints "
                    f"'UNABLE to load uWSGI plugin: ./{name}_plugin.so' and goes on",
                    f"write `plugins = {base}`, or drop it for this uWSGI",
                )


def repeated_setting(config: Config, context: Context) -> Iterator[Finding]:
    """One setting written twice in one file: the last silently wins. Across included files
    it is layering, as `ini = :base` setups mean it."""
    seen: dict[tuple[Path, str], Setting] = {}
    for setting in config.settings:
        if not context.table.single_value(setting.key):
            continue
        names = context.table.setting_of(setting.key)
        first = seen.get((setting.file, names[0]))
        if first is not None and first.value != setting.value:
            also = "" if first.key == setting.key else f" as {first.key!r}"
            yield _at(
                setting,
                f"{setting.key!r} set again (first{also} on line {first.line}); "
                f"uWSGI uses {setting.value!r}",
                "keep one",
            )
        seen.setdefault((setting.file, names[0]), setting)


# --- values ---------------------------------------------------------------------------------


def _valued(config: Config, context: Context, kind: Kind) -> list[Setting]:
    return config.of_kind(context.table, kind)


def bad_address(config: Config, context: Context) -> Iterator[Finding]:
    for setting in [*_valued(config, context, Kind.ADDRESS), *config.all("http-to")]:
        if not setting.resolved:
            continue
        try:
            read_address(setting.key, setting.value)
        except AddressError as error:
            yield _at(
                setting,
                f"{setting.key} = {setting.value!r}: {error}",
                "use host:port, :port, a unix socket path or =N for a shared socket",
            )


def misread_number(config: Config, context: Context) -> Iterator[Finding]:
    """uwsgi_opt_set_int(): atoi(value); below 0 it exits ('must be > 0')."""
    for setting in _valued(config, context, Kind.NUMBER):
        reading = read_number(setting.value)
        if reading.verdict is Verdict.WRONG:
            shown = "alone on its line" if setting.bare else f"= {setting.value!r}"
            flag_like = setting.bare or read_flag(setting.value).verdict is Verdict.PLAIN
            yield _at(
                setting,
                f"{setting.key} {shown} is read by uWSGI as {reading.means}",
                "this option takes a number (1 to turn it on)"
                if flag_like
                else "write a whole number",
            )
        elif int(reading.means) < 0 and context.table.handler(setting.key) == ("uwsgi_opt_set_int"):
            yield _at(
                setting,
                f"{setting.key} = {setting.value!r}: uWSGI exits ('invalid value ... must be > 0')",
                "write 0 or more",
            )


def odd_number(config: Config, context: Context) -> Iterator[Finding]:
    for setting in _valued(config, context, Kind.NUMBER):
        if read_number(setting.value).verdict is Verdict.ODD:
            yield _at(
                setting,
                f"{setting.key} = {setting.value!r} works as {read_number(setting.value).means} "
                "only because atoi() stops at the space: uWSGI has no inline comments",
                "put the comment on its own line",
            )


def misread_flag(config: Config, context: Context) -> Iterator[Finding]:
    """uwsgi_opt_true(): true unless the value is false, off, no or 0."""
    for setting in _valued(config, context, Kind.FLAG):
        if read_flag(setting.value).verdict is Verdict.WRONG:
            yield _at(
                setting,
                f"{setting.key} = {setting.value!r} is TRUE to uWSGI "
                "(only false, off, no and 0 are false)",
                "write true or false, and any comment on its own line",
            )


def odd_flag(config: Config, context: Context) -> Iterator[Finding]:
    for setting in _valued(config, context, Kind.FLAG):
        if read_flag(setting.value).verdict is Verdict.ODD:
            yield _at(
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
        yield _at(
            cheaper,
            f"cheaper ({low}) must be lower than processes ({high})",
            "uWSGI refuses to start; lower cheaper or raise processes",
        )


def _inline_comment(setting: Setting) -> bool:
    return bool(re.search(r"\s[;#]", setting.value))


def comment_in_app_value(config: Config, context: Context) -> Iterator[Finding]:
    """uWSGI has no inline comments: a `# note` after a module or path is part of it."""
    for setting in config.settings:
        if setting.key in (*APP_KEYS, *PATH_KEYS, *VIRTUALENV_KEYS) and _inline_comment(setting):
            yield _at(
                setting,
                f"{setting.key} = {setting.value!r}: uWSGI takes the comment as part of it",
                "put the comment on its own line",
            )


def comment_in_value(config: Config, context: Context) -> Iterator[Finding]:
    for setting in config.settings:
        kind = context.table.kind(setting.key)
        if (
            setting.key not in (*APP_KEYS, *PATH_KEYS, *VIRTUALENV_KEYS)
            and kind not in {Kind.NUMBER, Kind.FLAG, Kind.ROUTE}
            and _inline_comment(setting)
        ):
            yield _at(
                setting,
                f"{setting.key} = {setting.value!r}: if that is a comment, uWSGI keeps it "
                "in the value",
                "put the comment on its own line",
            )


# --- routing --------------------------------------------------------------------------------


def route_problems(config: Config, context: Context) -> Iterator[tuple[Setting, str, str]]:
    """uwsgi_opt_add_route() (core/routing.c): `[subject ]action:args`; route-if takes
    `condition:args` as its subject; an unknown condition or action stops the start."""
    for setting in _valued(config, context, Kind.ROUTE):
        style = context.table.target(setting.key).strip('"')
        if style == "NULL":
            continue
        if style == "run":
            action = setting.value
        else:
            subject, space, action = setting.value.partition(" ")
            if not space:
                yield setting, "R501", "route rule without an action ('invalid route syntax')"
                continue
            if style in {"if", "if-not"}:
                condition, colon, _ = subject.partition(":")
                if not colon:
                    yield setting, "R501", "route condition without ':' ('invalid syntax')"
                    continue
                if condition not in context.table.route_conditions:
                    yield setting, "R500", condition
                    continue
        name, colon, _ = action.partition(":")
        if not colon:
            yield setting, "R501", f"route action {action!r} has no ':' ('invalid route syntax')"
        elif name not in context.catalog.routers:
            yield setting, "R501", f"unknown route action {name!r}"


def unknown_route_condition(config: Config, context: Context) -> Iterator[Finding]:
    for setting, rule, condition in route_problems(config, context):
        if rule == "R500":
            yield _at(
                setting,
                f"unknown route condition {condition!r}",
                did_you_mean(condition, context.table.route_conditions, "e.g. equal, startswith"),
            )


def bad_route(config: Config, context: Context) -> Iterator[Finding]:
    for setting, rule, message in route_problems(config, context):
        if rule == "R501":
            name = message.removeprefix("unknown route action ").strip("'")
            hint = did_you_mean(name, context.catalog.routers, "see `uwsgi --router-list`")
            yield _at(setting, message, hint if message.startswith("unknown") else "")


# --- paths on this machine ------------------------------------------------------------------


def base_folder(config: Config, cwd: Path) -> str:
    """Where uWSGI resolves relative paths: after `chdir` if set, else where it runs."""
    chdir = config.last("chdir")
    if chdir is None or not chdir.resolved:
        return str(cwd)
    return _join(cwd, chdir.value)


def _join(base: Path | str, value: str) -> str:
    """Lexically, so `vassals/..` holds before render has created vassals/; strings, not
    Path objects, because the checker joins thousands of them."""
    return os.path.normpath(os.path.join(base, value))


def _path_settings(config: Config) -> Iterator[tuple[Setting, str]]:
    for setting in config.settings:
        if not setting.resolved or _inline_comment(setting):
            continue
        if setting.key in (*PATH_KEYS, *VIRTUALENV_KEYS):
            yield setting, setting.value
        elif setting.key == "static-map" and "=" in setting.value:
            yield setting, setting.value.partition("=")[2]


def missing_path(config: Config, context: Context) -> Iterator[Finding]:
    cwd = context.machine.cwd
    base = base_folder(config, cwd)
    for setting, value in _path_settings(config):
        if setting.key in PATH_KEYS[1:4] and any(c in value for c in "*?["):
            continue
        target = _join(cwd if setting.key == "chdir" else base, value)
        if not os.path.exists(target):
            yield _at(
                setting,
                f"{setting.key}: {target} does not exist",
                "create it, or fix the path (relative paths follow chdir)",
            )
    for setting in config.all("https", "https-socket"):
        for path in setting.value.split(",")[1:3]:
            if setting.resolved and path and not os.path.isfile(_join(cwd, path)):
                yield _at(
                    setting,
                    f"{setting.key}: {_join(cwd, path)} does not exist: uWSGI exits "
                    "when it cannot load the certificate or key",
                    "fix the path (relative to uWSGI's working folder, read before chdir)",
                )
    for setting in [*config.all(*FILE_FOLDER_KEYS), *_unix_sockets(config, context)]:
        if not setting.resolved or setting.value.lower() in {"true", "1", ""}:
            continue
        folder = os.path.dirname(_join(base, setting.value))
        if not os.path.isdir(folder):
            yield _at(
                setting,
                f"{setting.key}: folder {folder} does not exist",
                "create it; uWSGI will not",
            )


def missing_env_file(config: Config, context: Context) -> Iterator[Finding]:
    """for-readline on a missing file: uWSGI logs the error and adds nothing (no exit)."""
    for setting in config.all("for-readline"):
        path = _join(context.machine.cwd, setting.value)
        if setting.resolved and not os.path.isfile(path):
            yield _at(
                setting,
                f"for-readline: {path} does not exist: uWSGI starts without its lines",
                "create it (an env file holds NAME=value lines)",
            )


def env_file_lines(config: Config, context: Context) -> Iterator[Finding]:
    """An env file read with `for-readline` + `env = %(_)`: every line becomes an `env`."""
    if not any(s.key == "env" and s.written == "%(_)" for s in config.settings):
        return
    for setting in config.all("for-readline"):
        path = _join(context.machine.cwd, setting.value)
        try:
            lines = Path(path).read_text(errors="replace").splitlines()
        except OSError:
            continue
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if text and not text.startswith("#") and not ENV_LINE.match(text):
                yield Finding(
                    Path(path),
                    number,
                    f"{text.split('=')[0]!r} is not NAME=value: uWSGI sets it as written",
                    "write NAME=value (no `export`, no spaces around =)",
                )


def _unix_sockets(config: Config, context: Context) -> Iterator[Setting]:
    for setting in _valued(config, context, Kind.ADDRESS):
        try:
            address = read_address(setting.key, setting.value)
        except AddressError:
            continue
        if address.path and not address.path.startswith("@"):
            yield setting


def _log_folders(config: Config, context: Context) -> Iterator[tuple[Setting, str]]:
    base = base_folder(config, context.machine.cwd)
    for setting in config.all(*LOGGER_KEYS):
        kind, colon, spec = setting.value.partition(":")
        if setting.resolved and kind == "file" and colon:
            path = spec.partition("logfile=")[2] or spec
            yield setting, os.path.dirname(_join(base, path.split(",")[0]))


def missing_log_folder(config: Config, context: Context) -> Iterator[Finding]:
    for setting, folder in _log_folders(config, context):
        if not os.path.isdir(folder):
            yield _at(
                setting,
                f"{setting.key}: log folder {folder} does not exist",
                "create it; uWSGI will not",
            )


def log_folder_not_writable(config: Config, context: Context) -> Iterator[Finding]:
    for setting, folder in _log_folders(config, context):
        if os.path.isdir(folder) and not os.access(folder, os.W_OK):
            yield _at(
                setting,
                f"{setting.key}: log folder {folder} is not writable",
                "uWSGI would exit at start, again and again; fix the folder or the path",
            )


def _static_folders(config: Config, context: Context) -> Iterator[tuple[Setting, str, str]]:
    """(setting, URL prefix, folder) for each folder uWSGI serves as static files."""
    base = base_folder(config, context.machine.cwd)
    for setting in config.all("check-static", "static-map", "static-map2"):
        if not setting.resolved:
            continue
        if setting.key == "check-static":
            yield setting, "/", _join(base, setting.value)
        else:
            prefix, _, folder = setting.value.partition("=")
            yield setting, prefix, _join(base, folder)


def static_exposes_code(config: Config, context: Context) -> Iterator[Finding]:
    """uWSGI serves every file under a static folder: code, settings, a database, .env, .git
    in it are readable by anyone (this is how `static_dir = code` served /app.py)."""
    base = base_folder(config, context.machine.cwd)
    code = [_join(base, s.value) for s in config.all("pythonpath", "python-path", "pp")]
    for setting, prefix, folder in _static_folders(config, context):
        if not os.path.isdir(folder):
            continue
        inside = [c for c in code if c == folder or c.startswith(folder.rstrip("/") + "/")]
        found = _code_files(folder)
        if inside or found:
            shown = ", ".join(
                ["the pythonpath" for _ in inside[:1]] + [os.path.relpath(f, folder) for f in found]
            )
            yield _at(
                setting,
                f"{prefix} serves {folder}, which holds code or secrets ({shown}): "
                "uWSGI would send them to anyone",
                "serve only a folder of static files (e.g. collectstatic's STATIC_ROOT)",
            )


def _code_files(folder: str, limit: int = 3) -> list[str]:
    found: list[str] = []
    seen = 0
    for root, folders, files in os.walk(folder):
        for name in [*folders, *files]:
            seen += 1
            if CODE_FILES.search(name):
                found.append(os.path.join(root, name))
                if len(found) >= limit:
                    return found
        folders[:] = [f for f in folders if not CODE_FILES.search(f)]
        if seen > MAX_STATIC_SCAN:
            break
    return found


def virtualenv_python(config: Config, context: Context) -> Iterator[Finding]:
    """uWSGI embeds one Python; a virtualenv made by another one fails at import."""
    home = config.last(*VIRTUALENV_KEYS)
    if home is None or not home.resolved or not context.catalog.python:
        return
    folder = _join(base_folder(config, context.machine.cwd), home.value)
    made_by = _venv_version(folder)
    embedded = ".".join(context.catalog.python.split(".")[:2])
    if made_by and made_by != embedded:
        yield _at(
            home,
            f"{home.key}: {folder} was made by Python {made_by}, this uWSGI embeds "
            f"Python {embedded}: the app would not import",
            f"make the virtualenv with python{embedded} (or build uWSGI with python{made_by})",
        )


def _venv_version(folder: str) -> str:
    """major.minor from pyvenv.cfg (`version = 3.11.7` or `version_info = 3.11.7.final.0`)."""
    try:
        text = Path(folder, "pyvenv.cfg").read_text(errors="replace")
    except OSError:
        return ""
    match = re.search(r"^version(?:_info)?\s*=\s*(\d+\.\d+)", text, re.MULTILINE)
    return match.group(1) if match else ""


# --- apps under the Emperor -----------------------------------------------------------------


def _app(config: Config) -> Setting | None:
    return next((s for s in config.settings if s.key in APP_KEYS[:5]), None)


# Options that bind a socket for the instance's own workers. Without one, uWSGI runs no
# workers whatever `processes` says (core/uwsgi.c: `if (!uwsgi.sockets) uwsgi.numproc = 0`).
WORKER_SOCKET_KEYS = frozenset(
    {"socket", "uwsgi-socket", "suwsgi-socket", "ssl-socket", "http-socket", "http11-socket",
     "https-socket", "fastcgi-socket", "fastcgi-nph-socket", "scgi-socket", "scgi-nph-socket",
     "raw-socket", "puwsgi-socket", "zeromq", "zmq", "zeromq-socket", "zmq-socket"}
)  # fmt: skip


def router_with_workers(config: Config, context: Context) -> Iterator[Finding]:
    keys = {s.key for s in config.settings}
    processes = config.last(*WORKER_KEYS)
    has_router = bool(keys & {"http", "https"}) and "http-to" in keys
    has_workers = bool(keys & WORKER_SOCKET_KEYS) and (
        processes is None or atoi(processes.value) != 0
    )
    if has_router and has_workers and _app(config) is None:
        yield _at(
            config.all("http-to")[0],
            "a router-only vassal still starts workers",
            "add `processes = 0`",
        )


def app_without_need_app(config: Config, context: Context) -> Iterator[Finding]:
    app = _app(config)
    if app is not None and config.last("need-app") is None:
        yield _at(
            app,
            "an app vassal without need-app keeps running when its app fails to load",
            "add `need-app = true`",
        )


def module_not_found(config: Config, context: Context) -> Iterator[Finding]:
    app = config.last("module", "wsgi")
    if app is None or not app.resolved or _inline_comment(app):
        return
    base = base_folder(config, context.machine.cwd)
    module = app.value.split(":")[0].strip()
    first = module.split(".")[0]
    pythonpath = [s.value for s in config.all("pythonpath", "python-path", "pp") if s.resolved]
    for folder in [*[_join(base, p) for p in pythonpath], base]:
        if os.path.exists(f"{folder}/{first}.py") or os.path.exists(
            f"{folder}/{first}/__init__.py"
        ):
            return
    if _virtualenv_has(config, base, first):
        return
    yield _at(
        app,
        f"module {module!r} not found in the pythonpath folders",
        "check `pythonpath` and `module`; it may still import from site-packages",
    )


def _virtualenv_has(config: Config, base: str, package: str) -> bool:
    home = config.last(*VIRTUALENV_KEYS)
    if home is None or not home.resolved:
        return False
    lib = Path(_join(base, home.value)) / "lib"
    return any(lib.glob(f"python3*/site-packages/{package}"))


def output_hidden(config: Config, context: Context) -> Iterator[Finding]:
    """Under an Emperor these only redirect the output, away from the Emperor's log."""
    if config.all("emperor"):
        return
    for setting in config.all(*OUTPUT_REDIRECT_KEYS):
        yield _at(
            setting,
            f"{setting.key} sends this vassal's output to {setting.value}: the Emperor shows "
            "none of it, nor sees uWSGI say it has read its config",
            "use `logger = file:PATH` and `logger = stdio` to have both",
        )


# --- between the vassals of one deployment --------------------------------------------------


def _binds(
    config: Config, context: Context, keys: tuple[str, ...] | None = None
) -> Iterator[tuple[Setting, Address]]:
    for setting in config.settings:
        wanted = setting.key in keys if keys else context.table.kind(setting.key) is Kind.ADDRESS
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
                    yield _at(
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
                yield _at(
                    setting,
                    f"http-to {setting.value} is not bound by any vassal's socket",
                    "point it at an app vassal's `socket` address",
                )


RULES = (
    Rule("U001", Weight.ERROR, "no [uwsgi] section", one=no_section),
    Rule("U002", Weight.ERROR, "edited or cut short since rendering", one=broken_seal),
    Rule("U003", Weight.ERROR, "git merge conflict markers", one=merge_markers),
    Rule("U004", Weight.MACHINE, "an included file is missing", one=missing_include),
    Rule("U005", Weight.ERROR, "include loop", one=include_loop),
    Rule("U006", Weight.ERROR, "if/for block inside another", one=nested_logic),
    Rule("U007", Weight.WARNING, "included section missing", one=included_section_missing),
    Rule("U100", Weight.ERROR, "unknown option", one=unknown_option),
    Rule("U101", Weight.WARNING, "one setting written twice", one=repeated_setting),
    Rule("U102", Weight.MACHINE, "plugin missing from this build", one=missing_plugin),
    Rule("U103", Weight.WARNING, "a placeholder, not an option", one=placeholder_option),
    Rule(
        "U104", Weight.WARNING, "unknown option in a block not taken", one=unknown_in_untaken_branch
    ),
    Rule("U105", Weight.WARNING, "plugin that is built in", one=built_in_plugin),
    Rule("V200", Weight.ERROR, "not an address uWSGI binds", one=bad_address),
    Rule("V201", Weight.ERROR, "number uWSGI reads differently", one=misread_number),
    Rule("V202", Weight.ERROR, "flag that looks false but is true", one=misread_flag),
    Rule("V203", Weight.ERROR, "cheaper not below processes", one=cheaper_not_below_processes),
    Rule("V204", Weight.WARNING, "number with a comment after it", one=odd_number),
    Rule("V205", Weight.WARNING, "flag with an unusual value", one=odd_flag),
    Rule("V206", Weight.ERROR, "comment inside a module or path", one=comment_in_app_value),
    Rule("V207", Weight.WARNING, "comment inside a value", one=comment_in_value),
    Rule("R500", Weight.ERROR, "unknown route condition", one=unknown_route_condition),
    Rule("R501", Weight.ERROR, "route without a valid action", one=bad_route),
    Rule("P400", Weight.MACHINE, "path missing", one=missing_path),
    Rule("P401", Weight.MACHINE, "log folder missing", one=missing_log_folder),
    Rule("P402", Weight.MACHINE, "log folder not writable", one=log_folder_not_writable),
    Rule("P403", Weight.MACHINE, "static folder serving code or secrets", one=static_exposes_code),
    Rule("P404", Weight.MACHINE, "virtualenv of another Python", one=virtualenv_python),
    Rule("P405", Weight.MACHINE, "env file missing", one=missing_env_file),
    Rule("V208", Weight.WARNING, "env file line not NAME=value", one=env_file_lines),
    Rule("W600", Weight.WARNING, "router-only vassal with workers", one=router_with_workers),
    Rule("W601", Weight.MACHINE, "module not found", one=module_not_found),
    Rule("W602", Weight.WARNING, "app vassal without need-app", one=app_without_need_app),
    Rule("W603", Weight.WARNING, "output hidden from the Emperor", one=output_hidden),
    Rule("X300", Weight.MACHINE, "http-to no vassal binds", many=unbound_backend),
    Rule("X301", Weight.MACHINE, "two vassals bind one address", many=address_clash),
)
