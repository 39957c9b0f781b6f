"""The command line: each command parses its options, calls one core function, prints, exits.

Modules are imported inside the commands that need them, so `toolkit status` does not pay
for Jinja2 or the checker; every error reaches `main()`, the one place that turns it into a
line on stderr and an exit code (README: "Exit codes")."""

from __future__ import annotations

import functools
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypedDict

import typer

from toolkit import __version__
from toolkit.errors import ExitCode, ToolkitError
from toolkit.output import paint, say, table, warn

if TYPE_CHECKING:
    from toolkit.check import Problem
    from toolkit.deployment import Deployment
    from toolkit.emperor.status import VassalStatus
    from toolkit.pipeline import RenderReport
    from toolkit.release import Outcome

# Each command's one-line summary (in `toolkit -h`) and the examples its help ends with.
ABOUT: dict[str, tuple[str, tuple[str, ...]]] = {
    "new": (
        "Scaffold a deployment.",
        (
            "toolkit new site",
            "toolkit new deploy --app ../mysite",
        ),
    ),
    "recipes": ("List the recipes.", ("toolkit recipes",)),
    "emperor": (
        "Run vassals under toolkit's Emperor.",
        ("toolkit emperor 'vassals/*.ini' --run-dir run --logs-dir logs",),
    ),
    "render": (
        "Render the vassals into vassals/.",
        ("toolkit render site --set http_port=8080 --check --diff",),
    ),
    "up": (
        "Render, check and run the vassals.",
        (
            "toolkit up site",
            "toolkit up site --detach --set http_port=8080",
        ),
    ),
    "status": (
        "Show the vassals; a health check.",
        (
            "toolkit status site",
            "toolkit status site uwsgi --json",
        ),
    ),
    "reload": (
        "Reload a vassal (or all) gracefully.",
        (
            "toolkit reload site uwsgi",
            "toolkit reload site --wait",
        ),
    ),
    "top": (
        "Watch every vassal and its workers live.",
        (
            "toolkit top site",
            "toolkit top site --sort r --filter uwsgi",
            "toolkit top site --json",
        ),
    ),
    "stop": ("Stop one vassal.", ("toolkit stop site uwsgi",)),
    "down": ("Stop every vassal and the Emperor.", ("toolkit down site",)),
    "logs": (
        "Print and follow the vassals' logs.",
        (
            "toolkit logs site -f",
            "toolkit logs site uwsgi -n 100",
        ),
    ),
    "check": (
        "Check uWSGI configs as uWSGI reads them.",
        (
            "toolkit check site",
            "toolkit check uwsgi.ini --here --json",
        ),
    ),
    "release": (
        "Ship new code with no failed request.",
        (
            "toolkit release site --from ../mysite-v2",
            "toolkit release site --git main",
        ),
    ),
    "rollback": (
        "Go back to an earlier release.",
        (
            "toolkit rollback site",
            "toolkit rollback site 20261205T135436009-before",
        ),
    ),
    "releases": ("List the releases.", ("toolkit releases site --json",)),
    "run": (
        "Run a command as the app runs.",
        (
            "toolkit run site -- python manage.py createsuperuser",
            "toolkit run -C site -- python manage.py collectstatic --noinput",
        ),
    ),
    "compress": (
        "Gzip static files for static-gzip-all.",
        (
            "toolkit compress -C site",
            "toolkit compress site/static",
        ),
    ),
    "tutorial list": ("List the chapters.", ("toolkit tutorial list",)),
    "tutorial show": ("Print a chapter.", ("toolkit tutorial show 8",)),
    "tutorial run": (
        "Build and run a chapter's deployment.",
        ("toolkit tutorial run 8 tutorial-site --detach",),
    ),
    "export systemd": (
        "Write a systemd unit.",
        ("toolkit export systemd site -o /etc/systemd/system/site.service",),
    ),
    "export ansible": ("Write an Ansible playbook.", ("toolkit export ansible site -o ansible",)),
}


class About(TypedDict):
    short_help: str
    epilog: str


def about(command: str) -> About:
    """The summary and the examples of a command, for its decorator."""
    summary, examples = ABOUT[command]
    shown = "\n".join(f"  $ {example}" for example in examples)
    return {"short_help": summary, "epilog": f"\b\nExamples:\n{shown}"}


HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    help="Render, check and run uWSGI vassals under a readable Emperor.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=HELP_OPTIONS,
)


def version_callback(value: bool) -> None:
    if value:
        say(f"toolkit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=version_callback, is_eager=True, help="Show it."),
    ] = False,
) -> None:
    """Render, check and run uWSGI vassals under a readable Emperor."""


