"""Values are data: nothing a user types as a value is read as uWSGI configuration or code.

uWSGI expands `$(VAR)`, `@(file)`, `@(exec://CMD)` and `%(name)` in every option value and
`%X` in every line it reads (core/uwsgi.c:2262-2268, magic_sub() in core/utils.c). Every
variable of every recipe either refuses such a value in one line naming it, or carries it
to uWSGI so that uWSGI reads back what was written: proved here by running the vassal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.support import free_ports, get, run_toolkit
from toolkit.cli import app
from toolkit.recipes import list_recipes

# Checks whose values are text that reaches a template.
TEXT_CHECKS = (
    "string", "path", "optional_path", "module", "host", "account", "name", "program",
    "env_list", "url_map_list",
)  # fmt: skip


# Checks that refuse by shape first (an address, a module name...), before the magic.
SHAPED = {"host", "module", "account", "name", "program"}


def magic(marker: Path) -> str:
    """A value that would run a command, read the environment and another option."""
    return f"@(exec://touch {marker})$(HOME)%(http_port)"


def text_variables() -> list[tuple[str, str, str]]:
    """(recipe, variable, check name) for every text variable of every recipe."""
    return [
        (recipe.name, variable.name, variable.check.split("(")[0].strip())
        for recipe in list_recipes()
        for variable in recipe.variables
        if variable.check.split("(")[0].strip() in TEXT_CHECKS
    ]


def test_every_text_variable_of_every_recipe_refuses_uwsgi_magic(tmp_path: Path) -> None:
    runner = CliRunner()
    marker = tmp_path / "ran"
    sites: dict[str, Path] = {}
    wrong = []
    cases = text_variables()
    assert len(cases) >= 40
    for recipe, name, check in cases:
        if recipe not in sites:
            sites[recipe] = tmp_path / recipe
            made = runner.invoke(app, ["new", str(sites[recipe]), "--recipe", recipe])
            assert made.exit_code == 0, made.stderr
        value = magic(marker)
        if check == "env_list":
            value = f"X={value}"
        elif check == "url_map_list":
            value = f"/s/={value}"
        result = runner.invoke(app, ["render", str(sites[recipe]), "--set", f"{name}={value}"])
        lines = result.stderr.strip().splitlines()
        if result.exit_code != 2 or len(lines) != 1 or name not in lines[0]:
            wrong.append(f"{recipe} {name}: exit {result.exit_code}: {result.stderr!r}")
        elif (
            check not in {"host", "module", "account", "name", "program"} and "'@('" not in lines[0]
        ):
            wrong.append(f"{recipe} {name}: the refusal does not name '@(': {lines[0]}")
    assert not wrong, "\n".join(wrong)
    assert not marker.exists(), "nothing ran"
    assert not any((site / "vassals").exists() for site in sites.values())


def test_deploy_ini_placeholders_are_text_not_configobj_interpolation(tmp_path: Path) -> None:
    """configobj would replace `%(pythonpath)s` with another value, or stop with an internal
    error for a missing one; read without interpolation it is text, which uWSGI would expand:
    refused, in one line."""
    for value in ("%(pythonpath)s", "%(no_such_name)s"):
        root = tmp_path / value.strip("%()s")
        assert run_toolkit("new", root).returncode == 0
        with (root / "deploy.ini").open("a") as stream:
            stream.write(f"static_dir = {value}\n")
        result = run_toolkit("render", root)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "deploy.ini:" in lines[0] and "static_dir: '%('" in lines[0]


ENV_APP = """
import json
import os


