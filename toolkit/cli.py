"""The command line: each command parses its options, calls one core function, prints, exits."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text

from toolkit import settings, tutorial, uwsgi_config
from toolkit.apply import Status, apply, write_atomically
from toolkit.check import Problem, Severity, check, context_for
from toolkit.compress import compress
from toolkit.deployment import Deployment, files_to_check
from toolkit.deployment import new as new_deployment
from toolkit.emperor import control
from toolkit.emperor.background import start_detached
from toolkit.emperor.main import argv as emperor_argv
from toolkit.emperor.throttle import Throttle
from toolkit.emperor.vassal import HEARTBEAT_TOLERANCE
from toolkit.errors import ToolkitError
from toolkit.export import ansible_files, systemd_unit
from toolkit.installed import uwsgi_executable
from toolkit.inventory import FILE_NAME as INVENTORY
from toolkit.inventory import read_inventory
from toolkit.recipes import DEFAULT_RECIPE, find_recipe, list_recipes

app = typer.Typer(
    help="Render, check and run uWSGI vassals under a readable Emperor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False, soft_wrap=True, markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

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
        err.print(Text.assemble(("error:", "red"), f" {error}"))
        raise typer.Exit(error.exit_code) from None


UwsgiOption = Annotated[
    Path | None,
    typer.Option("--uwsgi", help="The uwsgi executable (default: the one beside toolkit)."),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Show the Emperor's events only.")]
RunDirOption = Annotated[Path, typer.Option(help="Folder for the control socket and pid file.")]


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
    check_only: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if anything would change.")
    ] = False,
    diff: Annotated[
        bool, typer.Option("--diff", help="Show a unified diff of each change.")
    ] = False,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Write even if `toolkit check` finds errors.")
    ] = False,
    host: Annotated[
        str | None, typer.Option(help="Layer this host's groups and variables from inventory.ini.")
    ] = None,
    all_hosts: Annotated[
        bool, typer.Option("--all-hosts", help="Render every inventory host into hosts/HOST/.")
    ] = False,
    uwsgi: UwsgiOption = None,
) -> None:
    """Render the deployment's templates into vassals/, writing only files that change."""
    deployment = Deployment(directory)
    overrides = settings.parse_overrides(set_ or [])
    changes = []
    with reported():
        hosts: list[str | None] = [host]
        if all_hosts:
            hosts = list(read_inventory(deployment.root / INVENTORY).host_names())
        executable = None if no_check else uwsgi_executable(uwsgi)
        for name in hosts:
            variables = deployment.load(overrides, name)
            target = deployment.host_vassals_dir(name) if all_hosts and name else None
            planned = deployment.plan(variables, target)
            if executable is not None:
                refuse_on_errors(deployment.check(variables.recipe, planned, executable, target))
            changes += planned
        if not check_only:
            apply(changes)
    for change in changes:
        status = change.status
        colour = "yellow" if status is Status.CHANGED else "green"
        note = " (created)" if change.created else " (removed)" if change.removed else ""
        out.print(Text.assemble((f"{status.value:<8}", colour), f"{change.path}{note}"))
        if diff and status is Status.CHANGED:
            sys.stdout.write(change.diff())
    changed = sum(c.status is Status.CHANGED for c in changes)
    out.print(f"changed={changed} ok={len(changes) - changed}")
    if check_only and changed:
        raise typer.Exit(1)


def exec_emperor(patterns: list[str], run_dir: Path, logs_dir: Path, **settings: Any) -> None:
    """Become the Emperor's own lean process (same pid, so signals and Ctrl-C still reach it)."""
    command = emperor_argv(patterns, run_dir=run_dir, logs_dir=logs_dir, **settings)
    sys.stdout.flush()
    os.execv(command[0], command)


@app.command()
def emperor(
    patterns: Annotated[
        list[str], typer.Argument(help="Globs of vassal configs, e.g. 'vassals/*.ini'.")
    ],
    uwsgi: UwsgiOption = None,
    run_dir: RunDirOption = Path("run"),
    logs_dir: Annotated[Path, typer.Option(help="Folder for one log file per vassal.")] = Path(
        "logs"
    ),
    quiet: QuietOption = False,
    max_spawns: Annotated[
        int, typer.Option(min=1, help="Spawns within --window after which a vassal is throttled.")
    ] = 5,
    window: Annotated[float, typer.Option(min=0.1, help="Seconds over which exits count.")] = 30.0,
    backoff: Annotated[
        float, typer.Option(min=0.0, help="First respawn delay after repeated exits (doubles).")
    ] = 0.25,
    trust_any_config: Annotated[
        bool,
        typer.Option(help="Also run configs that are world-writable or owned by another user."),
    ] = False,
    heartbeat_tolerance: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="Seconds of silence after which a vassal that sends heartbeats (its "
            "`heartbeat` option) is killed and respawned.",
        ),
    ] = HEARTBEAT_TOLERANCE,
) -> None:
    """Run one uwsgi per config the globs match: respawn, reload on change, stop on removal."""
    with reported():
        limits = Throttle(max_spawns, window, backoff)
        control.prepare_run_dir(run_dir)
        exec_emperor(
            patterns,
            run_dir,
            logs_dir,
            uwsgi=uwsgi_executable(uwsgi),
            quiet=quiet,
            throttle=limits,
            trust_any_config=trust_any_config,
            heartbeat_tolerance=heartbeat_tolerance,
        )


