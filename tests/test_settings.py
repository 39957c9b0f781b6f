"""Deployment variables: types, layering, and refusal of anything that could inject an option."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolkit import settings
from toolkit.deployment import Deployment
from toolkit.errors import ToolkitError
from toolkit.recipes import find_recipe
from toolkit.settings import RawValue, parse_overrides, resolve

RECIPE = find_recipe("ground-up")


def test_defaults_come_from_the_recipe_spec() -> None:
    variables = resolve(RECIPE)
    assert variables.values["http_port"] == 8000
    assert variables.values["gzip"] is True
    assert variables.sources["http_port"] == "recipe default"


def test_layers_deploy_ini_then_set(tmp_path: Path) -> None:
    ini = tmp_path / "deploy.ini"
    ini.write_text("recipe = ground-up\nhttp_port = 9000\nthreads = 3\n")
    _, from_file = settings.read_deploy_ini(ini)
    variables = resolve(RECIPE, from_file, parse_overrides(["http_port=9100"]))
    assert variables.values["http_port"] == 9100
    assert variables.sources["http_port"] == "--set"
    assert variables.values["threads"] == 3
    assert variables.sources["threads"] == f"{ini}:3"


def test_bad_value_names_file_line_and_expectation(tmp_path: Path) -> None:
    ini = tmp_path / "deploy.ini"
    ini.write_text("recipe = ground-up\n\nhttp_port = 99999\n")
    with pytest.raises(ToolkitError) as caught:
        Deployment(tmp_path).load()
    assert str(caught.value) == (
        f"{ini}:3: http_port: got '99999', expected an integer from 1 to 65535"
    )


def test_unknown_variable_suggests_the_close_one() -> None:
    with pytest.raises(ToolkitError, match="did you mean 'http_port'"):
        resolve(RECIPE, parse_overrides(["http_prot=1"]))


def test_cheaper_must_stay_below_processes() -> None:
    with pytest.raises(ToolkitError, match=r"cheaper \(4\) must be lower than processes \(4\)"):
        resolve(RECIPE, parse_overrides(["cheaper=4"]))
    assert resolve(RECIPE, parse_overrides(["cheaper=0", "processes=1"])).values["cheaper"] == 0


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("processes=-1", "an integer from 0 to 1024"),
        ("threads=0", "an integer from 1 to 1024"),
        ("gzip=maybe", "true or false"),
        ("http_address=example", "an IP address or localhost"),
        ("app_module=1app", "a Python module name"),
        ("static_dir=--foo", "a path"),
    ],
)
def test_each_type_refuses_bad_values(assignment: str, expected: str) -> None:
    with pytest.raises(ToolkitError, match=expected):
        resolve(RECIPE, parse_overrides([assignment]))


@pytest.mark.parametrize("separator", ["\n", "\r", "\x00", "\x1b", "\u2028", "\u2029", "\x85"])
def test_line_breaking_characters_are_refused(separator: str) -> None:
    with pytest.raises(ToolkitError, match="not allowed"):
        resolve(RECIPE, parse_overrides([f"app_module=x{separator}exec-as-root=id"]))


@given(st.text(min_size=1).filter(lambda t: settings.unsafe_character(t) is not None))
def test_no_value_with_a_control_character_is_ever_accepted(value: str) -> None:
    for name in ("app_module", "pythonpath", "static_dir", "log_dir"):
        with pytest.raises(ToolkitError):
            resolve(RECIPE, {name: RawValue(value, "--set")})


def test_set_needs_name_equals_value() -> None:
    with pytest.raises(ToolkitError, match="expected name=value"):
        parse_overrides(["http_port"])


def test_broken_deploy_ini_is_one_error_with_a_line(tmp_path: Path) -> None:
    (tmp_path / "deploy.ini").write_text("recipe = ground-up\nhttp_port = 1\nhttp_port = 2\n")
    with pytest.raises(ToolkitError) as caught:
        Deployment(tmp_path).load()
    assert caught.value.line == 3


def test_missing_deploy_ini_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ToolkitError, match=r"no deploy\.ini") as caught:
        Deployment(tmp_path).load()
    assert caught.value.hint == f"create one with `toolkit new {tmp_path}`"
