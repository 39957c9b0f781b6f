"""The one writer of vassal files. `render`, `up`, `release`, `rollback` and a release's staging
config all go through here: every vassal toolkit writes is rendered, sealed and checked the
same way, and a file edited by hand is kept the same way, before anything is written.

The jobs behind `render` and `up` return what happened; the CLI only prints the report."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit import seal
from toolkit.apply import FileChange, Status, apply, write_atomically
from toolkit.errors import ExitCode, ToolkitError
from toolkit.files import inside
from toolkit.installed import uwsgi_executable

if TYPE_CHECKING:
    from toolkit.check import Context, Problem
    from toolkit.deployment import Deployment
    from toolkit.recipes import Recipe
    from toolkit.settings import RawValue, Variables

EDITED_SUFFIX = ".edited"
# The app vassal a release replaces: it is rendered as uwsgi@ID.ini for release ID.
RELEASE_VASSAL = "uwsgi.ini"
# The first line of every base template: files with it are toolkit's to remove when stale.
RENDERED_MARK = "# Rendered by toolkit"


class CheckFailed(ToolkitError):
    """Nothing is written or started while a config has errors."""

    def __init__(self, problems: list[Problem]) -> None:
        errors = sum(p.severity.value == "error" for p in problems)
        super().__init__(
            f"{errors} error(s) in the rendered configs; nothing was written or started",
            hint="fix deploy.ini or the templates (render --no-check writes anyway)",
            exit_code=ExitCode.PROBLEMS,
        )
        self.details = [str(p) for p in problems]


def _rendered(deployment: Deployment, variables: Variables) -> dict[str, str]:
    """The recipe's vassal files for these variables, by file name, sealed."""
    from toolkit.render import render as render_templates

    templates = render_templates(variables.recipe, variables.values, deployment.templates_dir)
    release = variables.values.get("release")
    if release and RELEASE_VASSAL in templates:
        templates[release_vassal(release)] = templates.pop(RELEASE_VASSAL)
    return {name: seal.seal(text) for name, text in templates.items()}


def release_vassal(release_id: str) -> str:
    """`uwsgi@ID.ini`: the same vassal to users (`uwsgi`), beside the one it replaces."""
    stem, _, suffix = RELEASE_VASSAL.rpartition(".")
    return f"{stem}@{release_id}.{suffix}"


def plan(
    deployment: Deployment, variables: Variables, target: Path | None = None
) -> list[FileChange]:
    """What rendering would write into vassals/ (or `target`), compared with what is there;
    a file toolkit rendered that the variables no longer name is planned for removal."""
    from toolkit.apply import plan as compare
    from toolkit.apply import read as compare_read

    target = target or deployment.vassals_dir
    rendered = _rendered(deployment, variables)
    wanted = {target / name for name in rendered}
    stale = [
        path
        for path in deployment.vassal_files(variables.recipe, target)
        if path not in wanted and RENDERED_MARK in (compare_read(path) or "")
    ]
    return compare(target, rendered, stale)


def check(
    deployment: Deployment,
    recipe: Recipe,
    changes: list[FileChange],
    context: Context,
    target: Path | None = None,
) -> list[Problem]:
    """The vassals as they will be once `changes` are written, checked before writing them,
    with the other vassals already in vassals/. Files rendered for another host are read as
    if in vassals/, where they will run."""
    from toolkit import uwsgi_config
    from toolkit.check import check as check_configs

    target = target or deployment.vassals_dir
    planned = {deployment.vassals_dir / c.path.relative_to(target): c.new for c in changes}
    configs = [
        uwsgi_config.load(path, context.machine, text=text)
        for path, text in planned.items()
        if text is not None
    ]
    if target == deployment.vassals_dir:
        configs += [
            uwsgi_config.load(path, context.machine)
            for path in deployment.vassal_files(recipe)
            if path not in planned
        ]
    return check_configs(configs, context)


def refuse_errors(problems: list[Problem]) -> None:
    if any(p.severity.value == "error" for p in problems):
        raise CheckFailed(problems)


def checking_context(uwsgi: Path) -> Context:
    from toolkit.check import context_for

    return context_for(uwsgi, here=True)


def prepare(
    deployment: Deployment, variables: Variables, uwsgi: Path, building: Path | None = None
) -> list[FileChange]:
    """Plan vassals/ for these variables and check it: the changes, or CheckFailed. With
    `building`, paths a release phase will make in that folder are not missing yet."""
    changes = plan(deployment, variables)
    context = dataclasses.replace(checking_context(uwsgi), building=building)
    refuse_errors(check(deployment, variables.recipe, changes, context))
    return changes


def write(deployment: Deployment, changes: list[FileChange]) -> list[tuple[Path, Path]]:
    """Write the planned changes, keeping any file edited by hand beside it first; returns
    (file, kept copy) for each one kept. Every path stays inside the deployment."""
    for change in changes:
        inside(deployment.root, change.path)
    if any(change.new is not None for change in changes):
        from toolkit.emperor import control

        # Where the vassals' run files go (an app vassal's master FIFO): made with them.
        control.own_run_dir(deployment.run_dir)
    kept = keep_hand_edits(changes)
    apply(changes)
    for change in changes:
        if change.new is None:
            forget_run_files(deployment, change.path.stem)
    return kept


