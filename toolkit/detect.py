"""What an existing app is and how uWSGI should load it, read from its files without running
them: a Django project (manage.py and its settings), a Flask app (an `app = Flask(...)`
object or a `create_app` factory), or the WSGI module the user names.

Each finding carries how it was known, so `toolkit new --app` can say so in deploy.ini."""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import ToolkitError

SETTINGS_DEFAULT = re.compile(
    r"""os\.environ\.setdefault\(\s*["']DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']"""
)
VIRTUALENV_NAMES = (".venv", "venv", "env", ".env")
# A setting assigned a value read at run time (os.environ[...]): set, but not known here.
UNKNOWN = object()
SKIPPED_FOLDERS = {".git", "__pycache__", "node_modules", *VIRTUALENV_NAMES}


@dataclass
class Detected:
    """deploy.ini values (as text) for the app, each with the sentence that says how."""

    kind: str
    values: dict[str, str] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Files of the deployment's own that the app needs (path in it: text, mode).
    files: dict[str, tuple[str, int]] = field(default_factory=dict)

    def set(self, name: str, value: str, how: str) -> None:
        self.values[name] = value
        self.how[name] = how


def _source(path: Path) -> str:
    """An app's Python file, read as text (a FIFO or a huge file is an error naming it)."""
    from toolkit.files import read_regular

    return read_regular(path, "source file").decode(errors="replace")


def relative(path: Path, root: Path) -> str:
    """`path` as deploy.ini writes it: relative to the deployment folder when it can be."""
    return os.path.relpath(path.resolve(), root.resolve())


def detect(app: Path, deployment: Path, module: str | None = None) -> Detected:
    if not app.is_dir():
        raise ToolkitError("no such app folder", file=app, hint="give the folder of your project")
    if module:
        found = _given(app, deployment, module)
    elif (app / "manage.py").is_file():
        found = _django(app, deployment)
    elif (paste := _paste_file(app)) is not None:
        found = _pyramid(app, paste, deployment)
    else:
        found = _asgi(app, deployment) or _flask(app, deployment)
    found.set("pythonpath", relative(app, deployment), f"the app folder {app}")
    _virtualenv(app, deployment, found)
    return found


# --- a module the user names ---------------------------------------------------------------


def _given(app: Path, deployment: Path, module: str) -> Detected:
    """`--module`: the app's own static/ folder if it has one (never the deployment's, which
    a deployment for an existing app does not have)."""
    if module.startswith("config:"):
        raise ToolkitError(
            f"--module {module} names a PasteDeploy file, not a module",
            hint="leave --module out: toolkit finds production.ini and serves it with `paste`",
        )
    found = Detected("wsgi")
    found.set("app_module", module, "given with --module")
    _static_folder(app, deployment, found, "the app's static/ folder, at /static/")
    if (path := _module_file(app, module.split(":")[0])) is not None and _adapts_asgi(path):
        _lazy_for_asgi(found)
    return found


def _static_folder(app: Path, deployment: Path, found: Detected, how: str) -> None:
    static = app / "static"
    if static.is_dir():
        found.set("static_maps", f"/static/={relative(static, deployment)}", how)
    found.set("static_dir", "", "nothing is served at / but the app")


# --- ASGI apps through a WSGI adapter -----------------------------------------------------

# What wraps an ASGI app (FastAPI, Starlette) into a WSGI callable uWSGI can serve.
ASGI_ADAPTERS = frozenset({"ASGIMiddleware", "a2wsgi.ASGIMiddleware"})
ASGI_APPS = frozenset(
    {"FastAPI", "fastapi.FastAPI", "Starlette", "starlette.applications.Starlette"}
)


def _asgi(app: Path, deployment: Path) -> Detected | None:
    """`application = ASGIMiddleware(app)` (a2wsgi): served as WSGI, loaded in each worker.
    An ASGI app with no adapter is refused: uWSGI speaks WSGI only."""
    bare: tuple[str, Path, int] | None = None
    for module, path, tree in _module_trees(app):
        for node in tree.body:
            if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
                continue
            target, called = node.targets[0], ast.unparse(node.value.func)
            if not isinstance(target, ast.Name):
                continue
            if called in ASGI_ADAPTERS:
                found = Detected("asgi")
                found.set(
                    "app_module",
                    f"{module}:{target.id}",
                    f"{relative(path, app)} line {node.lineno}: {target.id} = {called}(...)",
                )
                _lazy_for_asgi(found)
                _static_folder(app, deployment, found, "the app's static/ folder, at /static/")
                return found
            if called in ASGI_APPS and bare is None:
                bare = (called, path, node.lineno)
    if bare is not None:
        called, path, line = bare
        raise ToolkitError(
            f"{relative(path, app)} line {line} makes an ASGI app ({called}), and uWSGI "
            "serves WSGI only",
            file=path,
            hint="wrap it: `from a2wsgi import ASGIMiddleware` and "
            "`application = ASGIMiddleware(app)`, then run `toolkit new` again",
        )
    return None


