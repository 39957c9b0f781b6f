"""Releases: new code in releases/ID/, built by its release phase, proved healthy before it
takes traffic, switched in through the HTTP router's subscription server, the old one
retired gracefully. State that is not code lives once in shared/ and every release sees it.

The switch, and why it loses no request: the router sends each request to the app vassals
that announced the key `toolkit` to its subscription server (`subscribe-to`). A release is
first run on its own, beside the live one, by this process (a staging uwsgi that dies with
it) and asked for the health-check path straight on its uwsgi socket; only if it answers
is its vassal file written (`uwsgi@ID.ini`, still the vassal `uwsgi` to every command). The
Emperor starts it, it announces itself, and the router spreads requests over old and new;
once the new code has answered through the router, the old vassal is withdrawn from the
router (an unsubscribe packet), then stopped gracefully: requests it holds finish, new ones
already go to the new vassal.

What counts as live is `releases/live` (an ID); render reads it, so `toolkit up` and
`toolkit render` keep running the live release."""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import signal
import socket
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit import health, pipeline, release_code, release_phase, uwsgi_packet
from toolkit.apply import FileChange
from toolkit.deployment import Deployment, Sources
from toolkit.emperor import control
from toolkit.emperor.child import die_with, ini_argument, kill_group
from toolkit.emperor.machine import describe_exit
from toolkit.errors import ExitCode, ToolkitError
from toolkit.installed import uwsgi_executable
from toolkit.release_store import Release, Store, check_id
from toolkit.release_store import layer as release_layer
from toolkit.settings import RawValue, Variables

KEY = "toolkit"
HEADER = "x-toolkit-release"
# Sent by `toolkit release` through the router: only the release it names answers with HEADER.
PROBE = "X-Toolkit-Release-Probe"
SOURCE = "toolkit release"
# After the old release is withdrawn from the router and before it stops: what it was sent
# meanwhile is taken by its workers.
DRAIN = 0.5
Say = Callable[[str], None]


@dataclass
class Outcome:
    """What a release or rollback did, with figures for the report."""

    release: Release
    previous: str | None
    serving_after: float
    pruned: list[str]
    copied: release_code.Copied | None = None
    moved: list[release_code.Moved] = field(default_factory=list)


@contextlib.contextmanager
def locked(deployment: Deployment) -> Iterator[None]:
    """One release at a time per deployment."""
    control.own_run_dir(deployment.run_dir)
    path = deployment.run_dir / "release.lock"
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(path, flags, 0o600), "a+") as stream:
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            stream.seek(0)
            raise ToolkitError(
                f"another release is under way (pid {stream.read().strip() or '?'})",
                file=path,
                hint="wait for it to finish",
                exit_code=ExitCode.PROBLEMS,
            ) from None
        stream.truncate(0)
        stream.write(f"{os.getpid()}\n")
        stream.flush()
        yield


@dataclass(frozen=True)
class Site:
    """What a release works with, read once: the deployment, its sources, the inventory
    host it runs as, its variables without a release (`base`) and as they run now
    (`values`), and the uwsgi to run."""

    deployment: Deployment
    sources: Sources
    host: str | None
    kept: Mapping[str, RawValue]
    """What `up --set` gave the running Emperor."""
    base: Mapping[str, Any]
    values: Mapping[str, Any]
    uwsgi: Path

    @property
    def store(self) -> Store:
        return self.deployment.releases

    @property
    def app(self) -> Path:
        """The app folder: deploy.ini's own code, where a release comes from by default."""
        return Path(os.path.normpath(self.deployment.root / str(self.base["pythonpath"])))

    @property
    def shared(self) -> list[str]:
        return list(self.base.get("shared") or [])

    def variables(self, release: Release | None, **overrides: str) -> Variables:
        root = self.deployment.root
        layer = {} if release is None else release_layer(release, self.base, root, SOURCE)
        given = {name: RawValue(value, SOURCE) for name, value in overrides.items()}
        return self.sources.variables(self.host, layer, {**self.kept, **given})


