"""Fleet releases under load: 3 and 5 hosts over real SSH (tests/test_fleet.py's hosts), 50
keep-alive clients through the load balancer. Part of `make bench` (bench.emperor adds the
table); alone: `python -m bench.fleet`."""

from __future__ import annotations

import http.client
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from tests.support import Processes
from tests.test_fleet import Fleet, Load, fleet_of

CLIENTS = 50
SIZES = (3, 5)


def served_everywhere(fleet: Fleet, version: str) -> bool:
    """Every host's router answers with `version` (a probe that fails is a "not yet")."""
    try:
        return all(fleet.version_served(h) == f"<h1>{version}</h1>" for h in fleet.hosts)
    except (OSError, http.client.HTTPException):
        return False


def kinds(failures: list[str]) -> str:
    return ", ".join(f"{count} x {what}" for what, count in Counter(failures).most_common(3))


def timed_release(fleet: Fleet, version: str, *extra: str) -> tuple[int, float, float, list[str]]:
    """Exit code, seconds from the command to every host serving `version` (0 if never),
    seconds to the command's end, the requests that failed meanwhile."""
    fleet.commit(version)
    reached: list[float] = []
    done = threading.Event()
    start = time.monotonic()

    def watch() -> None:
        while not done.is_set():
            if not reached and served_everywhere(fleet, version):
                reached.append(time.monotonic() - start)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    with Load(fleet.balancer, clients=CLIENTS) as load:
        watcher.start()
        result = fleet.toolkit("release", str(fleet.hosts[0].root), "--all-hosts", "--git",
                               fleet.commits[version], *extra)  # fmt: skip
        took = time.monotonic() - start
        done.set()
        watcher.join()
    return result.returncode, reached[0] if reached else 0.0, took, load.failures


def measure() -> list[str]:
    rows = []
    for size in SIZES:
        processes = Processes()
        with tempfile.TemporaryDirectory(prefix="toolkit-bench-fleet-") as work:
            try:
                with fleet_of(Path(work), size, processes) as fleet:
                    code, reach, took, failed = timed_release(fleet, "v2", "--canary-watch", "2")
                    rows.append(
                        f"| {size} hosts: release (canary watched 2 s, then batches of 1) | "
                        f"{'ok' if code == 0 else f'exit {code}'} | {len(failed)} "
                        f"{kinds(failed)} | {reach:.1f} s | {took:.1f} s |"
                    )
                    fleet.set_on(fleet.hosts[1], "env = BREAKS_AFTER=v3:30")
                    code, _, took, failed = timed_release(fleet, "v3", "--canary-watch", "1")
                    back = served_everywhere(fleet, "v2")
                    rows.append(
                        f"| {size} hosts: host2 fails after the canary switched: all back | "
                        f"{'exit ' + str(code)}{', all on v2' if back else ', NOT all back'} | "
                        f"{len(failed)}: {kinds(failed)} (before it was caught) | - | "
                        f"{took:.1f} s |"
                    )
            finally:
                processes.stop_all()
    return rows


def table(rows: list[str]) -> str:
    return (
        f"## Fleet releases over SSH, {CLIENTS} keep-alive clients through the load balancer\n\n"
        "| case | outcome | failed requests | command to every host on the new code "
        "| command to its end |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


if __name__ == "__main__":
    print(table(measure()))
    sys.exit(0)
