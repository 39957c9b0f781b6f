"""Releases across hosts, through Ansible over real SSH: three sshd on their own loopback
addresses (127.0.0.2, .3, .4), each host a deployment with its own Emperor, a load balancer
(uWSGI's raw router, the hosts' routers as its nodes) in front taking the clients' traffic."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import TOOLKIT, UWSGI, Processes, run_toolkit, wait_for

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0 or not Path(SSHD).is_file(),
        reason="needs root and sshd (`make test` installs openssh-server as root with apt)",
    ),
    pytest.mark.timeout(300),  # a fleet release is a few Ansible plays over SSH
]
HOSTS = 3
APP = """\
import os

VERSION = {version!r}
served = 0


def application(environ, start_response):
    global served
    served += 1
    broken = VERSION in os.environ.get("BROKEN_RELEASES", "").split(",")
    limit = os.environ.get("BREAKS_AFTER", "")
    if broken or (limit and limit.startswith(VERSION + ":") and served > int(limit.split(":")[1])):
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [b"broken"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"<h1>{{VERSION}}</h1>".encode()]
"""


def free_port_on(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


@dataclass
class Host:
    name: str
    address: str
    ssh_port: int
    root: Path
    http_port: int


@dataclass
class Fleet:
    folder: Path
    hosts: list[Host]
    repo: Path
    inventory: Path
    balancer: int
    commits: dict[str, str] = field(default_factory=dict)

    def commit(self, version: str) -> str:
        (self.repo / "app.py").write_text(APP.format(version=version))
        git = ["git", "-C", str(self.repo)]
        subprocess.run([*git, "add", "app.py"], check=True, capture_output=True)
        subprocess.run([*git, "commit", "-qm", version], check=True, capture_output=True)
        done = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True)
        self.commits[version] = done.stdout.decode().strip()
        return self.commits[version]

    def toolkit(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(TOOLKIT), *args, "--inventory", str(self.inventory)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip

    def release(self, version: str, *options: str) -> subprocess.CompletedProcess[str]:
        """`version` committed, then released on every host from the first one."""
        self.commit(version)
        return self.toolkit("release", str(self.hosts[0].root), "--all-hosts", "--git",
                            self.commits[version], *options)  # fmt: skip

    def set_on(self, host: Host, line: str) -> None:
        """A line of that host's own deploy.ini."""
        with (host.root / "deploy.ini").open("a") as stream:
            stream.write(line + "\n")

    def live(self) -> list[str | None]:
        found = []
        for host in self.hosts:
            listed = json.loads(run_toolkit("releases", host.root, "--json").stdout)
            found.append(next((r["id"] for r in listed if r["live"]), None))
        return found

    def version_served(self, host: Host) -> str:
        connection = http.client.HTTPConnection(host.address, host.http_port, timeout=5)
        try:
            connection.request("GET", "/")
            return connection.getresponse().read().decode()
        finally:
            connection.close()


def start_sshd(folder: Path, address: str, processes: Processes) -> int:
    port = free_port_on(address)
    # sshd's privilege separation folder (a service's start makes it; nothing has here).
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    key = folder / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress {address}\nHostKey {key}\n"
        f"AuthorizedKeysFile {folder.parent / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUsePAM no\n"
        f"StrictModes no\nPidFile {folder / 'sshd.pid'}\nSubsystem sftp internal-sftp\n"
    )
    processes.start(SSHD, "-D", "-e", "-f", config)
    wait_for(lambda: _accepts(address, port), what=f"sshd on {address}:{port}")
    return port


