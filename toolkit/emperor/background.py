"""`toolkit up --detach`: start the Emperor in its own session and wait until it serves."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from toolkit.emperor import control
from toolkit.emperor.status import VassalStatus
from toolkit.emperor.watcher import scan
from toolkit.errors import ToolkitError

OUTPUT_NAME = "emperor.out"
READY_TIMEOUT = 30.0


def tail(path: Path, count: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-count:])
    except OSError:
        return ""


def start_detached(
    command: list[str],
    patterns: list[str],
    run_dir: Path,
    logs_dir: Path,
    serving: list[str],
    timeout: float = READY_TIMEOUT,
) -> list[VassalStatus]:
    """Every vassal's status once all serve and the Emperor has announced the site (every
    address in `serving`, which `command` passes it, answered); on a failing vassal, stop and
    explain."""
    # Its events and every vassal's lines go to logs/*.log on their own; what it prints
    # besides (an error before it could start) goes here.
    log = logs_dir / OUTPUT_NAME
    found = scan(patterns)
    expected = len(found.configs) + len(found.waiting)
    with log.open("ab") as stream:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stream,
            start_new_session=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
    deadline = time.monotonic() + timeout
    vassals: list[VassalStatus] = []
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ToolkitError(f"the Emperor exited at once:\n{tail(log)}", file=log)
        try:
            vassals, announced = control.overview(
                run_dir, timeout=max(0.1, deadline - time.monotonic()), usage=False
            )
        except ToolkitError:
            time.sleep(0.02)
            continue
        failed = [v for v in vassals if v.failed]
        if failed:
            control.down(run_dir)
            raise ToolkitError(
                f"vassal {failed[0].name} failed ({failed[0].last_exit}); its last lines:\n"
                + tail(logs_dir / f"{failed[0].name}.log"),
                file=failed[0].config,
            )
        if len(vassals) >= expected and all(v.serving for v in vassals) and announced:
            return vassals
        time.sleep(0.02)
    control.down(run_dir)
    waiting = [f"{v.name} ({v.state.value})" for v in vassals if not v.serving]
    if not waiting and serving:
        waiting = [f"an answer at {url}" for url in serving]
    raise ToolkitError(
        f"{expected} vassal(s) not all serving within {timeout:g} s"
        + (f": still waiting for {', '.join(waiting)}" if waiting else ""),
        file=log,
        hint="see the log",
    )
