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
ROW = re.compile(r"^\| ([a-z0-9-]+) \| (\d\d) \| (`.+?`) \| (.+) \|$", re.MULTILINE)
PIN = re.compile(r"`([^`]+)`")
SOURCE = re.compile(r"^source (\S+):(\d+) `(.+)`$")
TEST = re.compile(r"^test (\S+)::(\w+)$")


def ledger() -> dict[str, tuple[int, list[str]]]:
    return {claim: (chapter, proofs) for claim, (chapter, _, proofs) in rows().items()}


def rows() -> dict[str, tuple[int, list[str], list[str]]]:
    """claim: (chapter, pins, proofs). A pin is words of the claim's sentence that its proof
    checks: change the sentence's fact and the pin no longer matches it."""
    found: dict[str, tuple[int, list[str], list[str]]] = {}
    for claim, chapter, pins, proofs in ROW.findall(LEDGER.read_text()):
        assert claim not in found, f"{claim} is listed twice"
        found[claim] = (int(chapter), PIN.findall(pins), [p.strip() for p in proofs.split(";")])
    return found


def test_every_marked_claim_is_in_the_ledger_under_its_chapter() -> None:
    marked = {(claim, c.number) for c in tutorial.chapters() for claim in c.claims}
    listed = {(claim, chapter) for claim, (chapter, _) in ledger().items()}
    assert marked - listed == set(), "claims marked in a chapter but not in CLAIMS.md"
    assert listed - marked == set(), "claims in CLAIMS.md that no chapter marks"
    ids = [claim for c in tutorial.chapters() for claim in c.claims]
    assert len(ids) == len(set(ids)), "a claim id is used twice"


def test_every_test_proof_exists() -> None:
    for claim, (_, proofs) in ledger().items():
        for proof in proofs:
            if (match := TEST.match(proof)) is None:
                assert SOURCE.match(proof), f"{claim}: proof is neither test nor source: {proof}"
                continue
            assert proof_text(proof), f"{claim}: no test {match.group(1)}::{match.group(2)}"


def proof_text(proof: str) -> str:
    """What a proof checks: a test function's source, or the quoted source line."""
    if match := SOURCE.match(proof):
        return match.group(3)
    match = TEST.match(proof)
    assert match is not None
    file, name = match.groups()
    text = (ROOT / file).read_text()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.get_source_segment(text, node) or ""
    return ""


def marked_sentences() -> dict[str, str]:
    """claim: the text a reader reads before its marker, back to the previous marker or the
    paragraph before the marker's own (a sentence may sum up the code block above it)."""
    found = {}
    for chapter in tutorial.chapters():
        raw = tutorial.HEADER.sub("", chapter.path.read_text())
        start = 0
        for match in tutorial.CLAIM.finditer(raw):
            paragraphs = raw[start : match.start()].split("\n\n")
            found[match.group(1)] = " ".join("\n\n".join(paragraphs[-2:]).split())
            start = match.end()
    return found


@pytest.mark.parametrize("claim", sorted(rows()))
def test_every_claim_pins_a_fact_of_its_sentence_that_its_proof_checks(claim: str) -> None:
    """A proof beside the point (toolkit's feature for a sentence about uWSGI, a test that
    never looks at the fact) passes whatever the sentence says; a pin ties them: each pin
    is in the sentence, and in a proof that would fail without it."""
    _, pins, proofs = rows()[claim]
    sentence = marked_sentences()[claim].lower()
    assert pins, f"{claim}: no pin"
    for pin in pins:
        assert pin.lower() in " ".join(sentence.split()), f"{claim}: {pin!r} is not in its sentence"
        assert any(pin.lower() in proof_text(proof).lower() for proof in proofs), (
            f"{claim}: no proof checks {pin!r}"
        )


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
