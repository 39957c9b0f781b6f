"""Secrets for the app: run by uWSGI inside the app's own Python (`import = <this file>`), before
the app is imported, it sets each `NAME=value` line of the file TOOLKIT_ENV_FILE names as an
environment variable, byte for byte.

Why not uWSGI's `for-readline` and `env`: every option value goes through uWSGI's config
language, so a secret holding `$(...)`, `@(...)` or `%(...)` reached the app rewritten, and
`@(exec://...)` in it ran a command. Here the file is data: nothing in it is expanded. It
is read again at every start and reload, and never copied anywhere.

This file imports only the standard library: it runs in the app's interpreter, which sees
neither toolkit nor its dependencies. Lines that are blank or start with `#` are skipped;
the value is everything after the first `=`, quotes included, up to the end of the line.
"""

from __future__ import annotations

import os
import re
import stat
import sys

VARIABLE = "TOOLKIT_ENV_FILE"
LIMIT = 1 << 20
NAME = re.compile(rb"^[A-Za-z_][A-Za-z0-9_]*$")


def read(path: str) -> bytes:
    """A regular file of at most LIMIT bytes (never a FIFO or a device that would hang)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"not a regular file: {path}")
        if info.st_size > LIMIT:
            raise OSError(f"larger than {LIMIT} bytes: {path}")
        with os.fdopen(fd, "rb", closefd=False) as stream:
            return stream.read(LIMIT + 1)
    finally:
        os.close(fd)


def variables(data: bytes, path: str) -> dict[bytes, bytes]:
    found: dict[bytes, bytes] = {}
    for number, line in enumerate(data.split(b"\n"), start=1):
        line = line.removesuffix(b"\r")
        if not line.strip() or line.lstrip().startswith(b"#"):
            continue
        name, equal, value = line.partition(b"=")
        if not equal or not NAME.match(name):
            sys.stderr.write(f"toolkit: {path}:{number}: not NAME=value, skipped\n")
            continue
        found[name] = value
    return found


def load() -> None:
    path = os.environ.pop(VARIABLE, "")
    if not path:
        return
    try:
        found = variables(read(path), path)
    except OSError as error:
        sys.stderr.write(f"toolkit: cannot read the env file: {error}\n")
        sys.stderr.flush()
        os._exit(1)
    os.environb.update(found)


load()
