"""The Emperor with the real scanner on real files, and a fake clock and uwsgi: files are
written whole or in part, sealed or not, renamed and deleted in any order while the
vassals crash, reload and stop. Never two masters for one name, never a half-written
config served, every retired vassal gone within its bound."""

from __future__ import annotations

import io
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.fakes import KILL_LATENCY, FakeChild, FakeClock, FakeSpawner
from toolkit import seal
from toolkit.emperor.emperor import Emperor
from toolkit.emperor.machine import SERVING, State
from toolkit.emperor.options import EmperorOptions
from toolkit.emperor.printer import Printer
from toolkit.emperor.protocol import FromVassal
from toolkit.emperor.vassal import CONFIG_READ_LINE

STOP_TIMEOUT = 5.0
SLOTS = ["a/web.ini", "b/web.ini", "a/api.ini"]
KINDS = ["sealed", "sealed, half written", "unsealed"]
MESSAGES = [*FromVassal]
STARTING_LINE = CONFIG_READ_LINE + b"2.0.31 (64bit) ***"


def fake_emperor(root: Path) -> tuple[Emperor, FakeClock, FakeSpawner]:
    clock = FakeClock()
    spawner = FakeSpawner(clock)
    for folder in ("a", "b"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    emperor = Emperor(
        [str(root / "a" / "*.ini"), str(root / "b" / "*.ini")],
        EmperorOptions(
            uwsgi=Path("uwsgi"),
            run_dir=root / "run",
            stop_timeout=STOP_TIMEOUT,
            hold_sockets=False,
        ),
        printer=Printer(io.StringIO(), colour=False),
        spawner=spawner,
        timers=clock,
    )
    return emperor, clock, spawner


class Files:
    """Config files with distinct, settled stamps; remembers which contents are whole."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.versions = 0
        self.whole: set[bytes] = set()

    def write(self, slot: str, kind: str) -> None:
        self.versions += 1
        text = f"[uwsgi]\nhttp-socket = 127.0.0.1:0\n; version {self.versions}\n"
        content = (seal.seal(text) if kind.startswith("sealed") else text).encode()
        if kind == "sealed, half written":
            content = content[: len(content) - 10]
        else:
            self.whole.add(content)
        path = self.root / slot
        path.write_bytes(content)
        self.settle(path)

    def settle(self, path: Path) -> None:
        """Old enough that the scanner does not wait for it to settle; unique per write."""
        moment = int((time.time() - 60) * 1e9) + self.versions * 1000
        os.utime(path, ns=(moment, moment))


def test_a_file_moved_between_globs_is_never_run_twice(tmp_path: Path) -> None:
    emperor, _, spawner = fake_emperor(tmp_path)
    files = Files(tmp_path)
    files.write("a/web.ini", "sealed")
    emperor.reconcile()
    old = spawner.child("web")
    assert old is not None
    old.say(FromVassal.ACCEPTING)
    (tmp_path / "a/web.ini").rename(tmp_path / "b/web.ini")
    emperor.reconcile()
    assert emperor.vassals["web"].state is State.PENDING
    assert spawner.live == [old]
    old.exit(0)
    new = spawner.child("web")
    assert new is not None and new.config.path == tmp_path / "b/web.ini"


def test_a_half_written_sealed_file_is_held_and_the_old_one_keeps_serving(
    tmp_path: Path,
) -> None:
    emperor, _, spawner = fake_emperor(tmp_path)
    files = Files(tmp_path)
    files.write("a/web.ini", "sealed")
    emperor.reconcile()
    child = spawner.child("web")
    assert child is not None
    child.say(FromVassal.ACCEPTING)
    files.write("a/web.ini", "sealed, half written")
    emperor.reconcile()
    assert emperor.vassals["web"].state is State.READY and child.sent == []
    files.write("a/web.ini", "sealed")
    emperor.reconcile()
    assert emperor.vassals["web"].state is State.RELOADING


def test_a_young_unsealed_file_waits_to_settle(tmp_path: Path) -> None:
    emperor, clock, spawner = fake_emperor(tmp_path)
    (tmp_path / "a/web.ini").write_text("[uwsgi]\nhttp-socket = 127.0.0.1:0\n")
    emperor.reconcile()
    assert spawner.spawned == [] and clock.pending(), "a look again is due"
    time.sleep(0.03)
    clock.advance(0.03)
    assert len(spawner.spawned) == 1


class RandomFiles(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp())
        self.emperor, self.clock, self.spawner = fake_emperor(self.root)
        self.files = Files(self.root)
        self.retired_seen: dict[int, float] = {}

    def teardown(self) -> None:
        for vassal in self.emperor.every_vassal():
            vassal.request_stop("the test is over")
        self.clock.advance(60)
        assert self.spawner.live == []
        shutil.rmtree(self.root)

    def live(self) -> list[FakeChild]:
        return list(self.spawner.live)

    def noticed(self, now: bool) -> None:
        """inotify wakes the Emperor at once, or after more changes came."""
        if now:
            self.emperor.reconcile()

    @rule(slot=st.sampled_from(SLOTS), kind=st.sampled_from(KINDS), now=st.booleans())
    def write(self, slot: str, kind: str, now: bool) -> None:
        self.files.write(slot, kind)
        self.noticed(now)

    @rule(slot=st.sampled_from(SLOTS), now=st.booleans())
    def delete(self, slot: str, now: bool) -> None:
        (self.root / slot).unlink(missing_ok=True)
        self.noticed(now)

    @rule(source=st.sampled_from(SLOTS), to=st.sampled_from(SLOTS), now=st.booleans())
    def rename(self, source: str, to: str, now: bool) -> None:
        if (self.root / source).exists():
            (self.root / source).rename(self.root / to)
        self.noticed(now)

    @rule()
    def inotify_says_something_changed(self) -> None:
        self.emperor.reconcile()

    @precondition(lambda self: self.spawner.live)
    @rule(data=st.data())
    def uwsgi_starts_serving(self, data: st.DataObject) -> None:
        child = data.draw(st.sampled_from(self.live()))
        child.print(STARTING_LINE)
        child.say(FromVassal.SPAWNED)
        child.say(FromVassal.ACCEPTING)

    @precondition(lambda self: self.spawner.live)
    @rule(data=st.data(), message=st.sampled_from(MESSAGES))
    def uwsgi_says(self, data: st.DataObject, message: int) -> None:
        data.draw(st.sampled_from(self.live())).say(message)

    @precondition(lambda self: self.spawner.live)
    @rule(data=st.data(), code=st.sampled_from([0, 1, -signal.SIGKILL]))
    def uwsgi_exits(self, data: st.DataObject, code: int) -> None:
        data.draw(st.sampled_from(self.live())).exit(code)

    @rule()
    def toolkit_reload(self) -> None:
        self.emperor.reload(list(self.emperor.vassals.values()))

    @precondition(lambda self: self.emperor.vassals)
    @rule(data=st.data())
    def toolkit_stop(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(self.emperor.vassals)))
        self.emperor.vassals[name].request_stop("asked by `toolkit stop`")

    @rule(seconds=st.sampled_from([0.001, 0.3, 2.5, 31.0]))
    def time_passes(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def only_whole_configs_are_served(self) -> None:
        for vassal in self.emperor.vassals.values():
            child = vassal.child
            if vassal.state in SERVING and isinstance(child, FakeChild):
                assert child.content in self.files.whole

    @invariant()
    def retired_vassals_are_gone_within_their_bound(self) -> None:
        current = {
            id(v.child) for v in self.emperor.vassals.values() if v.state is not State.STOPPING
        }
        for child in self.live():
            if id(child) in current:
                self.retired_seen.pop(child.pid, None)
                continue
            first = self.retired_seen.setdefault(child.pid, self.clock.now())
            assert self.clock.now() - first <= STOP_TIMEOUT + KILL_LATENCY


RandomFiles.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_random_files = RandomFiles.TestCase
