"""Inventory layering, variable by variable: default < deploy.ini < group < host < --set."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import run_toolkit
from toolkit.deployment import Deployment
from toolkit.errors import ToolkitError
from toolkit.settings import parse_overrides

INVENTORY = """\
[groups]
[[web]]
hosts = web1, web2
processes = 6
threads = 3
[[big]]
hosts = web2
processes = 8
[hosts]
[[web1]]
threads = 4
[[web2]]
http_port = 9002
"""


@pytest.fixture
def site(deployment: Path) -> Deployment:
    with (deployment / "deploy.ini").open("a") as stream:
        stream.write("processes = 5\nthreads = 2\nhttp_port = 9000\noffload_threads = 2\n")
    (deployment / "inventory.ini").write_text(INVENTORY)
    return Deployment(deployment)


def test_each_layer_wins_over_the_one_below(site: Deployment) -> None:
    web1 = site.load(host="web1")
    assert web1.values["cheaper"] == 1  # recipe default
    assert web1.values["offload_threads"] == 2  # deploy.ini
    assert web1.values["processes"] == 6  # group web beats deploy.ini
    assert web1.values["threads"] == 4  # host beats group
    assert web1.values["http_port"] == 9000  # deploy.ini, no layer above sets it
    assert web1.sources["threads"] == f"{site.root / 'inventory.ini'}:11"


def test_groups_layer_in_name_order_and_set_beats_all(site: Deployment) -> None:
    web2 = site.load(host="web2")
    assert web2.values["processes"] == 6  # `web` comes after `big` by name, so it wins
    assert web2.values["http_port"] == 9002
    forced = site.load(parse_overrides(["http_port=9100", "processes=7"]), host="web2")
    assert (forced.values["http_port"], forced.values["processes"]) == (9100, 7)


def test_without_a_host_the_inventory_is_not_read(site: Deployment) -> None:
    assert site.load().values["processes"] == 5


def test_unknown_host_names_the_known_ones(site: Deployment) -> None:
    with pytest.raises(ToolkitError, match="no host 'web3'") as caught:
        site.load(host="web3")
    assert caught.value.hint == "known hosts: web1, web2"


def test_bad_host_value_names_the_inventory_line(site: Deployment) -> None:
    (site.root / "inventory.ini").write_text(INVENTORY + "[[web3]]\nthreads = many\n")
    result = run_toolkit("render", site.root, "--host", "web3")
    assert result.returncode == 2
    assert f"{site.root / 'inventory.ini'}:15: threads: got 'many'" in result.stderr


def test_render_host_writes_that_hosts_values(site: Deployment) -> None:
    result = run_toolkit("render", site.root, "--host", "web2")
    assert result.returncode == 0, result.stderr
    assert "http = 127.0.0.1:9002" in (site.root / "vassals" / "http.ini").read_text()


def test_render_all_hosts_gives_each_host_its_own_folder(site: Deployment) -> None:
    result = run_toolkit("render", site.root, "--all-hosts")
    assert result.returncode == 0, result.stderr
    web1 = (site.root / "hosts" / "web1" / "vassals" / "uwsgi.ini").read_text()
    web2 = (site.root / "hosts" / "web2" / "vassals" / "http.ini").read_text()
    assert "processes = 6" in web1 and "threads = 4" in web1
    assert "http = 127.0.0.1:9002" in web2
    assert not (site.root / "vassals").exists()
    again = run_toolkit("render", site.root, "--all-hosts")
    assert "changed=0 ok=4" in again.stdout
