"""Why a worker or a vassal died, in words, from what uWSGI prints and what the kernel says;
"unknown" with the raw facts when neither tells.

uWSGI's master prints each worker's end (core/master.c, the reaping loop):
`DAMN ! worker N (pid: P) died, killed by signal S :( trying respawn ...`, or `died :(`
for an exit, or `worker N killed successfully (pid: P)` for one it retired itself (its
`...The work of process P is done. Seeya!` before: max-requests, reload-on-rss). A
harakiri comes first: `*** HARAKIRI ON WORKER N (pid: P, ...) ***`, then the request in
hand (`HARAKIRI [core C] ADDR - METHOD URI since EPOCH`, uwsgi_dump_worker()), then, where
the template sets a graceful harakiri signal, the Python stack that faulthandler prints.
The kernel's OOM killer says `Killed process P (...)` in its log (/dev/kmsg)."""

from __future__ import annotations

import os
import re
import signal
from dataclasses import dataclass, field

HARAKIRI = re.compile(r"\*\*\* HARAKIRI ON WORKER (\d+) \(pid: (\d+)")
HARAKIRI_REQUEST = re.compile(r"HARAKIRI \[core \d+\] \S* - (\S+) (\S+) since (\d+)")
DIED_BY_SIGNAL = re.compile(
    r"DAMN ! worker (\d+) \(pid: (\d+)\) (?:MISTERIOUSLY )?\S* ?killed by signal (\d+)"
)
DIED = re.compile(r"DAMN ! worker (\d+) \(pid: (\d+)\) died :\(")
# uWSGI's own handler for SIGSEGV/SIGFPE (core/uwsgi.c, uwsgi_segfault): it prints this and
# a C backtrace, then exits with 1 (its kill() of itself is blocked inside the handler).
CRASHED = re.compile(
    r"!!! uWSGI process (\d+) got (Segmentation Fault|Floating Point Exception) !!!"
)
CRASH_SIGNALS = {"Segmentation Fault": "SIGSEGV", "Floating Point Exception": "SIGFPE"}
SEEYA = re.compile(r"\.\.\.The work of process (\d+) is done\. Seeya!")
RETIRED = re.compile(r"worker (\d+) killed successfully \(pid: (\d+)\)")
# faulthandler's dump: a thread's header, then its frames, innermost first.
FRAME = re.compile(r'\s+File "([^"]+)", line (\d+) in (\S+)')
# What starts each of the master's harakiri lines (uwsgi_log_verbose: the date, then " - ").
MASTER_STAMP = re.compile(r"[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d (?:\d\d:\d\d:\d\d )?\d{4} - ")
# Frames that are the machinery around a request, not where the app was.
NOT_THE_APP = ("/threading.py", "/socketserver.py", "/selectors.py")
# How each explanation below starts, and the one word for its kind.
CAUSES = (
    ("killed by harakiri", "harakiri"),
    ("killed by the kernel's OOM", "oom"),
    ("crashed", "crash"),
    ("recycled", "recycled"),
    ("exited on its own", "exit"),
)
KERNEL_LOG = "/dev/kmsg"
KERNEL_LOG_LIMIT = 4 * 1024 * 1024


@dataclass
class Harakiri:
    worker: int
    request: str = ""
    since: int | None = None
    frames: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Death:
    worker: int
    pid: int
    why: str

    def __str__(self) -> str:
        return f"worker {self.worker} (pid {self.pid}) {self.why}"

    @property
    def cause(self) -> str:
        """One word for counting deaths by kind (the metrics' `cause` label)."""
        return next((word for start, word in CAUSES if self.why.startswith(start)), "signal")