def fail(error: BaseException) -> NoReturn:
    """The one handler: every failure becomes a line on stderr and an exit code (README:
    "Exit codes"); a check's findings come first. TOOLKIT_DEBUG=1 shows a bug's traceback."""
    if isinstance(error, ToolkitError):
        for line in getattr(error, "details", []):
            warn(line, "red" if " error: " in line else "yellow")
        warn(f"{paint('error:', 'red', sys.stderr)} {error}")
        raise typer.Exit(error.exit_code)
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        warn(f"{paint('error:', 'red', sys.stderr)} {where}{error.strerror or error}")
        raise typer.Exit(ExitCode.USAGE)
    if os.environ.get("TOOLKIT_DEBUG"):
        raise error
    warn(f"internal error (a bug in toolkit, please report it): {type(error).__name__}: {error}")
    raise typer.Exit(ExitCode.INTERNAL)


def handled(function: Callable[..., None]) -> Callable[..., None]:
    """Every command runs through `fail` (typer reads the signature through the wrapper)."""

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            function(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt, BrokenPipeError):
            raise
        except Exception as error:
            fail(error)

    return run


def main() -> None:
    """The console script. Output into a pipe that closed (`toolkit logs | head -1`) ends
    the command quietly, as it ends `cat`."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # Python would complain again while flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(ExitCode.OK)


DeploymentDir = Annotated[
    Path, typer.Argument(help="The deployment folder (holds deploy.ini).", show_default=True)
]
DirOption = Annotated[
    Path | None, typer.Option("--dir", "-C", help="The deployment folder (same as DIR).")
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", help="Override a variable: name=value (repeatable).", metavar="NAME=VALUE"
    ),
]
UwsgiOption = Annotated[
    Path | None,
    typer.Option("--uwsgi", help="The uwsgi executable (default: the one beside toolkit)."),
]
HostOption = Annotated[
    str | None,
    typer.Option(help="Use this inventory host's variables, as `render --host` rendered them."),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Show the Emperor's events only.")]


def _deployment(directory: Path, option: Path | None) -> Deployment:
    """DIR as the argument or as -C DIR; both given must agree."""
    from toolkit.deployment import Deployment

    if option is not None and directory != Path(".") and option != directory:
        raise ToolkitError(
            f"two deployment folders given: {directory} and -C {option}", hint="give one"
        )
    return Deployment(option or directory)


def _overrides(pairs: list[str] | None) -> dict[str, Any]:
    from toolkit.settings import parse_overrides

    return parse_overrides(pairs or [])


@app.command(**about("new"))
@handled
def new(
    directory: Annotated[
        Path | None, typer.Argument(help="Folder to create the deployment in.")
    ] = None,
    dir_option: DirOption = None,
    recipe: Annotated[str | None, typer.Option(help="Recipe to scaffold from.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing deployment.")] = False,
    app_folder: Annotated[
        Path | None,
        typer.Option(
            "--app",
            help="Deploy this existing app (Django or Flask found on their own) instead of "
            "the example app.",
        ),
    ] = None,
    module: Annotated[
        str | None,
        typer.Option(help="The WSGI callable of --app, e.g. package.wsgi:application."),
    ] = None,
) -> None:
    """Scaffold a deployment: deploy.ini with every variable, and an example app, or the
    settings found in your app (--app)."""
    from toolkit.deployment import new as new_deployment
    from toolkit.recipes import DEFAULT_RECIPE, find_recipe

    if module and app_folder is None:
        raise ToolkitError("--module needs --app", hint="toolkit new DIR --app PATH --module M")
    if directory is None and dir_option is None:
        raise ToolkitError("name the folder to create", hint="toolkit new DIR (or -C DIR)")
    directory = _deployment(directory or Path("."), dir_option).root
    report = new_deployment(
        directory, find_recipe(recipe or DEFAULT_RECIPE), force, app_folder, module
    )
    for path, what in report.files:
        say(f"{what:<12}{path}")
    if report.detected is not None:
        kind = report.detected.kind
        say(f"found {'an' if kind[0] in 'aeiou' else 'a'} {kind} app:")
        for name, value in report.detected.values.items():
            shown = value or '""'
            say(f"  {name} = {shown}  ({report.detected.how[name]})")
        for note in report.detected.notes:
            say(f"note: {note}", "yellow")
    say(f"next: toolkit render {directory}  (or toolkit up {directory})")


@app.command(**about("recipes"))
@handled
def recipes() -> None:
    """List the recipes `toolkit new --recipe` can scaffold from."""
    from toolkit.recipes import list_recipes

    for recipe in list_recipes():
        say(f"{recipe.name:<12}{recipe.description}")


def show_render(report: RenderReport, diff: bool) -> None:
    from toolkit.apply import Status
    from toolkit.pipeline import option_changes

    show_problems(report.problems)
    if report.kept_values:
        given = ", ".join(f"{k}={v}" for k, v in report.kept_values.items())
        say(f"keeping what `up --set` gave the running Emperor: {given} (`down` forgets it)")
    for path, copy in report.kept:
        say(
            f"{path} was edited by hand: rendered over it, kept the edited copy as {copy}", "yellow"
        )
    for change in report.changes:
        colour = "yellow" if change.status is Status.CHANGED else "green"
        note = " (created)" if change.created else " (removed)" if change.removed else ""
        say(f"{paint(f'{change.status.value:<8}', colour, sys.stdout)}{change.path}{note}")
        if diff and change.status is Status.CHANGED:
            sys.stdout.write(change.diff())
        if report.running and change.status is Status.CHANGED:
            if change.old is None or change.new is None:
                what = "starts it" if change.old is None else "stops it"
                say(f"  the running Emperor {what}", "yellow")
            else:
                said = option_changes(change.old, change.new) or ["comments only"]
                say(f"  the running Emperor reloads it: {'; '.join(said[:4])}", "yellow")
    say(f"changed={report.changed} ok={len(report.changes) - report.changed}")


@app.command(**about("render"))
@handled
def render(
    directory: DeploymentDir = Path("."),
    dir_option: DirOption = None,
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
    from toolkit import render_cache

    deployment = _deployment(directory, dir_option)
    plain = host is None and not all_hosts and uwsgi is None
    unchanged = render_cache.unchanged(deployment.root, set_ or []) if plain else None
    if unchanged is not None:
        for path in unchanged:
            say(paint("ok      ", "green", sys.stdout) + str(path))
        say(f"changed=0 ok={len(unchanged)}")
        return
    from toolkit import pipeline

    report = pipeline.render(
        deployment,
        _overrides(set_),
        host=host,
        all_hosts=all_hosts,
        write=not check_only,
        check=not no_check,
        uwsgi=uwsgi,
    )
    show_render(report, diff)
    if plain and not check_only:
        render_cache.remember(
            deployment.root, set_ or [], [c.path for c in report.changes if c.new is not None]
        )
    if check_only and report.changed:
        raise typer.Exit(ExitCode.PROBLEMS)


@app.command(
    context_settings={
        "allow_extra_args": True,
        "ignore_unknown_options": True,
        "help_option_names": [],
    },
    add_help_option=False,
    **about("emperor"),
)
@handled
def emperor(ctx: typer.Context) -> None:
    """Run one uwsgi per config the globs match: respawn, reload on change, stop on
    removal (`toolkit emperor --help` lists its options)."""
    from toolkit.pipeline import become_emperor

    become_emperor([sys.executable, "-m", "toolkit.emperor", *ctx.args])


@app.command(**about("up"))
@handled
def up(
    directory: DeploymentDir = Path("."),
    dir_option: DirOption = None,
    set_: SetOption = None,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach", "-d", help="Run in the background; return once every vassal is ready."
        ),
    ] = False,
    uwsgi: UwsgiOption = None,
    quiet: QuietOption = False,
    no_timestamps: Annotated[
        bool, typer.Option("--no-timestamps", help="Print no time before each line.")
    ] = False,
) -> None:
    """Render, check, then run the deployment's vassals under toolkit's Emperor."""
    start_up(
        _deployment(directory, dir_option), set_ or [], detach, uwsgi, quiet, not no_timestamps
    )


def start_up(
    deployment: Deployment,
    set_: list[str],
    detach: bool,
    uwsgi: Path | None,
    quiet: bool,
    timestamps: bool = True,
) -> None:
    """Shared by `up` and `tutorial run`: render, check, write, then run or detach."""
    from toolkit import pipeline

    prepared = pipeline.prepare_up(deployment, _overrides(set_), uwsgi, quiet, timestamps)
    show_render(prepared.render, diff=False)
    if not detach:
        pipeline.become_emperor(prepared.command)
    pipeline.up_detached(prepared)
    for vassal in prepared.vassals:
        say(f"{vassal.name:<12} {vassal.state:<10} pid {vassal.pid}")
    for address in prepared.serving:
        say(f"serving {address}")
    if prepared.status_page:
        say(f"status page: {prepared.status_page} (metrics: {prepared.status_page}metrics)")
    say(f"stop it with: toolkit down {deployment.root}")


def _split(
    arguments: list[str] | None, option: Path | None, names: int | None
) -> tuple[Path, list[str]]:
    """`[DIR] NAME...`: a first argument that is a deployment folder, or a path (`/` in it:
    vassal names have none), is DIR (with at most `names` names, None for any number)."""
    given = list(arguments or [])
    looks_like_dir = bool(given) and (
        (Path(given[0]) / "deploy.ini").is_file() or os.sep in given[0]
    )
    if (names is not None and len(given) > names) or (option is None and looks_like_dir):
        return Path(given[0]), given[1:]
    return Path("."), given


@app.command(**about("status"))
@handled
def status(
    arguments: Annotated[
        list[str] | None,
        typer.Argument(help="[DIR] [NAME...]: the vassals to show (default: every one)."),
    ] = None,
    dir_option: DirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """Show every vassal (or those named): state, pid, restarts, uptime, memory, CPU, last
    exit, config. Exit 0 when all serve, 3 when one does not, 4 when no Emperor runs: a
    health check, as `systemctl status` is."""
    import hashlib
    import json

    from toolkit.emperor import control

    folder, names = _split(arguments, dir_option, None)
    deployment = _deployment(folder, dir_option)
    if not deployment.root.is_dir():
        raise ToolkitError("no such folder", file=deployment.root)
    live = deployment.releases.live() if deployment.deploy_ini.is_file() else None
    try:
        asked: list[str | None] = [*names] if names else [None]
        vassals = [v for name in asked for v in control.status(deployment.run_dir, name=name)]
    except control.NoEmperor as error:
        error.exit_code = ExitCode.NO_EMPEROR
        raise
    except ToolkitError as error:  # the Emperor knows no vassal by that name: not serving
        if error.exit_code == ExitCode.PROBLEMS:
            error.exit_code = ExitCode.NOT_SERVING
        raise
    changed = {}
    for vassal in vassals:
        try:
            on_disk = hashlib.sha256(Path(vassal.config).read_bytes()).hexdigest()
        except OSError:
            on_disk = None
        changed[vassal.config] = on_disk != vassal.digest
    down = [v for v in vassals if not v.answering]
    if as_json:
        entries = [{**v.as_json(), "config_changed": changed[v.config]} for v in vassals]
        sys.stdout.write(json.dumps(entries, indent=2) + "\n")
    else:
        say(status_table(vassals, changed))
        for vassal in vassals:
            if vassal.last_exit and ":" in vassal.last_exit:
                say(f"{vassal.name}: last exit: {vassal.last_exit}")
            if vassal.last_worker_death:
                deaths = f"{vassal.worker_deaths} worker end(s), the last"
                say(f"{vassal.name}: {deaths}: {vassal.last_worker_death}")
            if vassal.health:
                say(f"{vassal.name}: its last health check failed: {vassal.health}", "yellow")
            if vassal.log_problem:
                say(f"{vassal.name}: its log is not written: {vassal.log_problem}", "yellow")
        if live is not None:
            say(f"live release: {live.id} ({live.source})")
    if down:
        raise typer.Exit(ExitCode.NOT_SERVING)


def status_table(vassals: list[VassalStatus], changed: dict[str, bool]) -> str:
    releases = any(v.release for v in vassals)
    rows = [
        [
            v.name,
            *([v.release or "-"] if releases else []),
            v.state,
            str(v.pid or "-"),
            str(v.restarts),
            f"{v.uptime:.0f} s" if v.uptime is not None else "-",
            f"{v.rss / 1e6:.1f} MB" if v.rss is not None else "-",
            f"{v.cpu:.1f} s" if v.cpu is not None else "-",
            (v.last_exit or "-").partition(":")[0],
            v.config + ("  (changed on disk: not what runs)" if changed[v.config] else ""),
        ]
        for v in vassals
    ]
    headers = ["vassal", *(["release"] if releases else []), "state", "pid", "restarts"]
    return table([*headers, "uptime", "memory", "cpu", "last exit", "config"], rows)


@app.command(**about("reload"))
@handled
def reload(
    arguments: Annotated[
        list[str] | None, typer.Argument(help="[DIR] [NAME]: the vassal to reload (default: all).")
    ] = None,
    dir_option: DirOption = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Return once every one reloaded serves again.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds --wait waits before it fails.")
    ] = 60.0,
) -> None:
    """Gracefully reload a vassal (or all); a throttled one is cleared and spawned at once.
    With --wait, return once every one reloaded serves again (systemd's ExecReload)."""
    from toolkit.emperor import control

    folder, names = _split(arguments, dir_option, 1)
    deployment = _deployment(folder, dir_option)
    name = names[0] if names else None
    reloaded = control.reload(deployment.run_dir, name)
    say(f"reloading {', '.join(reloaded) or 'nothing'}")
    if wait:
        control.wait_serving(deployment.run_dir, name, timeout)
        say(f"serving again: {', '.join(reloaded) or 'nothing'}")


@app.command(**about("stop"))
@handled
def stop(
    arguments: Annotated[list[str], typer.Argument(help="[DIR] NAME: the vassal to stop.")],
    dir_option: DirOption = None,
) -> None:
    """Stop one vassal; it stays down until its config changes or `toolkit reload NAME`."""
    from toolkit.emperor import control

    folder, names = _split(arguments, dir_option, 1)
    if len(names) != 1:
        raise ToolkitError("name one vassal to stop", hint="toolkit stop [DIR] NAME")
    control.stop(_deployment(folder, dir_option).run_dir, names[0])
    say(f"stopped {names[0]}")


@app.command(**about("down"))
@handled
def down(
    directory: DeploymentDir = Path("."),
    dir_option: DirOption = None,
    timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds to wait for the Emperor to answer.")
    ] = 30.0,
) -> None:
    """Stop every vassal and the Emperor; return once the Emperor has exited."""
    from toolkit.emperor import control

    control.down(_deployment(directory, dir_option).run_dir, timeout)
    say("down")