def _site(root: Path, host: str | None, uwsgi: Path | None) -> Site:
    """The running site; refused without the router's subscription server or an Emperor."""
    deployment = Deployment(root)
    sources = deployment.sources(inventory=host is not None)
    kept = deployment.kept()
    base = sources.variables(host, None, kept).values
    values = sources.variables(host, deployment.live_layer(sources, host, kept), kept).values
    if not values.get("subscription_port"):
        raise ToolkitError(
            "releases need the router's subscription server, and subscription_port is 0",
            file=deployment.deploy_ini,
            hint="remove `subscription_port = 0` from deploy.ini (it defaults to http_port "
            f"+ 2), then `toolkit up {deployment.root}` once",
        )
    control.status(deployment.run_dir)  # refuses when no Emperor runs
    return Site(deployment, sources, host, kept, base, values, uwsgi_executable(uwsgi))


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _from_git(git: str, repo: Path, target: Path) -> tuple[str, str]:
    """The commit's tree in `target` (code only: what git tracks); (origin, commit)."""
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
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="data")
    return f"git {repo}@{git}", commit


def _new_id(label: str) -> str:
    """UTC time to the millisecond, then what the code is (its commit, `dir`, `before`)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time() % 1:.3f}"[1:]
    return f"{stamp.replace('.', '')}-{label}"


# How long a killed staging group may take to be gone (its workers, reparented, reaped).
GROUP_GONE_BOUND = 5.0


@dataclass
class Staging:
    """The release run on its own, before it serves anyone: a uwsgi child of this process
    (it dies with it, even by SIGKILL), on the release's own port."""

    process: subprocess.Popen[bytes]
    log: Path
    start: int

    def stop(self) -> None:
        """SIGKILL, to the group: it has answered its last request and holds nothing to
        flush, and uWSGI's own SIGINT shutdown spends about a second of the release. Its
        workers die a moment after the master: returns once the group is empty (or after
        GROUP_GONE_BOUND), so that nothing of it outlives the command."""
        kill_group(self.process.pid, signal.SIGKILL)
        self.process.wait()
        from toolkit.emperor.usage import by_group

        deadline = time.monotonic() + GROUP_GONE_BOUND
        # Zombies do not count: where nothing reaps orphans, they stay in the group.
        while self.process.pid in by_group({self.process.pid}) and time.monotonic() < deadline:
            time.sleep(0.01)

    def output(self) -> str:
        """What the release's uwsgi printed (the release phase's lines come before)."""
        try:
            with self.log.open("rb") as stream:
                stream.seek(self.start)
                return stream.read().decode(errors="replace")
        except OSError:
            return ""


def _stage(site: Site, release: Release) -> Staging:
    """Run the release alone, outside the Emperor and not announced to the router."""
    config = pipeline.stage(
        site.deployment, site.variables(release, subscription_port="0"), release.id, site.uwsgi
    )
    log = site.store.log(release.id)
    with log.open("ab") as stream:
        start = stream.tell()
        process = subprocess.Popen(
            [str(site.uwsgi), "--ini", ini_argument(config), "--no-orphans"],
            stdin=subprocess.DEVNULL,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with(os.getpid()),
            env={k: v for k, v in os.environ.items() if not k.startswith("UWSGI_")},
        )
    return Staging(process, log, start)


def _health_check(values: Mapping[str, Any], port: int) -> tuple[tuple[str, int], str, str, int]:
    """Where a release's health check goes (its own socket on `port`), the Host it names,
    the path and the status it wants."""
    address = (str(values["app_address"]), port)
    host = f"{values['http_address']}:{values['http_port']}"
    return address, host, str(values["health_path"]), int(values["health_status"])


def _health(staging: Staging, values: Mapping[str, Any], port: int) -> str | None:
    """None when the release answers its health check; otherwise why not, in words."""
    address, host, path, want = _health_check(values, port)
    timeout = float(values["health_timeout"])
    deadline = time.monotonic() + timeout
    tries, last = 0, health.Probe(None, f"it never accepted a connection within {timeout:g} s")
    while time.monotonic() < deadline and tries < int(values["health_tries"]):
        if staging.process.poll() is not None:
            return f"it ended ({describe_exit(staging.process.returncode)}) before answering"
        answered = health.probe(address, path, host, min(5.0, timeout))
        if answered.refused:
            time.sleep(0.05)
            continue
        tries += 1
        last = answered
        if answered.says(path, want) is None:
            return None
        time.sleep(0.2)
    said = last.says(path, want) or "no answer"
    hint = health.django_logged_nothing(last.answer, staging.output())
    return said + (f". {hint}" if hint else "")


def _through_router(values: Mapping[str, Any], release_id: str, timeout: float) -> float | None:
    """Seconds until a request through the router is answered by the new release (asked
    with the probe header: no client ever sees which release answered)."""
    import http.client

    start = time.monotonic()
    while time.monotonic() - start < timeout:
        connection = http.client.HTTPConnection(
            str(values["http_address"]), int(values["http_port"]), timeout=2
        )
        try:
            connection.request("GET", str(values["health_path"]), headers={PROBE: release_id})
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