class WorkerDeaths:
    """Reads a vassal's output line by line; `line()` returns a Death when one is complete.
    `harakiri` is the vassal's harakiri setting (seconds), said with the request."""

    def __init__(self, harakiri: int = 0) -> None:
        self.harakiri = harakiri
        self._harakiri: dict[int, Harakiri] = {}
        self._current: Harakiri | None = None
        self._retiring: set[int] = set()
        self._crashed: dict[int, str] = {}
        self._fragment = ""

    def _unwoven(self, text: str) -> str:
        """During a harakiri the worker's stack and the master's lines share one pipe.
        faulthandler writes a frame a piece at a time, the master a whole line at once, so a
        master line can land inside a frame and run to the end of the line: the frame goes on
        at the start of the next line. The piece before such a line is kept until the frame
        is whole; a line is returned as its writer wrote it."""
        if MASTER_STAMP.match(text):
            return text
        stamp = MASTER_STAMP.search(text, 1)
        if stamp is None:
            whole, self._fragment = self._fragment + text, ""
            return whole
        self._fragment += text[: stamp.start()]
        return text[stamp.start() :]

    def line(self, text: str, now: float) -> Death | None:
        if self._current is not None:
            text = self._unwoven(text)
        if found := HARAKIRI.search(text):
            # Its second try (the kill after the graceful signal) is the same harakiri.
            pid = int(found.group(2))
            self._current = self._harakiri.setdefault(pid, Harakiri(int(found.group(1))))
            return None
        if self._current is not None and (found := HARAKIRI_REQUEST.search(text)):
            self._current.request = f"{found.group(1)} {found.group(2)}"
            self._current.since = int(found.group(3))
            return None
        # The worker's stack, printed on the graceful signal, between the harakiri and the
        # kill; its lines may come interleaved with the master's (one pipe, two writers), so
        # the frames are read whatever their thread header became.
        if self._current is not None and (found := FRAME.search(text)):
            where = f"{os.path.basename(found.group(1))}:{found.group(2)} in {found.group(3)}"
            if not found.group(1).endswith(NOT_THE_APP) and len(self._current.frames) < 3:
                self._current.frames.append(where)
            return None
        if found := CRASHED.search(text):
            self._crashed[int(found.group(1))] = CRASH_SIGNALS[found.group(2)]
            return None
        if found := SEEYA.search(text):
            self._retiring.add(int(found.group(1)))
            return None
        if found := RETIRED.search(text):
            worker, pid = int(found.group(1)), int(found.group(2))
            if pid in self._retiring:
                self._retiring.discard(pid)
                return Death(worker, pid, "recycled (max-requests or reload-on-rss): not a failure")
            return None
        if found := DIED_BY_SIGNAL.search(text):
            worker, pid, number = (int(g) for g in found.groups())
            return Death(worker, pid, self._by_signal(pid, number, now))
        if found := DIED.search(text):
            worker, pid = int(found.group(1)), int(found.group(2))
            self._harakiri.pop(pid, None)
            if (crash := self._crashed.pop(pid, None)) is not None:
                return Death(worker, pid, f"{crashed(crash)}; uWSGI printed its C backtrace above")
            return Death(
                worker, pid, "exited on its own, not by a signal (the lines above say why)"
            )
        return None

    def _by_signal(self, pid: int, number: int, now: float) -> str:
        harakiri = self._harakiri.pop(pid, None)
        if self._current is harakiri:
            self._current, self._fragment = None, ""
        if harakiri is not None:
            return self._harakiri_said(harakiri, now)
        return by_signal(pid, number)

    def _harakiri_said(self, harakiri: Harakiri, now: float) -> str:
        limit = f" (harakiri = {self.harakiri} s)" if self.harakiri else ""
        request = harakiri.request or "a request"
        took = f" for {round(now - harakiri.since)} s" if harakiri.since else ""
        stack = f"; it was in {' <- '.join(harakiri.frames)}" if harakiri.frames else ""
        return f"killed by harakiri: {request} ran{took}{limit}{stack}"


def by_signal(pid: int, number: int) -> str:
    """A death by a signal that neither toolkit nor uWSGI's harakiri sent: what it was."""
    name = _name(number)
    if number in (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT):
        return crashed(name)
    if number != signal.SIGKILL:
        return f"ended by {name} from another process (the kernel does not say which)"
    oom = oom_killed(pid)
    if oom is True:
        return "killed by the kernel's OOM killer: out of memory (the kernel log says so)"
    if oom is False:
        return (
            "killed by SIGKILL from another process: not the OOM killer (the kernel log names "
            "no such kill), not toolkit, not uWSGI's harakiri"
        )
    return (
        "killed by SIGKILL; whether by the OOM killer cannot be told here (the kernel log "
        "is not readable)"
    )


def crashed(name: str) -> str:
    what = {"SIGSEGV": ", a segmentation fault", "SIGFPE": ", an arithmetic fault"}.get(name, "")
    return f"crashed: {name}{what} (in C code: an extension or uWSGI)"


def master_exit(code: int, pid: int) -> str:
    """Why a vassal's master ended, when a signal ended it; "" for an exit code."""
    return by_signal(pid, -code) if code < 0 else ""


def _name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def oom_killed(pid: int) -> bool | None:
    """Whether the kernel log records an OOM kill of `pid`; None when it cannot be read."""
    try:
        fd = os.open(KERNEL_LOG, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    wanted = f"Killed process {pid} (".encode()
    read = 0
    try:
        while read < KERNEL_LOG_LIMIT:
            try:
                record = os.read(fd, 8192)
            except BlockingIOError:
                return False
            except OSError:  # EPIPE: a record overwritten while read; go on
                continue
            if not record:
                return False
            read += len(record)
            if wanted in record:
                return True
        return False
    finally:
        os.close(fd)