@app.command(**about("top"))
@handled
def top(
    directory: Annotated[Path, typer.Argument(help="The deployment folder.")] = Path("."),
    dir_option: DirOption = None,
    sort: Annotated[
        str,
        typer.Option(
            "--sort", help="n: name, r: requests per second, t: requests, m: memory, s: restarts."
        ),
    ] = "n",
    filter_: Annotated[
        str, typer.Option("--filter", help="Only vassals whose name contains this.")
    ] = "",
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, max=3600, help="Seconds between samples.")
    ] = 1.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one sample as JSON and exit.")
    ] = False,
) -> None:
    """Every vassal and its workers, live: state, release, requests and requests per second,
    average response time, memory, the listen queue and its peak, the router's nodes; keys
    n r t m s sort, / filters, q quits. Without a terminal: one frame (two samples
    --interval apart), or --json one sample."""
    import json
    import shutil
    import time

    from toolkit import observe
    from toolkit import top as live

    if sort not in live.SORTS:
        raise ToolkitError(f"no sort key {sort!r}", hint=f"use one of {', '.join(live.SORTS)}")
    deployment = _deployment(directory, dir_option)
    watch = observe.Watch.of_emperor(deployment.run_dir, every=live.SLOWER_EVERY)
    take = watch.take

    view = live.View(sort=sort, filter=filter_)
    title = str(deployment.root)
    if as_json:
        sys.stdout.write(json.dumps(observe.as_json(take()), indent=2) + "\n")
    elif sys.stdout.isatty() and sys.stdin.isatty():
        live.watch(take, view, interval, title)
    else:
        first = take()
        time.sleep(interval)
        second = take()
        view.note(first)
        view.note(second)
        width = shutil.get_terminal_size((120, 40)).columns
        sys.stdout.write("\n".join(live.frame(second, view, width, None, title)) + "\n")


