"""Short versions of `make chaos`: kill storms, edit storms, crash loops, the Emperor's death."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import Figures, crash_loop, edit_storm, emperor_death, fuzz, kill_storm


@pytest.fixture
def figures() -> Figures:
    return Figures()


@pytest.mark.timeout(120)
def test_kill_storm_every_vassal_serves_again_once(tmp_path: Path, figures: Figures) -> None:
    kill_storm(tmp_path, figures, seconds=6)
    row = figures.rows["kill storm"]
    assert row["recovered"] == "10/10"
    assert (row["zombies"], row["duplicates"], row["orphans"]) == (0, 0, 0)
    assert int(str(row["kills sent"])) > 10


@pytest.mark.timeout(120)
def test_edit_storm_ends_with_the_files_on_disk(tmp_path: Path, figures: Figures) -> None:
    edit_storm(tmp_path, figures, writes=200)
    row = figures.rows["edit storm"]
    assert (row["mismatches"], row["duplicates"], row["zombies"], row["orphans"]) == (0, 0, 0, 0)
    assert row["half-written started"] == 0


@pytest.mark.timeout(120)
def test_crash_loop_is_throttled_cheaply_and_harms_nobody(tmp_path: Path, figures: Figures) -> None:
    crash_loop(tmp_path, figures)
    row = figures.rows["crash loop"]
    assert row["recovered"] == "3/3"
    assert row["spawns"] == "5, then throttled"
    assert float(str(row["emperor CPU (%)"])) < 5
    assert row["orphans"] == 0


@pytest.mark.timeout(120)
def test_killed_emperor_leaves_nothing_and_a_new_one_takes_over(
    tmp_path: Path, figures: Figures
) -> None:
    emperor_death(tmp_path, figures)
    row = figures.rows["emperor SIGKILL + restart"]
    assert row["recovered"] == "5/5"
    assert (row["duplicates"], row["zombies"], row["orphans"]) == (0, 0, 0)


def test_hostile_input_never_gives_a_traceback_or_an_option(
    tmp_path: Path, figures: Figures
) -> None:
    fuzz(tmp_path, figures, cases=150)
    row = figures.rows["fuzz: deploy.ini, --set, INI, inventory, templates"]
    assert row["tracebacks"] == 0
    assert row["odd exit codes"] == 0
    assert row["files clobbered"] == 0
    assert row["options injected"] == 0
