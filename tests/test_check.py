"""`toolkit check`: one mistake per corpus file, found at its line; agreement with real uwsgi."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import UWSGI, run_toolkit
from toolkit import uwsgi_config, uwsgi_ini
from toolkit.catalog import parse_help
from toolkit.check import RULES, Context, Severity, check, context_for
from toolkit.uwsgi_config import LocalMachine
from toolkit.uwsgi_options import option_table

CORPUS = Path(__file__).parent / "check_corpus"
EXPECT = re.compile(r"^; expect: (\w+) (\d+)$", re.MULTILINE)
UNKNOWN = {"U100", "U102"}


@pytest.fixture(scope="module")
def context() -> Context:
    """As for a deployment: what is missing here is an error."""
    return context_for(UWSGI.resolve(), here=True)


def expected(files: list[Path]) -> set[tuple[str, str, int]]:
    return {
        (str(f), rule, int(line)) for f in files for rule, line in EXPECT.findall(f.read_text())
    }


def found(files: list[Path], context: Context) -> set[tuple[str, str, int]]:
    configs = [uwsgi_config.load(f, context.machine) for f in files]
    return {(p.file, p.rule, p.line) for p in check(configs, context)}


@pytest.mark.parametrize("path", sorted((CORPUS / "single").glob("*.ini")), ids=lambda p: p.stem)
def test_each_broken_config_gives_its_rule_at_its_line(path: Path, context: Context) -> None:
    assert found([path], context) == expected([path])


@pytest.mark.parametrize("folder", sorted((CORPUS / "pairs").iterdir()), ids=lambda p: p.name)
def test_rules_between_vassals(folder: Path, context: Context) -> None:
    files = sorted(folder.glob("*.ini"))
    assert found(files, context) == expected(files)


def test_the_guides_final_pair_is_clean(deployment: Path) -> None:
    assert run_toolkit("render", deployment).returncode == 0
    result = run_toolkit("check", deployment)
    assert result.returncode == 0, result.stdout
    assert "0 error(s), 0 warning(s) in 2 file(s)" in result.stdout


def test_cli_reports_file_line_rule_and_exit_1() -> None:
    path = CORPUS / "single" / "typo_option.ini"
    result = run_toolkit("check", path)
    assert result.returncode == 1
    assert (
        f"{path}:3: U100 error: unknown option 'proceses': uWSGI ignores it without a word "
        "(did you mean 'processes'?)"
    ) in result.stdout
    as_json = json.loads(run_toolkit("check", path, "--json").stdout)
    assert as_json["errors"] == 1
    assert as_json["problems"][0]["rule"] == "U100"


def test_cli_exit_2_when_it_cannot_run(tmp_path: Path) -> None:
    result = run_toolkit("check", tmp_path / "missing.ini")
    assert result.returncode == 2
    assert "no such file or folder" in result.stderr
    result = run_toolkit("check", CORPUS / "single", "--uwsgi", tmp_path / "no-uwsgi")
    assert result.returncode == 2


def test_render_refuses_to_write_configs_with_errors(deployment: Path) -> None:
    result = run_toolkit("render", deployment, "--set", "static_dir=missing")
    assert result.returncode == 1
    assert "P400 error: check-static" in result.stderr
    assert not (deployment / "vassals").exists()
    forced = run_toolkit("render", deployment, "--set", "static_dir=missing", "--no-check")
    assert forced.returncode == 0
    assert (deployment / "vassals" / "uwsgi.ini").exists()


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_reader_never_raises_on_random_bytes(data: bytes) -> None:
    ini = uwsgi_ini.parse(data.decode("utf-8", errors="replace"))
    for option in ini.options:
        assert "\n" not in option.value
        assert option.key == option.key.strip()


ini_lines = st.one_of(
    st.sampled_from(["[uwsgi]", "[other]", "; comment", "# comment", ""]),
    st.builds(
        lambda k, v: f"{k} = {v}",
        st.sampled_from(
            [
                "socket",
                "http",
                "http-to",
                "processes",
                "cheaper",
                "chdir",
                "logger",
                "check-static",
                "module",
                "response-route-if",
                "master",
                "x",
            ]
        ),
        st.text(max_size=40).map(lambda t: t.replace("\n", " ").replace("\r", " ")),
    ),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(ini_lines, max_size=12), min_size=1, max_size=3))
def test_rules_never_raise_on_odd_configs(files: list[list[str]]) -> None:
    catalog = parse_help("    --socket  bind\n    --http  router\n    --master  master\n", "test")
    machine = LocalMachine(Path("/"), {})
    context = Context(catalog, option_table(), machine)
    configs = [
        uwsgi_config.load(Path(f"/tmp/f{i}.ini"), machine, text="\n".join(lines))
        for i, lines in enumerate(files)
    ]
    for problem in check(configs, context):
        assert problem.severity in set(Severity)
        assert problem.line >= 1


@given(st.text())
def test_reader_keeps_repeated_keys_in_order(value: str) -> None:
    value = value.replace("\n", " ").strip(" \t\r")
    ini = uwsgi_ini.parse(f"[uwsgi]\nenv = A={value}\nenv = B=2\n")
    assert ini.values("env") == [f"A={value}", "B=2"]


def test_check_on_binary_garbage_is_a_report_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "garbage.ini"
    path.write_bytes(b"\xff\xfe[uwsgi]\x00\nproc\xe9sses = 1\n" + b"x" * 100_000)
    result = run_toolkit("check", path)
    assert result.returncode in {0, 1}
    assert "Traceback" not in result.stderr + result.stdout


def test_the_readme_shows_real_check_output(tmp_path: Path) -> None:
    """The README's `toolkit check` session, replayed: the file, the commands, the output."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    session = readme.split("$ cat bad.ini\n", 1)[1].split("```", 1)[0]
    content, _, rest = session.partition("$ ")
    (tmp_path / "bad.ini").write_text(content)
    for block in ("$ " + rest).split("$ ")[1:]:
        command, _, shown = block.partition("\n")
        result = subprocess.run(
            command,
            shell=True,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**os.environ, "PATH": f"{UWSGI.parent}:{os.environ['PATH']}"},
            timeout=30,
        )
        assert result.stdout == shown, command


def test_the_readme_lists_every_rule() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for rule in RULES:
        assert f"| {rule.id} |" in readme


def test_a_virtualenv_of_another_python_is_reported(tmp_path: Path) -> None:
    """P404: uWSGI embeds one Python; a venv made by another fails at import."""
    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\nversion = 3.8.10\n")
    ini = tmp_path / "uwsgi.ini"
    ini.write_text("[uwsgi]\nstrict = true\nchdir = %d\nvirtualenv = venv\n")
    report = run_toolkit("check", ini).stdout
    assert f"{ini}:4: P404" in report and "was made by Python 3.8" in report