@app.command(**about("logs"))
@handled
def logs(
    arguments: Annotated[
        list[str] | None,
        typer.Argument(help="[DIR] [NAME...]: whose output to show (default: every vassal)."),
    ] = None,
    dir_option: DirOption = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, help="How many last lines (0: none).")
    ] = 50,
) -> None:
    """Print the vassals' output as the Emperor logged it, each line with its time: one
    vassal's, or every vassal's merged in time order, prefixed with its name."""
    from toolkit import logview

    folder, names = _split(arguments, dir_option, None)
    deployment = _deployment(folder, dir_option)
    logs_dir = (
        deployment.logs_dir(deployment.load())
        if deployment.deploy_ini.exists()
        else deployment.root / "logs"
    )
    files = logview.log_files(logs_dir, names)
    width = max(map(len, files)) if len(files) > 1 else 0

    def show(name: str, line: str) -> None:
        sys.stdout.write(f"{name:<{width}} | {line}\n" if width else line + "\n")

    for name, line in logview.merged(files, lines):
        show(name, line)
    sys.stdout.flush()
    if follow:
        for name, line in logview.follow(files):
            show(name, line)
            sys.stdout.flush()


def show_problems(problems: list[Problem]) -> None:
    for problem in problems:
        warn(str(problem), "red" if problem.severity.value == "error" else "yellow")


