"""`toolkit render` on a deployment already rendered from the same inputs answers without
importing Jinja2 or the checker: the inputs' digest and the outputs' digests are kept from
the last render, as make keeps timestamps, but by content.

Inputs: toolkit's version, deploy.ini, the `--set` values, and every template the recipe,
the base and the deployment may use. Outputs: each rendered file's digest; a file edited
since, a missing one or an extra `*.ini` in vassals/ is a miss, and the full render runs."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import re
from pathlib import Path

from toolkit import __version__
from toolkit.catalog import cache_dir
from toolkit.errors import ToolkitError
from toolkit.files import read_regular
from toolkit.recipes import data_dir

RECIPE_LINE = re.compile(rb"^\s*recipe\s*=\s*([\w.-]+)\s*$", re.MULTILINE)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _record(root: Path) -> Path:
    return cache_dir() / "render" / f"{_digest(str(root.resolve()).encode())[:24]}.json"


def inputs_key(root: Path, overrides: list[str]) -> str | None:
    """The digest of everything a render of `root` reads; None when it cannot be told."""
    try:
        deploy_ini = read_regular(root / "deploy.ini", "deploy.ini")
    except (OSError, ToolkitError):
        return None
    recipe = RECIPE_LINE.search(deploy_ini)
    recipe_dir = data_dir("recipes") / (recipe.group(1).decode() if recipe else "ground-up")
    parts = [__version__.encode(), deploy_ini, json.dumps(overrides).encode()]
    folders = [recipe_dir, data_dir("templates"), root / "templates"]
    for folder in folders:
        for name in sorted(glob.glob(f"{folder}/**", recursive=True)):
            path = Path(name)
            if path.is_file():
                try:
                    parts += [name.encode(), read_regular(path, "template")]
                except (OSError, ToolkitError):
                    return None
    return _digest(b"\0".join(parts))


def _outputs(root: Path, names: list[str]) -> list[list[str]] | None:
    digests = []
    for name in names:
        try:
            digests.append([name, _digest(read_regular(root / name, "vassal file"))])
        except (OSError, ToolkitError):
            return None
    return digests


def unchanged(root: Path, overrides: list[str]) -> list[Path] | None:
    """The rendered files when the last render had the same inputs and they are untouched;
    None otherwise."""
    key = inputs_key(root, overrides)
    try:
        record = json.loads(_record(root).read_text())
    except (OSError, ValueError):
        return None
    if key is None or not isinstance(record, dict) or record.get("key") != key:
        return None
    outputs = record.get("outputs", [])
    names = [name for name, _ in outputs]
    found = glob.glob(f"{glob.escape(str(root))}/vassals/**/*.ini", recursive=True)
    on_disk = {str(Path(p).relative_to(root)) for p in found}
    if set(names) != on_disk or _outputs(root, names) != outputs:
        return None
    return [root / name for name in names]


def remember(root: Path, overrides: list[str], files: list[Path]) -> None:
    """Keep this render's inputs and outputs for the next one (a failure only costs speed)."""
    from toolkit.apply import write_atomically

    key = inputs_key(root, overrides)
    outputs = _outputs(root, [str(f.relative_to(root)) for f in files])
    if key is None or outputs is None:
        return
    with contextlib.suppress(ToolkitError):
        write_atomically(_record(root), json.dumps({"key": key, "outputs": outputs}))
