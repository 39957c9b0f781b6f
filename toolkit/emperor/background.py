"""`toolkit up --detach`: start the Emperor in its own session and wait until it serves."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

from toolkit.emperor import control
from toolkit.emperor.machine import SERVING, State
from toolkit.emperor.main import argv
from toolkit.emperor.watcher import scan
from toolkit.errors import ToolkitError

LOG_NAME = "emperor.log"
FAILED = {State.THROTTLED, State.BACKOFF}


def tail(path: Path, count: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-count:])
    except OSError:
        return ""


def start_detached(
    patterns: list[str], uwsgi: Path, run_dir: Path, logs_dir: Path, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """Return every vassal's status once all are ready; on a failing vassal, stop and explain."""
    control.prepare_run_dir(run_dir)
    log = logs_dir / LOG_NAME
    found = scan(patterns)
    expected = len(found.configs) + len(found.waiting)
    with log.open("ab") as stream:
        process = subprocess.Popen(
            argv(patterns, uwsgi=uwsgi, run_dir=run_dir, logs_dir=logs_dir),
            stdin=subprocess.DEVNULL,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ToolkitError(f"the Emperor exited at once:\n{tail(log)}", file=log)
        try:
            vassals = control.request(run_dir, "status")["vassals"]
        except ToolkitError:
            time.sleep(0.02)
            continue
        failed = [v for v in vassals if v["state"] in FAILED]
        if failed:
            control.request(run_dir, "down")
            name = failed[0]["name"]
            raise ToolkitError(
                f"vassal {name} failed ({failed[0]['last_exit']}); its last lines:\n"
                + tail(logs_dir / f"{name}.log"),
                file=failed[0]["config"],
            )
        if len(vassals) >= expected and all(v["state"] in SERVING for v in vassals):
            return list(vassals)
        time.sleep(0.02)
    control.request(run_dir, "down")
    raise ToolkitError(f"vassals not ready within {timeout:g} s", file=log, hint="see the log")
