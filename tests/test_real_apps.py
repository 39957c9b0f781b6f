"""Real apps that nobody here wrote, installed in the test: the Flask tutorial app (flaskr,
from the Flask sdist's examples/tutorial), a Wagtail site (`wagtail start`), the Pyramid
starter project (from the Pyramid sdist's docs) and a FastAPI app through a2wsgi.

For each: `toolkit new --app`, `up --detach`, a page through the router. For flaskr and
Wagtail also a write, a release of a change to code and to a stylesheet, another write, a
rollback: every write is still served after both, each stylesheet ships with its code, and
migrations run once."""

from __future__ import annotations

import http.cookiejar
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.support import (
    UWSGI,
    Processes,
    free_ports,
    get,
    own_virtualenv,
    run_toolkit,
    wait_for,
)

# A real app's project made, migrated, released and rolled back: 25 s on an idle machine
# (Wagtail), over a minute with both cores busy. The bound catches a hang, not slowness.
pytestmark = pytest.mark.timeout(180)


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=180, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


class Browser:
    """A client with cookies, through the router."""

    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def get(self, path: str) -> str:
        with self.opener.open(self.base + path, timeout=30) as answer:
            return str(answer.read().decode())

    def post(
        self, path: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]] | None = None
    ) -> str:
        if files is None:
            data, kind = urllib.parse.urlencode(fields).encode(), None
        else:
            boundary = uuid.uuid4().hex
            parts = [
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n".encode()
                for name, value in fields.items()
            ]
            parts += [
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: image/png\r\n\r\n'.encode()
                + content
                + b"\r\n"
                for name, (filename, content) in files.items()
            ]
            data = b"".join([*parts, f"--{boundary}--\r\n".encode()])
            kind = f"multipart/form-data; boundary={boundary}"
        request = urllib.request.Request(self.base + path, data)
        if kind:
            request.add_header("Content-Type", kind)
        with self.opener.open(request, timeout=30) as answer:
            return str(answer.read().decode())


def deploy(app: Path, root: Path, *prepare: tuple[str, ...]) -> tuple[int, str]:
    """`toolkit new --app`, two free ports, each `prepare` command run as the app runs
    (`toolkit run`), `up --detach`: (the router's port, new's output)."""
    made = run_toolkit("new", root, "--app", app)
    assert made.returncode == 0, made.stderr
    port, app_port = free_ports(2)
    with (root / "deploy.ini").open("a") as stream:
        stream.write(f"http_port = {port}\napp_port = {app_port}\n")
    for command in prepare:
        done = run_toolkit("run", root, "--", *command)
        assert done.returncode == 0, done.stdout + done.stderr
    started = run_toolkit("up", root, "--detach")
    assert started.returncode == 0, started.stderr + started.stdout
    return port, made.stdout


def no_state_in_releases(root: Path) -> None:
    """Releases hold code: no virtualenv, no database, no uploads (only links to shared/)."""
    for folder in (root / "releases").iterdir():
        if not folder.is_dir():
            continue
        assert not (folder / ".venv").exists(), folder
        for path in folder.rglob("*"):
            if path.suffix in {".sqlite", ".sqlite3"} and not path.is_symlink():
                raise AssertionError(f"a database in a release: {path}")


def unpacked_sdist(tmp_path_factory: pytest.TempPathFactory, package: str) -> Path:
    """The source distribution of the `package` installed here, downloaded and unpacked."""
    folder = tmp_path_factory.mktemp(f"{package}-sdist")
    installed = version(package)
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:"]
    run(*pip, f"{package}=={installed}", "-d", folder, cwd=folder)
    with tarfile.open(folder / f"{package}-{installed}.tar.gz") as archive:
        archive.extractall(folder, filter="data")
    return folder / f"{package}-{installed}"