def _switch(site: Site, release: Release, changes: list[FileChange]) -> float:
    """Make `release` live: write its vassal, wait for the router to send it requests, then
    withdraw and stop the old one. Returns seconds from writing to serving."""
    values = site.values
    previous = site.store.live()
    site.store.set_live(release.id)
    pipeline.write(site.deployment, [c for c in changes if c.new is not None])
    waited = _through_router(values, release.id, float(values["health_timeout"]))
    if waited is None:
        site.store.set_live(previous.id if previous else None)
        pipeline.write(
            site.deployment,
            pipeline.prepare(site.deployment, site.variables(previous), site.uwsgi),
        )
        raise ToolkitError(
            f"release {release.id} passed its health check but the router never sent it a "
            "request; the previous release still serves",
            hint=f"see `toolkit logs {site.deployment.root} http`",
            exit_code=ExitCode.PROBLEMS,
        )
    _withdraw(site, previous)
    pipeline.write(site.deployment, [c for c in changes if c.new is None])
    return waited


def _withdraw(site: Site, previous: Release | None) -> None:
    """Take the old release out of the router before it stops: block its announcements
    (its master FIFO's "S"; it would announce itself again within a second), withdraw it
    (an unsubscribe packet, sent a few times: it is UDP), and give the requests the router
    sent it meanwhile time to be taken by its workers, which still accept. Its graceful
    stop then finds nothing new in its backlog. Its own address, not the site's at the
    command's start: switching back after a watch withdraws the release just switched to."""
    values = site.variables(previous).values
    stem = pipeline.release_vassal(previous.id) if previous else pipeline.RELEASE_VASSAL
    fifo = site.deployment.run_dir / (stem.rpartition(".")[0] + ".fifo")
    with contextlib.suppress(OSError):
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            os.write(fd, b"S")
        finally:
            os.close(fd)
    server = (str(values["app_address"]), int(values["subscription_port"]))
    for _ in range(3):
        uwsgi_packet.unsubscribe(server, KEY, f"{values['app_address']}:{values['app_port']}")
        time.sleep(0.1)
    time.sleep(DRAIN)


# Which of deploy.ini's release phase runs where: per host, or once for every host.
PER_HOST, ONCE = "release_commands", "release_once_commands"


def _verify_and_switch(site: Site, release: Release, say: Say, phases: tuple[str, ...]) -> Outcome:
    """A release verified (`_verify`), then switched to."""
    changes = _verify(site, release, say, phases)
    previous = site.store.live_id()
    took = _switch(site, release, changes)
    return Outcome(release, previous, took, site.store.prune(int(site.values["keep_releases"])))


def _verify(site: Site, release: Release, say: Say, phases: tuple[str, ...]) -> list[FileChange]:
    """Check its vassal files, run the release phases named (a new release), run it on a
    port free now (a release rolled back to gets a new one: its old port may be anyone's
    by then), check its health, record it. Returns its vassal files, to switch to."""
    release.port = _free_port(str(site.values["app_address"]))
    variables = site.variables(release)
    code = site.store.code(release.id)
    commands = [c for phase in phases for c in variables.values.get(phase) or []]
    # Checked before anything runs; what the release phase builds is checked once it has.
    changes = pipeline.prepare(
        site.deployment, variables, site.uwsgi, building=code.resolve() if commands else None
    )
    if commands:
        _run_phase(site, release, commands, say)
        changes = pipeline.prepare(site.deployment, variables, site.uwsgi)
    staging = _stage(site, release)
    try:
        failure = _health(staging, site.values, release.port)
    finally:
        staging.stop()
        pipeline.unstage(site.deployment, release.id)
    if failure is not None:
        lines = "\n".join(staging.output().splitlines()[-15:])
        raise ToolkitError(
            f"release {release.id} failed its health check: {failure}; the live release "
            f"still serves. Its own output:\n{lines}",
            exit_code=ExitCode.PROBLEMS,
        )
    # A new release is recorded once it has proved healthy; the port is this run's.
    site.store.record(release)
    return changes


def _run_phase(site: Site, release: Release, commands: list[str], say: Say) -> None:
    variables = site.variables(release)
    release_phase.run(
        commands,
        site.store.code(release.id),
        release_phase.environment(variables.values, site.deployment.root),
        float(variables.values["release_timeout"]),
        site.store.log(release.id),
        say,
    )