@app.command(name="check", **about("check"))
@handled
def check_configs(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Deployment folders, .ini files or FILE:section (default: .)."),
    ] = None,
    dir_option: DirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
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
    import json

    from toolkit import uwsgi_config
    from toolkit.check import Severity, check, context_for
    from toolkit.deployment import files_to_check
    from toolkit.installed import uwsgi_executable

    targets = files_to_check([*(paths or []), *([dir_option] if dir_option else [])] or [Path(".")])
    context = context_for(uwsgi_executable(uwsgi), here=here or targets.deployment)
    configs = [
        uwsgi_config.load(path, context.machine, section, text=targets.unrendered.get(path))
        for path, section in targets.files
    ]
    problems = check(configs, context)
    files = [path for path, _ in targets.files]
    errors = sum(p.severity is Severity.ERROR for p in problems)
    warnings = len(problems) - errors
    if as_json:
        report = {
            "files": [str(f) for f in files],
            "errors": errors,
            "warnings": warnings,
            "problems": [p.as_dict() for p in problems],
        }
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        for problem in problems:
            say(str(problem), "red" if problem.severity is Severity.ERROR else "yellow")
        if targets.unrendered:
            say("(not rendered yet: checked what `toolkit render` would write)")
        say(f"{errors} error(s), {warnings} warning(s) in {len(files)} file(s)")
    raise typer.Exit(ExitCode.PROBLEMS if errors else ExitCode.OK)