@pytest.fixture(scope="session")
def flask_tutorial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/tutorial from the sdist of the Flask installed here."""
    return unpacked_sdist(tmp_path_factory, "flask") / "examples" / "tutorial"


def test_flaskr_keeps_every_post_through_a_release_and_a_rollback(
    flask_tutorial: Path, tmp_path: Path
) -> None:
    app = tmp_path / "flaskr"
    shutil.copytree(flask_tutorial, app)
    python = own_virtualenv(app)
    run(python, "-m", "flask", "--app", "flaskr", "init-db", cwd=app)  # as the tutorial says
    root = tmp_path / "deploy"
    port, found = deploy(app, root)
    assert "shared = instance/  (Flask's instance folder" in found
    try:
        browser = Browser(port)
        browser.post("/auth/register", {"username": "ann", "password": "pw"})
        browser.post("/auth/login", {"username": "ann", "password": "pw"})
        browser.post("/create", {"title": "first post", "body": "written before"})
        assert "first post" in browser.get("/")
        # The next version, as a user makes it: a copy of the whole folder, edited.
        two = tmp_path / "two"
        shutil.copytree(app, two, symlinks=True)
        base = two / "flaskr" / "templates" / "base.html"
        base.write_text(base.read_text().replace("Flaskr</a></h1>", "Flaskr two</a></h1>"))
        with (two / "flaskr" / "static" / "style.css").open("a") as stream:
            stream.write("\n/* version two */\n")
        shipped = run_toolkit("release", root, "--from", two)
        assert shipped.returncode == 0, shipped.stderr
        assert "moved instance into" in shipped.stdout
        assert ".venv (a virtualenv)" in shipped.stdout and "instance (shared" in shipped.stdout, (
            shipped.stdout
        )
        page = browser.get("/")
        assert "Flaskr two" in page and "first post" in page
        assert b"/* version two */" in get(port, "/static/style.css").body
        browser.post("/create", {"title": "second post", "body": "written after"})
        back = run_toolkit("rollback", root)
        assert back.returncode == 0, back.stderr
        page = browser.get("/")
        assert "Flaskr two" not in page
        assert "first post" in page and "second post" in page, "every post is still there"
        assert b"/* version two */" not in get(port, "/static/style.css").body
        assert (root / "shared" / "instance" / "flaskr.sqlite").is_file()
        assert (app / "instance").is_symlink(), "the app folder links to the shared state"
        no_state_in_releases(root)
    finally:
        run_toolkit("down", root)


PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de"
    "0000000c4944415408d763f8cfc0000003010100c9fe92ef0000000049454e44ae426082"
)
MIGRATION = """from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("home", "0002_create_homepage")]
    operations = [
        migrations.AddField(
            model_name="homepage",
            name="subtitle",
            field=models.CharField(blank=True, max_length=100),
        ),
    ]
"""


@pytest.fixture(scope="session")
def wagtail_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`wagtail start mysite`, migrated, its static files collected and an admin made, as
    its README says, with its own virtualenv: made once, copied by each test."""
    folder = tmp_path_factory.mktemp("wagtail")
    wagtail = Path(sys.executable).parent / "wagtail"
    run(wagtail, "start", "mysite", cwd=folder)
    site = folder / "mysite"
    python = own_virtualenv(site)
    run(python, "manage.py", "migrate", "--noinput", cwd=site)
    run(python, "manage.py", "collectstatic", "--noinput", cwd=site)
    env = {"DJANGO_SUPERUSER_PASSWORD": "pw", "PATH": "/usr/bin:/bin"}
    run(python, "manage.py", "createsuperuser", "--noinput", "--username", "admin",
        "--email", "admin@example.com", cwd=site, env=env)  # fmt: skip
    (site / "media").mkdir()
    yield site


def upload(browser: Browser, name: str) -> str:
    """An image through Wagtail's admin; the URL Wagtail serves it at."""
    page = browser.get("/admin/images/add/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    browser.post(
        "/admin/images/add/",
        {"csrfmiddlewaretoken": token.group(1), "title": name, "tags": ""},
        {"file": (f"{name}.png", PNG)},
    )
    return f"/media/original_images/{name}.png"


def login(browser: Browser) -> None:
    page = browser.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None
    fields = {"csrfmiddlewaretoken": token.group(1), "username": "admin", "password": "pw"}
    assert "Sign out" in browser.post("/admin/login/", fields) or "Dashboard" in browser.get(
        "/admin/"
    )


def test_wagtail_keeps_every_image_through_a_migrating_release_and_a_rollback(
    wagtail_site: Path, tmp_path: Path
) -> None:
    app = tmp_path / "mysite"
    shutil.copytree(wagtail_site, app, symlinks=True)
    root = tmp_path / "deploy"
    # Production settings hash static file names (ManifestStaticFilesStorage): collected
    # with them, as the app runs, before the first start.
    port, found = deploy(app, root, ("python", "manage.py", "collectstatic", "--noinput"))
    assert "mysite/settings/production.py: manage.py line 9 names mysite.settings.dev" in found
    assert "env = DJANGO_SETTINGS_MODULE=deployment_settings" in found
    assert (root / "secrets.env").stat().st_mode & 0o777 == 0o600
    assert "/static/=../mysite/static, /media/=../mysite/media" in found
    assert "shared = db.sqlite3, media/" in found
    assert "python manage.py migrate --noinput, python manage.py collectstatic --noinput" in found
    try:
        missing = urllib.request.Request(f"http://127.0.0.1:{port}/no-such-page/")
        with pytest.raises(urllib.error.HTTPError) as not_found:
            urllib.request.urlopen(missing, timeout=30)
        assert not_found.value.code == 404
        assert b"URLconf" not in not_found.value.read(), "DEBUG is off in production"
        browser = Browser(port)
        login(browser)
        first = upload(browser, "before")
        assert get(port, first).body == PNG
        css = "/static/css/mysite.css"
        before_css = get(port, css).body
        two = tmp_path / "two"
        shutil.copytree(app, two, symlinks=True)
        (two / "home" / "migrations" / "0003_homepage_subtitle.py").write_text(MIGRATION)
        models = two / "home" / "models.py"
        models.write_text(
            models.read_text().replace(
                "    pass", "    subtitle = models.CharField(max_length=100, blank=True)"
            )
        )
        with (two / "mysite" / "static" / "css" / "mysite.css").open("a") as stream:
            stream.write("\n/* version two */\n")
        shipped = run_toolkit("release", root, "--from", two)
        assert shipped.returncode == 0, shipped.stderr + shipped.stdout
        assert shipped.stdout.count("Applying home.0003_homepage_subtitle... OK") == 1
        assert b"/* version two */" in get(port, css).body, "the new stylesheet is served"
        second = upload(browser, "after")
        assert get(port, first).body == PNG and get(port, second).body == PNG
        back = run_toolkit("rollback", root)
        assert back.returncode == 0, back.stderr
        assert "Applying" not in back.stdout, "a rollback runs no migration"
        assert get(port, css).body == before_css, "the old stylesheet is served again"
        assert get(port, first).body == PNG and get(port, second).body == PNG
        with sqlite3.connect(root / "shared" / "db.sqlite3") as database:
            applied = database.execute(
                "SELECT count(*) FROM django_migrations WHERE name = '0003_homepage_subtitle'"
            ).fetchone()[0]
        assert applied == 1, "the migration ran once"
        no_state_in_releases(root)
        releases = [f for f in (root / "releases").iterdir() if f.is_dir()]
        assert all((f / "media").is_symlink() for f in releases), "uploads live in shared/"
        assert (root / "shared" / "media" / "original_images" / "before.png").is_file()
    finally:
        run_toolkit("down", root)