def _clean_leftovers(site: Site) -> None:
    """What a release killed half-way left: its staging config, its unrecorded code."""
    pipeline.unstage(site.deployment)
    site.store.clean_leftovers()


def _serving_code(site: Site) -> Path:
    """The folder of the code that serves now: the live release's, or the app folder."""
    live = site.store.live_id()
    return site.store.code(live) if live else site.app


def ship(
    root: Path,
    *,
    source: Path | None = None,
    git: str | None = None,
    repo: Path | None = None,
    uwsgi: Path | None = None,
    host: str | None = None,
    say: Say = lambda line: None,
) -> Outcome:
    """`toolkit release`: move state into shared/ (once), copy the code, run its release
    phase (per host, then once), verify, switch, prune; the live release serves throughout.
    With `host`, the deployment's variables are that inventory host's (as rendered there)."""
    site = _site(root, host, uwsgi)
    with locked(site.deployment):
        with _new_release(site, source, git, repo, None, say) as (release, copied, moved):
            outcome = _verify_and_switch(site, release, say, (PER_HOST, ONCE))
        outcome.copied, outcome.moved = copied, moved
        return outcome


def stage(
    root: Path,
    release_id: str,
    *,
    source: Path | None = None,
    git: str | None = None,
    repo: Path | None = None,
    uwsgi: Path | None = None,
    host: str | None = None,
    say: Say = lambda line: None,
) -> Release:
    """A fleet release's first step on one host (`toolkit release --stage ID`): the code
    copied, the per-host release phase run, the release proved healthy on its own and
    recorded under the ID every host shares; not live. A host that has it already staged
    is done."""
    check_id(release_id)
    site = _site(root, host, uwsgi)
    with locked(site.deployment):
        if release_id in {r.id for r in site.store.all()}:
            say(f"release {release_id} is staged here already")
            return site.store.read(release_id)
        with _new_release(site, source, git, repo, release_id, say) as (release, _, _):
            _verify(site, release, say, (PER_HOST,))
        return release


def run_once(
    root: Path, release_id: str, uwsgi: Path | None = None, host: str | None = None,
    say: Say = lambda line: None,
) -> None:  # fmt: skip
    """A fleet release's steps that change what every host shares (its
    `release_once_commands`: migrations), in the staged release's folder on this host."""
    check_id(release_id)
    site = _site(root, host, uwsgi)
    with locked(site.deployment):
        release = site.store.read(release_id)
        commands = list(site.variables(release).values.get(ONCE) or [])
        if commands:
            _run_phase(site, release, commands, say)


def switch(
    root: Path,
    release_id: str,
    *,
    watch: float = 0.0,
    uwsgi: Path | None = None,
    host: str | None = None,
    say: Say = lambda line: None,
) -> Outcome:
    """A fleet release's switch on one host (`toolkit release --switch ID`): the staged
    release verified again and switched to, then watched for `watch` seconds (its health
    path asked every WATCH_EVERY s on its own socket); one that fails meanwhile is switched
    back at once, and the error says why."""
    check_id(release_id)
    site = _site(root, host, uwsgi)
    with locked(site.deployment):
        _clean_leftovers(site)
        release = site.store.read(release_id)
        if site.store.live_id() == release_id:
            say(f"release {release_id} is live here already")
            return Outcome(release, None, 0.0, [])
        release_code.link_shared(root, site.store.code(release.id), site.shared)
        outcome = _verify_and_switch(site, release, say, ())
        failure = _watch(site, outcome.release, watch)
        if failure is None:
            return outcome
        back = outcome.previous
        if back is not None:
            _verify_and_switch(site, site.store.read(back), say, ())
        raise ToolkitError(
            f"release {release_id} failed after switching: {failure}; "
            + (f"switched back to {back}" if back else "nothing to switch back to"),
            exit_code=ExitCode.PROBLEMS,
        )


# How often a switched release's health is asked while it is watched.
WATCH_EVERY = 0.5


def _watch(site: Site, release: Release, seconds: float) -> str | None:
    """None when the live release answered its health check for `seconds`; else why not."""
    values = site.values
    address, host, path, want = _health_check(values, release.port)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        said = health.probe(address, path, host, 5.0).says(path, want)
        if said is not None:
            return said
        time.sleep(WATCH_EVERY)
    return None


