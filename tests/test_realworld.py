"""`toolkit check` against real uWSGI's own verdict, on configs modelled on public ones.

Every file in tests/realworld/ reproduces a construct seen in a public repository (its
SOURCES line says where). For each, real uWSGI (`--strict --get`, empty environment)
says which lines it refuses; `toolkit check` must flag each of them, and put an error on
no other line than those its `; expect:` markers name (values uWSGI reads otherwise than
they look, which it accepts without a word)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.option_table import TABLE, render
from tests.support import UWSGI, run_toolkit
from tests.uwsgi_truth import ask_uwsgi, refused_lines
from toolkit import uwsgi_config
from toolkit.check import RULES, Context, Problem, Severity, Weight, check, context_for
from toolkit.uwsgi_config import LocalMachine
from toolkit.uwsgi_options import option_table

CORPUS = Path(__file__).parent / "realworld"
EXPECT = re.compile(r"^; expect: (\w+) (\d+)$", re.MULTILINE)
SOURCES = re.compile(r"^; SOURCES: (\S+) (.+)$", re.MULTILINE)
# Warnings that may carry a refusal: placeholders in a file without strict, keys in a block
# not taken here, and what depends on the machine (this is a loose file, not a deployment).
REFUSAL_WARNINGS = {"U103", "U104"} | {r.id for r in RULES if r.weight is Weight.MACHINE}
PLUGIN_LINES = re.compile(r"\(line ([\d, ]+)\)")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the corpus: uWSGI creates what some files ask for (a spooler folder)."""
    target = tmp_path_factory.mktemp("realworld") / "realworld"
    shutil.copytree(CORPUS, target)
    return target


def loose_context(cwd: Path) -> Context:
    """Loose files on a machine with an empty environment, as uWSGI's verdict is taken."""
    context = context_for(UWSGI.resolve(), here=False, cwd=cwd)
    return dataclasses.replace(context, machine=LocalMachine(cwd, {}, context.catalog.plugins))


@pytest.fixture(scope="module")
def loose(workdir: Path) -> Context:
    return loose_context(workdir)


def flagged_lines(problems: list[Problem], path: Path) -> tuple[set[int], set[int]]:
    """(lines with an error, lines flagged by an error or a refusal warning) in `path`."""
    mine = [p for p in problems if Path(p.file) == path]
    errors = {p.line for p in mine if p.severity is Severity.ERROR}
    flagged = errors | {p.line for p in mine if p.rule in REFUSAL_WARNINGS}
    for problem in mine:
        covered = PLUGIN_LINES.search(problem.message) if problem.rule == "U102" else None
        if covered:
            flagged |= {int(n) for n in covered.group(1).split(", ")}
    return errors, flagged


def test_the_corpus_is_large_and_says_where_each_file_comes_from() -> None:
    files = sorted(CORPUS.glob("*.ini"))
    assert len(files) >= 60
    repositories = set()
    for path in files:
        source = SOURCES.search(path.read_text())
        assert source, f"{path.name} has no SOURCES line"
        repositories.add(source.group(1))
    assert len(repositories) >= 25


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.ini")))
def test_check_flags_exactly_what_uwsgi_refuses(name: str, workdir: Path, loose: Context) -> None:
    path = workdir / name
    refused = refused_lines(path, workdir)
    problems = check([uwsgi_config.load(path, loose.machine)], loose)
    errors, flagged = flagged_lines(problems, path)
    misread = {int(line) for _, line in EXPECT.findall(path.read_text())}
    report = "\n".join(map(str, problems))
    assert refused <= flagged, f"uWSGI refuses lines {sorted(refused - flagged)}:\n{report}"
    assert errors <= refused | misread, f"errors on valid lines:\n{report}"
    assert misread <= errors, report


