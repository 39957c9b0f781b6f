"""Hostile command lines and files through the real `toolkit` command: each gives one error
line, the exit code the README's table names, and never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import TOOLKIT

SITE = "site"
HUGE = "a" * 100_000
# (arguments, expected exit code); SITE is a fresh deployment, BAD a folder of bad files.
CASES: list[tuple[list[str], int]] = [
    (["render", SITE, "--set"], 2),
    (["render", SITE, "--set", "=8000"], 2),
    (["render", SITE, "--set", "http_port"], 2),
    (["render", SITE, "--set", "http_port="], 2),
    (["render", SITE, "--set", "http_port=abc"], 2),
    (["render", SITE, "--set", "http_port=99999"], 2),
    (["render", SITE, "--set", "http_port=8000", "--set", "http_port=x"], 2),
    (["render", SITE, "--set", "nope=1"], 2),
    (["render", SITE, "--set", "app_module=x y"], 2),
    (["render", SITE, "--set", "app_module=app:make()x"], 2),
    (["render", SITE, "--set", "static_maps=nope"], 2),
    (["render", SITE, "--set", "static_maps=/s=--x"], 2),
    (["render", SITE, "--set", "env=1BAD=x"], 2),
    (["render", SITE, "--set", "env=A=1\nstrict=false"], 2),
    (["render", SITE, "--set", "processes=1e3"], 2),
    (["render", SITE, "--set", "static_dir=--x"], 2),
    (["render", SITE, "--set", f"app_module={HUGE}"], 2),
    (["render", SITE, "--set", "virtualenv=no-such-venv"], 1),
    (["render", SITE, "--set", "static_dir=code"], 1),
    (["render", SITE, "--set", "env_file=missing.env"], 1),
    (["render", SITE, "--set", "cheaper=9"], 2),
    (["render", SITE, "--host", "nobody"], 2),
    (["render", SITE, "--all-hosts"], 2),
    (["render", SITE, "-C", "elsewhere"], 2),
    (["render", SITE, "--uwsgi", "/no/such/uwsgi"], 2),
    (["render", "/no/such/folder"], 2),
    (["render", "BAD/binary"], 2),
    (["render", "BAD/unknown-recipe"], 2),
    (["render", "BAD/duplicate-keys"], 2),
    (["render", "BAD/huge-line"], 2),
    (["render", "BAD/self-extending"], 2),
    (["render", "BAD/template-syntax"], 2),
    (["render", "BAD/undefined-variable"], 2),
    (["render", "BAD/binary-inventory", "--all-hosts"], 2),
    (["up", "BAD/logs-is-a-file"], 2),
    (["up", "BAD/run-is-a-file"], 2),
    (["up", "/no/such/folder"], 2),
    (["status", "/no/such/folder"], 2),
    (["status", SITE], 4),
    (["down", "-C", "/no/such/folder"], 2),
    (["reload", SITE, "uwsgi"], 2),
    (["stop"], 2),
    (["stop", SITE], 2),
    (["logs", SITE], 2),
    (["logs", SITE, "nosuch"], 2),
    (["logs", SITE, "http", "-n", "-1"], 2),
    (["check", "/no/such/file.ini"], 2),
    (["check", "BAD/binary.ini"], 1),
    (["check", "BAD/self-including.ini"], 1),
    (["check", "BAD/huge.ini"], 2),
    (["check", "BAD/self-including.ini:nosection"], 1),
    (["check", "/no/such/file.ini:uwsgi"], 2),
    (["check", "--format", "json", "BAD/binary.ini"], 2),
    (["check", "BAD/empty-folder"], 2),
    (["compress", "/no/such/folder"], 2),
    (["new", "BAD/a-file/site"], 2),
    (["new", "elsewhere", "--recipe", "nope"], 2),
    (["new", "elsewhere", "--module", "app:app"], 2),
    (["new", "elsewhere", "--app", "/no/such/app"], 2),
    (["new", "elsewhere", "--app", "BAD/empty-folder"], 2),
    (["new", SITE], 2),
    (["tutorial", "show", "99"], 2),
    (["tutorial", "show", "abc"], 2),
    (["tutorial", "run", "99", "elsewhere"], 2),
    (["export", "systemd", "/no/such/folder"], 2),
    (["export", "ansible", SITE], 2),
    (["emperor"], 2),
    (["emperor", "x/*.ini", "--run-dir", "BAD/a-file/run"], 2),
    (["emperor", "x/*.ini", "--uwsgi", "/no/such/uwsgi"], 2),
    (["nosuchcommand"], 2),
    # Names that would become paths.
    (["render", SITE, "--set", "release=/../.."], 2),
    (["render", SITE, "--set", "release=../x"], 2),
    (["render", SITE, "--set", "release=a/b"], 2),
    (["rollback", SITE, "../../x"], 2),
    (["rollback", SITE, "a:b"], 2),
    (["new", "elsewhere", "--recipe", "../recipes/ground-up"], 2),
    (["new", "elsewhere", "--recipe", "/etc"], 2),
    (["render", "BAD/evil-host", "--all-hosts"], 2),
    (["render", "BAD/evil-host-section", "--all-hosts"], 2),
    (["render", "BAD/linked-vassals"], 2),
    # Files that are not what they seem.
    (["render", "BAD/fifo-deploy"], 2),
    (["render", "BAD/zero-deploy"], 2),
    (["render", "BAD/folder-deploy"], 2),
    (["check", "BAD/fifo.ini"], 2),
    (["check", "BAD/zero.ini"], 2),
    (["new", "elsewhere", "--app", "BAD/fifo-app"], 2),
    (["render", "BAD/fifo-env-file"], 1),
    (["render", "BAD/fifo-inventory", "--all-hosts"], 2),
    (["render", "BAD/huge-deploy"], 2),
    # Values that are uWSGI's language.
    (["render", SITE, "--set", "env=A=@(exec://touch ran)"], 2),
    (["render", SITE, "--set", "env=A=$(HOME)"], 2),
    (["render", SITE, "--set", "app_module=%(x)"], 2),
    (["render", SITE, "--set", "log_dir=exec://touch ran"], 2),
    (["render", SITE, "--set", "uid=root;x"], 2),
    (["render", "BAD/interpolated"], 2),
]


def make_bad_files(root: Path) -> None:
    bad = root / "BAD"
    bad.mkdir()
    (bad / "a-file").write_text("not a folder\n")
    (bad / "empty-folder").mkdir()
    (bad / "binary.ini").write_bytes(b"\xff\xfe[uwsgi]\x00\nproc\xe9sses = 1\n" + bytes(range(256)))
    (bad / "self-including.ini").write_text("[uwsgi]\nsocket = 127.0.0.1:0\nini = %p\n")
    (bad / "huge.ini").write_text("[uwsgi]\nenv = X=" + "x" * 5_000_000 + "\n")
    for name, deploy_ini in {
        "binary": b"recipe = ground-up\n\xff\xfe\x00garbage = \x01\n",
        "unknown-recipe": b"recipe = nope\n",
        "duplicate-keys": b"recipe = ground-up\nhttp_port = 1\nhttp_port = 2\n",
        "huge-line": b"recipe = ground-up\napp_module = " + b"a" * 1_000_000 + b"\n",
        "self-extending": b"recipe = ground-up\n",
        "template-syntax": b"recipe = ground-up\n",
        "undefined-variable": b"recipe = ground-up\n",
        "binary-inventory": b"recipe = ground-up\n",
    }.items():
        (bad / name).mkdir()
        (bad / name / "deploy.ini").write_bytes(deploy_ini)
    templates = {
        "self-extending": '{% extends "uwsgi.ini.j2" %}\n',
        "template-syntax": "[uwsgi]\n{{ \n",
        "undefined-variable": "[uwsgi]\nx = {{ nothing_here }}\n",
    }
    for name, text in templates.items():
        (bad / name / "templates").mkdir()
        (bad / name / "templates" / "uwsgi.ini.j2").write_text(text)
    (bad / "binary-inventory" / "inventory.ini").write_bytes(b"\x00\xff[groups\n")
    for name, inventory in {
        "evil-host": "[groups]\n[[web]]\nhosts = ../../x\n",
        "evil-host-section": "[hosts]\n[[../x]]\nhttp_port = 8080\n",
        "fifo-inventory": None,
    }.items():
        (bad / name).mkdir()
        (bad / name / "deploy.ini").write_text("recipe = ground-up\n")
        if inventory is None:
            os.mkfifo(bad / name / "inventory.ini")
        else:
            (bad / name / "inventory.ini").write_text(inventory)
    (bad / "fifo-deploy").mkdir()
    os.mkfifo(bad / "fifo-deploy" / "deploy.ini")
    (bad / "zero-deploy").mkdir()
    (bad / "zero-deploy" / "deploy.ini").symlink_to("/dev/zero")
    (bad / "folder-deploy" / "deploy.ini").mkdir(parents=True)
    (bad / "huge-deploy").mkdir()
    with (bad / "huge-deploy" / "deploy.ini").open("wb") as stream:
        stream.truncate(1 << 30)  # sparse: 1 GB that costs nothing on disk
    os.mkfifo(bad / "fifo.ini")
    (bad / "zero.ini").symlink_to("/dev/zero")
    (bad / "fifo-app").mkdir()
    os.mkfifo(bad / "fifo-app" / "manage.py")
    (bad / "interpolated").mkdir()
    (bad / "interpolated" / "deploy.ini").write_text(
        "recipe = ground-up\nstatic_dir = %(nothing)s\n"
    )
    subprocess.run([str(TOOLKIT), "new", bad / "fifo-env-file"], check=True, capture_output=True)
    os.mkfifo(bad / "fifo-env-file" / "secrets.env")
    with (bad / "fifo-env-file" / "deploy.ini").open("a") as stream:
        stream.write("env_file = secrets.env\n")
    subprocess.run([str(TOOLKIT), "new", bad / "linked-vassals"], check=True, capture_output=True)
    (root / "elsewhere-vassals").mkdir()
    (bad / "linked-vassals" / "vassals").symlink_to(root / "elsewhere-vassals")
    for name, folder in (("logs-is-a-file", "logs"), ("run-is-a-file", "run")):
        subprocess.run([str(TOOLKIT), "new", bad / name], check=True, capture_output=True)
        shutil.rmtree(bad / name / folder, ignore_errors=True)
        (bad / name / folder).write_text("a file, not a folder\n")


@pytest.fixture(scope="module")
def playground(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    subprocess.run([str(TOOLKIT), "new", SITE], cwd=root, check=True, capture_output=True)
    make_bad_files(root)
    return root


def test_the_list_is_long_enough() -> None:
    assert len(CASES) >= 50


def test_every_hostile_input_gives_its_exit_code_and_no_traceback(playground: Path) -> None:
    def run(case: tuple[list[str], int]) -> tuple[list[str], int, subprocess.CompletedProcess[str]]:
        arguments, expected = case
        result = subprocess.run(
            [str(TOOLKIT), *arguments],
            cwd=playground,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "NO_COLOR": "1"},
            stdin=subprocess.DEVNULL,
        )
        return arguments, expected, result

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, CASES))
    wrong = []
    for arguments, expected, result in results:
        output = result.stdout + result.stderr
        shown = " ".join(a[:40] for a in arguments)
        if "Traceback" in output or "internal error" in output:
            wrong.append(f"toolkit {shown}: traceback\n{output[-800:]}")
        elif result.returncode != expected:
            wrong.append(f"toolkit {shown}: exit {result.returncode}, not {expected}\n{output}")
        elif expected == 2 and not result.stderr.strip():
            wrong.append(f"toolkit {shown}: exit 2 without a word on stderr")
    assert not wrong, "\n".join(wrong)
    assert (playground / SITE / "deploy.ini").is_file()
    assert not (playground / SITE / "vassals").exists(), "a refused render wrote files"
    assert not (playground / "ran").exists(), "no value ran"
    assert not list((playground / "elsewhere-vassals").iterdir()), "nothing written through"
    assert not (playground.parent / "x").exists() and not (playground / "hosts").exists()
