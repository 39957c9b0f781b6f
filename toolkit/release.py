"""Releases: new code in releases/ID/, proved healthy before it takes traffic, switched in
through the HTTP router's subscription server, the old one retired gracefully.

The switch, and why it loses no request: the router sends each request to the app vassals
that announced the key `toolkit` to its subscription server (`subscribe-to`). A release is
first run on its own, beside the live one, by this process (a staging uwsgi that dies with
it) and asked for the health-check path straight on its uwsgi socket; only if it answers
is its vassal file written. The Emperor starts it, it announces itself, and the router
spreads requests over old and new; once the new code has answered through the router, the
old vassal is withdrawn from the router (an unsubscribe packet), then stopped gracefully:
requests it holds finish, new ones already go to the new vassal.

What counts as live is `releases/live` (an ID); render reads it, so `toolkit up` and
`toolkit render` keep running the live release."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from toolkit import uwsgi_packet
from toolkit.apply import Status, apply, write_atomically
from toolkit.deployment import LIVE, RELEASES, Deployment
from toolkit.emperor import control
from toolkit.emperor.child import die_with, kill_group
from toolkit.emperor.machine import describe_exit
from toolkit.errors import ToolkitError
from toolkit.installed import uwsgi_executable

KEY = "toolkit"
HEADER = "x-toolkit-release"
EXIT_REFUSED = 1
COPY_IGNORE = shutil.ignore_patterns(
    ".git", "__pycache__", "*.pyc", ".venv", "venv", "node_modules"
)


@dataclass
class Release:
    id: str
    source: str
    commit: str
    created: float
    port: int

    @property
    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.created))


@dataclass
class Outcome:
    """What a release or rollback did, with figures for the report."""

    release: Release
    previous: str | None
    serving_after: float
    pruned: list[str]


def folder(deployment: Deployment) -> Path:
    return deployment.root / RELEASES


def live_id(deployment: Deployment) -> str | None:
    try:
        text = (folder(deployment) / LIVE).read_text().strip()
    except OSError:
        return None
    return text or None


def read_release(deployment: Deployment, release_id: str) -> Release:
    path = folder(deployment) / f"{release_id}.json"
    try:
        return Release(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as error:
        raise ToolkitError(
            f"no release {release_id!r}", file=path, hint="`toolkit releases DIR` lists them"
        ) from error


def releases(deployment: Deployment) -> list[Release]:
    """Every recorded release, oldest first."""
    found = []
    for path in folder(deployment).glob("*.json"):
        with contextlib.suppress(ToolkitError):
            found.append(read_release(deployment, path.stem))
    return sorted(found, key=lambda release: (release.created, release.id))


@contextlib.contextmanager
def locked(deployment: Deployment) -> Iterator[None]:
    """One release at a time per deployment."""
    deployment.run_dir.mkdir(parents=True, exist_ok=True)
    path = deployment.run_dir / "release.lock"
    with path.open("a+") as stream:
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            stream.seek(0)
            raise ToolkitError(
                f"another release is under way (pid {stream.read().strip() or '?'})",
                file=path,
                hint="wait for it to finish",
                exit_code=EXIT_REFUSED,
            ) from None
        stream.truncate(0)
        stream.write(f"{os.getpid()}\n")
        stream.flush()
        yield


def _settings(deployment: Deployment, host: str | None) -> dict[str, Any]:
    values = dict(deployment.load(host=host).values)
    if not values.get("subscription_port"):
        raise ToolkitError(
            "releases need the router's subscription server",
            file=deployment.deploy_ini,
            hint=f"set subscription_port (e.g. 8002) in deploy.ini, then `toolkit up "
            f"{deployment.root}` once",
        )
    control.request(deployment.run_dir, "status")  # refuses when no Emperor runs
    return values


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _copy(source: Path | None, git: str | None, repo: Path, target: Path) -> tuple[str, str]:
    """Put the code in `target`; return (where it came from, its commit or "")."""
    if git is not None:
        try:
            commit = subprocess.run(
                ["git", "-C", str(repo), "rev-parse", "--verify", f"{git}^{{commit}}"],
                capture_output=True, text=True, check=True,
            ).stdout.strip()  # fmt: skip
            archive = subprocess.run(
                ["git", "-C", str(repo), "archive", "--format=tar", commit],
                capture_output=True, check=True,
            ).stdout  # fmt: skip
        except (OSError, subprocess.CalledProcessError) as error:
            detail = getattr(error, "stderr", b"") or str(error)
            detail = detail.decode() if isinstance(detail, bytes) else detail
            raise ToolkitError(f"git cannot give {git!r}: {detail.strip()}", file=repo) from None
        target.mkdir(parents=True)
        import io

        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(target, filter="data")
        return f"git {repo}@{git}", commit
    assert source is not None
    if not source.is_dir():
        raise ToolkitError("no such folder to release", file=source)
    shutil.copytree(source, target, ignore=COPY_IGNORE, symlinks=True)
    return str(source), ""


def _new_id(label: str) -> str:
    """UTC time to the millisecond, then what the code is (its commit, `dir`, `before`)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time() % 1:.3f}"[1:]
    return f"{stamp.replace('.', '')}-{label}"