# --- Pyramid, from the starter project in the Pyramid sdist --------------------------------


@pytest.fixture(scope="session")
def pyramid_starter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/narr/myproject from the sdist of the Pyramid installed here: the project the
    pyramid-cookiecutter-starter makes, as Pyramid's own docs ship it."""
    return unpacked_sdist(tmp_path_factory, "pyramid") / "docs" / "narr" / "myproject"


def test_the_pyramid_starter_from_new_to_a_page(pyramid_starter: Path, tmp_path: Path) -> None:
    app = tmp_path / "myproject"
    shutil.copytree(pyramid_starter, app)
    python = own_virtualenv(app)
    # As its README says: the project installed into its virtualenv (egg:myproject).
    run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", ".",
        cwd=app)  # fmt: skip
    root = tmp_path / "deploy"
    port, found = deploy(app, root)
    assert "found a pyramid app" in found
    assert "paste = ../myproject/production.ini  (production.ini: [app:main])" in found
    assert "static_maps = /static/=../myproject/myproject/static" in found
    try:
        page = get(port, "/")
        assert page.status == 200 and b"Pyramid" in page.body
        theme = get(port, "/static/theme.css")
        assert theme.body == (app / "myproject" / "static" / "theme.css").read_bytes()
        assert get(port, "/production.ini").status == 404
    finally:
        run_toolkit("down", root)


# --- FastAPI through a2wsgi --------------------------------------------------------------

FASTAPI_APP = """from a2wsgi import ASGIMiddleware
from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def hello() -> dict[str, str]:
    return {"hello": "fastapi"}


application = ASGIMiddleware(app)
"""


def test_fastapi_through_a2wsgi_is_loaded_in_each_worker(
    tmp_path: Path, processes: Processes
) -> None:
    """new --app finds the adapter and sets lazy_apps; check refuses the app without it,
    and real uWSGI shows why: loaded in the master, the app never answers."""
    app = tmp_path / "api"
    app.mkdir()
    (app / "main.py").write_text(FASTAPI_APP)
    own_virtualenv(app)
    root = tmp_path / "deploy"
    port, found = deploy(app, root)
    assert "app_module = main:application  (main.py line 12" in found
    assert "lazy_apps = true  (a2wsgi starts the app's event loop in a thread" in found
    try:
        answer = get(port, "/")
        assert answer.status == 200 and json.loads(answer.body) == {"hello": "fastapi"}
        refused = run_toolkit("render", root, "--set", "lazy_apps=false")
        assert refused.returncode == 1
        assert "W604 error: main serves an ASGI app through a2wsgi" in refused.stderr
    finally:
        run_toolkit("down", root)
    # What W604 says, held against uWSGI and a2wsgi themselves, without toolkit.
    for lazy, answers in (("false", False), ("true", True)):
        alone = free_ports(1)[0]
        ini, log = tmp_path / f"lazy-{lazy}.ini", tmp_path / f"lazy-{lazy}.log"
        ini.write_text(
            f"[uwsgi]\nhttp-socket = 127.0.0.1:{alone}\nmaster = true\nprocesses = 1\n"
            f"pythonpath = {app}\nvirtualenv = {app / '.venv'}\nmodule = main:application\n"
            f"need-app = true\nlazy-apps = {lazy}\nlogto = {log}\n"
        )
        processes.start(UWSGI, "--ini", ini)
        wait_for(
            lambda log=log: log.is_file() and "WSGI app 0 (mountpoint='') ready" in log.read_text(),
            what=f"the app loaded with lazy-apps = {lazy}",
            timeout=60,
        )
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{alone}/", timeout=5) as reply:
                answered = reply.status == 200
        except TimeoutError:
            answered = False
        assert answered is answers, f"lazy-apps = {lazy}: {log.read_text()[-2000:]}"