def test_a_section_of_a_file_is_checked_as_uwsgi_reads_it(workdir: Path) -> None:
    path = workdir / "zerg_sections.ini"
    assert not ask_uwsgi(path, workdir, "zerg").refused
    result = run_toolkit("check", f"{path}:zerg", cwd=workdir)
    assert result.returncode == 0, result.stdout
    broken = workdir / "zerg_typo.ini"
    broken.write_text(path.read_text().replace("zerg = /tmp", "zergg = /tmp"))
    assert ask_uwsgi(broken, workdir, "zerg").refused
    result = run_toolkit("check", f"{broken}:zerg", cwd=workdir)
    assert result.returncode == 1
    assert f"{broken}:13: U100 error: unknown option 'zergg'" in result.stdout
    assert run_toolkit("check", f"{broken}:nosuch", cwd=workdir).returncode == 1


def test_an_included_file_is_checked_at_its_own_lines(tmp_path: Path) -> None:
    (tmp_path / "base.ini").write_text("[uwsgi]\nmaster = true\nproceses = 4\n")
    main = tmp_path / "main.ini"
    main.write_text("[uwsgi]\nstrict = true\nini = %dbase.ini\nsocket = 127.0.0.1:0\n")
    assert ask_uwsgi(main, tmp_path).refused
    result = run_toolkit("check", main, cwd=tmp_path)
    assert result.returncode == 1
    assert f"{tmp_path / 'base.ini'}:3: U100 error: unknown option 'proceses'" in result.stdout


def test_include_loops_and_missing_includes(tmp_path: Path) -> None:
    loop = tmp_path / "a.ini"
    loop.write_text("[uwsgi]\nsocket = 127.0.0.1:0\nini = %db.ini\n")
    (tmp_path / "b.ini").write_text("[uwsgi]\nini = %da.ini\n")
    assert ask_uwsgi(loop, tmp_path).code < 0 or ask_uwsgi(loop, tmp_path).code > 128
    result = run_toolkit("check", loop, cwd=tmp_path)
    assert result.returncode == 1
    assert "U005 error: include loop (a.ini:uwsgi -> b.ini:uwsgi -> a.ini:uwsgi)" in (result.stdout)
    missing = tmp_path / "missing.ini"
    missing.write_text("[uwsgi]\nsocket = 127.0.0.1:0\nini = nowhere.ini\n")
    assert ask_uwsgi(missing, tmp_path).refused
    loose = run_toolkit("check", missing, cwd=tmp_path)
    assert loose.returncode == 0
    assert f"{missing}:3: U004 warning" in loose.stdout
    here = run_toolkit("check", "--here", missing, cwd=tmp_path)
    assert here.returncode == 1
    assert f"{missing}:3: U004 error" in here.stdout


# What uWSGI's placeholder pass makes of a value (core/utils.c uwsgi_apply_config_pass,
# core/config.c uwsgi_manage_placeholder): nested parentheses, math, unknown names.
EXPANSIONS = [
    "%((%k * 2) + 1)",
    "%(%k * 2 + 1)",
    "%(-1 + 3)",
    "%(n * n)",
    "%(n ++)",
    "%(7 / 2)",
    "%(n / 0)",
    "%(word n)",
    "x%(n)y%(n)z",
    "%(a%b)",
    "%()",
    "%(missing)",
    "%(missing + 1)",
    "%(word)%(word)",
    "100%",
    "%j %i %b %J %S",
]


@pytest.mark.parametrize("written", EXPANSIONS)
def test_placeholders_are_expanded_as_uwsgi_expands_them(written: str, tmp_path: Path) -> None:
    path = tmp_path / "vassal.ini"
    path.write_text(f"[uwsgi]\nn = 5\nword = ab\nvalue = {written}\n")
    asked = subprocess.run(
        [str(UWSGI), "--ini", str(path), "--get", "value"],
        cwd=tmp_path,
        env={},
        capture_output=True,
        text=True,
        timeout=20,
        stdin=subprocess.DEVNULL,
    )
    uwsgi_says = asked.stdout.splitlines()[-1] if asked.stdout else ""
    config = uwsgi_config.load(path, LocalMachine(tmp_path, {}, binary=str(UWSGI.resolve())))
    setting = config.last("value")
    assert setting is not None
    assert setting.value == uwsgi_says, asked.stdout + asked.stderr


