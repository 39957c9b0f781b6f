"""A small WSGI app: an HTML page and a JSON endpoint, enough to see every layer work."""

import json
import os

GREETING = os.environ.get("APP_GREETING", "Hello from uWSGI")

PAGE = """<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>toolkit demo</title>
<link rel="stylesheet" href="/base.css">
</head>
<body>
<h1>{greeting}</h1>
<p>This page comes from <code>code/app.py</code>, through the HTTP router and the app vassal.</p>
<p>The stylesheet is a static file; <a href="/api/status">/api/status</a> is JSON.</p>
</body>
</html>
"""


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        body = PAGE.format(greeting=GREETING).encode()
        content_type = "text/html; charset=utf-8"
        status = "200 OK"
    elif path == "/api/status":
        payload = {"status": "ok", "pid": os.getpid(), "greeting": GREETING}
        body = json.dumps(payload).encode()
        content_type = "application/json"
        status = "200 OK"
    else:
        body = b"not found\n"
        content_type = "text/plain"
        status = "404 Not Found"
    # A length, as Django and Flask send one; the app vassal drops it for the answers it
    # gzips (see the compression block of its config).
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]