@app.command()
def up(
    directory: DeploymentDir = Path("."),
    set_: SetOption = None,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach", "-d", help="Run in the background; return once every vassal is ready."
        ),
    ] = False,
    uwsgi: UwsgiOption = None,
    quiet: QuietOption = False,
) -> None:
    """Render, check, then run the deployment's vassals under toolkit's Emperor."""
    start_up(Deployment(directory), set_ or [], detach, uwsgi, quiet)


def start_up(
    deployment: Deployment, set_: list[str], detach: bool, uwsgi: Path | None, quiet: bool
) -> None:
    """Shared by `up` and `tutorial run`: render, check, write, then run or detach."""
    with reported():
        variables = deployment.load(settings.parse_overrides(set_))
        changes = deployment.plan(variables)
        logs_dir = deployment.logs_dir(variables)
        logs_dir.mkdir(parents=True, exist_ok=True)
        executable = uwsgi_executable(uwsgi)
        refuse_on_errors(deployment.check(variables.recipe, changes, executable))
        apply(changes)
        control.prepare_run_dir(deployment.run_dir)
        patterns = deployment.vassal_patterns(variables.recipe)
        if not detach:
            exec_emperor(patterns, deployment.run_dir, logs_dir, uwsgi=executable, quiet=quiet)
        ready = start_detached(patterns, executable, deployment.run_dir, logs_dir)
    for vassal in ready:
        out.print(f"{vassal['name']:<12} {vassal['state']:<10} pid {vassal['pid']}")


DirOption = Annotated[Path, typer.Option("--dir", "-C", help="The deployment folder.")]


def _ask(directory: Path, command: str, **fields: Any) -> dict[str, Any]:
    answer: dict[str, Any] = control.request(Deployment(directory).run_dir, command, **fields)
    return answer


@app.command()
def status(
    directory: DirOption = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Show every vassal: state, pid, restarts, uptime, last exit, config."""
    with reported():
        answer = _ask(directory, "status")
    if as_json:
        sys.stdout.write(json.dumps(answer["vassals"], indent=2) + "\n")
        return
    table = Table("vassal", "state", "pid", "restarts", "uptime", "last exit", "config", box=None)
    for v in answer["vassals"]:
        uptime = f"{v['uptime']:.0f} s" if v["uptime"] is not None else "-"
        table.add_row(
            v["name"],
            v["state"],
            str(v["pid"] or "-"),
            str(v["restarts"]),
            uptime,
            v["last_exit"] or "-",
            v["config"],
        )
    out.print(table)


@app.command()
def reload(
    name: Annotated[str | None, typer.Argument(help="Vassal to reload (default: all).")] = None,
    directory: DirOption = Path("."),
) -> None:
    """Gracefully reload a vassal (or all); a throttled one is cleared and spawned at once."""
    with reported():
        answer = _ask(directory, "reload", name=name)
    out.print(f"reloading {', '.join(answer['reloaded']) or 'nothing'}")


@app.command()
def stop(
    name: Annotated[str, typer.Argument(help="Vassal to stop.")],
    directory: DirOption = Path("."),
) -> None:
    """Stop one vassal; it stays down until its config changes or `toolkit reload NAME`."""
    with reported():
        _ask(directory, "stop", name=name)
    out.print(f"stopped {name}")


@app.command()
def down(directory: DirOption = Path(".")) -> None:
    """Stop every vassal and the Emperor."""
    run_dir = Deployment(directory).run_dir
    with reported():
        control.request(run_dir, "down")
        pid_file = run_dir / control.PID_NAME
        while control.socket_path(run_dir).exists() or pid_file.exists():
            time.sleep(0.05)
    out.print("down")


@app.command()
def logs(
    name: Annotated[str, typer.Argument(help="Vassal whose output to show.")],
    directory: DirOption = Path("."),
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many last lines.")] = 50,
) -> None:
    """Print a vassal's output, as the Emperor logged it."""
    deployment = Deployment(directory)
    with reported():
        logs_dir = (
            deployment.logs_dir(deployment.load())
            if deployment.deploy_ini.exists()
            else directory / "logs"
        )
        path = logs_dir / f"{name}.log"
        if not path.exists():
            raise ToolkitError(
                f"no log for vassal {name!r}", file=path, hint="see `toolkit status`"
            )
    with path.open(errors="replace") as stream:
        for line in stream.readlines()[-lines:]:
            sys.stdout.write(line)
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            while follow:
                line = stream.readline()
                if line:
                    sys.stdout.write(line)
                    sys.stdout.flush()
                else:
                    time.sleep(0.1)


def show_problems(problems: list[Problem]) -> None:
    for problem in problems:
        colour = "red" if problem.severity is Severity.ERROR else "yellow"
        err.print(Text(str(problem), style=colour))


def refuse_on_errors(problems: list[Problem]) -> None:
    """render and up stop here: nothing is written or started while a config has errors."""
    show_problems(problems)
    errors = sum(p.severity is Severity.ERROR for p in problems)
    if errors:
        raise ToolkitError(
            f"{errors} error(s) in the rendered configs; nothing was written or started",
            hint="fix deploy.ini or the templates (render --no-check writes anyway)",
            exit_code=1,
        )


@app.command(name="check")
def check_configs(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Deployment folders, .ini files or FILE:section (default: .)."),
    ] = None,
    output: Annotated[str, typer.Option("--format", help="text or json.")] = "text",
    here: Annotated[
        bool,
        typer.Option(
            "--here",
            help="The files run on this machine: a missing path, module, plugin or backend "
            "is an error, not a warning (always so for a deployment folder).",
        ),
    ] = False,
    uwsgi: UwsgiOption = None,
) -> None:
    """Read configs as uWSGI reads them: unknown options, misread values, bad routes,
    includes, clashes between vassals and missing paths."""
    with reported():
        targets = files_to_check(paths or [Path(".")])
        context = context_for(uwsgi_executable(uwsgi), here=here or targets.deployment)
        configs = [
            uwsgi_config.load(path, context.machine, section) for path, section in targets.files
        ]
        problems = check(configs, context)
        files = [path for path, _ in targets.files]
    errors = sum(p.severity is Severity.ERROR for p in problems)
    warnings = len(problems) - errors
    if output == "json":
        report = {
            "files": [str(f) for f in files],
            "errors": errors,
            "warnings": warnings,
            "problems": [p.as_dict() for p in problems],
        }
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        for problem in problems:
            colour = "red" if problem.severity is Severity.ERROR else "yellow"
            out.print(Text(str(problem), style=colour))
        out.print(f"{errors} error(s), {warnings} warning(s) in {len(files)} file(s)")
    raise typer.Exit(1 if errors else 0)


