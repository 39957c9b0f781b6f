"""tutorial/CLAIMS.md: every claim marked in a chapter has a proof, and every proof holds
(the test exists; the cited uWSGI source line says what the ledger quotes)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from toolkit import tutorial

ROOT = Path(__file__).resolve().parent.parent
LEDGER = ROOT / "tutorial" / "CLAIMS.md"
ROW = re.compile(r"^\| ([a-z0-9-]+) \| (\d\d) \| (.+) \|$", re.MULTILINE)
SOURCE = re.compile(r"^source (\S+):(\d+) `(.+)`$")
TEST = re.compile(r"^test (\S+)::(\w+)$")


def ledger() -> dict[str, tuple[int, list[str]]]:
    rows: dict[str, tuple[int, list[str]]] = {}
    for claim, chapter, proofs in ROW.findall(LEDGER.read_text()):
        assert claim not in rows, f"{claim} is listed twice"
        rows[claim] = (int(chapter), [p.strip() for p in proofs.split(";")])
    return rows


def test_every_marked_claim_is_in_the_ledger_under_its_chapter() -> None:
    marked = {(claim, c.number) for c in tutorial.chapters() for claim in c.claims}
    listed = {(claim, chapter) for claim, (chapter, _) in ledger().items()}
    assert marked - listed == set(), "claims marked in a chapter but not in CLAIMS.md"
    assert listed - marked == set(), "claims in CLAIMS.md that no chapter marks"
    ids = [claim for c in tutorial.chapters() for claim in c.claims]
    assert len(ids) == len(set(ids)), "a claim id is used twice"


def test_every_test_proof_exists() -> None:
    defined: dict[str, set[str]] = {}
    for claim, (_, proofs) in ledger().items():
        for proof in proofs:
            if (match := TEST.match(proof)) is None:
                assert SOURCE.match(proof), f"{claim}: proof is neither test nor source: {proof}"
                continue
            file, name = match.groups()
            if file not in defined:
                tree = ast.parse((ROOT / file).read_text())
                defined[file] = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            assert name in defined[file], f"{claim}: no test {file}::{name}"


def source_proofs() -> list[tuple[str, str, str, str]]:
    return [
        (claim, match.group(1), match.group(2), match.group(3))
        for claim, (_, proofs) in ledger().items()
        for proof in proofs
        if (match := SOURCE.match(proof))
    ]


@pytest.mark.parametrize(("claim", "file", "line", "quote"), source_proofs())
def test_every_cited_source_line_says_what_is_quoted(
    uwsgi_source: Path, claim: str, file: str, line: str, quote: str
) -> None:
    lines = (uwsgi_source / file).read_text(errors="replace").splitlines()
    assert quote in lines[int(line) - 1], f"{claim}: {file}:{line} is {lines[int(line) - 1]!r}"
