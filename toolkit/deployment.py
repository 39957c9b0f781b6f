"""A deployment folder: deploy.ini, its recipe, and where vassals, logs and run files go."""

from __future__ import annotations

import glob
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.errors import ToolkitError

if TYPE_CHECKING:
    from toolkit.detect import Detected
    from toolkit.inventory import Inventory
    from toolkit.recipes import Recipe
    from toolkit.release_store import Store
    from toolkit.settings import RawValue, Variables

VASSALS = "vassals"
HOSTS = "hosts"
RUN = "run"
TEMPLATES = "templates"


@dataclass(frozen=True)
class Sources:
    """What a deployment's variables are made of, read once: its recipe, deploy.ini's values
    and, when hosts are asked for, the inventory. Every layering of them (a host, a release,
    `--set`) is resolved from these without reading a file again."""

    recipe: Recipe
    deploy: Mapping[str, RawValue]
    inventory: Inventory | None = None

    def variables(
        self,
        host: str | None = None,
        release: Mapping[str, RawValue] | None = None,
        overrides: Mapping[str, RawValue] | None = None,
    ) -> Variables:
        """deploy.ini, the host's inventory layers, the release (above the host's layers: a
        release runs on its own port), then the overrides, validated by the recipe."""
        from toolkit import settings

        hosts = [] if host is None or self.inventory is None else self.inventory.layers(host)
        return settings.resolve(self.recipe, self.deploy, *hosts, release or {}, overrides or {})


@dataclass(frozen=True)
class Deployment:
    """The folder: deploy.ini, its recipe, and where vassals, releases, logs and run files
    go. Planning and writing vassal files is toolkit.pipeline's."""

    root: Path

    @property
    def deploy_ini(self) -> Path:
        return self.root / "deploy.ini"

    @property
    def vassals_dir(self) -> Path:
        return self.root / VASSALS

    @property
    def run_dir(self) -> Path:
        return self.root / RUN

    @property
    def templates_dir(self) -> Path:
        return self.root / TEMPLATES

    @property
    def releases(self) -> Store:
        from toolkit.release_store import Store

        return Store(self.root)

    def vassal_patterns(self, recipe: Recipe) -> list[str]:
        return [str(self.vassals_dir / recipe.glob)]

    def sources(self, inventory: bool = False) -> Sources:
        """deploy.ini and its recipe (and inventory.ini, with `inventory`), read now."""
        from toolkit import settings
        from toolkit.inventory import FILE_NAME as INVENTORY
        from toolkit.inventory import read_inventory
        from toolkit.recipes import DEFAULT_RECIPE, find_recipe

        if not self.deploy_ini.exists():
            raise ToolkitError(
                "not a deployment: no deploy.ini",
                file=self.root,
                hint=f"create one with `toolkit new {self.root}`",
            )
        recipe_name, values = settings.read_deploy_ini(self.deploy_ini)
        recipe = find_recipe(recipe_name or DEFAULT_RECIPE)
        found = read_inventory(self.root / INVENTORY) if inventory else None
        return Sources(recipe, values, found)

    def kept(self) -> dict[str, RawValue]:
        """What `up --set` gave the Emperor that runs now: kept, so that a later `render` or
        `release` does not silently put the site back on deploy.ini's values. Nothing once
        that Emperor has stopped."""
        import json

        from toolkit.emperor import control
        from toolkit.settings import RawValue

        path = self.run_dir / control.KEPT_NAME
        if not path.is_file() or not control.running(self.run_dir):
            return {}
        from toolkit.files import read_regular

        try:
            data = json.loads(read_regular(path, "kept --set values"))
        except (OSError, ValueError, ToolkitError):
            return {}
        source = f"--set given to `toolkit up` ({path})"
        return {str(k): RawValue(str(v), source) for k, v in data.items() if isinstance(v, str)}

    def keep(self, overrides: Mapping[str, RawValue]) -> None:
        """Remember the `--set` values the Emperor is started with (0600, in run/)."""
        import json

        from toolkit.emperor import control

        given = {name: raw.text for name, raw in overrides.items()}
        control.write_run_file(self.run_dir / control.KEPT_NAME, json.dumps(given))

    def live_layer(
        self,
        sources: Sources,
        host: str | None = None,
        overrides: Mapping[str, RawValue] | None = None,
    ) -> Mapping[str, RawValue]:
        """The live release's layer, for a recipe whose app vassal runs releases."""
        if not sources.recipe.variable("release"):
            return {}
        return self.releases.live_layer(sources.variables(host, None, overrides).values)

    def load(
        self,
        overrides: Mapping[str, RawValue] | None = None,
        host: str | None = None,
        live: bool = True,
    ) -> Variables:
        """The variables as they run here: with the live release unless `live` is false."""
        sources = self.sources(inventory=host is not None)
        if live:
            overrides = {**self.kept(), **(overrides or {})}
        release = self.live_layer(sources, host, overrides) if live else {}
        return sources.variables(host, release, overrides)

    def logs_dir(self, variables: Variables) -> Path:
        return self.root / str(variables.values.get("log_dir", "logs"))

    def host_vassals_dir(self, host: str) -> Path:
        """Where `render --all-hosts` puts one host's vassals, to be shipped to that host."""
        return self.root / HOSTS / host / VASSALS

    def vassal_files(self, recipe: Recipe, folder: Path | None = None) -> list[Path]:
        patterns = self.vassal_patterns(recipe) if folder is None else [str(folder / recipe.glob)]
        return sorted(Path(p) for pattern in patterns for p in glob.glob(pattern))