def _accepts(address: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((address, port)) == 0


@pytest.fixture
def fleet(tmp_path: Path, processes: Processes) -> Iterator[Fleet]:
    with fleet_of(tmp_path, HOSTS, processes) as made:
        yield made


@contextlib.contextmanager
def fleet_of(folder: Path, count: int, processes: Processes) -> Iterator[Fleet]:
    """`count` hosts over SSH, each on v1 (a first fleet release), behind a load balancer;
    every host's Emperor and SSH connection ended after."""
    # One SSH connection per host, reused by its tasks (Ansible's default), in a folder of
    # the fleet's own: the connections left open are closed at the end.
    control = folder / "cp"
    control.mkdir()
    saved = os.environ.get("ANSIBLE_SSH_CONTROL_PATH_DIR")
    os.environ["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(control)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "key")],
                   check=True)  # fmt: skip
    shutil.copy(folder / "key.pub", folder / "authorized_keys")
    repo = folder / "app"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    for setting in ("user.email=fleet@example.invalid", "user.name=fleet"):
        key, value = setting.split("=")
        subprocess.run(["git", "-C", str(repo), "config", key, value], check=True)
    hosts: list[Host] = []
    try:
        yield _fleet(folder, count, processes, repo, hosts)
    finally:
        for host in hosts:
            run_toolkit("down", host.root)
        for path in control.iterdir():  # each host's SSH master: asked to exit
            subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={path}", "x"],
                           capture_output=True, timeout=30)  # fmt: skip
        if saved is None:
            os.environ.pop("ANSIBLE_SSH_CONTROL_PATH_DIR", None)
        else:
            os.environ["ANSIBLE_SSH_CONTROL_PATH_DIR"] = saved


def _fleet(folder: Path, count: int, processes: Processes, repo: Path, hosts: list[Host]) -> Fleet:
    lines = ["[web]"]
    for number in range(1, count + 1):
        address = f"127.0.0.{number + 1}"
        place = folder / f"host{number}"
        place.mkdir()
        ssh_port = start_sshd(place, address, processes)
        root = place / "site"
        assert run_toolkit("new", root).returncode == 0
        (root / "code" / "app.py").write_text(APP.format(version="v0"))
        http_port, app_port, subscriptions = (free_port_on(address) for _ in range(3))
        with (root / "deploy.ini").open("a") as stream:
            stream.write(
                f"http_address = {address}\nhttp_port = {http_port}\napp_address = {address}\n"
                f"app_port = {app_port}\nsubscription_port = {subscriptions}\n"
                "health_every = 0\nrelease_header = true\nprocesses = 1\ncheaper = 0\n"
            )
        started = run_toolkit("up", root, "--detach")
        assert started.returncode == 0, started.stderr
        hosts.append(Host(f"host{number}", address, ssh_port, root, http_port))
        lines.append(
            f"host{number} ansible_host={address} ansible_port={ssh_port} toolkit_dest={root}"
        )
    inventory = folder / "hosts.ini"
    inventory.write_text(
        "\n".join(lines) + "\n\n[all:vars]\nansible_user=root\n"
        f"ansible_ssh_private_key_file={folder / 'key'}\n"
        "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n"
        f"toolkit_bin={TOOLKIT}\ntoolkit_release_repo={repo}\n"
        # The hosts' own Python runs Ansible's modules (not whatever a shim finds).
        "ansible_python_interpreter=/usr/bin/python3\n"
    )
    balancer = free_port_on("127.0.0.1")
    # uWSGI's raw router: TCP, each connection to the next host's router in turn.
    nodes = [f"--rawrouter-to={h.address}:{h.http_port}" for h in hosts]
    processes.start(UWSGI, "--master", f"--rawrouter=127.0.0.1:{balancer}", *nodes,
                    "--rawrouter-gracetime=1", "--processes=0")  # fmt: skip
    made = Fleet(folder, hosts, repo, inventory, balancer)
    made.commit("v1")
    # v1 everywhere under one ID, by each host's own steps (quicker than a fleet run).
    first = "20000101T000000-v1"
    for host in hosts:
        for step in (["--stage", first, "--git", made.commits["v1"], "--repo", str(repo)],
                     ["--switch", first]):  # fmt: skip
            done = run_toolkit("release", host.root, *step)
            assert done.returncode == 0, done.stdout + done.stderr
    return made


