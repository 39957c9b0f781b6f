"""`toolkit new` and `toolkit render`: idempotent, atomic, honest about what changed."""

from __future__ import annotations

from pathlib import Path

from tests.support import run_toolkit


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def test_new_scaffolds_every_file(deployment: Path) -> None:
    assert (deployment / "code" / "app.py").is_file()
    assert (deployment / "static" / "base.css").is_file()
    text = (deployment / "deploy.ini").read_text()
    assert "recipe = ground-up" in text
    assert "#http_port = 8000" in text


def test_new_refuses_to_overwrite_unless_forced(deployment: Path) -> None:
    result = run_toolkit("new", deployment)
    assert result.returncode == 2
    assert "already exists" in result.stderr
    assert "--force" in result.stderr
    assert run_toolkit("new", deployment, "--force").returncode == 0


def test_render_is_changed_then_ok_and_keeps_mtimes(deployment: Path) -> None:
    first = run_toolkit("render", deployment)
    assert first.returncode == 0, first.stderr
    assert first.stdout.count("changed ") == 2
    vassals = deployment / "vassals"
    before = mtimes(vassals)
    second = run_toolkit("render", deployment)
    assert second.returncode == 0
    assert second.stdout.count("ok ") == 2
    assert "changed=0 ok=2" in second.stdout
    assert mtimes(vassals) == before
    assert sorted(before) == ["http.ini", "uwsgi.ini"]


def test_check_writes_nothing_and_exits_1_on_changes(deployment: Path) -> None:
    result = run_toolkit("render", deployment, "--check", "--diff")
    assert result.returncode == 1
    assert "+http = 127.0.0.1:8000" in result.stdout
    assert not (deployment / "vassals").exists()
    run_toolkit("render", deployment)
    assert run_toolkit("render", deployment, "--check").returncode == 0


def test_diff_shows_a_changed_value(deployment: Path) -> None:
    run_toolkit("render", deployment)
    result = run_toolkit("render", deployment, "--set", "http_port=8080", "--diff")
    assert "-http = 127.0.0.1:8000" in result.stdout
    assert "+http = 127.0.0.1:8080" in result.stdout


def test_bad_set_is_one_line_exit_2_and_writes_nothing(deployment: Path) -> None:
    run_toolkit("render", deployment)
    before = (deployment / "vassals" / "http.ini").read_text()
    for value in ("http_port=abc", "app_module=x\nexec-as-root=id"):
        result = run_toolkit("render", deployment, "--set", value)
        assert result.returncode == 2
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Traceback" not in result.stderr
    assert (deployment / "vassals" / "http.ini").read_text() == before


def test_undefined_variable_names_template_file_and_line(deployment: Path) -> None:
    templates = deployment / "templates"
    templates.mkdir()
    (templates / "http.ini.j2").write_text(
        '{% extends "base/http.ini.j2" %}\n'
        "{% block logging %}\nlogger = {{ nope }}\n{% endblock %}\n"
    )
    result = run_toolkit("render", deployment)
    assert result.returncode == 2
    assert (
        f"{templates / 'http.ini.j2'}:3: undefined variable: 'nope' is undefined" in result.stderr
    )


def test_template_syntax_error_names_file_and_line(deployment: Path) -> None:
    templates = deployment / "templates"
    templates.mkdir()
    (templates / "uwsgi.ini.j2").write_text("[uwsgi]\n\n{% if %}\n")
    result = run_toolkit("render", deployment)
    assert result.returncode == 2
    assert f"{templates / 'uwsgi.ini.j2'}:3: template syntax error" in result.stderr


def test_deployment_template_overrides_one_block(deployment: Path) -> None:
    templates = deployment / "templates"
    templates.mkdir()
    (templates / "http.ini.j2").write_text(
        '{% extends "base/http.ini.j2" %}\n{% block logging %}\nlogger = stdio\n{% endblock %}\n'
    )
    assert run_toolkit("render", deployment).returncode == 0
    text = (deployment / "vassals" / "http.ini").read_text()
    assert "req-logger" not in text
    assert "http-subscription-server = 127.0.0.1:8002" in text, "the rest of the router is kept"


def test_no_temporary_file_is_left_behind(deployment: Path) -> None:
    run_toolkit("render", deployment, "--set", "http_port=8100")
    run_toolkit("render", deployment, "--set", "http_port=8200")
    assert sorted(p.name for p in (deployment / "vassals").iterdir()) == ["http.ini", "uwsgi.ini"]
