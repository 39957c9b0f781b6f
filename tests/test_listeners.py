"""The Emperor binds a vassal's `socket = IP:port` and hands it over (`--socket fd://N`), so
a crashed vassal's clients wait in the kernel's backlog instead of being refused."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.support import free_port, port_closed, wait_for
from tests.test_emperor import RunningEmperor, start_emperor
from toolkit import uwsgi_packet
from toolkit.apply import write_atomically


def uwsgi_vassal(root: Path, port: int, module: str = "app") -> str:
    return (
        "[uwsgi]\nstrict = true\nmaster = true\n"
        f"socket = 127.0.0.1:{port}\nprocesses = 1\n"
        f"pythonpath = {root / 'code'}\nmodule = {module}\nneed-app = true\n"
    )


@pytest.fixture
def emperor(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RunningEmperor]:
    running = start_emperor(tmp_path, *getattr(request, "param", ()))
    yield running
    running.stop()


def ask(port: int) -> int:
    return uwsgi_packet.request(("127.0.0.1", port), "/", "localhost", timeout=10).status


def accepts_connections(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_a_killed_vassals_clients_wait_and_are_answered(emperor: RunningEmperor) -> None:
    port = free_port()
    write_atomically(emperor.vassals / "app.ini", uwsgi_vassal(emperor.root, port))
    wait_for(lambda: emperor.state("app") == "ready", what='emperor.state("app") == "ready"')
    master = emperor.status()["app"]["pid"]
    assert "--socket=fd://" in " ".join(psutil.Process(master).cmdline())
    assert ask(port) == 200
    os.killpg(master, signal.SIGKILL)
    assert accepts_connections(port), "the Emperor's socket outlives the vassal"
    answers: list[int] = []
    client = threading.Thread(target=lambda: answers.append(ask(port)))
    client.start()
    client.join(15)
    assert answers == [200]
    assert emperor.status()["app"]["restarts"] == 1


def test_a_removed_vassal_gives_its_socket_back(emperor: RunningEmperor) -> None:
    port = free_port()
    path = emperor.vassals / "app.ini"
    write_atomically(path, uwsgi_vassal(emperor.root, port))
    wait_for(lambda: emperor.state("app") == "ready", what='emperor.state("app") == "ready"')
    path.unlink()
    wait_for(port_closed(port), what="port_closed(port)")


def test_a_throttled_vassal_gives_its_socket_back(emperor: RunningEmperor) -> None:
    """A crash loop answers clients with a refusal at once, not a wait in a dead backlog."""
    port = free_port()
    (emperor.root / "code" / "broken.py").write_text("raise ImportError('broken')\n")
    write_atomically(emperor.vassals / "app.ini", uwsgi_vassal(emperor.root, port, "broken"))
    wait_for(
        lambda: emperor.state("app") == "throttled",
        what='emperor.state("app") == "throttled"',
        timeout=20,
    )
    wait_for(port_closed(port), what="port_closed(port)")


@pytest.mark.parametrize("emperor", [("--no-hold-sockets",)], indirect=True)
def test_no_hold_sockets_lets_uwsgi_bind(emperor: RunningEmperor) -> None:
    port = free_port()
    write_atomically(emperor.vassals / "app.ini", uwsgi_vassal(emperor.root, port))
    wait_for(lambda: emperor.state("app") == "ready", what='emperor.state("app") == "ready"')
    master = emperor.status()["app"]["pid"]
    assert "fd://" not in " ".join(psutil.Process(master).cmdline())
    assert ask(port) == 200


def test_a_vassal_whose_socket_moves_is_restarted_on_the_new_one(emperor: RunningEmperor) -> None:
    """A reload would keep the fd it was handed: the old port would stay open."""
    old, new = free_port(), free_port()
    path = emperor.vassals / "app.ini"
    write_atomically(path, uwsgi_vassal(emperor.root, old))
    wait_for(lambda: emperor.state("app") == "ready", what='emperor.state("app") == "ready"')
    first = emperor.status()["app"]["pid"]
    write_atomically(path, uwsgi_vassal(emperor.root, new))
    wait_for(
        lambda: emperor.status()["app"]["pid"] not in {first, None},
        what='emperor.status()["app"]["pid"] not in {first, None}',
    )
    wait_for(lambda: emperor.state("app") == "ready", what='emperor.state("app") == "ready"')
    assert ask(new) == 200
    wait_for(port_closed(old), what="port_closed(old)")
    assert emperor.status()["app"]["last_exit"] in {None, "-", ""}, "not counted as a crash"