@contextlib.contextmanager
def _new_release(
    site: Site,
    source: Path | None,
    git: str | None,
    repo: Path | None,
    release_id: str | None,
    say: Say,
) -> Iterator[tuple[Release, release_code.Copied | None, list[release_code.Moved]]]:
    """State moved into shared/ (once), the code copied to releases/ID/ (`release_id`, or a
    new one from the time and the commit), shared state linked in; what the block does not
    finish is removed, a first release's snapshot of the code before it is kept once it
    does."""
    store, root = site.store, site.deployment.root
    _clean_leftovers(site)
    moved = release_code.adopt_state(root, _serving_code(site), site.shared)
    for item in moved:
        say(f"moved {item.path} into {item.to} (state lives once, in shared/)")
    made = ""
    committed = False
    before = None if store.all() else _snapshot(site)
    try:
        probe_id = release_id or _new_id("dir")
        made = probe_id
        target = store.code(probe_id)
        copied = None
        if git is not None:
            origin, commit = _from_git(git, repo or site.app, target)
        else:
            assert source is not None
            excluded = list(site.base.get("release_exclude") or [])
            copied = release_code.copy_code(source, target, site.shared, excluded)
            origin, commit = str(source), ""
            say(_copy_report(copied))
        release_code.link_shared(root, target, site.shared)
        made = release_id or _new_id(commit[:8] or "dir")
        if made != probe_id:
            target.rename(store.code(made))
        yield Release(made, origin, commit, time.time(), port=0), copied, moved
        if before is not None:
            store.record(before)
        committed = True
    finally:
        if not committed:
            for leftover in (made, before and before.id):
                if leftover:
                    store.remove(leftover)


def _copy_report(copied: release_code.Copied) -> str:
    left = ", ".join(f"{path} ({why})" for path, why in sorted(copied.left_out.items()))
    size = f"{copied.size / 1e6:.1f} MB" if copied.size >= 100_000 else f"{copied.size} bytes"
    return f"copied {copied.files} files ({size})" + (f"; left out: {left}" if left else "")


def _snapshot(site: Site) -> Release:
    """Before the first release, a copy of the code that serves now, recorded with it once
    it succeeds, so that `rollback` can go back to that code like to any release. It copies
    what a release copies, and the static folders the site serves from the app folder (no
    release phase rebuilds them for it)."""
    code = site.app
    source = f"{code} (before the first release)"
    release = Release(_new_id("before"), source, "", time.time(), int(site.base["app_port"]))
    target = site.store.code(release.id)
    excluded = list(site.base.get("release_exclude") or [])
    release_code.copy_code(code, target, site.shared, excluded)
    root = site.deployment.root
    for folder in _static_folders(site.base):
        where = Path(os.path.normpath(root / folder))
        if where.is_relative_to(code) and not (target / where.relative_to(code)).exists():
            relative = where.relative_to(code).as_posix()
            if not any(relative.startswith(p.rstrip("/")) for p in site.shared) and where.is_dir():
                release_code.copy_code(where, target / relative, [], [])
    release_code.link_shared(root, target, site.shared)
    return release


def _static_folders(values: Mapping[str, Any]) -> list[str]:
    folders = [str(item).partition("=")[2] for item in values.get("static_maps") or []]
    return [*folders, *([str(values["static_dir"])] if values.get("static_dir") else [])]


def rollback(
    root: Path,
    release_id: str | None = None,
    uwsgi: Path | None = None,
    host: str | None = None,
    say: Say = lambda line: None,
) -> Outcome:
    """`toolkit rollback`: the release before the live one (or the named one) serves again,
    verified and switched in the same way as a new release. Its release phase does not run
    again: the data stays as the newer code left it (README: "what rollback means for
    data")."""
    if release_id is not None:
        check_id(release_id)
    site = _site(root, host, uwsgi)
    store = site.store
    with locked(site.deployment):
        _clean_leftovers(site)
        known = [r.id for r in store.all()]
        live = store.live_id()
        if release_id is None:
            older = known[: known.index(live)] if live in known else []
            if not older:
                raise ToolkitError(
                    "no release before the live one to go back to",
                    hint=f"`toolkit releases {root}` lists them",
                )
            release_id = older[-1]
        if release_id == live:
            raise ToolkitError(f"release {release_id} is already live", exit_code=ExitCode.PROBLEMS)
        target = store.read(release_id)
        release_code.link_shared(root, store.code(target.id), site.shared)
        return _verify_and_switch(site, target, say, ())
