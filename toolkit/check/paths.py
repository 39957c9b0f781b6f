"""Rules on paths on this machine: folders, log files, env files, static folders that would serve
code, a virtualenv of another Python."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from toolkit.check.keys import (
    FILE_FOLDER_KEYS,
    LOGGER_KEYS,
    PATH_KEYS,
    VIRTUALENV_KEYS,
    inline_comment,
    valued,
)
from toolkit.check.model import Context, Finding, at
from toolkit.check.reading import AddressError, read_address
from toolkit.errors import ToolkitError
from toolkit.files import read_regular
from toolkit.uwsgi_config import Config, Setting
from toolkit.uwsgi_options import ValueKind

ENV_LINE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
# What a static folder must not hold: uWSGI would send it to anyone who asks.
CODE_FILES = re.compile(
    r"(\.py|\.pyc|\.env|\.sqlite3?|\.db|\.ini|\.cfg|\.toml|\.pem|\.key)$|^(\.git|\.env)$"
)
MAX_STATIC_SCAN = 20000
# A PasteDeploy file (uwsgi_paste_loader, plugins/python/pyloader.c): `config:` then a path.
PASTE_KEYS = ("paste", "ini-paste", "ini-paste-logged")
PASTE_SCHEME = "config:"


def base_folder(config: Config, cwd: Path) -> str:
    """Where uWSGI resolves relative paths: after `chdir` if set, else where it runs."""
    chdir = config.last("chdir")
    if chdir is None or not chdir.resolved:
        return str(cwd)
    return join(cwd, chdir.value)


def join(base: Path | str, value: str) -> str:
    """Lexically, so `vassals/..` holds before render has created vassals/; strings, not
    Path objects, because the checker joins thousands of them."""
    return os.path.normpath(os.path.join(base, value))


def _path_settings(config: Config) -> Iterator[tuple[Setting, str]]:
    for setting in config.settings:
        if not setting.resolved or inline_comment(setting):
            continue
        if setting.key in (*PATH_KEYS, *VIRTUALENV_KEYS):
            yield setting, setting.value
        elif setting.key == "static-map" and "=" in setting.value:
            yield setting, setting.value.partition("=")[2]
        elif setting.key in PASTE_KEYS and setting.value.startswith(PASTE_SCHEME):
            yield setting, setting.value[len(PASTE_SCHEME) :]


def _missing(config: Config, context: Context) -> Iterator[tuple[Finding, bool]]:
    """Each path that is not there, and whether it lies in the file's own folder (then its
    absence does not depend on the machine the file runs on: they travel together)."""
    cwd = context.machine.cwd
    base = base_folder(config, cwd)
    chdir_setting = config.last("chdir")
    chdir = chdir_setting.value if chdir_setting and chdir_setting.resolved else ""
    for setting, value in _path_settings(config):
        if setting.key in PATH_KEYS[1:4] and any(c in value for c in "*?["):
            continue
        target = join(cwd if setting.key == "chdir" else base, value)
        building = context.building is not None and Path(target).is_relative_to(context.building)
        if not os.path.exists(target) and not building:
            finding = (
                _glob_matched_nothing(setting, target)
                if (setting.condition or "").startswith("for-glob")
                and any(c in setting.value for c in "*?[")
                else at(
                    setting,
                    f"{setting.key}: {target} does not exist",
                    "create it, or fix the path (relative paths follow chdir)",
                )
            )
            anchored = os.path.isabs(value) or (setting.key != "chdir" and os.path.isabs(chdir))
            yield finding, anchored and _beside(setting, target)
    for setting in config.all("https", "https-socket"):
        for path in setting.value.split(",")[1:3]:
            if setting.resolved and path and not os.path.isfile(join(cwd, path)):
                finding = at(
                    setting,
                    f"{setting.key}: {join(cwd, path)} does not exist: uWSGI exits "
                    "when it cannot load the certificate or key",
                    "fix the path (relative to uWSGI's working folder, read before chdir)",
                )
                yield finding, os.path.isabs(path) and _beside(setting, join(cwd, path))
    for setting in [*config.all(*FILE_FOLDER_KEYS), *_unix_sockets(config, context)]:
        if not setting.resolved or setting.value.lower() in {"true", "1", ""}:
            continue
        folder = os.path.dirname(join(base, setting.value))
        if not os.path.isdir(folder):
            finding = at(
                setting,
                f"{setting.key}: folder {folder} does not exist",
                "create it; uWSGI will not",
            )
            anchored = os.path.isabs(setting.value) or os.path.isabs(chdir)
            yield finding, anchored and _beside(setting, folder)


def _glob_matched_nothing(setting: Setting, target: str) -> Finding:
    """uwsgi_logic_opt_for_glob() (core/config.c:66) globs with GLOB_NOCHECK: a pattern that
    matches nothing is passed on as the value itself."""
    return at(
        setting,
        f"{setting.condition} matches nothing here, so uWSGI sets {setting.key} to the "
        f"pattern itself ({target})",
        "make the pattern match a folder, or set the path without for-glob",
    )


def _beside(setting: Setting, target: str) -> bool:
    folder = os.path.dirname(os.path.abspath(setting.file))
    return os.path.commonpath([folder, os.path.abspath(target)]) == folder and (
        os.path.abspath(target) != folder
    )


def missing_path(config: Config, context: Context) -> Iterator[Finding]:
    yield from (finding for finding, beside in _missing(config, context) if not beside)


def missing_beside_file(config: Config, context: Context) -> Iterator[Finding]:
    """A path anchored to the file's own folder (`chdir = %d`, then `check-static =
    assets/`) is missing wherever the file goes."""
    yield from (finding for finding, beside in _missing(config, context) if beside)


# How toolkit's templates name the env file its loader reads (toolkit/env_loader.py).
ENV_FILE_VARIABLE = "TOOLKIT_ENV_FILE="


def env_files(config: Config, context: Context) -> Iterator[tuple[Setting, str, bool]]:
    """(setting, path, expanded) for each env file: one read by toolkit's loader (as data),
    or by `for-readline` fed to `env = %(_)` (each line through uWSGI's config language)."""
    for setting in config.all("env"):
        if setting.resolved and setting.value.startswith(ENV_FILE_VARIABLE):
            yield setting, join(context.machine.cwd, setting.value[len(ENV_FILE_VARIABLE) :]), False
    if any(s.key == "env" and s.written == "%(_)" for s in config.settings):
        for setting in config.all("for-readline"):
            if setting.resolved:
                yield setting, join(context.machine.cwd, setting.value), True


def env_lines(path: str) -> list[str]:
    from toolkit.files import read_regular

    try:
        return read_regular(Path(path), "env file").decode(errors="replace").splitlines()
    except (OSError, ToolkitError):
        return []


def missing_env_file(config: Config, context: Context) -> Iterator[Finding]:
    """An env file that is not there: `for-readline` logs the error and adds nothing (no
    exit); toolkit's loader stops the app with the reason."""
    for setting, path, expanded in env_files(config, context):
        if not os.path.isfile(path):
            what = "uWSGI starts without its lines" if expanded else "the app will not start"
            yield at(
                setting,
                f"env file {path} does not exist: {what}",
                "create it (an env file holds NAME=value lines)",
            )


def env_file_lines(config: Config, context: Context) -> Iterator[Finding]:
    """Every line of an env file becomes a variable: one that is not NAME=value is set as
    written by uWSGI (for-readline), or skipped by toolkit's loader."""
    for _, path, expanded in env_files(config, context):
        for number, line in enumerate(env_lines(path), start=1):
            text = line.strip()
            if text and not text.startswith("#") and not ENV_LINE.match(text):
                what = "uWSGI sets it as written" if expanded else "it is skipped"
                yield Finding(
                    Path(path),
                    number,
                    f"{text.split('=')[0]!r} is not NAME=value: {what}",
                    "write NAME=value (no `export`, no spaces around =)",
                )


def _unix_sockets(config: Config, context: Context) -> Iterator[Setting]:
    for setting in valued(config, context, ValueKind.ADDRESS):
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
            yield setting, os.path.dirname(join(base, path.split(",")[0]))


def missing_log_folder(config: Config, context: Context) -> Iterator[Finding]:
    for setting, folder in _log_folders(config, context):
        if not os.path.isdir(folder):
            yield at(
                setting,
                f"{setting.key}: log folder {folder} does not exist",
                "create it; uWSGI will not",
            )


def log_folder_not_writable(config: Config, context: Context) -> Iterator[Finding]:
    for setting, folder in _log_folders(config, context):
        if os.path.isdir(folder) and not os.access(folder, os.W_OK):
            yield at(
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
            yield setting, "/", join(base, setting.value)
        else:
            prefix, _, folder = setting.value.partition("=")
            yield setting, prefix, join(base, folder)


def static_exposes_code(config: Config, context: Context) -> Iterator[Finding]:
    """uWSGI serves every file under a static folder: code, settings, a database, .env, .git
    in it are readable by anyone (this is how `static_dir = code` served /app.py)."""
    base = base_folder(config, context.machine.cwd)
    code = [join(base, s.value) for s in config.all("pythonpath", "python-path", "pp")]
    for setting, prefix, folder in _static_folders(config, context):
        if not os.path.isdir(folder):
            continue
        inside = [c for c in code if c == folder or c.startswith(folder.rstrip("/") + "/")]
        found = _code_files(folder)
        if inside or found:
            shown = ", ".join(
                ["the pythonpath" for _ in inside[:1]] + [os.path.relpath(f, folder) for f in found]
            )
            yield at(
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
    folder = join(base_folder(config, context.machine.cwd), home.value)
    made_by = _venv_version(folder)
    embedded = ".".join(context.catalog.python.split(".")[:2])
    if made_by and made_by != embedded:
        yield at(
            home,
            f"{home.key}: {folder} was made by Python {made_by}, this uWSGI embeds "
            f"Python {embedded}: the app would not import",
            f"make the virtualenv with python{embedded} (or build uWSGI with python{made_by})",
        )


def _venv_version(folder: str) -> str:
    """major.minor from pyvenv.cfg (`version = 3.11.7` or `version_info = 3.11.7.final.0`)."""
    try:
        text = read_regular(Path(folder, "pyvenv.cfg"), "pyvenv.cfg").decode(errors="replace")
    except (OSError, ToolkitError):
        return ""
    match = re.search(r"^version(?:_info)?\s*=\s*(\d+\.\d+)", text, re.MULTILINE)
    return match.group(1) if match else ""