# What a vassal file's templates name after it in run/ (`%n`): its stats server, its FIFO.
RUN_FILE_SUFFIXES = (".stats", ".fifo")


def forget_run_files(deployment: Deployment, stem: str) -> None:
    """Remove what a vassal that is gone (or going: it stops gracefully, its descriptors
    stay open) left in run/, so that old releases do not pile up there."""
    for suffix in RUN_FILE_SUFFIXES:
        (deployment.run_dir / f"{stem}{suffix}").unlink(missing_ok=True)


def keep_hand_edits(changes: list[FileChange]) -> list[tuple[Path, Path]]:
    """A rendered file whose seal no longer matches was edited by hand: before rendering over
    it, keep that copy beside it (NAME.ini.edited, which no vassal glob matches)."""
    kept = []
    for change in changes:
        if change.old is None or change.status is Status.OK:
            continue
        if seal.broken(change.old.encode()):
            copy = change.path.with_name(change.path.name + EDITED_SUFFIX)
            write_atomically(copy, change.old)
            kept.append((change.path, copy))
    return kept


STAGING_PREFIX = "staging-"


def stage(deployment: Deployment, variables: Variables, release_id: str, uwsgi: Path) -> Path:
    """A release's app vassal as a config of its own in run/, for a uwsgi run outside the
    Emperor: rendered, sealed and checked like the vassal it will become."""
    from toolkit import uwsgi_config
    from toolkit.check import check as check_configs

    rendered = _rendered(deployment, variables)
    text = rendered.get(release_vassal(release_id)) or rendered[RELEASE_VASSAL]
    path = inside(deployment.root, deployment.run_dir / f"{STAGING_PREFIX}{release_id}.ini")
    context = checking_context(uwsgi)
    refuse_errors(check_configs([uwsgi_config.load(path, context.machine, text=text)], context))
    write_atomically(path, text, mode=0o600)
    return path


def unstage(deployment: Deployment, release_id: str | None = None) -> None:
    """Remove a release's staging config and its run files, or every one a release killed
    half-way left."""
    for path in deployment.run_dir.glob(f"{STAGING_PREFIX}{release_id or '*'}.ini"):
        path.unlink(missing_ok=True)
        forget_run_files(deployment, path.stem)


def option_changes(old: str, new: str) -> list[str]:
    """What a vassal that runs will do differently, option by option: `key: a -> b` for an
    option set once in both, `+key = v` and `-key = v` for the others."""
    from toolkit import uwsgi_ini

    def options(text: str) -> list[tuple[str, str]]:
        return [(o.key, o.value) for o in uwsgi_ini.parse(text).in_section()]

    before, after = options(old), options(new)
    gone = [item for item in before if item not in after]
    came = [item for item in after if item not in before]
    once = {k for k, _ in gone if [x for x, _ in before].count(k) == 1} & {
        k for k, _ in came if [x for x, _ in after].count(k) == 1
    }
    said = [f"{k}: {dict(gone)[k]} -> {dict(came)[k]}" for k in dict(came) if k in once]
    said += [f"-{k} = {v}" for k, v in gone if k not in once]
    said += [f"+{k} = {v}" for k, v in came if k not in once]
    return said


@dataclass
class RenderReport:
    changes: list[FileChange] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # (vassal file edited by hand, where its edited copy was kept) for each one re-rendered
    kept: list[tuple[Path, Path]] = field(default_factory=list)
    # What `up --set` gave the running Emperor, used again for this render.
    kept_values: dict[str, str] = field(default_factory=dict)
    # An Emperor runs these vassals: what changes is reloaded.
    running: bool = False

    @property
    def changed(self) -> int:
        return sum(c.status is Status.CHANGED for c in self.changes)


def render(
    deployment: Deployment,
    overrides: Mapping[str, RawValue],
    *,
    host: str | None = None,
    all_hosts: bool = False,
    write: bool = True,
    check: bool = True,
    uwsgi: Path | None = None,
) -> RenderReport:
    """`toolkit render`: the deployment (each inventory host with `all_hosts`, into
    hosts/HOST/vassals/), checked, written unless `write` is false or the check finds
    errors. Only files that change are checked: `render` protects what it writes, and
    `toolkit check` re-reads what is there."""
    sources = deployment.sources(inventory=host is not None or all_hosts)
    targets: list[tuple[Path | None, Variables]]
    kept = {} if all_hosts else deployment.kept()
    overrides = {**kept, **overrides}
    if all_hosts:
        assert sources.inventory is not None
        # A release here is this machine's; hosts rendered to be shipped run their own.
        targets = [
            (deployment.host_vassals_dir(name), sources.variables(name, None, overrides))
            for name in sources.inventory.host_names()
        ]
    else:
        live = deployment.live_layer(sources, host, overrides)
        targets = [(None, sources.variables(host, live, overrides))]
    executable = uwsgi_executable(uwsgi) if check else None
    report = _render_targets(deployment, targets, write, executable, check_unchanged=False)
    report.kept_values = {name: raw.text for name, raw in kept.items() if name in overrides}
    report.running = deployment.run_dir.is_dir() and control_running(deployment)
    return report