def _adapts_asgi(path: Path) -> bool:
    return "ASGIMiddleware" in _source(path)


def _lazy_for_asgi(found: Detected) -> None:
    found.set(
        "lazy_apps",
        "true",
        "a2wsgi starts the app's event loop in a thread when the module is imported; "
        "imported once in uWSGI's master, that thread is gone in the forked workers and "
        "every request would hang",
    )


# --- Pyramid (PasteDeploy) ----------------------------------------------------------------

PASTE_FILES = ("production.ini", "development.ini")
APP_SECTION = re.compile(r"^\[app:main\]\s*$", re.MULTILINE)
EGG = re.compile(r"^use\s*=\s*egg:([\w.-]+)", re.MULTILINE)
STATIC_VIEW = re.compile(
    r"""add_static_view\(\s*(?:name\s*=\s*)?['"]([^'"]+)['"]\s*,\s*(?:path\s*=\s*)?['"]([^'"]+)['"]"""
)


def _paste_file(app: Path) -> Path | None:
    """The PasteDeploy file to serve: production.ini, else development.ini, with [app:main]."""
    for name in PASTE_FILES:
        path = app / name
        if path.is_file() and APP_SECTION.search(_source(path)):
            return path
    return None


def _pyramid(app: Path, paste: Path, deployment: Path) -> Detected:
    """A Pyramid app (the cookiecutter starter's layout): uWSGI builds it from its
    PasteDeploy file (`paste = config:FILE`), which names the app as an installed egg."""
    text = _source(paste)
    found = Detected("pyramid")
    development = "" if paste.name == PASTE_FILES[0] else "; no production.ini: development's"
    found.set("paste", relative(paste, deployment), f"{paste.name}: [app:main]{development}")
    found.set("static_dir", "", "Pyramid serves no folder at /")
    egg = EGG.search(text)
    package = app / (egg.group(1).replace("-", "_") if egg else "")
    if egg and package.is_dir():
        _pyramid_static(app, package, deployment, found)
        found.notes.append(
            f"{paste.name} loads egg:{egg.group(1)}: install the app into its virtualenv "
            "(pip install -e .), as Pyramid's README says"
        )
    return found


def _pyramid_static(app: Path, package: Path, deployment: Path, found: Detected) -> None:
    """`config.add_static_view('static', 'static')` (or 'pkg:static'): served by uWSGI."""
    for path in sorted(package.rglob("*.py")):
        for name, where in STATIC_VIEW.findall(_source(path)):
            if "://" in name:
                continue
            spec_package, colon, folder = where.rpartition(":")
            base = app / spec_package.replace(".", "/") if colon else path.parent
            static = base / folder
            if static.is_dir():
                found.set(
                    "static_maps",
                    f"/{name.strip('/')}/={relative(static, deployment)}",
                    f"{relative(path, app)}: add_static_view({name!r}, {where!r})",
                )
                return


# --- Django ---------------------------------------------------------------------------------


