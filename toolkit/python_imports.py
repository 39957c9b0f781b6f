"""What an app's Python files import, read without running them, and whether a given Python
has it: the question `toolkit check` asks before uWSGI imports the app for real.

Only imports the app cannot run without count: those at the top level of a module, not
those inside `try:` (optional by design), `if` or a function."""

from __future__ import annotations

import ast
import functools
import json
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

from toolkit.errors import ToolkitError

# Django names its apps as strings; they are imported as surely as an import statement.
INSTALLED_APPS = "INSTALLED_APPS"
ASK_TIMEOUT = 10.0
# Run by the app's Python: which of the names (argv) it cannot find, folders first on its path.
FIND_SCRIPT = """
import importlib.util, json, sys
folders, names = json.loads(sys.argv[1])
sys.path[:0] = folders
missing = []
for name in names:
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        found = None
    if found is None:
        missing.append(name)
print(json.dumps(missing))
"""


def module_file(dotted: str, folders: Iterable[str]) -> Path | None:
    """The file `dotted` (a.b.c) is read from, in the first folder that has it."""
    parts = dotted.split(".")
    if not all(part.isidentifier() for part in parts):
        return None
    for folder in folders:
        base = Path(folder).joinpath(*parts)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def required_imports(path: Path, dotted: str, folders: list[str]) -> set[str]:
    """Top-level package names `path` (module `dotted`) needs, following its star imports
    and relative imports into the app's own modules (a settings package: base, production)."""
    needed: set[str] = set()
    seen: set[str] = set()
    pending = [(path, dotted)]
    while pending:
        file, module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        tree = _parse(file)
        if tree is None:
            continue
        for name, level in _imports(tree):
            target = _absolute(module, file, name, level)
            if target is None:
                continue
            own = module_file(target, folders)
            if own is not None and (level or target.split(".")[0] == dotted.split(".")[0]):
                pending.append((own, target))
            elif level == 0:
                needed.add(target.split(".")[0])
    return needed


def source(path: Path) -> str:
    """A Python file's text; "" when it cannot be read (a FIFO, too large, gone)."""
    from toolkit.files import read_regular

    try:
        return read_regular(path, "source file").decode(errors="replace")
    except (OSError, ToolkitError):
        return ""


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(source(path))
    except (SyntaxError, ValueError):
        return None


def _imports(tree: ast.Module) -> Iterator[tuple[str, int]]:
    """(dotted name, relative level) of each import the module cannot do without."""
    for node in _required_nodes(tree.body):
        if isinstance(node, ast.Import):
            yield from ((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level
        elif (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == INSTALLED_APPS for t in node.targets)
            and isinstance(node.value, ast.List | ast.Tuple)
        ):
            for item in node.value.elts:
                if isinstance(item, ast.Constant) and isinstance(item.value, str):
                    yield item.value, 0


def _required_nodes(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """The module's own statements: not those under `try:` or `if` (optional, or for one
    platform) nor in functions (imported when called, if ever)."""
    yield from (n for n in body if not isinstance(n, ast.Try | ast.If | ast.FunctionDef))


def _absolute(module: str, path: Path, name: str, level: int) -> str | None:
    if not level:
        return name or None
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if level - 1 > len(package):
        return None
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, *([name] if name else [])]) or None


@functools.lru_cache(maxsize=64)
def missing_for(python: str, folders: tuple[str, ...], names: tuple[str, ...]) -> tuple[str, ...]:
    """The names `python` cannot import, with `folders` first on its path; () when it cannot
    be asked (the check then stays silent rather than guess)."""
    try:
        done = subprocess.run(
            [python, "-I", "-c", FIND_SCRIPT, json.dumps([list(folders), list(names)])],
            capture_output=True,
            text=True,
            timeout=ASK_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
        return tuple(json.loads(done.stdout)) if done.returncode == 0 else ()
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return ()
