"""The tutorial's chapters: Markdown files whose header says which deployment each one builds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from toolkit import settings
from toolkit.apply import write_atomically
from toolkit.deployment import Deployment, new
from toolkit.errors import ToolkitError
from toolkit.recipes import data_dir, find_recipe

HEADER = re.compile(r"\A<!-- toolkit\n(.*?)\n-->\n", re.DOTALL)


@dataclass(frozen=True)
class Chapter:
    """A chapter file; `recipe` and `variables` (name=value, ...) say what it runs, if anything."""

    number: int
    title: str
    path: Path
    recipe: str | None
    variables: tuple[str, ...]

    @property
    def text(self) -> str:
        return HEADER.sub("", self.path.read_text())


def _header(path: Path) -> dict[str, str]:
    match = HEADER.match(path.read_text())
    if match is None:
        raise ToolkitError("chapter without a `<!-- toolkit` header", file=path, line=1)
    fields = {}
    for line in match.group(1).splitlines():
        key, _, value = line.partition("=")
        fields[key.strip()] = value.strip()
    return fields


def chapters() -> list[Chapter]:
    found = []
    for path in sorted(data_dir("tutorial").glob("[0-9][0-9]-*.md")):
        fields = _header(path)
        variables = tuple(v.strip() for v in fields.get("set", "").split(",") if v.strip())
        found.append(
            Chapter(int(path.name[:2]), fields["title"], path, fields.get("recipe"), variables)
        )
    return found


def chapter(number: int) -> Chapter:
    for candidate in chapters():
        if candidate.number == number:
            return candidate
    raise ToolkitError(f"no chapter {number}", hint="`toolkit tutorial list` shows them")


def build(number: int, root: Path, overrides: list[str]) -> Deployment:
    """Scaffold the chapter's deployment in `root` with its variables (then `--set` ones)."""
    current = chapter(number)
    if current.recipe is None:
        raise ToolkitError(f"chapter {number} has nothing to run", hint="read it with `show`")
    recipe = find_recipe(current.recipe)
    new(root, recipe, force=True)
    layered = settings.parse_overrides([*current.variables, *overrides])
    variables = settings.resolve(recipe, layered)
    lines = [f"recipe = {recipe.name}", f"# chapter {number:02d}: {current.title}"]
    lines += [f"{name} = {variables.values[name]}" for name in layered]
    write_atomically(root / "deploy.ini", "\n".join(lines) + "\n")
    return Deployment(root)
