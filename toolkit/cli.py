"""The command line: each command parses its options, calls one core function, prints, exits."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from toolkit import settings
from toolkit.apply import Status, apply
from toolkit.deployment import Deployment
from toolkit.deployment import new as new_deployment
from toolkit.errors import ToolkitError
from toolkit.recipes import DEFAULT_RECIPE, find_recipe, list_recipes

app = typer.Typer(
    help="Render, check and run uWSGI vassals under a readable Emperor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

DeploymentDir = Annotated[
    Path, typer.Argument(help="The deployment folder (holds deploy.ini).", show_default=True)
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", help="Override a variable: name=value (repeatable).", metavar="NAME=VALUE"
    ),
]


@contextmanager
def reported() -> Iterator[None]:
    """The one place a ToolkitError becomes a single line on stderr and an exit code."""
    try:
        yield
    except ToolkitError as error:
        err.print(f"[red]error:[/red] {error}", markup=True, soft_wrap=True)
        raise typer.Exit(error.exit_code) from None


@app.command()
def new(
    directory: Annotated[Path, typer.Argument(help="Folder to create the deployment in.")],
    recipe: Annotated[str, typer.Option(help="Recipe to scaffold from.")] = DEFAULT_RECIPE,
    force: Annotated[bool, typer.Option(help="Overwrite an existing deployment.")] = False,
) -> None:
    """Scaffold a deployment: deploy.ini with every variable, an example app, static files."""
    with reported():
        report = new_deployment(directory, find_recipe(recipe), force)
    for path, what in report:
        out.print(f"{what:<12}{path}")
    out.print(f"next: toolkit render {directory}  (or toolkit up {directory})")


@app.command()
def recipes() -> None:
    """List the recipes `toolkit new --recipe` can scaffold from."""
    with reported():
        for recipe in list_recipes():
            out.print(f"{recipe.name:<12}{recipe.description}")


@app.command()
def render(
    directory: DeploymentDir = Path("."),
    set_: SetOption = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if anything would change.")
    ] = False,
    diff: Annotated[
        bool, typer.Option("--diff", help="Show a unified diff of each change.")
    ] = False,
) -> None:
    """Render the deployment's templates into vassals/, writing only files that change."""
    deployment = Deployment(directory)
    with reported():
        variables = deployment.load(settings.parse_overrides(set_ or []))
        changes = deployment.plan(variables)
        if not check:
            apply(changes)
            deployment.logs_dir(variables).mkdir(parents=True, exist_ok=True)
    for change in changes:
        status = change.status
        colour = "yellow" if status is Status.CHANGED else "green"
        note = " (created)" if change.created else ""
        out.print(f"[{colour}]{status.value:<8}[/{colour}]{change.path}{note}")
        if diff and status is Status.CHANGED:
            sys.stdout.write(change.diff())
    changed = sum(c.status is Status.CHANGED for c in changes)
    out.print(f"changed={changed} ok={len(changes) - changed}")
    if check and changed:
        raise typer.Exit(1)
