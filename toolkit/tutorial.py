"""The tutorial's chapters: Markdown files whose header says which deployment each one builds."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from toolkit import settings
from toolkit.apply import write_atomically
from toolkit.deployment import Deployment, new
from toolkit.errors import ToolkitError
from toolkit.recipes import data_dir, find_recipe

HEADER = re.compile(r"\A<!-- toolkit\n(.*?)\n-->\n", re.DOTALL)
# Where a sentence states a fact; tutorial/CLAIMS.md names its proof.
CLAIM = re.compile(r" ?<!-- claim: ([a-z0-9-]+) -->")


@dataclass(frozen=True)
class Chapter:
    """A chapter file; `recipe` and `variables` (name=value, ...) say what it runs, if anything."""

    number: int
    title: str
    path: Path
    recipe: str | None
    variables: tuple[str, ...]
    guide: str
    """The page of "uWSGI from the ground up" (funkybob/ugu docs/) this chapter follows."""

    @property
    def text(self) -> str:
        """What a reader sees: no header, no claim markers."""
        return CLAIM.sub("", HEADER.sub("", self.path.read_text()))

    @property
    def claims(self) -> list[str]:
        return CLAIM.findall(self.path.read_text())


def _header(path: Path) -> dict[str, str]:
    match = HEADER.match(path.read_text())
    if match is None:
        raise ToolkitError("chapter without a `<!-- toolkit` header", file=path, line=1)
    fields = {}
    for line in match.group(1).splitlines():
        key, _, value = line.partition("=")
        fields[key.strip()] = value.strip()
    return fields


def chapters() -> list[Chapter]:
    found = []
    for path in sorted(data_dir("tutorial").glob("[0-9][0-9]-*.md")):
        fields = _header(path)
        variables = tuple(v.strip() for v in fields.get("set", "").split(",") if v.strip())
        found.append(
            Chapter(
                int(path.name[:2]),
                fields["title"],
                path,
                fields.get("recipe"),
                variables,
                fields.get("guide", "(not in the guide)"),
            )
        )
    return found


def chapter(number: int) -> Chapter:
    for candidate in chapters():
        if candidate.number == number:
            return candidate
    raise ToolkitError(f"no chapter {number}", hint="`toolkit tutorial list` shows them")


# Above the `--set` values in a chapter's deploy.ini: a later `tutorial run` in the same
# folder keeps them (the reader's ports stay the reader's), whatever chapter it builds.
GIVEN_MARK = "# given with --set: kept by a later `toolkit tutorial run` in this folder"


def build(number: int, root: Path, overrides: list[str]) -> Deployment:
    """Scaffold the chapter's deployment in `root` with its variables, then the `--set` ones
    given now or to an earlier run in this folder."""
    current = chapter(number)
    if current.recipe is None:
        raise ToolkitError(f"chapter {number} has nothing to run", hint="read it with `show`")
    recipe = find_recipe(current.recipe)
    given = settings.parse_overrides([*_given_before(root), *overrides])
    new(root, recipe, force=True)
    layered = {**settings.parse_overrides(current.variables), **given}
    variables = settings.resolve(recipe, layered)
    lines = [f"recipe = {recipe.name}", f"# chapter {number:02d}: {current.title}"]
    lines += [f"{name} = {variables.values[name]}" for name in layered if name not in given]
    if given:
        lines += [GIVEN_MARK, *(f"{name} = {raw.text}" for name, raw in given.items())]
    write_atomically(root / "deploy.ini", "\n".join(lines) + "\n")
    if variables.values.get("https_port"):
        make_certificate(root, variables.values["tls_cert"], variables.values["tls_key"])
    return Deployment(root)


def _given_before(root: Path) -> list[str]:
    """`name=value` for each line below GIVEN_MARK in the folder's deploy.ini."""
    from toolkit.files import read_regular

    try:
        text = read_regular(root / "deploy.ini", "deploy.ini").decode(errors="replace")
    except (OSError, ToolkitError):
        return []
    _, mark, below = text.partition(GIVEN_MARK + "\n")
    lines = [line.partition(" = ") for line in below.splitlines()] if mark else []
    return [f"{name}={value}" for name, equal, value in lines if equal]


def make_certificate(root: Path, cert: str, key: str) -> None:
    """Chapter 14's self-signed certificate for 127.0.0.1, made with the chapter's own
    openssl command, unless the deployment has one already."""
    import subprocess

    if (root / cert).exists() and (root / key).exists():
        return
    (root / cert).parent.mkdir(parents=True, exist_ok=True)
    (root / key).parent.mkdir(parents=True, exist_ok=True)
    command = ["openssl", *OPENSSL_ARGS, "-keyout", str(root / key), "-out", str(root / cert)]
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        raise ToolkitError(
            f"cannot make the chapter's certificate: {error}",
            file=root / cert,
            hint="install openssl, or put a certificate and key there yourself",
        ) from None


# A certificate for the loopback address only, valid 30 days, its key unencrypted.
OPENSSL_ARGS = (
    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
)  # fmt: skip