@app.command(**about("release"))
@handled
def release(
    directory: DeploymentDir = Path("."),
    dir_option: DirOption = None,
    source: Annotated[
        Path | None, typer.Option("--from", help="Release the code in this folder.")
    ] = None,
    git: Annotated[
        str | None, typer.Option("--git", help="Release this commit (branch, tag or hash).")
    ] = None,
    repo: Annotated[
        Path | None,
        typer.Option(help="The git repository for --git (default: the pythonpath folder)."),
    ] = None,
    host: HostOption = None,
    uwsgi: UwsgiOption = None,
    stage_id: Annotated[
        str | None,
        typer.Option(
            "--stage", help="Fleet step: copy, build and health-check as release ID; not live."
        ),
    ] = None,
    once_id: Annotated[
        str | None,
        typer.Option("--once", help="Fleet step: run release ID's release_once_commands here."),
    ] = None,
    switch_id: Annotated[
        str | None,
        typer.Option("--switch", help="Fleet step: make the staged release ID live here."),
    ] = None,
    watch: Annotated[
        float,
        typer.Option(
            min=0, max=86400, help="With --switch: seconds its health is watched after it."
        ),
    ] = 0.0,
    all_hosts: Annotated[
        bool,
        typer.Option(
            "--all-hosts",
            help="Release --git REF on every host of --inventory through Ansible: stage "
            "everywhere, run the once-steps, a canary, then batches; all or nothing.",
        ),
    ] = False,
    inventory: Annotated[
        Path | None,
        typer.Option(help="With --all-hosts: the Ansible inventory (default: DIR/hosts.ini)."),
    ] = None,
    canary_watch: Annotated[
        float, typer.Option(min=0, max=86400, help="With --all-hosts: seconds the canary serves.")
    ] = 10.0,
    batch: Annotated[
        int, typer.Option(min=1, max=10000, help="With --all-hosts: hosts per batch after it.")
    ] = 1,
    max_fail: Annotated[
        int,
        typer.Option(
            min=0, max=100, help="With --all-hosts: per cent of hosts that may fail to switch."
        ),
    ] = 0,
) -> None:
    """Ship new code: copy it to releases/ID/, health-check it on its own, switch the
    router to it, retire the old code gracefully. A failing release never serves. Across
    hosts, --all-hosts runs the fleet steps (--stage, --once, --switch) through Ansible."""
    from toolkit import release as releases

    deployment = _deployment(directory, dir_option)
    root = deployment.root
    steps = [s for s in (stage_id, once_id, switch_id) if s is not None]
    if len(steps) + all_hosts > 1:
        raise ToolkitError("give one of --stage, --once, --switch or --all-hosts")
    if once_id is not None:
        releases.run_once(root, once_id, uwsgi, host, say=say)
        say(f"release {once_id}: its once-steps ran here")
        return
    if switch_id is not None:
        outcome = releases.switch(root, switch_id, watch=watch, uwsgi=uwsgi, host=host, say=say)
        show_outcome(outcome, root)
        return
    if (source is None) == (git is None):
        raise ToolkitError("give one of --from FOLDER or --git REF", hint="toolkit release --help")
    if all_hosts:
        from toolkit import fleet

        if git is None:
            raise ToolkitError("--all-hosts ships a commit: give --git REF")
        plan = fleet.Plan(inventory or root / "hosts.ini", git, repo, canary_watch, batch, max_fail)
        fleet.release(plan, say)
        return
    if stage_id is not None:
        staged = releases.stage(
            root, stage_id, source=source, git=git, repo=repo, uwsgi=uwsgi, host=host, say=say
        )
        say(f"release {staged.id} is staged: healthy, not live")
        return
    outcome = releases.ship(
        root, source=source, git=git, repo=repo, uwsgi=uwsgi, host=host, say=say
    )
    show_outcome(outcome, root)