def _django(app: Path, deployment: Path) -> Detected:
    found = Detected("django")
    manage = app / "manage.py"
    text = _source(manage)
    match = SETTINGS_DEFAULT.search(text)
    if match is None:
        raise ToolkitError(
            "manage.py does not name its settings (DJANGO_SETTINGS_MODULE)",
            file=manage,
            hint="pass --module PROJECT.wsgi:application",
        )
    manage_settings = match.group(1)
    line = text.count("\n", 0, match.start()) + 1
    project = manage_settings.split(".")[0]
    wsgi = app / project / "wsgi.py"
    if not wsgi.is_file():
        raise ToolkitError(
            f"no {project}/wsgi.py beside manage.py",
            file=app,
            hint="pass --module PACKAGE.wsgi:application",
        )
    found.set("app_module", f"{project}.wsgi:application", f"{project}/wsgi.py")
    named = {manage_settings: f"manage.py line {line}"}
    if wsgi_match := SETTINGS_DEFAULT.search(_source(wsgi)):
        named.setdefault(wsgi_match.group(1), f"{project}/wsgi.py")
    settings_module, settings_how = _production_settings(app, named)
    found.set("static_dir", "", "Django serves no folder at /")
    settings_file = _module_file(app, settings_module)
    if settings_file is None:
        found.set("env", f"DJANGO_SETTINGS_MODULE={settings_module}", settings_how)
        found.notes.append(f"settings module {settings_module} not found: no static maps")
        return found
    names = _settings(settings_file, app, settings_module)
    where = relative(settings_file, app)
    _django_production(settings_module, settings_how, names, where, found)
    maps, how = [], []
    for url_name, root_name in (("STATIC_URL", "STATIC_ROOT"), ("MEDIA_URL", "MEDIA_ROOT")):
        url, root = names.get(url_name), names.get(root_name)
        if isinstance(url, str) and isinstance(root, Path):
            prefix = "/" + url.strip("/") + "/"
            maps.append(f"{prefix}={relative(root, deployment)}")
            how.append(f"{url_name} and {root_name} in {where}")
            if not root.is_dir():
                found.notes.append(
                    f"{root_name} {root} does not exist yet: run `manage.py collectstatic`"
                    if root_name == "STATIC_ROOT"
                    else f"{root_name} {root} does not exist yet: create it"
                )
        elif url_name == "STATIC_URL":
            found.notes.append(
                f"{where} sets no STATIC_ROOT: add "
                "STATIC_ROOT = BASE_DIR / 'staticfiles', run `manage.py collectstatic`, "
                "then set static_maps"
            )
    if maps:
        found.set("static_maps", ", ".join(maps), "; ".join(how))
    _django_releases(app, names, where, found)
    return found


# Settings modules named for development; a package of settings usually has production ones.
DEVELOPMENT_NAMES = frozenset({"dev", "development", "local", "test", "testing", "debug"})
PRODUCTION_NAMES = ("production", "prod", "live", "deploy")
# The module toolkit writes when production settings leave values to the deployment.
DEPLOYMENT_SETTINGS = "deployment_settings"
DEPLOYMENT_PYTHON = "python"
SECRETS_FILE = "secrets.env"
LOCAL_HOSTS = "127.0.0.1,localhost"


def _production_settings(app: Path, named: dict[str, str]) -> tuple[str, str]:
    """The settings to deploy with: one that manage.py or wsgi.py names, unless it is for
    development and its package has production settings beside it (`wagtail start` names
    settings.dev in both, and has settings/production.py)."""
    for module, where in named.items():
        if module.rpartition(".")[2] not in DEVELOPMENT_NAMES:
            return module, where
    first, where = next(iter(named.items()))
    package = first.rpartition(".")[0]
    for name in PRODUCTION_NAMES:
        candidate = f"{package}.{name}"
        if package and _module_file(app, candidate) is not None:
            return candidate, (
                f"{candidate.replace('.', '/')}.py: {where} names {first}, for development"
            )
    return first, where


def _django_production(
    module: str, how: str, names: dict[str, object], where: str, found: Detected
) -> None:
    """What the production settings leave to the deployment: a SECRET_KEY and the hosts it
    answers for (Django refuses to start without the first, and answers 400 to every request
    without the second when DEBUG is off). toolkit writes a settings module of the
    deployment's own that takes them from the environment, and an env file with a new key."""
    debug = names.get("DEBUG") is True
    # With DEBUG on, Django answers localhost whatever ALLOWED_HOSTS says.
    needed = ("SECRET_KEY",) if debug else ("SECRET_KEY", "ALLOWED_HOSTS")
    missing = [name for name in needed if not names.get(name)]
    if debug:
        found.notes.append(f"{where} sets DEBUG = True: not for production")
    if not missing:
        found.set("env", f"DJANGO_SETTINGS_MODULE={module}", how)
        return
    import secrets

    lines = [
        f'"""The settings this deployment runs: {module}, and what it leaves to the',
        "deployment, from the environment (env_file). Written by `toolkit new --app`;",
        'yours to edit."""',
        "",
        "import os",
        "",
        f"from {module} import *  # noqa: F403",
        "",
    ]
    environment = []
    if "SECRET_KEY" in missing:
        lines.append('SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]')
        environment.append(f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}")
    if "ALLOWED_HOSTS" in missing:
        lines.append('ALLOWED_HOSTS = os.environ["DJANGO_ALLOWED_HOSTS"].split(",")')
        environment.append(f"DJANGO_ALLOWED_HOSTS={LOCAL_HOSTS}")
    found.files[f"{DEPLOYMENT_PYTHON}/{DEPLOYMENT_SETTINGS}.py"] = ("\n".join(lines) + "\n", 0o644)
    found.files[SECRETS_FILE] = (
        "# What the app reads from its environment: NAME=value, as written. Secrets: keep\n"
        "# this file out of version control.\n" + "\n".join(environment) + "\n",
        0o600,
    )
    leaves = " and ".join(missing)
    found.set(
        "env",
        f"DJANGO_SETTINGS_MODULE={DEPLOYMENT_SETTINGS}",
        f"{how}; it sets no {leaves}: {DEPLOYMENT_PYTHON}/{DEPLOYMENT_SETTINGS}.py adds them",
    )
    found.set("env_file", SECRETS_FILE, f"a new SECRET_KEY and the hosts, for {module}")
    found.set("deployment_python", DEPLOYMENT_PYTHON, f"where {DEPLOYMENT_SETTINGS}.py lives")


