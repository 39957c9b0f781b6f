"""Which uwsgi executable toolkit runs (the one the `uwsgi` package put beside this Python),
and which Python an app without a virtualenv runs on."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from toolkit.errors import ToolkitError


def uwsgi_executable(given: Path | None = None) -> Path:
    """The given path, else uwsgi beside this Python, else the one on PATH; resolved."""
    if given is not None:
        if not given.is_file():
            raise ToolkitError("no such uwsgi executable", file=given)
        return given.resolve()
    beside = Path(sys.executable).parent / "uwsgi"
    found = beside if beside.exists() else on_path("uwsgi")
    if found is None:
        raise ToolkitError(
            "no uwsgi executable found", hint="pip install uwsgi, or pass --uwsgi PATH"
        )
    return Path(found).resolve()


def on_path(name: str) -> str | None:
    """The first executable `name` in PATH, as `shutil.which` finds it: the Emperor looks up
    uwsgi and setpriv this way because importing shutil (with the compression modules it
    brings) costs it 0.6 MB of its resident memory, measured."""
    for folder in os.get_exec_path():
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def system_python() -> str:
    """The Python an app without a virtualenv runs on: the one toolkit's virtualenv was made
    from (uwsgi, installed beside toolkit, embeds it), or "" when toolkit runs on it."""
    return sys.base_prefix if sys.prefix != sys.base_prefix else ""
