"""Rules on a config's shape: a [uwsgi] section, an intact seal, no merge markers, includes that
exist and do not loop, logic blocks not nested (core/ini.c, core/config.c)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from toolkit.check.model import Context, Finding
from toolkit.errors import did_you_mean
from toolkit.uwsgi_config import (
    INCLUDE_LOOP,
    MERGE_MARKER,
    MISSING_INCLUDE,
    NESTED_LOGIC,
    NO_SECTION,
    Config,
)


def _issues(config: Config, kind: str) -> Iterator[tuple[Path, int, str]]:
    for issue in config.issues:
        if issue.kind == kind:
            yield issue.file, issue.line, issue.detail


def no_section(config: Config, context: Context) -> Iterator[Finding]:
    """uwsgi_ini_config() only warns and goes on with no options at all."""
    top = config.top
    if config.section in top.sections:
        return
    near = did_you_mean(config.section, [s.strip() for s in top.sections], "")
    hint = (
        f"uWSGI compares section names exactly: write [{config.section}]"
        if near
        else f"uWSGI reads only [{config.section}]; add the section header"
    )
    yield Finding(top.path, 1, f"no [{config.section}] section", hint)


def broken_seal(config: Config, context: Context) -> Iterator[Finding]:
    if config.top.broken_seal:
        yield Finding(
            config.top.path,
            1,
            f"{config.top.broken_seal} (cut short, or edited after rendering): "
            "the Emperor won't run it",
            "render it again, or delete line 1 to run it as it is",
        )


def merge_markers(config: Config, context: Context) -> Iterator[Finding]:
    for file, line, _ in _issues(config, MERGE_MARKER):
        yield Finding(
            file,
            line,
            "git merge conflict marker: uWSGI reads it as an option",
            "resolve the conflict and delete the <<<<<<< / ======= / >>>>>>> lines",
        )


def missing_include(config: Config, context: Context) -> Iterator[Finding]:
    for file, line, reason in _issues(config, MISSING_INCLUDE):
        yield Finding(
            file,
            line,
            f"included file cannot be read ({reason}): uWSGI exits",
            "fix the path (relative paths start from uWSGI's working folder; %d is this "
            "file's folder)",
        )


def include_loop(config: Config, context: Context) -> Iterator[Finding]:
    for file, line, chain in _issues(config, INCLUDE_LOOP):
        yield Finding(
            file,
            line,
            f"include loop ({chain}): uWSGI 2.0 recurses until it crashes",
            "include each file once; move shared options to a third file",
        )


def nested_logic(config: Config, context: Context) -> Iterator[Finding]:
    for file, line, key in _issues(config, NESTED_LOGIC):
        yield Finding(
            file,
            line,
            f"{key} inside another if/for block: uWSGI exits "
            "('recursive logic in options is not supported')",
            "close the outer block with endif/endfor first",
        )


def included_section_missing(config: Config, context: Context) -> Iterator[Finding]:
    for file, line, section in _issues(config, NO_SECTION):
        if file != config.top.path or line != 1:
            yield Finding(
                file,
                line,
                f"the included file has no [{section}] section: uWSGI reads nothing from it",
                "name a section the file has (FILE:section)",
            )