@dataclass
class Staging:
    """The release run on its own, before it serves anyone: a uwsgi child of this process
    (it dies with it, even by SIGKILL), on the release's own port."""

    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        """SIGKILL, to the group: it has answered its last request and holds nothing to
        flush, and uWSGI's own SIGINT shutdown spends about a second of the release."""
        kill_group(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def last_lines(self, count: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-count:])
        except OSError:
            return ""


def _render_app(deployment: Deployment, release: Release, subscribe: bool, host: str | None) -> str:
    from toolkit import settings
    from toolkit.render import render

    overrides = {
        "release": release.id,
        "app_port": str(release.port),
        "pythonpath": f"{RELEASES}/{release.id}",
    }
    if not subscribe:
        overrides["subscription_port"] = "0"
    variables = deployment.load(
        {k: settings.RawValue(v, "toolkit release") for k, v in overrides.items()}, host
    )
    return render(variables.recipe, variables.values, deployment.root / "templates")["uwsgi.ini"]


def _stage(deployment: Deployment, release: Release, uwsgi: Path, host: str | None) -> Staging:
    config = deployment.run_dir / f"staging-{release.id}.ini"
    write_atomically(config, _render_app(deployment, release, subscribe=False, host=host))
    log = folder(deployment) / f"{release.id}.log"
    with log.open("wb") as stream:
        process = subprocess.Popen(
            [str(uwsgi), "--ini", str(config), "--no-orphans"],
            stdin=subprocess.DEVNULL,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with(os.getpid()),
            env={k: v for k, v in os.environ.items() if not k.startswith("UWSGI_")},
        )
    return Staging(process, log)


def _health(staging: Staging, values: dict[str, Any], port: int) -> str | None:
    """None when the release answers its health check; otherwise why not."""
    address = (str(values["app_address"]), port)
    host = f"{values['http_address']}:{values['http_port']}"
    path, want = str(values["health_path"]), int(values["health_status"])
    deadline = time.monotonic() + float(values["health_timeout"])
    tries, last = 0, "it never accepted a connection"
    while time.monotonic() < deadline and tries < int(values["health_tries"]):
        if staging.process.poll() is not None:
            return f"it ended ({describe_exit(staging.process.returncode)}) before answering"
        try:
            answer = uwsgi_packet.request(address, path, host, timeout=5)
        except OSError:
            time.sleep(0.05)
            continue
        tries += 1
        if answer.status == want:
            return None
        last = f"GET {path} answered {answer.status}, not {want}"
        time.sleep(0.2)
    return last


def _through_router(values: dict[str, Any], release_id: str, timeout: float) -> float | None:
    """Seconds until a request through the router is answered by the new release."""
    import http.client

    start = time.monotonic()
    while time.monotonic() - start < timeout:
        connection = http.client.HTTPConnection(
            str(values["http_address"]), int(values["http_port"]), timeout=2
        )
        try:
            connection.request("GET", str(values["health_path"]))
            answer = connection.getresponse()
            answer.read()
            if answer.getheader(HEADER) == release_id:
                return time.monotonic() - start
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
        time.sleep(0.02)
    return None


def _switch(
    deployment: Deployment, release: Release, values: dict[str, Any], host: str | None
) -> float:
    """Make `release` live: write its vassal, wait for the router to send it requests, then
    withdraw and stop the old one. Returns seconds from writing to serving."""
    previous_id = live_id(deployment)
    write_atomically(folder(deployment) / LIVE, release.id + "\n")
    changes = deployment.plan(deployment.load(host=host))
    apply([c for c in changes if c.new is not None])
    started = time.monotonic()
    waited = _through_router(values, release.id, float(values["health_timeout"]))
    if waited is None:
        write_atomically(folder(deployment) / LIVE, (previous_id or "") + "\n")
        apply(deployment.plan(deployment.load(host=host)))
        raise ToolkitError(
            f"release {release.id} passed its health check but the router never sent it a "
            "request; the previous release still serves",
            hint=f"see `toolkit logs {deployment.root} http`",
            exit_code=EXIT_REFUSED,
        )
    server = (str(values["app_address"]), int(values["subscription_port"]))
    uwsgi_packet.unsubscribe(server, KEY, f"{values['app_address']}:{values['app_port']}")
    time.sleep(0.1)  # the router reads the packet before the old vassal begins to stop
    apply([c for c in changes if c.new is None and c.status is Status.CHANGED])
    return time.monotonic() - started


def _clean_leftovers(deployment: Deployment) -> None:
    """What a release killed half-way left: its staging config, and its copy of the code,
    never recorded since it never proved healthy (its staging uwsgi died with it)."""
    for path in deployment.run_dir.glob("staging-*.ini"):
        path.unlink(missing_ok=True)
    base = folder(deployment)
    for path in base.glob("*"):
        if path.is_dir() and not (base / f"{path.name}.json").exists():
            shutil.rmtree(path, ignore_errors=True)
        elif path.suffix == ".log" and not (base / f"{path.stem}.json").exists():
            path.unlink(missing_ok=True)