def application(environ, start_response):
    if environ["PATH_INFO"] == "/env":
        values = {k.decode(): v.hex() for k, v in os.environb.items() if k.startswith(b"T_")}
        body = json.dumps(values).encode()
    else:
        body = b"<h1>hello</h1>"
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"""
# What looks like uWSGI's language but is data; each reaches the app byte for byte.
SECRETS = [
    b"T_EXEC=@(exec://touch MARKER)",
    b"T_ENV=$(HOME) ${HOME} $HOME",
    b"T_PLACEHOLDER=%(http_port) %(_)",
    b"T_MAGIC=%d %p %n %% 100%",
    b"T_INI=a;b [uwsgi] #c ; d",
    b"T_SPACES=  two before, two after  ",
    b"T_QUOTES=\"double\" 'single'",
    b"T_LATIN=caf\xe9",
]


def test_values_that_look_like_config_reach_uwsgi_and_the_app_as_written(tmp_path: Path) -> None:
    """Folders and env values holding `%`, `;`, `[x]`, `#`, `$HOME`; an env file holding
    every kind of uWSGI magic: the app imports from `co%de`, static files come from
    `st%dic`, the app sees each value byte for byte, and nothing runs."""
    port, app_port = free_ports(2)
    root = tmp_path / "site"
    assert run_toolkit("new", root).returncode == 0
    code = root / "co%de"
    code.mkdir()
    (code / "app.py").write_text(ENV_APP)
    static = root / "st%dic"
    static.mkdir()
    (static / "hello.txt").write_text("served from st%dic\n")
    marker = root / "MARKER"
    secrets = root / "secrets.env"
    secrets.write_bytes(b"\n".join(s.replace(b"MARKER", str(marker).encode()) for s in SECRETS))
    with (root / "deploy.ini").open("a") as stream:
        stream.write(
            f"http_port = {port}\napp_port = {app_port}\npythonpath = co%de\n"
            "static_dir = st%dic\nenv_file = secrets.env\n"
            'env = "T_PERCENT=100% done %d %%", "T_SHELL=a;b [x] #c ${X} $HOME"\n'
        )
    started = run_toolkit("up", root, "--detach")
    try:
        assert started.returncode == 0, started.stderr + started.stdout
        seen = {k: bytes.fromhex(v) for k, v in json.loads(get(port, "/env").body).items()}
        expected = dict(line.split(b"=", 1) for line in SECRETS)
        expected[b"T_EXEC"] = expected[b"T_EXEC"].replace(b"MARKER", str(marker).encode())
        expected[b"T_PERCENT"] = b"100% done %d %%"
        expected[b"T_SHELL"] = b"a;b [x] #c ${X} $HOME"
        assert seen == {k.decode(): v for k, v in expected.items()}
        assert get(port, "/hello.txt").body == b"served from st%dic\n"
        assert not marker.exists(), "nothing in a value ran"
        vassals = "".join(p.read_text() for p in (root / "vassals").glob("*.ini"))
        assert "exec://" not in vassals and "'single'" not in vassals, "no secret in vassals/"
        assert run_toolkit("check", root).returncode == 0
    finally:
        run_toolkit("down", root)


def test_check_says_what_a_value_would_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    config = tmp_path / "app.ini"
    env = tmp_path / "app.env"
    env.write_text(f"TOKEN=@(exec://touch {marker})\nPLAIN=x\n")
    config.write_text(
        "[uwsgi]\nstrict = true\nmaster = true\nhttp-socket = 127.0.0.1:0\n"
        f"env = GREETING=@(exec://touch {marker})\nenv = CONFIG=@(/etc/hostname)\n"
        f"for-readline = {env}\nenv = %(_)\nendfor =\n"
    )
    result = run_toolkit("check", config)
    assert f"app.ini:5: V209 warning: `@(exec://touch {marker})` runs 'touch {marker}'" in (
        result.stdout
    )
    assert "app.ini:6: V209 warning: `@(/etc/hostname)` reads '/etc/hostname'" in result.stdout
    assert f"{env}:1: V209 warning: '@(' in an env file read with for-readline" in result.stdout
    assert not marker.exists(), "check runs nothing"


@pytest.mark.parametrize(
    "value",
    ["/s p/=static", "/s;x/=static", "/s$x/=static", "/ redirect:http://x/=static"],
)
def test_a_static_prefix_cannot_add_a_routing_action(deployment: Path, value: str) -> None:
    result = run_toolkit("render", deployment, "--set", f"static_maps={value}")
    assert result.returncode == 2
    assert "static_maps: got" in result.stderr and "a prefix of letters" in result.stderr


def test_env_file_problems_stop_the_app_with_a_reason(tmp_path: Path) -> None:
    """toolkit's loader in the app's Python: a FIFO env file is refused, not waited on."""
    fifo = tmp_path / "secrets.env"
    os.mkfifo(fifo)
    loader = Path(__file__).parent.parent / "toolkit" / "env_loader.py"
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, str(loader)],
        env={**os.environ, "TOOLKIT_ENV_FILE": str(fifo)},
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert run.returncode == 1
    assert "toolkit: cannot read the env file: not a regular file" in run.stderr