def show_outcome(outcome: Outcome, root: Path) -> None:
    release = outcome.release
    say(f"release {release.id} ({release.source}) is live", "green")
    took = outcome.serving_after * 1000
    say(f"  healthy; served through the router {took:.0f} ms after its vassal was written")
    if outcome.previous:
        back = f"toolkit rollback {root} {outcome.previous}"
        say(f"  {outcome.previous} retired gracefully (back to it: {back})")
    for pruned in outcome.pruned:
        say(f"  pruned {pruned}")


@app.command(**about("rollback"))
@handled
def rollback(
    arguments: Annotated[
        list[str] | None,
        typer.Argument(help="[DIR] [ID]: the release to make live (default: the one before)."),
    ] = None,
    dir_option: DirOption = None,
    host: HostOption = None,
    uwsgi: UwsgiOption = None,
    all_hosts: Annotated[
        bool,
        typer.Option(
            "--all-hosts",
            help="Every host of --inventory back to release ID through Ansible, one at a "
            "time; none if one host lacks it.",
        ),
    ] = False,
    inventory: Annotated[
        Path | None,
        typer.Option(help="With --all-hosts: the Ansible inventory (default: DIR/hosts.ini)."),
    ] = None,
) -> None:
    """Make the previous (or a named) release live again, checked and switched like a new one."""
    from toolkit import release as releases

    folder, names = _split(arguments, dir_option, 1)
    deployment = _deployment(folder, dir_option)
    if all_hosts:
        from toolkit import fleet

        if not names:
            raise ToolkitError("--all-hosts goes back to one release: name its ID",
                               hint=f"`toolkit releases {deployment.root}` lists them")  # fmt: skip
        fleet.rollback(inventory or deployment.root / "hosts.ini", names[0], say)
        return
    outcome = releases.rollback(deployment.root, names[0] if names else None, uwsgi, host, say=say)
    show_outcome(outcome, deployment.root)


@app.command(name="releases", **about("releases"))
@handled
def list_releases(
    directory: DeploymentDir = Path("."),
    dir_option: DirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for machines.")] = False,
) -> None:
    """List the releases: ID, source, commit, when, and which one is live."""
    import json
    from dataclasses import asdict

    deployment = _deployment(directory, dir_option)
    current = deployment.releases.live()
    live = current.id if current else None
    found = deployment.releases.all()
    if as_json:
        entries = [{**asdict(r), "when": r.when, "live": r.id == live} for r in found]
        sys.stdout.write(json.dumps(entries, indent=2) + "\n")
        return
    rows = [
        [("* " if r.id == live else "  ") + r.id, r.source, r.commit[:12] or "-", r.when]
        for r in found
    ]
    say(table(["  release", "source", "commit", "when"], rows) if rows else "no releases yet")


@app.command(
    name="run",
    **about("run"),
    context_settings={"ignore_unknown_options": True, **HELP_OPTIONS},
)
@handled
def run_command(
    arguments: Annotated[
        list[str], typer.Argument(help="[DIR] [--] COMMAND...: what to run, in the app's folder.")
    ],
    dir_option: DirOption = None,
) -> None:
    """Run a command in the live code's folder (the live release's, else the app's) with the
    environment the app runs with: env, env_file, the deployment's own modules, and its
    virtualenv (else the system's Python) first on PATH. Exits with the command's code."""
    from toolkit import release_phase

    given = list(arguments)
    folder = Path(".")
    if dir_option is None and given and (Path(given[0]) / "deploy.ini").is_file():
        folder = Path(given.pop(0))
    given = given[1:] if given[:1] == ["--"] else given
    if not given:
        raise ToolkitError("name the command to run", hint="toolkit run DIR -- COMMAND...")
    deployment = _deployment(folder, dir_option)
    values = deployment.load().values
    code = release_phase.code_folder(values, deployment.root)
    env = release_phase.environment(values, deployment.root)
    warn(f"toolkit: running in {code}")
    words = release_phase.argv(shlex.join(given))
    sys.stdout.flush()
    try:
        os.chdir(code)
        os.execvpe(words[0], words, env)
    except OSError as error:
        raise ToolkitError(
            f"cannot run {given[0]!r}: {error.strerror}",
            file=code,
            hint="name a program on the app's PATH (its virtualenv's bin first)",
        ) from None


