"""The release phase: commands from deploy.ini (`release_commands`: migrate, collectstatic,
`toolkit compress`...) run once in a new release's folder, with its virtualenv and its
environment (`env`, and `env_file` read as the app reads it), before its health check.

Each command is split as a shell would split it and run without one: a value is data. Its
output is shown line by line, prefixed, and kept in the release's log; the first command
that fails stops the release, which never serves."""

from __future__ import annotations

import os
import selectors
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from toolkit import env_loader
from toolkit.emperor.child import kill_group
from toolkit.errors import ExitCode, ToolkitError
from toolkit.files import read_regular
from toolkit.installed import system_python

PREFIX = "release | "


def environment(values: Mapping[str, Any], root: Path) -> dict[str, str]:
    """What the app vassal's processes see: this environment without UWSGI_* (uWSGI reads
    those as options), `env`, the env file's lines, the deployment's own modules on
    PYTHONPATH and the virtualenv's (else the system Python's) bin first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UWSGI_")}
    for item in values.get("env") or []:
        name, _, value = item.partition("=")
        env[name] = value
    env_file = str(values.get("env_file") or "")
    if env_file:
        path = root / env_file
        found = env_loader.variables(read_regular(path, "env file"), str(path))
        env.update({os.fsdecode(k): os.fsdecode(v) for k, v in found.items()})
    deployment_python = str(values.get("deployment_python") or "")
    if deployment_python:  # as the vassal's second pythonpath: the deployment's settings
        paths = [str((root / deployment_python).resolve()), env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    virtualenv = str(values.get("virtualenv") or "")
    home = (root / virtualenv).resolve() if virtualenv else None
    if home is not None:
        env["VIRTUAL_ENV"] = str(home)
    else:  # the system's Python, as the vassal has (never toolkit's own virtualenv)
        env.pop("VIRTUAL_ENV", None)
        home = Path(system_python()) if system_python() else None
    if home is not None:
        env["PATH"] = f"{home / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env.pop("PYTHONHOME", None)
    return env


def code_folder(values: Mapping[str, Any], root: Path) -> Path:
    """Where the app's code runs from: its pythonpath (the live release's, once one is)."""
    return Path(os.path.normpath(root / str(values["pythonpath"])))


def argv(command: str) -> list[str]:
    """`toolkit ...` runs this toolkit, wherever it is installed."""
    words = shlex.split(command)
    if words[0] == "toolkit":
        return [sys.executable, "-m", "toolkit", *words[1:]]
    return words


def run(
    commands: list[str],
    folder: Path,
    env: dict[str, str],
    timeout: float,
    log: Path,
    say: Callable[[str], None],
) -> None:
    """Run each command in `folder`; ToolkitError (exit 1) at the first that fails."""
    deadline = time.monotonic() + timeout
    with log.open("ab") as kept:
        for command in commands:
            say(f"{PREFIX}$ {command}")
            kept.write(f"$ {command}\n".encode())
            try:
                process = subprocess.Popen(
                    argv(command),
                    cwd=folder,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as error:
                raise ToolkitError(
                    f"release command `{command}` cannot run: {error.strerror}",
                    hint="name a program on PATH, or the virtualenv's (virtualenv in deploy.ini)",
                    exit_code=ExitCode.PROBLEMS,
                ) from None
            lines, finished = _follow(process, deadline, kept, say)
            if not finished or process.returncode != 0:
                what = (
                    f"failed (exit code {process.returncode})"
                    if finished
                    else f"did not finish within release_timeout ({timeout:g} s)"
                )
                shown = "\n".join(lines[-15:])
                raise ToolkitError(
                    f"release command `{command}` {what}; the live release still serves. "
                    f"Its last lines:\n{shown}",
                    exit_code=ExitCode.PROBLEMS,
                )


def _follow(
    process: subprocess.Popen[bytes], deadline: float, kept: Any, say: Callable[[str], None]
) -> tuple[list[str], bool]:
    """Show and keep the command's lines as they come; kill its group at the deadline.
    Returns its lines and whether it finished on its own."""
    assert process.stdout is not None
    lines: list[str] = []
    pending = b""
    finished = True
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                finished = False
                break
            if not selector.select(min(left, 0.2)):
                # Ended, and quiet: a child it left behind may hold the pipe open.
                if process.poll() is not None:
                    break
                continue
            data = os.read(process.stdout.fileno(), 65536)
            if not data:
                process.wait()
                break
            kept.write(data)
            *complete, pending = (pending + data).split(b"\n")
            for line in complete:
                text = line.decode(errors="replace").rstrip("\r")
                lines.append(text)
                say(PREFIX + text)
    if pending:
        text = pending.decode(errors="replace")
        lines.append(text)
        say(PREFIX + text)
    process.stdout.close()
    kill_group(process.pid, signal.SIGKILL)  # nothing it started outlives it
    return lines, finished
