"""Rules on app vassals under an Emperor: workers where none can run, need-app, a module that does
not import or what it imports is not installed, an ASGI adapter loaded before the fork, output
hidden from the Emperor, a stats server or the status page reachable from other machines."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from pathlib import Path

from toolkit import python_imports
from toolkit.check.keys import APP_KEYS, OUTPUT_REDIRECT_KEYS, VIRTUALENV_KEYS, inline_comment
from toolkit.check.model import Context, Finding, at
from toolkit.check.paths import base_folder, join
from toolkit.check.reading import read_flag
from toolkit.uwsgi_config import Config, Setting, atoi
from toolkit.uwsgi_ini import WORKER_KEYS


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
        yield at(
            config.all("http-to")[0],
            "a router-only vassal still starts workers",
            "add `processes = 0`",
        )


def app_without_need_app(config: Config, context: Context) -> Iterator[Finding]:
    app = _app(config)
    if app is not None and config.last("need-app") is None:
        yield at(
            app,
            "an app vassal without need-app keeps running when its app fails to load",
            "add `need-app = true`",
        )


def module_not_found(config: Config, context: Context) -> Iterator[Finding]:
    app = config.last("module", "wsgi")
    if app is None or not app.resolved or inline_comment(app):
        return
    base = base_folder(config, context.machine.cwd)
    module = app.value.split(":")[0].strip()
    first = module.split(".")[0]
    pythonpath = [s.value for s in config.all("pythonpath", "python-path", "pp") if s.resolved]
    for folder in [*[join(base, p) for p in pythonpath], base]:
        if os.path.exists(f"{folder}/{first}.py") or os.path.exists(
            f"{folder}/{first}/__init__.py"
        ):
            return
    if _virtualenv_has(config, base, first):
        return
    yield at(
        app,
        f"module {module!r} not found in the pythonpath folders",
        "check `pythonpath` and `module`; it may still import from site-packages",
    )


def _virtualenv_has(config: Config, base: str, package: str) -> bool:
    home = config.last(*VIRTUALENV_KEYS)
    if home is None or not home.resolved:
        return False
    lib = Path(join(base, home.value)) / "lib"
    return any(lib.glob(f"python3*/site-packages/{package}"))


def output_hidden(config: Config, context: Context) -> Iterator[Finding]:
    """Under an Emperor these only redirect the output, away from the Emperor's log."""
    if config.all("emperor"):
        return
    for setting in config.all(*OUTPUT_REDIRECT_KEYS):
        yield at(
            setting,
            f"{setting.key} sends this vassal's output to {setting.value}: the Emperor shows "
            "none of it, nor sees uWSGI say it has read its config",
            "use `logger = file:PATH` and `logger = stdio` to have both",
        )


# Where uWSGI's stats servers listen, for an instance and for its HTTP router.
STATS_KEYS = ("stats", "stats-server", "http-stats", "http-stats-server", "http-ss")
# toolkit's status page and metrics (toolkit/dashboard.py), as a vassal runs them.
DASHBOARD_MODULE = "toolkit.dashboard"


def beyond_loopback(config: Config, context: Context) -> Iterator[Finding]:
    """A stats server or toolkit's status page tells whoever reaches it what runs, its pids
    and its load, and takes no password: reachable beyond this machine, it is a leak."""
    exposed = [s for s in config.all(*STATS_KEYS) if s.resolved and _beyond_loopback(s.value)]
    app = config.last("module")
    if app is not None and app.value == DASHBOARD_MODULE:
        exposed += [
            s for s in config.all(*WORKER_SOCKET_KEYS) if s.resolved and _beyond_loopback(s.value)
        ]
    for setting in exposed:
        yield at(
            setting,
            f"{setting.key} = {setting.value} is reachable from other machines: whoever "
            "reaches it sees what runs, with no password",
            "bind it to 127.0.0.1 (status_address in deploy.ini), or keep it behind a firewall",
        )


def _beyond_loopback(address: str) -> bool:
    """A TCP address that is not a loopback one (no host: every interface)."""
    if address.startswith(("/", "@", ".")) or ":" not in address:
        return False
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


SETTINGS_VARIABLE = "DJANGO_SETTINGS_MODULE="