# --- generated configs: the same agreement on constructs combined at random ---------------

PLAIN = [
    "master = true",
    "processes = 2",
    "workers = 3",
    "threads = 2",
    "vacuum = false",
    "socket = 127.0.0.1:0",
    "http-socket = 127.0.0.1:0",
    "harakiri = 60 ; kill slow requests",
    "max-requests = 1000       # restart workers after this many",
    "reload-mercy = 30 seconds",
    "app = mysite",
    "procname-prefix = %(app)-",
    "http-keepalive = 1",
    "env = A=$(HOME)",
    "master",
    "enable-threads",
    "die-on-term",
    "; a comment",
    "# another comment",
    "",
    "print = %(_) and %(master)",
    "offload-threads = %k",
    "route-run = log:hello",
    "route-if = equal:${PATH_INFO};/x break:403",
]
MISREAD = [
    "threads = true",
    "buffer-size = 64k",
    "vacuum = false ; note",
    "master = n",
    "http-keepalive = true",
    "processes = %((%k * 2) + 1)",
    'env = "DJANGO_SETTINGS_MODULE=mysite.settings"',
    "buffer-size = 32 KB",
]
REFUSED = [
    "proceses = 2",
    "enable-thread",
    "route-if = equalz:${PATH_INFO};/x break:403",
    "route-run = lgo:x",
    "route = ^/x",
    "processes = -1",
    "end =",
    "else =",
    "strict-mode = true",
    "RuntimeDirectory = uwsgi",
    "static-map /static=./static",
]
CONDITIONS = ["if-env = HOME", "if-not-env = HOME", "if-opt = master", "if-exists = /tmp"]


@st.composite
def configs(draw: st.DrawFn) -> tuple[str, set[int]]:
    """A config and the lines of it that a reader would misread (numbered from 1)."""
    lines = ["[uwsgi]"]
    misread: set[int] = set()
    if draw(st.booleans()):
        lines.append("strict = true")
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["plain", "plain", "misread", "refused", "block", "ph"]))
        if kind == "plain":
            lines.append(draw(st.sampled_from(PLAIN)))
        elif kind == "misread":
            lines.append(draw(st.sampled_from(MISREAD)))
            misread.add(len(lines))
        elif kind == "refused":
            lines.append(draw(st.sampled_from(REFUSED)))
        elif kind == "ph":
            name = f"name_{len(lines)}"
            lines += [f"{name} = /tmp", f"chdir = %({name})"]
        else:
            lines.append(draw(st.sampled_from(CONDITIONS)))
            inner = draw(st.lists(st.sampled_from(PLAIN + REFUSED), min_size=1, max_size=3))
            lines += [f"  {line}" for line in inner]
            lines.append("endif =")
    return "\n".join(lines) + "\n", misread


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=configs())
def test_generated_configs_agree_with_uwsgi(
    case: tuple[str, set[int]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    text, misread = case
    folder = tmp_path_factory.mktemp("generated")
    path = folder / "vassal.ini"
    path.write_text(text)
    refused = refused_lines(path, folder)
    context = loose_context(folder)
    problems = check([uwsgi_config.load(path, context.machine)], context)
    errors, flagged = flagged_lines(problems, path)
    report = text + "\n".join(map(str, problems))
    assert refused <= flagged, f"uWSGI refuses lines {sorted(refused - flagged)}:\n{report}"
    assert errors <= refused | misread, f"errors on valid lines:\n{report}"


def test_the_option_table_is_uwsgis_own(uwsgi_source: Path) -> None:
    """toolkit/uwsgi_options.json is what tests/option_table.py reads from the sdist of the
    uWSGI installed here."""
    assert render(uwsgi_source, option_table().version) == TABLE.read_text()
