"""What an existing app is and how uWSGI should load it, read from its files without running
them: a Django project (manage.py and its settings), a Flask app (an `app = Flask(...)`
object or a `create_app` factory), or the WSGI module the user names.

Each finding carries how it was known, so `toolkit new --app` can say so in deploy.ini."""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.errors import ToolkitError

SETTINGS_DEFAULT = re.compile(
    r"""os\.environ\.setdefault\(\s*["']DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']"""
)
VIRTUALENV_NAMES = (".venv", "venv", "env", ".env")
SKIPPED_FOLDERS = {".git", "__pycache__", "node_modules", *VIRTUALENV_NAMES}


@dataclass
class Detected:
    """deploy.ini values (as text) for the app, each with the sentence that says how."""

    kind: str
    values: dict[str, str] = field(default_factory=dict)
    how: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

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
        found = Detected("wsgi")
        found.set("app_module", module, "given with --module")
    elif (app / "manage.py").is_file():
        found = _django(app, deployment)
    else:
        found = _flask(app, deployment)
    found.set("pythonpath", relative(app, deployment), f"the app folder {app}")
    _virtualenv(app, deployment, found)
    return found


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
    settings_module = match.group(1)
    line = text.count("\n", 0, match.start()) + 1
    project = settings_module.split(".")[0]
    if not (app / project / "wsgi.py").is_file():
        raise ToolkitError(
            f"no {project}/wsgi.py beside manage.py",
            file=app,
            hint="pass --module PACKAGE.wsgi:application",
        )
    found.set("app_module", f"{project}.wsgi:application", f"{project}/wsgi.py")
    found.set("env", f"DJANGO_SETTINGS_MODULE={settings_module}", f"manage.py line {line}")
    found.set("static_dir", "", "Django serves no folder at /")
    settings_file = _module_file(app, settings_module)
    if settings_file is None:
        found.notes.append(f"settings module {settings_module} not found: no static maps")
        return found
    names = _settings(settings_file, app, settings_module)
    where = relative(settings_file, app)
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
    urls = app.joinpath(*str(names.get("ROOT_URLCONF", "")).split(".")).with_suffix(".py")
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
                if value is not None:
                    names[target.id] = value
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
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
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
    for module, path in _python_modules(app):
        try:
            tree = ast.parse(_source(path))
        except SyntaxError:
            continue
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


def _python_modules(app: Path) -> list[tuple[str, Path]]:
    """Importable modules at the top of the app folder and its packages' __init__.py."""
    found: list[tuple[str, Path]] = []
    for path in sorted(app.iterdir()):
        if path.name in SKIPPED_FOLDERS:
            continue
        if path.suffix == ".py" and path.stem.isidentifier():
            found.append((path.stem, path))
        elif path.is_dir() and (path / "__init__.py").is_file() and path.name.isidentifier():
            found.append((path.name, path / "__init__.py"))
    return found


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
