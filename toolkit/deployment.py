"""A deployment folder: deploy.ini, its recipe, and where vassals, logs and run files go."""

from __future__ import annotations

import glob
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from toolkit.errors import ToolkitError

if TYPE_CHECKING:
    from toolkit.apply import FileChange
    from toolkit.check import Context, Problem
    from toolkit.detect import Detected
    from toolkit.recipes import Recipe
    from toolkit.settings import RawValue, Variables

VASSALS = "vassals"
HOSTS = "hosts"
RUN = "run"
RELEASES = "releases"
# releases/live names the release that serves; render runs that release's code.
LIVE = "live"
# The app vassal a release replaces: it is rendered as app-ID.ini for release ID.
RELEASE_VASSAL = "uwsgi.ini"
TEMPLATES = "templates"
# The first line of every base template: files with it are toolkit's to remove when stale.
RENDERED_MARK = "# Rendered by toolkit"


@dataclass(frozen=True)
class Deployment:
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

    def vassal_patterns(self, recipe: Recipe) -> list[str]:
        return [str(self.vassals_dir / recipe.glob)]

    def load(
        self,
        overrides: Mapping[str, RawValue] | None = None,
        host: str | None = None,
        live: bool = True,
    ) -> Variables:
        """deploy.ini names its recipe; its values, the host's inventory layers, the live
        release (unless `live` is false) and the overrides are validated against it."""
        return self.load_hosts(overrides, [host], live)[0]

    def load_hosts(
        self, overrides: Mapping[str, RawValue] | None, hosts: list[str | None], live: bool = True
    ) -> list[Variables]:
        """The variables of each host (None: no inventory layer), reading deploy.ini and
        inventory.ini once however many hosts there are."""
        from toolkit import settings
        from toolkit.inventory import FILE_NAME as INVENTORY
        from toolkit.inventory import read_inventory
        from toolkit.recipes import DEFAULT_RECIPE, find_recipe

        if not self.deploy_ini.is_file():
            raise ToolkitError(
                "not a deployment: no deploy.ini",
                file=self.root,
                hint=f"create one with `toolkit new {self.root}`",
            )
        recipe_name, values = settings.read_deploy_ini(self.deploy_ini)
        recipe = find_recipe(recipe_name or DEFAULT_RECIPE)
        inventory = None
        if any(host is not None for host in hosts):
            inventory = read_inventory(self.root / INVENTORY)
        release = self.live_release() if live and recipe.variable("release") else {}
        return [
            settings.resolve(
                recipe,
                values,
                *([] if host is None or inventory is None else inventory.layers(host)),
                release,  # above the host's layers: the live release runs on its own port
                overrides or {},
            )
            for host in hosts
        ]

    def live_release(self) -> dict[str, RawValue]:
        """The live release's code, port and ID, as a layer over deploy.ini."""
        import json

        from toolkit.settings import RawValue

        where = self.root / RELEASES / LIVE
        try:
            release_id = where.read_text().strip()
            if not release_id:
                return {}
            port = json.loads((self.root / RELEASES / f"{release_id}.json").read_text())["port"]
        except (OSError, ValueError, KeyError, TypeError):
            return {}
        source = str(where)
        return {
            "release": RawValue(release_id, source),
            "pythonpath": RawValue(f"{RELEASES}/{release_id}", source),
            "app_port": RawValue(str(port), source),
        }

    def logs_dir(self, variables: Variables) -> Path:
        return self.root / str(variables.values.get("log_dir", "logs"))

    def host_vassals_dir(self, host: str) -> Path:
        """Where `render --all-hosts` puts one host's vassals, to be shipped to that host."""
        return self.root / HOSTS / host / VASSALS

    def plan(self, variables: Variables, target: Path | None = None) -> list[FileChange]:
        """What `render` would write into vassals/ (or `target`), compared with what is there."""
        from toolkit.apply import plan
        from toolkit.render import render
        from toolkit.seal import seal

        target = target or self.vassals_dir
        templates = render(variables.recipe, variables.values, self.root / TEMPLATES)
        release = variables.values.get("release")
        if release and RELEASE_VASSAL in templates:
            templates[f"app-{release}.ini"] = templates.pop(RELEASE_VASSAL)
        rendered = {name: seal(text) for name, text in templates.items()}
        wanted = {target / name for name in rendered}
        stale = [
            path
            for path in self.vassal_files(variables.recipe, target)
            if path not in wanted and RENDERED_MARK in path.read_text(errors="replace")
        ]
        return plan(target, rendered, stale)

    def vassal_files(self, recipe: Recipe, folder: Path | None = None) -> list[Path]:
        patterns = self.vassal_patterns(recipe) if folder is None else [str(folder / recipe.glob)]
        return sorted(Path(p) for pattern in patterns for p in glob.glob(pattern))

    def check(
        self,
        recipe: Recipe,
        changes: list[FileChange],
        context: Context,
        target: Path | None = None,
    ) -> list[Problem]:
        """Check the vassals as they will be once `changes` are written, before writing them.

        Files rendered for another host are read as if in vassals/, where they will run.
        """
        from toolkit import uwsgi_config
        from toolkit.check import check

        target = target or self.vassals_dir
        planned = {self.vassals_dir / c.path.relative_to(target): c.new for c in changes}
        configs = [
            uwsgi_config.load(path, context.machine, text=text)
            for path, text in planned.items()
            if text is not None
        ]
        if target == self.vassals_dir:
            configs += [
                uwsgi_config.load(p, context.machine)
                for p in self.vassal_files(recipe)
                if p not in planned
            ]
        return check(configs, context)


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
    return NewReport(scaffold(recipe, root, text, force, example=False), detected)


@dataclass(frozen=True)
class CheckTargets:
    """What `toolkit check` reads: (file, section) pairs; `deployment` when a folder with
    deploy.ini was named, whose configs are meant to run on this machine."""

    files: list[tuple[Path, str]]
    deployment: bool


def files_to_check(paths: list[Path]) -> CheckTargets:
    """A deployment's rendered vassals, a folder's *.ini and */uwsgi.ini, the files named,
    or `FILE:section` as uWSGI's `--ini FILE:section` takes it."""
    from toolkit import uwsgi_config, uwsgi_ini

    found: list[tuple[Path, str]] = []
    deployment = False
    for path in paths:
        if path.is_file():
            found.append((path, uwsgi_ini.SECTION))
        elif (path / "deploy.ini").is_file():
            deployment = True
            loaded = Deployment(path)
            found += [(p, uwsgi_ini.SECTION) for p in loaded.vassal_files(loaded.load().recipe)]
        elif path.is_dir():
            files = sorted([*path.glob("*.ini"), *path.glob("*/uwsgi.ini")])
            found += [(p, uwsgi_ini.SECTION) for p in files]
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
    return CheckTargets(found, deployment)