@dataclass(frozen=True)
class NewReport:
    files: list[tuple[Path, str]]
    detected: Detected | None = None


def new(
    root: Path, recipe: Recipe, force: bool, app: Path | None = None, module: str | None = None
) -> NewReport:
    """Scaffold a deployment from a recipe, with a deploy.ini listing every default; with
    `app`, for that existing app (what it is found to be written in), without the example."""
    from toolkit import settings
    from toolkit.detect import detect
    from toolkit.recipes import deploy_ini_text, scaffold

    if app is None:
        text = deploy_ini_text(recipe, settings.defaults(recipe))
        return NewReport(scaffold(recipe, root, text, force))
    detected = detect(app, root, module)
    unknown = [name for name in detected.values if recipe.variable(name) is None]
    if unknown:
        raise ToolkitError(
            f"recipe {recipe.name!r} has no variable for {', '.join(unknown)}",
            hint="use --recipe ground-up or single for an app of your own",
        )
    given = {name: (value, detected.how[name]) for name, value in detected.values.items()}
    text = deploy_ini_text(recipe, settings.defaults(recipe), given)
    files = scaffold(recipe, root, text, force, example=False, extra=detected.files)
    return NewReport(files, detected)


@dataclass(frozen=True)
class CheckTargets:
    """What `toolkit check` reads: (file, section) pairs; `deployment` when a folder with
    deploy.ini was named, whose configs are meant to run on this machine."""

    files: list[tuple[Path, str]]
    deployment: bool
    # Vassals not rendered yet, checked as `render` would write them (path: text).
    unrendered: dict[Path, str] = field(default_factory=dict)


def files_to_check(paths: list[Path]) -> CheckTargets:
    """A deployment's rendered vassals, a folder's *.ini and */uwsgi.ini, the files named,
    or `FILE:section` as uWSGI's `--ini FILE:section` takes it."""
    from toolkit import uwsgi_config, uwsgi_ini

    found: list[tuple[Path, str]] = []
    unrendered: dict[Path, str] = {}
    deployment = False
    for path in paths:
        if path.is_file():
            from toolkit.files import read_regular

            read_regular(path, "config")  # refused here, in one line, if it is too large
            found.append((path, uwsgi_ini.SECTION))
        elif (path / "deploy.ini").is_file():
            deployment = True
            loaded = Deployment(path)
            variables = loaded.load()
            rendered = loaded.vassal_files(variables.recipe)
            if not rendered:
                from toolkit.pipeline import plan

                planned = {c.path: c.new for c in plan(loaded, variables) if c.new is not None}
                unrendered.update(planned)
                rendered = list(planned)
            found += [(p, uwsgi_ini.SECTION) for p in rendered]
        elif path.is_dir():
            files = sorted([*path.glob("*.ini"), *path.glob("*/uwsgi.ini")])
            found += [(p, uwsgi_ini.SECTION) for p in files]
        elif path.exists():
            from toolkit.files import regular_problem

            raise ToolkitError(f"this config {regular_problem(path.stat())}", file=path)
        else:
            name, section = uwsgi_config.split_target(str(path))
            if section is None or not Path(name).is_file():
                raise ToolkitError("no such file or folder", file=path)
            found.append((Path(name), section))
    if not found:
        raise ToolkitError(
            "no uWSGI config to check",
            file=", ".join(map(str, paths)),
            hint="render the deployment first, or name the .ini files",
        )
    return CheckTargets(found, deployment, unrendered)