def control_running(deployment: Deployment) -> bool:
    from toolkit.emperor import control

    return control.running(deployment.run_dir)


def _render_targets(
    deployment: Deployment,
    targets: list[tuple[Path | None, Variables]],
    write_files: bool,
    uwsgi: Path | None,
    check_unchanged: bool,
) -> RenderReport:
    report = RenderReport()
    context = None
    for target, variables in targets:
        planned = plan(deployment, variables, target)
        changing = any(c.status is Status.CHANGED for c in planned)
        if uwsgi is not None and (changing or check_unchanged):
            context = context or checking_context(uwsgi)
            report.problems += check(deployment, variables.recipe, planned, context, target)
        report.changes += planned
    refuse_errors(report.problems)
    if write_files:
        report.kept = write(deployment, report.changes)
    return report


@dataclass
class UpReport:
    """What `up` prepared: the render, the Emperor's command line and what it runs; with
    --detach, the vassals' states once ready."""

    render: RenderReport
    command: list[str]
    patterns: list[str]
    run_dir: Path
    logs_dir: Path
    serving: list[str]
    status_page: str | None = None
    """The status page's address (its metrics at /metrics), when status_port is set."""
    vassals: list[Any] = field(default_factory=list)


def prepare_up(
    deployment: Deployment,
    overrides: Mapping[str, RawValue],
    uwsgi: Path | None,
    quiet: bool,
    timestamps: bool = True,
) -> UpReport:
    """Render and check every vassal (changed or not: `up` runs them all), make the logs and
    run folders, and build the Emperor's command."""
    from toolkit.emperor import control
    from toolkit.emperor.options import EmperorOptions

    sources = deployment.sources()
    control.prepare_run_dir(deployment.run_dir)  # refused here if an Emperor runs already
    variables = sources.variables(None, deployment.live_layer(sources, None, overrides), overrides)
    logs_dir = deployment.logs_dir(variables)
    try:
        logs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ToolkitError(
            f"cannot create the logs folder: {error.strerror}",
            file=logs_dir,
            hint="move what is in the way, or set log_dir in deploy.ini",
        ) from None
    if not os.access(logs_dir, os.W_OK):
        raise ToolkitError(
            "the logs folder is not writable: every vassal's lines would be lost",
            file=logs_dir,
            hint="make it writable for this user, or set log_dir in deploy.ini",
        )
    executable = uwsgi_executable(uwsgi)
    report = _render_targets(deployment, [(None, variables)], True, executable, True)
    deployment.keep(overrides)
    patterns = deployment.vassal_patterns(variables.recipe)
    serving = serving_addresses(variables.values)
    max_bytes, backups = log_rotation(variables.values)
    options = EmperorOptions(
        uwsgi=executable,
        run_dir=deployment.run_dir,
        logs_dir=logs_dir,
        quiet=quiet,
        timestamps=timestamps,
        serving=tuple(serving),
        log_max_bytes=max_bytes,
        log_backups=backups,
    )
    command = options.command(patterns)
    page, host = variables.values.get("status_port"), str(variables.values.get("status_address"))
    status_page = f"http://{url_host(host)}:{page}/" if page else None
    return UpReport(report, command, patterns, deployment.run_dir, logs_dir, serving, status_page)


def log_rotation(values: Mapping[str, Any]) -> tuple[int, int]:
    """(bytes, backups) for the Emperor's logs, from the recipe's `log_max_size` (MB) and
    `log_backups`."""
    return int(values.get("log_max_size", 50)) << 20, int(values.get("log_backups", 10))


def serving_addresses(values: Mapping[str, Any]) -> list[str]:
    """The public HTTP address of a deployment, when its recipe has one."""
    if "http_address" in values and "http_port" in values:
        return [f"http://{url_host(str(values['http_address']))}:{values['http_port']}"]
    return []


def url_host(address: str) -> str:
    """An address as a URL names it: an IPv6 one in brackets."""
    return f"[{address}]" if ":" in address else address


def up_detached(prepared: UpReport) -> UpReport:
    """Start the Emperor in the background and wait until every vassal is ready."""
    from toolkit.emperor.background import start_detached

    prepared.vassals = start_detached(
        prepared.command, prepared.patterns, prepared.run_dir, prepared.logs_dir, prepared.serving
    )
    return prepared


def become_emperor(command: list[str]) -> None:
    """Replace this process by the Emperor's (same pid: signals and Ctrl-C still reach it)."""
    sys.stdout.flush()
    os.execv(command[0], command)
