"""Recipes: named bundles of templates, typed variables with defaults, and scaffold files."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.apply import FILE_MODE, write_atomically
from toolkit.errors import ToolkitError

DEFAULT_RECIPE = "ground-up"
RECIPE_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
# Variables whose default (None in recipe.ini) follows another one: (that one, offset).
DERIVED = {"subscription_port": ("http_port", 2)}
# Scaffold folders that hold the example app: left out when the user brings an app.
EXAMPLE_FOLDERS = ("code", "static")
_PACKAGE_DATA = Path(__file__).parent / "_data"
_SOURCE_ROOT = Path(__file__).parent.parent


def data_dir(name: str) -> Path:
    """Where a shipped folder (templates, recipes, tutorial) lives: in the wheel or the checkout."""
    packaged = _PACKAGE_DATA / name
    return packaged if packaged.is_dir() else _SOURCE_ROOT / name


@dataclass(frozen=True)
class Variable:
    """One typed variable of a recipe: its configspec check and the comment that explains it."""

    name: str
    check: str
    comment: str


@dataclass(frozen=True)
class VassalTemplate:
    """A template the recipe renders into vassals/, as written in `vassals = ...`.

    `http.ini if split` renders only when the variable `split` is true;
    `app.ini * apps` renders app-1.ini ... app-N.ini, N being the variable `apps`,
    each with `instance` set to its number.
    """

    path: str
    when: str | None = None
    repeat: str | None = None

    @classmethod
    def parse(cls, text: str) -> VassalTemplate:
        text, _, condition = text.partition(" if ")
        path, _, repeat = text.partition(" * ")
        return cls(path.strip(), condition.strip() or None, repeat.strip() or None)

    def outputs(self, values: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        """(file name, extra template variables) for each file this template makes."""
        if self.when is not None and not values.get(self.when):
            return []
        if self.repeat is None:
            return [(self.path, {})]
        stem, dot, suffix = self.path.rpartition(".")
        return [
            (f"{stem}-{i}{dot}{suffix}", {"instance": i})
            for i in range(1, int(values.get(self.repeat, 0)) + 1)
        ]


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    path: Path
    vassals: tuple[VassalTemplate, ...]
    variables: tuple[Variable, ...]
    glob: str = "*.ini"
    scaffold_from: str | None = None

    @property
    def templates_dir(self) -> Path:
        return self.path / "templates"

    @property
    def scaffold_dir(self) -> Path:
        return self.path / "scaffold"

    def variable(self, name: str) -> Variable | None:
        return next((v for v in self.variables if v.name == name), None)

    def scaffold_files(self) -> dict[Path, Path]:
        """Relative path -> source: `scaffold_from`'s files, then this recipe's own on top."""
        files = find_recipe(self.scaffold_from).scaffold_files() if self.scaffold_from else {}
        if self.scaffold_dir.is_dir():
            for source in sorted(self.scaffold_dir.rglob("*")):
                if source.is_file() and "__pycache__" not in source.parts:
                    files[source.relative_to(self.scaffold_dir)] = source
        return files


def _comment(lines: list[str]) -> str:
    return " ".join(line.lstrip("#").strip() for line in lines if line.strip())


def load_recipe(path: Path) -> Recipe:
    """Read `recipe.ini`; the [variables] section is a configobj configspec."""
    ini = path / "recipe.ini"
    from configobj import ConfigObj, ConfigObjError

    try:
        spec = ConfigObj(str(ini), list_values=False, _inspec=True, file_error=True)
    except (OSError, ConfigObjError) as error:
        raise ToolkitError(f"cannot read recipe: {error}", file=ini) from error
    section = spec.get("variables")
    if not isinstance(section, dict) or not spec.get("name"):
        raise ToolkitError("a recipe needs `name` and a [variables] section", file=ini)
    comments: dict[str, list[str]] = getattr(section, "comments", {})
    variables = tuple(
        Variable(name, str(check), _comment(comments.get(name, [])))
        for name, check in section.items()
    )
    vassals = tuple(
        VassalTemplate.parse(v) for v in str(spec.get("vassals", "")).split(",") if v.strip()
    )
    return Recipe(
        name=str(spec["name"]),
        description=str(spec.get("description", "")),
        path=path,
        vassals=vassals,
        variables=variables,
        glob=str(spec.get("glob", "*.ini")),
        scaffold_from=str(spec["scaffold_from"]) if "scaffold_from" in spec else None,
    )


def list_recipes() -> list[Recipe]:
    root = data_dir("recipes")
    return [load_recipe(p) for p in sorted(root.iterdir()) if (p / "recipe.ini").is_file()]


def find_recipe(name: str) -> Recipe:
    """A shipped recipe by name; a name is never a path (`../x` names no recipe)."""
    path = data_dir("recipes") / name
    if not RECIPE_NAME.match(name) or not (path / "recipe.ini").is_file():
        known = ", ".join(r.name for r in list_recipes())
        raise ToolkitError(f"no recipe named {name!r}", hint=f"known recipes: {known}")
    return load_recipe(path)


def deploy_ini_text(
    recipe: Recipe,
    defaults: dict[str, object],
    given: Mapping[str, tuple[str, str]] | None = None,
) -> str:
    """A commented deploy.ini showing every variable with its default, ready to uncomment;
    `given` values (name -> (value, how it was found)) are set, with how as a comment."""
    given = given or {}
    lines = [
        f"# toolkit deployment, recipe {recipe.name!r}: {recipe.description}",
        "# Uncomment a line to change a variable; `toolkit render` validates every value.",
        f"recipe = {recipe.name}",
    ]
    for variable in recipe.variables:
        if variable.name in given:
            found, how = given[variable.name]
            lines += ["", f"# {variable.comment}", f"# (found: {how})"]
            lines.append(f"{variable.name} = {found}")
            continue
        default = defaults[variable.name]
        if default is None:
            base, offset = DERIVED.get(variable.name, ("?", 0))
            lines += ["", f"# {variable.comment}", f"#{variable.name} = ({base} + {offset})"]
            continue
        if isinstance(default, bool):
            shown = "true" if default else "false"
        elif isinstance(default, list):
            shown = ", ".join(default)
        else:
            shown = str(default)
        lines += ["", f"# {variable.comment}", f"#{variable.name} = {shown}"]
    return "\n".join(lines) + "\n"


def scaffold(
    recipe: Recipe,
    target: Path,
    deploy_ini: str,
    force: bool,
    example: bool = True,
    extra: Mapping[str, tuple[str, int]] | None = None,
) -> list[tuple[Path, str]]:
    """Create a deployment folder from a recipe; never clobber a user's file unless forced.
    Without `example`, the example app and static files stay out (the user has an app);
    `extra` files (path in the folder: text, mode) are what that app needs of its own.

    Returns each file with what happened to it: created, overwritten or kept.
    """
    existing = target / "deploy.ini"
    if existing.exists() and not force:
        raise ToolkitError(
            "a deployment already exists here", file=existing, hint="pass --force to overwrite it"
        )
    files = [(existing, deploy_ini)]
    files += [
        (target / name, source.read_text())
        for name, source in recipe.scaffold_files().items()
        if example or name.parts[0] not in EXAMPLE_FOLDERS
    ]
    modes = {target / name: mode for name, (_, mode) in (extra or {}).items()}
    files += [(target / name, text) for name, (text, _) in (extra or {}).items()]
    report: list[tuple[Path, str]] = []
    for path, text in files:
        if path.exists() and not force:
            report.append((path, "kept"))
            continue
        report.append((path, "overwritten" if path.exists() else "created"))
        write_atomically(path, text, modes.get(path, FILE_MODE))
    return report
