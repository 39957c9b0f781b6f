"""`toolkit check`: a table of rules, each one function that finds one kind of problem in
uWSGI configs read as uWSGI reads them (toolkit.uwsgi_config). Rules never raise.

Severity: an error is something uWSGI refuses, or does other than the file says, on any
machine; a warning works but deserves a look. A machine-dependent finding (a path, module,
plugin or backend that may exist where the file runs) is an error for a deployment or with
`--here`, a warning for loose files."""

from __future__ import annotations

import os
from pathlib import Path

from toolkit.catalog import load_catalog
from toolkit.check.model import Context, Finding, Problem, Rule, Severity, Weight
from toolkit.check.rules import RULES
from toolkit.uwsgi_config import Config, LocalMachine
from toolkit.uwsgi_options import option_table

__all__ = [
    "RULES",
    "Context",
    "Finding",
    "Problem",
    "Rule",
    "Severity",
    "Weight",
    "check",
    "context_for",
]


def context_for(uwsgi: Path, here: bool, cwd: Path | None = None) -> Context:
    """What the rules need to know of this uWSGI build and this machine."""
    catalog = load_catalog(uwsgi)
    machine = LocalMachine(
        cwd or Path.cwd(), dict(os.environ), catalog.plugins, os.path.realpath(uwsgi)
    )
    return Context(catalog, option_table(), machine, here)


def check(configs: list[Config], context: Context) -> list[Problem]:
    """Every problem in every config, then between configs, in file and line order."""
    problems: list[Problem] = []
    for rule in RULES:
        findings: list[Finding] = []
        if rule.one is not None:
            for config in configs:
                findings += rule.one(config, context)
        if rule.many is not None:
            findings += rule.many(configs, context)
        severity = rule.severity(context)
        problems += [
            Problem(str(f.file), f.line, rule.id, severity, f.message, f.hint) for f in findings
        ]
    unique = {(p.file, p.line, p.rule, p.message): p for p in problems}
    return sorted(unique.values(), key=lambda p: (p.file, p.line, p.rule))