def _prune(deployment: Deployment, keep: int) -> list[str]:
    """Drop the oldest releases beyond `keep`, never the live one nor the one before it."""
    known = [r.id for r in releases(deployment)]
    live = live_id(deployment)
    protected = {live}
    if live in known and known.index(live) > 0:
        protected.add(known[known.index(live) - 1])
    removable = [i for i in known if i not in protected]
    pruned = removable[: max(0, len(known) - keep)]
    for release_id in pruned:
        shutil.rmtree(folder(deployment) / release_id, ignore_errors=True)
        for suffix in (".json", ".log"):
            (folder(deployment) / f"{release_id}{suffix}").unlink(missing_ok=True)
    return pruned


def _verify_and_switch(
    deployment: Deployment,
    release: Release,
    values: dict[str, Any],
    uwsgi: Path,
    host: str | None,
) -> Outcome:
    """Run the release on a port free now (a release rolled back to gets a new one: its old
    port may be anyone's by then), check it, record it, switch to it."""
    release.port = _free_port(str(values["app_address"]))
    staging = _stage(deployment, release, uwsgi, host)
    try:
        failure = _health(staging, values, release.port)
    finally:
        staging.stop()
        (deployment.run_dir / f"staging-{release.id}.ini").unlink(missing_ok=True)
    if failure is not None:
        lines = staging.last_lines()
        staging.log.unlink(missing_ok=True)
        raise ToolkitError(
            f"release {release.id} failed its health check: {failure}; the live release "
            f"still serves. Its last lines:\n{lines}",
            exit_code=EXIT_REFUSED,
        )
    # A new release is recorded once it has proved healthy; the port is this run's.
    _record(deployment, release)
    previous = live_id(deployment)
    took = _switch(deployment, release, values, host)
    return Outcome(release, previous, took, _prune(deployment, int(values["keep_releases"])))


def ship(
    root: Path,
    *,
    source: Path | None = None,
    git: str | None = None,
    repo: Path | None = None,
    uwsgi: Path | None = None,
    host: str | None = None,
) -> Outcome:
    """`toolkit release`: copy, verify, switch, prune; the live release serves throughout.
    With `host`, the deployment's variables are that inventory host's (as rendered there)."""
    deployment = Deployment(root)
    values = _settings(deployment, host)
    executable = uwsgi_executable(uwsgi)
    with locked(deployment):
        _clean_leftovers(deployment)
        release_id = ""
        committed = False
        code = root / str(deployment.load(live=False).values["pythonpath"])
        before = None if releases(deployment) else _snapshot(deployment, code, values)
        try:
            code_repo = repo or code
            probe_id = _new_id("dir")
            target = folder(deployment) / probe_id
            origin, commit = _copy(source, git, code_repo, target)
            release_id = _new_id(commit[:8] or "dir")
            if release_id != probe_id:
                target.rename(folder(deployment) / release_id)
            release = Release(release_id, origin, commit, time.time(), port=0)
            outcome = _verify_and_switch(deployment, release, values, executable, host)
            if before is not None:
                _record(deployment, before)
            committed = True
            return outcome
        finally:
            if not committed:
                for leftover in (release_id, before and before.id):
                    if leftover:
                        shutil.rmtree(folder(deployment) / leftover, ignore_errors=True)
                        (folder(deployment) / f"{leftover}.json").unlink(missing_ok=True)


def _snapshot(deployment: Deployment, code: Path, values: dict[str, Any]) -> Release:
    """Before the first release, a copy of the code that runs now, recorded with it once it
    succeeds, so that `rollback` can go back to that code like to any release."""
    source = f"{code} (before the first release)"
    release = Release(_new_id("before"), source, "", time.time(), int(values["app_port"]))
    shutil.copytree(code, folder(deployment) / release.id, ignore=COPY_IGNORE, symlinks=True)
    return release


def _record(deployment: Deployment, release: Release) -> None:
    write_atomically(folder(deployment) / f"{release.id}.json", json.dumps(asdict(release)))


def rollback(
    root: Path,
    release_id: str | None = None,
    uwsgi: Path | None = None,
    host: str | None = None,
) -> Outcome:
    """`toolkit rollback`: the release before the live one (or the named one) serves again,
    verified and switched in the same way as a new release."""
    deployment = Deployment(root)
    values = _settings(deployment, host)
    with locked(deployment):
        _clean_leftovers(deployment)
        known = [r.id for r in releases(deployment)]
        live = live_id(deployment)
        if release_id is None:
            older = known[: known.index(live)] if live in known else []
            if not older:
                raise ToolkitError(
                    "no release before the live one to go back to",
                    hint=f"`toolkit releases {root}` lists them",
                )
            release_id = older[-1]
        if release_id == live:
            raise ToolkitError(f"release {release_id} is already live", exit_code=EXIT_REFUSED)
        target = read_release(deployment, release_id)
        return _verify_and_switch(deployment, target, values, uwsgi_executable(uwsgi), host)