def imports_missing(config: Config, context: Context) -> Iterator[Finding]:
    """The app's Python, asked before uWSGI starts it: a package the app imports that it
    cannot find fails the app at its first import (need-app then stops the vassal). Asked of
    the Python uWSGI will run it on (the `home`/`virtualenv`, else the one uWSGI was
    installed with) by find_spec, which runs none of the app's code."""
    app = config.last("module", "wsgi")
    if app is None or not app.resolved or inline_comment(app):
        return
    base = base_folder(config, context.machine.cwd)
    folders = _import_folders(config, base)
    python = _python(config, base, context)
    if python is None:
        return
    needed: set[str] = set()
    read: list[str] = []
    modules = [app.value.split(":")[0].strip()]
    modules += [
        s.value[len(SETTINGS_VARIABLE) :]
        for s in config.all("env")
        if s.resolved and s.value.startswith(SETTINGS_VARIABLE)
    ]
    for module in modules:
        path = python_imports.module_file(module, folders)
        if path is not None:
            needed |= python_imports.required_imports(path, module, folders)
            read.append(os.path.relpath(path, base))
    missing = python_imports.missing_for(python, tuple(folders), tuple(sorted(needed)))
    if missing:
        home = config.last(*VIRTUALENV_KEYS)
        yield at(
            app,
            f"{', '.join(missing)} cannot be imported by {python}, which runs this app "
            f"(imported by {', '.join(read)}): it would fail at its first request's import",
            f"install them into the virtualenv {home.value}"
            if home is not None and (Path(join(base, home.value)) / "pyvenv.cfg").is_file()
            else "point `virtualenv` (deploy.ini) at the app's virtualenv, or install them for "
            "that Python",
        )


def _python(config: Config, base: str, context: Context) -> str | None:
    """The interpreter uWSGI embeds for this config: its home's, else the one uWSGI was
    installed with (a uwsgi in a virtualenv finds that virtualenv: pyvenv.cfg)."""
    home = config.last(*VIRTUALENV_KEYS)
    if home is not None:
        if not home.resolved:
            return None
        folder = Path(join(base, home.value)) / "bin"
    elif context.machine.binary:
        folder = Path(context.machine.binary).parent
    else:
        return None
    return next((str(folder / n) for n in ("python3", "python") if (folder / n).exists()), None)


def _import_folders(config: Config, base: str) -> list[str]:
    """Where the app's own modules are found: its pythonpath folders, then chdir's."""
    pythonpath = config.all("pythonpath", "python-path", "pp")
    return [*[join(base, s.value) for s in pythonpath if s.resolved], base]


def asgi_adapter_without_lazy_apps(config: Config, context: Context) -> Iterator[Finding]:
    """a2wsgi's ASGIMiddleware starts its event loop thread when it is created, at import.
    Without lazy-apps uWSGI imports the app once in the master and forks: the workers have
    no loop thread (fork copies only the calling thread), and every request waits forever."""
    app = config.last("module", "wsgi")
    if app is None or not app.resolved or _lazy(config):
        return
    base = base_folder(config, context.machine.cwd)
    module = app.value.split(":")[0].strip()
    path = python_imports.module_file(module, _import_folders(config, base))
    if path is not None and "ASGIMiddleware" in python_imports.source(path):
        yield at(
            app,
            f"{module} serves an ASGI app through a2wsgi's ASGIMiddleware, loaded once in the "
            "master: its event loop thread does not survive the fork, and every request "
            "would hang",
            "add `lazy-apps = true` (lazy_apps = true in deploy.ini)",
        )


def _lazy(config: Config) -> bool:
    setting = config.last("lazy-apps", "lazy")
    return setting is not None and read_flag(setting.value).means == "true"


def memory_limit_unavailable(config: Config, context: Context) -> Iterator[Finding]:
    """`# toolkit-memory-max:` asks toolkit's Emperor for a cgroup memory limit (memory.max);
    where it cannot set one, the vassal would run unlimited."""
    from toolkit.emperor.containment import memory_limits_here

    for ini in config.files:
        for name, value, line in ini.directives:
            if name == "memory-max" and (why := memory_limits_here()) is not None:
                yield Finding(
                    ini.path,
                    line,
                    f"memory limit {value} MB cannot be applied on this machine: {why}",
                    "run the Emperor as root or under systemd's Delegate=yes on a machine with "
                    "cgroup v2's memory controller, or set memory_max = 0",
                )