@app.command(name="compress")
def compress_static(
    folder: Annotated[Path, typer.Argument(help="The static folder.")] = Path("static"),
) -> None:
    """Write a gzip -9 twin beside each static text file, for `static-gzip-all`."""
    with reported():
        report = compress(folder)
    for item in report:
        if item.written:
            out.print(f"gzipped  {item.path}.gz  {item.size} -> {item.gzipped} bytes")
        else:
            out.print(f"skipped  {item.path}  (gzip would not shrink it)")


tutorial_app = typer.Typer(help="The tutorial: uWSGI from the ground up, chapter by chapter.")
app.add_typer(tutorial_app, name="tutorial")


@tutorial_app.command(name="list")
def tutorial_list() -> None:
    """Every chapter, with what it runs."""
    with reported():
        for chapter in tutorial.chapters():
            runs = "" if chapter.recipe is None else f"  (toolkit tutorial run {chapter.number})"
            out.print(f"{chapter.number:02d}  {chapter.title}{runs}")


@tutorial_app.command(name="show")
def tutorial_show(number: Annotated[int, typer.Argument(help="Chapter number.")]) -> None:
    """Read a chapter in the terminal."""
    with reported():
        text = tutorial.chapter(number).text
    out.print(Markdown(text), soft_wrap=False)


@tutorial_app.command(name="run")
def tutorial_run(
    number: Annotated[int, typer.Argument(help="Chapter number.")],
    directory: Annotated[Path, typer.Argument(help="Folder to build it in.")] = Path(
        "tutorial-site"
    ),
    set_: SetOption = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background.")] = False,
    uwsgi: UwsgiOption = None,
) -> None:
    """Build the chapter's deployment in DIR and run it, as the chapter says."""
    with reported():
        deployment = tutorial.build(number, directory, set_ or [])
    start_up(deployment, [], detach, uwsgi, quiet=False)


export_app = typer.Typer(help="Hand a deployment to systemd or Ansible.")
app.add_typer(export_app, name="export")


@export_app.command(name="systemd")
def export_systemd(
    directory: DeploymentDir = Path("."),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the unit here (default: stdout).")
    ] = None,
    uwsgi: UwsgiOption = None,
) -> None:
    """A systemd unit that runs the deployment's Emperor, stopped with SIGINT."""
    deployment = Deployment(directory)
    with reported():
        unit = systemd_unit(deployment, deployment.load(), uwsgi_executable(uwsgi))
        if output is not None:
            write_atomically(output, unit)
    if output is None:
        sys.stdout.write(unit)
    else:
        out.print(f"wrote {output}")


@export_app.command(name="ansible")
def export_ansible(
    directory: DeploymentDir = Path("."),
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write into.")] = Path(
        "ansible"
    ),
) -> None:
    """A playbook and hosts.ini: each inventory host renders and runs its own vassals."""
    deployment = Deployment(directory)
    with reported():
        inventory = read_inventory(deployment.root / INVENTORY)
        for name, text in ansible_files(deployment, inventory).items():
            write_atomically(output / name, text)
            out.print(f"wrote {output / name}")