@app.command(name="compress", **about("compress"))
@handled
def compress_static(
    folder: Annotated[
        Path | None, typer.Argument(help="The static folder (default: -C DIR's, or static).")
    ] = None,
    dir_option: DirOption = None,
) -> None:
    """Write a gzip -9 twin beside each static text file, for `static-gzip-all`. With -C
    DIR, the deployment's static_dir."""
    from toolkit.compress import compress

    if folder is None and dir_option is not None:
        deployment = _deployment(Path("."), dir_option)
        static = str(deployment.load().values.get("static_dir") or "static")
        folder = deployment.root / static
    for item in compress(folder or Path("static")):
        if item.written:
            say(f"gzipped  {item.path}.gz  {item.size} -> {item.gzipped} bytes")
        else:
            say(f"skipped  {item.path}  (gzip would not shrink it)")


tutorial_app = typer.Typer(
    help="The tutorial: uWSGI from the ground up, chapter by chapter.",
    rich_markup_mode=None,
    context_settings=HELP_OPTIONS,
)
app.add_typer(tutorial_app, name="tutorial")


@tutorial_app.command(name="list", **about("tutorial list"))
@handled
def tutorial_list() -> None:
    """Every chapter, with what it runs."""
    from toolkit import tutorial

    rows = [
        [
            f"{chapter.number:02d}",
            chapter.title,
            chapter.guide,
            "" if chapter.recipe is None else f"toolkit tutorial run {chapter.number}",
        ]
        for chapter in tutorial.chapters()
    ]
    say(table(["", "chapter", "guide page", "runs"], rows))


@tutorial_app.command(name="show", **about("tutorial show"))
@handled
def tutorial_show(number: Annotated[int, typer.Argument(help="Chapter number.")]) -> None:
    """Read a chapter in the terminal: its Markdown as written, so that no code line is
    wrapped or cut, and a copied line runs."""
    from toolkit import tutorial

    sys.stdout.write(tutorial.chapter(number).text)


@tutorial_app.command(name="run", **about("tutorial run"))
@handled
def tutorial_run(
    number: Annotated[int, typer.Argument(help="Chapter number.")],
    directory: Annotated[Path, typer.Argument(help="Folder to build it in.")] = Path(
        "tutorial-site"
    ),
    dir_option: DirOption = None,
    set_: SetOption = None,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="Run in the background.")] = False,
    uwsgi: UwsgiOption = None,
) -> None:
    """Build the chapter's deployment in DIR and run it, as the chapter says."""
    from toolkit import tutorial

    deployment = tutorial.build(number, dir_option or directory, set_ or [])
    start_up(deployment, [], detach, uwsgi, quiet=False)


export_app = typer.Typer(
    help="Hand a deployment to systemd or Ansible.",
    rich_markup_mode=None,
    context_settings=HELP_OPTIONS,
)
app.add_typer(export_app, name="export")


@export_app.command(name="systemd", **about("export systemd"))
@handled
def export_systemd(
    directory: DeploymentDir = Path("."),
    dir_option: DirOption = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the unit here (default: stdout).")
    ] = None,
    uwsgi: UwsgiOption = None,
) -> None:
    """A systemd unit that runs the deployment's Emperor, stopped with SIGINT."""
    from toolkit.apply import write_atomically
    from toolkit.export import systemd_unit
    from toolkit.installed import uwsgi_executable

    deployment = _deployment(directory, dir_option)
    unit = systemd_unit(deployment, deployment.load(), uwsgi_executable(uwsgi))
    if output is None:
        sys.stdout.write(unit)
        return
    write_atomically(output, unit)
    say(f"wrote {output}")


@export_app.command(name="ansible", **about("export ansible"))
@handled
def export_ansible(
    directory: DeploymentDir = Path("."),
    dir_option: DirOption = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write into.")] = Path(
        "ansible"
    ),
) -> None:
    """A playbook and hosts.ini: each inventory host renders and runs its own vassals."""
    from toolkit.apply import write_atomically
    from toolkit.export import ansible_files
    from toolkit.inventory import FILE_NAME as INVENTORY
    from toolkit.inventory import read_inventory

    deployment = _deployment(directory, dir_option)
    inventory = read_inventory(deployment.root / INVENTORY)
    for name, text in ansible_files(deployment, inventory).items():
        write_atomically(output / name, text)
        say(f"wrote {output / name}")
