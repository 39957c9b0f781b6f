"""The jobs behind `render` and `up`, one function each, returning what happened: the CLI and
library callers share them, and only print or act on the report."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit import seal
from toolkit.apply import FileChange, Status, apply, write_atomically
from toolkit.emperor import control
from toolkit.errors import ToolkitError
from toolkit.installed import uwsgi_executable

if TYPE_CHECKING:
    from toolkit.check import Problem
    from toolkit.deployment import Deployment
    from toolkit.settings import RawValue

EDITED_SUFFIX = ".edited"


class CheckFailed(ToolkitError):
    """Render and up stop here: nothing is written or started while a config has errors."""

    def __init__(self, problems: list[Problem]) -> None:
        errors = sum(p.severity.value == "error" for p in problems)
        super().__init__(
            f"{errors} error(s) in the rendered configs; nothing was written or started",
            hint="fix deploy.ini or the templates (render --no-check writes anyway)",
            exit_code=1,
        )
        self.details = [str(p) for p in problems]


@dataclass
class RenderReport:
    changes: list[FileChange] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # (vassal file edited by hand, where its edited copy was kept) for each one re-rendered
    kept: list[tuple[Path, Path]] = field(default_factory=list)

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
    check_unchanged: bool = False,
    uwsgi: Path | None = None,
) -> RenderReport:
    """Render the deployment (each inventory host with `all_hosts`), check what would be
    written, and write it unless `write` is false or the check finds errors. Files that
    would not change are checked only with `check_unchanged` (`up`, which runs them):
    `render` protects what it writes, and `toolkit check` re-reads what is there."""
    from toolkit.inventory import FILE_NAME as INVENTORY
    from toolkit.inventory import read_inventory

    report = RenderReport()
    hosts: list[str | None] = [host]
    if all_hosts:
        hosts = list(read_inventory(deployment.root / INVENTORY).host_names())
    executable = uwsgi_executable(uwsgi) if check else None
    context = None
    # A release here is this machine's; hosts rendered to be shipped run their own.
    loaded = deployment.load_hosts(overrides, hosts, live=not all_hosts)
    for name, variables in zip(hosts, loaded, strict=True):
        target = deployment.host_vassals_dir(name) if all_hosts and name else None
        planned = deployment.plan(variables, target)
        changing = any(c.status is Status.CHANGED for c in planned)
        if executable is not None and (changing or check_unchanged):
            if context is None:
                from toolkit.check import context_for

                context = context_for(executable, here=True)
            report.problems += deployment.check(variables.recipe, planned, context, target)
        report.changes += planned
    if any(p.severity.value == "error" for p in report.problems):
        raise CheckFailed(report.problems)
    if write:
        report.kept = keep_hand_edits(report.changes)
        apply(report.changes)
    return report


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


@dataclass
class UpReport:
    """What `up` prepared: the render, the Emperor's command line and what it runs; with
    --detach, the vassals' states once ready."""

    render: RenderReport
    command: list[str]
    patterns: list[str]
    uwsgi: Path
    logs_dir: Path
    serving: list[str]
    vassals: list[dict[str, Any]] = field(default_factory=list)


def prepare_up(
    deployment: Deployment, overrides: Mapping[str, RawValue], uwsgi: Path | None, quiet: bool
) -> UpReport:
    """Render and check, make the logs and run folders, and build the Emperor's command."""
    from toolkit.emperor.main import argv as emperor_argv

    variables = deployment.load(overrides)
    logs_dir = deployment.logs_dir(variables)
    try:
        logs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ToolkitError(
            f"cannot create the logs folder: {error.strerror}",
            file=logs_dir,
            hint="move what is in the way, or set log_dir in deploy.ini",
        ) from None
    executable = uwsgi_executable(uwsgi)
    report = render(deployment, overrides, uwsgi=executable, check_unchanged=True)
    try:
        control.prepare_run_dir(deployment.run_dir)
    except OSError as error:
        raise ToolkitError(
            f"cannot create the run folder: {error.strerror}", file=deployment.run_dir
        ) from None
    patterns = deployment.vassal_patterns(variables.recipe)
    serving = serving_addresses(variables.values)
    command = emperor_argv(
        patterns,
        uwsgi=executable,
        run_dir=deployment.run_dir,
        logs_dir=logs_dir,
        quiet=quiet,
        serving=serving,
    )
    return UpReport(report, command, patterns, executable, logs_dir, serving)


def serving_addresses(values: Mapping[str, Any]) -> list[str]:
    """The public HTTP address of a deployment, when its recipe has one."""
    if "http_address" in values and "http_port" in values:
        return [f"http://{values['http_address']}:{values['http_port']}"]
    return []


def up_detached(deployment: Deployment, prepared: UpReport) -> UpReport:
    """Start the Emperor in the background and wait until every vassal is ready."""
    from toolkit.emperor.background import start_detached

    prepared.vassals = start_detached(
        prepared.patterns, prepared.uwsgi, deployment.run_dir, prepared.logs_dir
    )
    return prepared


def become_emperor(command: list[str]) -> None:
    """Replace this process by the Emperor's (same pid: signals and Ctrl-C still reach it)."""
    sys.stdout.flush()
    os.execv(command[0], command)