def _inside(path: object, app: Path) -> str | None:
    """`path` relative to the app folder, when it is a path inside it."""
    if not isinstance(path, Path):
        return None
    try:
        return path.resolve().relative_to(app.resolve()).as_posix()
    except ValueError:
        return None


def _django_releases(app: Path, names: dict[str, object], where: str, found: Detected) -> None:
    """What releases need: the state that is not code (a SQLite database, MEDIA_ROOT), the
    release phase (migrate; collectstatic when there is a STATIC_ROOT, whose output is then
    built by each release rather than copied) and a path that answers 200."""
    shared, why = [], []
    database = names.get("DATABASES")
    default = database.get("default") if isinstance(database, dict) else None
    sqlite = isinstance(default, dict) and "sqlite3" in str(default.get("ENGINE", ""))
    if sqlite and isinstance(default, dict) and (name := _inside(default.get("NAME"), app)):
        shared.append(name)
        why.append(f"the SQLite database (DATABASES in {where})")
    if (media := _inside(names.get("MEDIA_ROOT"), app)) is not None:
        shared.append(media + "/")
        why.append(f"uploads (MEDIA_ROOT in {where})")
    if shared:
        found.set("shared", ", ".join(shared), "; ".join(why))
    commands = ["python manage.py migrate --noinput"]
    static_root = _inside(names.get("STATIC_ROOT"), app)
    if static_root is not None:
        commands.append("python manage.py collectstatic --noinput")
        found.set(
            "release_exclude",
            static_root + "/",
            f"STATIC_ROOT in {where}: collectstatic builds it in each release",
        )
    found.set("release_commands", ", ".join(commands), "Django's migrations and static files")
    urlconf = names.get("ROOT_URLCONF")
    urls = app.joinpath(*(urlconf if isinstance(urlconf, str) else "").split(".")).with_suffix(
        ".py"
    )
    routes = _routes(urls) if urls.is_file() else None
    if routes is not None and "" not in routes and "admin/" in routes:
        found.set(
            "health_path",
            "/admin/login/",
            f"{relative(urls, app)} routes nothing at /, and the admin at /admin/",
        )