@dataclass
class Load:
    """Keep-alive clients through the load balancer, sorting answers by release."""

    port: int
    clients: int = 6
    answers: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stop.is_set():
            try:
                connection.request("GET", "/")
                answer = connection.getresponse()
                answer.read()
                with self.lock:
                    if answer.status != 200:
                        self.failures.append(str(answer.status))
                    key = answer.getheader("X-Toolkit-Release") or "?"
                    self.answers[key] = self.answers.get(key, 0) + 1
            except (OSError, http.client.HTTPException) as error:
                self.failures.append(repr(error))
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        connection.close()

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=self.client) for _ in range(self.clients)]
        for thread in self.threads:
            thread.start()
        try:
            wait_for(
                lambda: sum(self.answers.values()) > 20, what="20 answers through the balancer"
            )
        except AssertionError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


def test_a_fleet_release_under_load_fails_no_request_and_a_fleet_rollback_goes_back(
    fleet: Fleet,
) -> None:
    before = fleet.live()
    assert len(set(before)) == 1 and before[0] is not None, "v1 on every host"
    with Load(fleet.balancer) as load:
        result = fleet.release("v2", "--canary-watch", "1", "--batch", "2")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert not load.failures, load.failures[:5]
    after = fleet.live()
    assert len(set(after)) == 1 and after[0] != before[0], "one new release ID on every host"
    assert all(fleet.version_served(h) == "<h1>v2</h1>" for h in fleet.hosts)
    assert (
        "canary: host1, watched 1 s" in result.stdout and "batch 1: host2, host3" in result.stdout
    )
    for host in fleet.hosts:
        assert f"{host.name}: stage ok" in result.stdout and "switch ok" in result.stdout
    refused = fleet.toolkit("rollback", str(fleet.hosts[0].root), "--all-hosts", "19990101-x")
    assert refused.returncode == 1
    assert "host1 has no release 19990101-x: no host goes back" in refused.stdout
    assert fleet.live() == after, "a refused rollback moves no host"
    back = fleet.toolkit("rollback", str(fleet.hosts[0].root), "--all-hosts", str(before[0]))
    assert back.returncode == 0, back.stdout[-3000:] + back.stderr
    assert fleet.live() == before
    assert all(fleet.version_served(h) == "<h1>v1</h1>" for h in fleet.hosts)


def test_a_failing_release_leaves_no_host_on_it(fleet: Fleet) -> None:
    """Two failures on one fleet (each a fleet of its own cost 8 s more): v2 fails its
    health check on host3 only, so no host switches; v3 breaks on host2 after it switched,
    so every switched host goes back."""
    fleet.set_on(fleet.hosts[2], "env = BROKEN_RELEASES=v2")
    before = fleet.live()
    with Load(fleet.balancer) as load:
        result = fleet.release("v2", "--canary-watch", "0")
    assert result.returncode == 1, result.stdout[-3000:]
    assert "host3: stage failed" in result.stdout
    assert "switch" not in result.stdout.split("summary")[1]
    assert fleet.live() == before
    assert not load.failures, load.failures[:5]
    assert all(fleet.version_served(h) == "<h1>v1</h1>" for h in fleet.hosts)

    fleet.set_on(fleet.hosts[1], "env = BREAKS_AFTER=v3:30")
    with Load(fleet.balancer) as load:
        result = fleet.release("v3", "--canary-watch", "1")
        assert result.returncode == 1, result.stdout[-3000:]
        assert fleet.live() == before, "every host back on its release"
        seen = dict(load.answers)
        wait_for(
            lambda: sum(load.answers.values()) > sum(seen.values()) + 100,
            what="100 more answers after the run",
        )
    since = {release for release, count in load.answers.items() if count > seen.get(release, 0)}
    assert since == {before[0]}, "no answer from the new release once the run is over"
    # Failed requests are the failing release's own 500s: a router always had an app.
    assert set(load.failures) <= {"500"}, [f for f in load.failures if f != "500"][:5]
    assert "(host2: release " in result.stderr and "failed after switching" in result.stderr
    summary = result.stdout.split("summary")[1]
    assert re.search(r"host1: stage ok [\d.]+ s, switch ok [\d.]+ s, rollback ok", summary)
    assert re.search(r"host2: stage ok [\d.]+ s, switch failed", summary)
    assert re.search(r"host3: stage ok [\d.]+ s\n", summary), "host3 never switched"
