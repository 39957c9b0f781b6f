"""A rendered config's first line carries the sha256 of the rest, so a half-copied file is
never run.

toolkit writes its own files atomically, but a rendered file shipped with scp, `cat >`, or an
editor that rewrites in place passes through truncated states. Whatever part of a sealed
file has arrived does not match its seal, so the Emperor waits for the rest; an unsealed
file can only be judged by how recently it changed.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

TYPE_CHECKING = False  # the Emperor never loads typing (toolkit/emperor/__init__.py)
if TYPE_CHECKING:
    from typing import Any


def _builtin_sha256() -> Callable[[bytes], Any]:
    """The interpreter's own SHA-256, not OpenSSL's: hashlib would map libcrypto (about
    3 MB) into the Emperor, which only ever needs this one digest."""
    for name in ("_sha256", "_sha2"):  # Python 3.11, then 3.12 and later
        try:
            return importlib.import_module(name).sha256  # type: ignore[no-any-return]
        except ImportError:
            continue
    import hashlib

    return hashlib.sha256


sha256 = _builtin_sha256()
PREFIX = b"# toolkit-sha256: "
SEALED_LINE = re.compile(re.escape(PREFIX) + rb"([0-9a-f]{64})\b[^\n]*\n")
NOTE = "of the lines below"


def seal(text: str) -> str:
    """The text under a first line holding its digest."""
    digest = sha256(text.encode()).hexdigest()
    return f"{PREFIX.decode()}{digest} ({NOTE})\n{text}"


def broken(content: bytes) -> str | None:
    """Why a sealed file cannot be run as it is; None when it is intact or carries no seal."""
    if not content.startswith(PREFIX):
        return None
    line = SEALED_LINE.match(content)
    if line is None:
        return "its toolkit-sha256 seal line is incomplete"
    if sha256(content[line.end() :]).hexdigest() != line.group(1).decode():
        return "its content does not match its toolkit-sha256 seal"
    return None