def _routes(urls: Path) -> set[str] | None:
    """The first arguments of `path(...)`/`re_path(...)` in a URLconf ("" for the root,
    which including `wagtail_urls` routes too); None when it does not parse."""
    try:
        tree = ast.parse(_source(urls))
    except SyntaxError:
        return None
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == "wagtail_urls":
            found.add("")
        if (
            isinstance(node, ast.Call)
            and ast.unparse(node.func).rpartition(".")[2] in {"path", "re_path"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.add(node.args[0].value.strip("^$"))
    return found


def _module_file(app: Path, dotted: str) -> Path | None:
    base = app.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _settings(
    path: Path, app: Path, module: str, seen: frozenset[str] = frozenset()
) -> dict[str, object]:
    """Top-level `NAME = ...` of a settings module whose value is a string, a path built from
    BASE_DIR, __file__, Path(), os.path.join or `/`, or a dict of those; `from .base import *`
    brings the names of that module first (a settings package: base, dev, production)."""
    try:
        tree = ast.parse(_source(path))
    except SyntaxError:
        return {}
    names: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and [a.name for a in node.names] == ["*"]:
            dotted = _absolute(module, path, node)
            if dotted and dotted not in seen and (imported := _module_file(app, dotted)):
                names.update(_settings(imported, app, dotted, seen | {module}))
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                value = _evaluate(node.value, names, path)
                names[target.id] = UNKNOWN if value is None else value
    return names


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str | None:
    """The dotted name `from X import *` names, relative imports resolved."""
    if not node.level:
        return node.module
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join([*base, *([node.module] if node.module else [])]) or None


def _evaluate(node: ast.expr, names: dict[str, object], file: Path) -> object:
    """Just enough of Python for the ways settings files spell paths (and DATABASES)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str | bool | int):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_evaluate(item, names, file) for item in node.elts]
    if isinstance(node, ast.Dict):
        return {
            key.value: _evaluate(value, names, file)
            for key, value in zip(node.keys, node.values, strict=True)
            if isinstance(key, ast.Constant) and isinstance(key.value, str)
        }
    if isinstance(node, ast.Name):
        return file if node.id == "__file__" else names.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        left, right = _evaluate(node.left, names, file), _evaluate(node.right, names, file)
        if isinstance(left, Path) and isinstance(right, str | Path):
            return left / right
        return None
    if isinstance(node, ast.Attribute) and node.attr == "parent":
        inner = _evaluate(node.value, names, file)
        return inner.parent if isinstance(inner, Path) else None
    if isinstance(node, ast.Call):
        args = [_evaluate(a, names, file) for a in node.args]
        name = ast.unparse(node.func)
        if (
            name in {"Path", "pathlib.Path"}
            and args
            and all(isinstance(a, str | Path) for a in args)
        ):
            return Path(*[str(a) for a in args])
        if name.endswith(".resolve") or name.endswith(".absolute"):
            assert isinstance(node.func, ast.Attribute)
            inner = _evaluate(node.func.value, names, file)
            return inner.resolve() if isinstance(inner, Path) else None
        if name in {"os.path.dirname", "os.path.abspath", "os.path.realpath"} and args:
            inner = args[0]
            if isinstance(inner, str | Path):
                resolved = Path(os.path.abspath(inner))
                return resolved.parent if name == "os.path.dirname" else resolved
        if name == "os.path.join" and args and all(isinstance(a, str | Path) for a in args):
            return Path(os.path.join(*[str(a) for a in args]))
    return None


# --- Flask ----------------------------------------------------------------------------------


def _flask(app: Path, deployment: Path) -> Detected:
    for module, path, tree in _module_trees(app):
        for node in tree.body:
            if isinstance(node, ast.Assign) and _calls_flask(node.value):
                target = node.targets[0]
                if isinstance(target, ast.Name):
                    found = Detected("flask")
                    found.set(
                        "app_module",
                        f"{module}:{target.id}",
                        f"{relative(path, app)} line {node.lineno}: {target.id} = Flask(...)",
                    )
                    _flask_static(path.parent, deployment, found)
                    _flask_instance(app, path, found)
                    return found
            if isinstance(node, ast.FunctionDef) and node.name == "create_app":
                found = Detected("flask")
                found.set(
                    "app_module",
                    f"{module}:create_app()",
                    f"{relative(path, app)} line {node.lineno}: def create_app()",
                )
                _flask_static(path.parent, deployment, found)
                _flask_instance(app, path, found)
                return found
    raise ToolkitError(
        "found neither a Django project (manage.py) nor a Flask app in it",
        file=app,
        hint="name the WSGI callable: toolkit new DIR --app PATH --module package.module:app",
    )


def _module_trees(app: Path) -> Iterator[tuple[str, Path, ast.Module]]:
    """Importable modules at the top of the app folder and its packages' __init__.py, parsed;
    one that does not parse is skipped."""
    for path in sorted(app.iterdir()):
        if path.name in SKIPPED_FOLDERS:
            continue
        if path.suffix == ".py" and path.stem.isidentifier():
            module = path.stem
        elif path.is_dir() and (path / "__init__.py").is_file() and path.name.isidentifier():
            module, path = path.name, path / "__init__.py"
        else:
            continue
        try:
            tree = ast.parse(_source(path))
        except SyntaxError:
            continue
        yield module, path, tree


def _calls_flask(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and ast.unparse(node.func) in {"Flask", "flask.Flask"}


def _flask_static(folder: Path, deployment: Path, found: Detected) -> None:
    static = folder / "static"
    if static.is_dir():
        found.set(
            "static_maps",
            f"/static/={relative(static, deployment)}",
            "Flask serves its static/ at /static/",
        )
    found.set("static_dir", "", "a Flask app serves no folder at /")


def _flask_instance(app: Path, module_file: Path, found: Detected) -> None:
    """Flask's instance folder (`instance/` beside the package, app.instance_path) holds
    what the app writes (the tutorial's SQLite database): state, not code."""
    source = _source(module_file)
    if (app / "instance").is_dir() or "instance_path" in source or "instance_relative" in source:
        found.set("shared", "instance/", "Flask's instance folder (app.instance_path)")


# --- its virtualenv -------------------------------------------------------------------------


def _virtualenv(app: Path, deployment: Path, found: Detected) -> None:
    for name in VIRTUALENV_NAMES:
        folder = app / name
        if (folder / "pyvenv.cfg").is_file():
            found.set("virtualenv", relative(folder, deployment), f"{folder}/pyvenv.cfg")
            return
