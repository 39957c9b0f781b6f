"""The rendered pair, run by real uwsgi on free loopback ports, serves what the guide promises."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tests.support import GZIP, UWSGI, Processes, get, run_toolkit, serving, wait_for


def test_rendered_vassals_serve_gzip_html_json_and_static(
    deployment: Path, processes: Processes, free_pair: tuple[int, int]
) -> None:
    http_port, app_port = free_pair
    result = run_toolkit(
        "render", deployment, "--set", f"http_port={http_port}", "--set", f"app_port={app_port}"
    )
    assert result.returncode == 0, result.stderr
    processes.start(UWSGI, "--ini", deployment / "vassals" / "uwsgi.ini")
    processes.start(UWSGI, "--ini", deployment / "vassals" / "http.ini")
    wait_for(serving(http_port), what="serving(http_port)")

    page = get(http_port, "/", GZIP)
    assert page.headers["content-encoding"] == "gzip"
    assert b"<h1>" in gzip.decompress(page.body)

    status = get(http_port, "/api/status", GZIP)
    assert status.headers["content-encoding"] == "gzip"
    assert json.loads(gzip.decompress(status.body))["status"] == "ok"

    plain = get(http_port, "/")
    assert "content-encoding" not in plain.headers

    css = get(http_port, "/base.css")
    assert css.status == 200
    assert css.body == (deployment / "static" / "base.css").read_bytes()
    assert css.headers["content-type"] == "text/css"
