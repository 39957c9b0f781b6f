"""The `releases/` folder, and the only module that reads or writes it: one record per release
(`ID.json`), its code (`ID/`), its staging log (`ID.log`), and `live`, which names the release
that serves.

One error policy: a record or `live` that cannot be read is an error naming the file (exit
2), never a silent fallback to other code; only a missing `live` means "no release yet"."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.apply import write_atomically
from toolkit.errors import ToolkitError
from toolkit.files import inside, read_regular

if TYPE_CHECKING:
    from toolkit.settings import RawValue

FOLDER = "releases"
# Where state that is not code lives once (toolkit.release_code links it into each release).
SHARED = "shared"
LIVE = "live"
# Letters, digits, dot, dash and underscore, not starting with a dot: never a separator,
# never `..`, never anything uWSGI reads specially in a file name (`:`, `@`, `%`, `$`).
ID_SHAPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


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


def check_id(release_id: str, where: Path | str | None = None) -> str:
    """A release ID becomes a path: refuse any that could leave releases/."""
    if not ID_SHAPE.match(release_id) or ".." in release_id:
        raise ToolkitError(
            f"not a release ID: {release_id!r}",
            file=where,
            hint="`toolkit releases DIR` lists them",
        )
    return release_id


def layer(
    release: Release, base: Mapping[str, Any], root: Path, source: str
) -> dict[str, RawValue]:
    """The release's code, port and ID, as a layer over the variables without it (`base`).

    Static folders follow the code: one inside the app folder (deploy.ini's `pythonpath`)
    is served from the release's own copy, so a stylesheet changes with a release and back
    with a rollback; one inside a shared path (uploads) from shared/."""
    from toolkit.settings import RawValue

    code = Path(os.path.normpath(root / str(base["pythonpath"])))
    own = f"{FOLDER}/{release.id}"
    shared = [str(path).rstrip("/") for path in base.get("shared") or []]

    def served_from(folder: str) -> str:
        where = Path(os.path.normpath(root / folder))
        if not where.is_relative_to(code):
            return folder
        relative = where.relative_to(code).as_posix()
        for path in shared:
            if relative == path or relative.startswith(path + "/"):
                return f"{SHARED}/{relative}"
        return f"{own}/{relative}" if relative != "." else own

    found = {
        "release": RawValue(release.id, source),
        "pythonpath": RawValue(own, source),
        "app_port": RawValue(str(release.port), source),
    }
    if base.get("static_dir"):
        found["static_dir"] = RawValue(served_from(str(base["static_dir"])), source)
    if base.get("paste"):  # the app's PasteDeploy file ships with its code
        found["paste"] = RawValue(served_from(str(base["paste"])), source)
    maps = [
        f"{prefix}={served_from(folder)}"
        for prefix, _, folder in (item.partition("=") for item in base.get("static_maps") or [])
    ]
    if maps:
        found["static_maps"] = RawValue(", ".join(maps), source, tuple(maps))
    return found


@dataclass(frozen=True)
class Store:
    """A deployment's releases: `root` is the deployment folder."""

    root: Path

    @property
    def folder(self) -> Path:
        return self.root / FOLDER

    @property
    def live_file(self) -> Path:
        return self.folder / LIVE

    def _within(self, name: str) -> Path:
        return inside(self.root, self.folder / name)

    def code(self, release_id: str) -> Path:
        return self._within(check_id(release_id))

    def log(self, release_id: str) -> Path:
        return self._within(f"{check_id(release_id)}.log")

    def _record_file(self, release_id: str) -> Path:
        return self._within(f"{check_id(release_id)}.json")

    def live_id(self) -> str | None:
        """The ID `live` names; None when no release was ever made live."""
        try:
            text = read_regular(self.live_file, "release pointer").decode("utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as error:
            raise ToolkitError(
                f"cannot read the live release: {error}", file=self.live_file
            ) from None
        release_id = text.strip()
        if not ID_SHAPE.match(release_id) or ".." in release_id:
            raise ToolkitError(
                f"the live release is not a release ID: {release_id[:60]!r}",
                file=self.live_file,
                hint="write the ID of a release `toolkit releases DIR` lists into it, or "
                "remove it to run deploy.ini's code",
            )
        return release_id

    def read(self, release_id: str) -> Release:
        path = self._record_file(release_id)
        try:
            data = json.loads(read_regular(path, "release record"))
        except FileNotFoundError:
            raise ToolkitError(
                f"no release {release_id!r}", file=path, hint="`toolkit releases DIR` lists them"
            ) from None
        except (OSError, ValueError) as error:
            raise ToolkitError(f"corrupt release record: {error}", file=path) from None
        names = {f.name for f in fields(Release)}
        if not isinstance(data, dict) or set(data) != names:
            raise ToolkitError(
                f"corrupt release record: expected the fields {', '.join(sorted(names))}",
                file=path,
            )
        try:
            release = Release(
                id=check_id(str(data["id"]), path),
                source=str(data["source"]),
                commit=str(data["commit"]),
                created=float(data["created"]),
                port=int(data["port"]),
            )
        except (TypeError, ValueError) as error:
            raise ToolkitError(f"corrupt release record: {error}", file=path) from None
        if release.id != release_id:
            raise ToolkitError(f"corrupt release record: it names {release.id!r}", file=path)
        return release

    def live(self) -> Release | None:
        """The live release's record; an error if `live` names one that is not there."""
        release_id = self.live_id()
        if release_id is None:
            return None
        try:
            return self.read(release_id)
        except ToolkitError as error:
            raise ToolkitError(
                f"the live release {release_id} cannot be read: {error}", file=self.live_file
            ) from None

    def live_layer(self, base: Mapping[str, Any]) -> dict[str, RawValue]:
        """The live release as a layer over `base` (the variables without it)."""
        release = self.live()
        return {} if release is None else layer(release, base, self.root, str(self.live_file))

    def all(self) -> list[Release]:
        """Every recorded release, oldest first."""
        found = [self.read(path.stem) for path in self.folder.glob("*.json")]
        return sorted(found, key=lambda release: (release.created, release.id))

    def record(self, release: Release) -> None:
        write_atomically(self._record_file(release.id), json.dumps(asdict(release)))

    def set_live(self, release_id: str | None) -> None:
        """Make a release live, or none (deploy.ini's own code runs again)."""
        if release_id is None:
            self.live_file.unlink(missing_ok=True)
        else:
            write_atomically(inside(self.root, self.live_file), check_id(release_id) + "\n")

    def remove(self, release_id: str) -> None:
        """Its code, record and log."""
        shutil.rmtree(self.code(release_id), ignore_errors=True)
        self._record_file(release_id).unlink(missing_ok=True)
        self.log(release_id).unlink(missing_ok=True)

    def clean_leftovers(self) -> None:
        """What a release killed half-way left: code never recorded, since it never proved
        healthy, and its staging log."""
        for path in self.folder.glob("*"):
            recorded = (self.folder / f"{path.stem if path.is_file() else path.name}.json").exists()
            if path.is_dir() and not recorded:
                shutil.rmtree(path, ignore_errors=True)
            elif path.suffix == ".log" and not recorded:
                path.unlink(missing_ok=True)

    def prune(self, keep: int) -> list[str]:
        """Drop the oldest releases beyond `keep`, never the live one nor the one before it."""
        known = [r.id for r in self.all()]
        live = self.live_id()
        protected = {live}
        if live in known and known.index(live) > 0:
            protected.add(known[known.index(live) - 1])
        removable = [i for i in known if i not in protected]
        pruned = removable[: max(0, len(known) - keep)]
        for release_id in pruned:
            self.remove(release_id)
        return pruned
