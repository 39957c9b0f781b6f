"""Deploy your own app: a stock Django project and a Flask app with its own virtualenv, each
from `toolkit new DIR --app PATH` alone, served by real uWSGI on free loopback ports."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    GZIP,
    Response,
    free_ports,
    get,
    own_virtualenv,
    port_closed,
    run_toolkit,
    wait_for,
)

SECRET = "s3cr3t-value-that-must-not-be-rendered"
FLASK_APP = """
import os, sys
from flask import Flask, jsonify
app = Flask(__name__)

@app.route("/")
def index():
    return "<html><body>" + "<p>hello from flask</p>" * 100 + "</body></html>"

@app.route("/api")
def api():
    return jsonify(items=list(range(200)), prefix=sys.prefix)

@app.route("/env")
def env():
    return os.environ.get("SECRET_KEY", "missing"), 200, {"Content-Type": "text/plain"}
"""


def run(*args: str | Path, cwd: Path) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def up(deployment: Path, ports: list[int]) -> Iterator[None]:
    result = run_toolkit(
        "up",
        deployment,
        "--detach",
        "--set",
        f"http_port={ports[0]}",
        "--set",
        f"app_port={ports[1]}",
    )
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        yield
    finally:
        run_toolkit("down", deployment)
        wait_for(port_closed(ports[0]), what="port_closed(ports[0])")


def no_internal_headers(*responses: Response) -> None:
    for response in responses:
        assert "uwsgi-encoding" not in response.headers


def gzipped_like(port: int, path: str) -> Response:
    """The gzipped answer decompresses to the plain one, with a length or chunked framing."""
    plain = get(port, path)
    packed = get(port, path, GZIP)
    assert packed.status == plain.status == 200
    assert packed.headers.get("content-encoding") == "gzip"
    assert "content-length" in packed.headers or packed.headers.get("transfer-encoding") == (
        "chunked"
    )
    assert "content-encoding" not in plain.headers
    mask = re.compile(rb'(csrfmiddlewaretoken" value=")[^"]+')
    assert mask.sub(rb"\1", gzip.decompress(packed.body)) == mask.sub(rb"\1", plain.body)
    no_internal_headers(plain, packed)
    return packed


@pytest.fixture
def django_project(tmp_path: Path) -> Path:
    run(sys.executable, "-m", "django", "startproject", "mysite", cwd=tmp_path)
    project = tmp_path / "mysite"
    with (project / "mysite" / "settings.py").open("a") as settings:
        settings.write('\nSTATIC_ROOT = BASE_DIR / "staticfiles"\n')
    run(sys.executable, "manage.py", "collectstatic", "--noinput", cwd=project)
    run(sys.executable, "manage.py", "migrate", "-v0", cwd=project)
    return project


def test_a_stock_django_project_from_deploy_ini_alone(django_project: Path, tmp_path: Path) -> None:
    deployment = tmp_path / "deploy"
    made = run_toolkit("new", deployment, "--app", django_project)
    assert made.returncode == 0, made.stderr
    assert "found a django app" in made.stdout
    assert "static_maps = /static/=../mysite/staticfiles" in made.stdout
    assert not (deployment / "code").exists() and not (deployment / "static").exists()
    ini = (deployment / "deploy.ini").read_text()
    assert "# (found: manage.py line 9)\nenv = DJANGO_SETTINGS_MODULE=mysite.settings" in ini
    compressed = run_toolkit("compress", django_project / "staticfiles" / "admin" / "css")
    assert compressed.returncode == 0, compressed.stderr
    # Without a virtualenv the app runs on the system's Python, never on toolkit's packages:
    # Django is not there, and render says so before anything runs.
    refused = run_toolkit("render", deployment)
    assert refused.returncode == 1
    assert "P407 error: django cannot be imported by" in refused.stderr, refused.stderr
    assert "point `virtualenv` (deploy.ini) at the app's virtualenv" in refused.stderr
    own_virtualenv(django_project)
    with (deployment / "deploy.ini").open("a") as stream:
        stream.write("virtualenv = ../mysite/.venv\n")
    port, app_port = free_ports(2)
    for _ in up(deployment, [port, app_port]):
        login = gzipped_like(port, "/admin/login/")
        assert b"<title>Log in" in gzip.decompress(login.body)
        css = get(port, "/static/admin/css/base.css", GZIP)
        assert css.status == 200 and css.headers["content-type"] == "text/css"
        assert css.headers.get("content-encoding") == "gzip"
        original = (django_project / "staticfiles/admin/css/base.css").read_bytes()
        assert gzip.decompress(css.body) == original
        for path in ("/manage.py", "/settings.py", "/mysite/settings.py", "/db.sqlite3"):
            answer = get(port, path)
            assert answer.status == 404, path
            no_internal_headers(answer)


def test_a_django_settings_package_deploys_its_production_settings(tmp_path: Path) -> None:
    """settings/ as a package (base, dev, production), manage.py naming dev: new --app
    deploys production, finds STATIC_ROOT through its star import, and DEBUG is off."""
    run(sys.executable, "-m", "django", "startproject", "mysite", cwd=tmp_path)
    project = tmp_path / "mysite"
    package = project / "mysite" / "settings"
    package.mkdir()
    (package / "__init__.py").write_text("")
    flat = project / "mysite" / "settings.py"
    base = flat.read_text().replace(".resolve().parent.parent", ".resolve().parent.parent.parent")
    (package / "base.py").write_text(base + '\nSTATIC_ROOT = BASE_DIR / "staticfiles"\n')
    flat.unlink()
    (package / "dev.py").write_text("from .base import *\n\nDEBUG = True\n")
    (package / "production.py").write_text(
        'from .base import *\n\nDEBUG = False\nALLOWED_HOSTS = ["127.0.0.1", "localhost"]\n'
    )
    for name in ("manage.py", "mysite/wsgi.py"):
        path = project / name
        path.write_text(
            re.sub(r"(['\"])mysite\.settings\1", r"\1mysite.settings.dev\1", path.read_text())
        )
    run(sys.executable, "manage.py", "collectstatic", "--noinput", cwd=project)
    run(sys.executable, "manage.py", "migrate", "-v0", cwd=project)
    own_virtualenv(project)
    deployment = tmp_path / "deploy"
    made = run_toolkit("new", deployment, "--app", project)
    assert made.returncode == 0, made.stderr
    assert (
        "env = DJANGO_SETTINGS_MODULE=mysite.settings.production  (mysite/settings/production.py:"
        " manage.py line 9 names mysite.settings.dev, for development)"
    ) in made.stdout
    assert (
        "static_maps = /static/=../mysite/staticfiles  (STATIC_URL and STATIC_ROOT in "
        "mysite/settings/production.py)"
    ) in made.stdout
    assert not (deployment / "secrets.env").exists(), "production sets its key and hosts"
    port, app_port = free_ports(2)
    for _ in up(deployment, [port, app_port]):
        assert b"<title>Log in" in get(port, "/admin/login/").body
        assert get(port, "/static/admin/css/base.css").status == 200
        missing = get(port, "/no-such-page/")
        assert missing.status == 404 and b"URLconf" not in missing.body, "DEBUG is off"


@pytest.fixture
def flask_app(tmp_path: Path) -> Path:
    """A Flask app in a folder of its own, with its own virtualenv (.venv) made by the Python
    uWSGI embeds; Flask reaches it through a .pth file, not by a pip download."""
    app = tmp_path / "flaskapp"
    (app / "static").mkdir(parents=True)
    (app / "app.py").write_text(FLASK_APP)
    (app / "static" / "style.css").write_text("body { color: #333 }\n" * 50)
    (app / "secrets.env").write_text(f"# secrets stay out of vassals/\nSECRET_KEY={SECRET}\n")
    run(sys.executable, "-m", "venv", "--without-pip", app / ".venv", cwd=tmp_path)
    site = next((app / ".venv" / "lib").glob("python3*/site-packages"))
    (site / "toolkit-test.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return app


def test_a_flask_app_with_its_own_virtualenv(flask_app: Path, tmp_path: Path) -> None:
    deployment = tmp_path / "deploy"
    made = run_toolkit("new", deployment, "--app", flask_app)
    assert made.returncode == 0, made.stderr
    assert "app_module = app:app" in made.stdout
    assert "virtualenv = ../flaskapp/.venv" in made.stdout
    with (deployment / "deploy.ini").open("a") as stream:
        stream.write("env_file = ../flaskapp/secrets.env\n")
    port, app_port = free_ports(2)
    for _ in up(deployment, [port, app_port]):
        gzipped_like(port, "/")
        api = gzipped_like(port, "/api")
        assert str(flask_app / ".venv") in gzip.decompress(api.body).decode()
        assert get(port, "/env").body.decode() == SECRET
        assert get(port, "/static/style.css").status == 200
        for path in ("/app.py", "/secrets.env", "/.venv/pyvenv.cfg"):
            assert get(port, path).status == 404, path
    for vassal in (deployment / "vassals").glob("*.ini"):
        assert SECRET not in vassal.read_text()


def test_a_static_folder_holding_code_is_refused(flask_app: Path, tmp_path: Path) -> None:
    deployment = tmp_path / "deploy"
    assert run_toolkit("new", deployment, "--app", flask_app).returncode == 0
    result = run_toolkit("render", deployment, "--set", "static_dir=../flaskapp")
    assert result.returncode == 1
    assert "P403 error: / serves" in result.stderr
    assert "app.py" in result.stderr
    assert not (deployment / "vassals").exists()


def test_an_app_it_cannot_read_needs_a_module(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "service.py").write_text("def application(environ, start): pass\n")
    result = run_toolkit("new", tmp_path / "deploy", "--app", tmp_path / "lib")
    assert result.returncode == 2
    assert "--module" in result.stderr
    given = run_toolkit(
        "new", tmp_path / "deploy", "--app", tmp_path / "lib", "--module", "service:application"
    )
    assert given.returncode == 0, given.stderr
    assert "app_module = service:application  (given with --module)" in given.stdout
