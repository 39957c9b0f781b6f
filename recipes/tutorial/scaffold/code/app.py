"""The tutorial's app: a page, a JSON endpoint, and the pieces later chapters use."""

import json
import os
import time

try:
    import uwsgi  # present only inside uWSGI
except ImportError:
    uwsgi = None

PAGE = """<!doctype html>
<html>
<head><meta charset="utf-8"><title>uWSGI from the ground up</title>
<link rel="stylesheet" href="/base.css"></head>
<body><h1>Hello from uWSGI</h1><p>Served by worker {pid}.</p></body>
</html>
"""


def cached_time():
    """Chapter 17: the first request stores the time; later ones read it from uWSGI's cache."""
    value = uwsgi.cache_get("first-seen")
    if value is None:
        value = str(time.time()).encode()
        uwsgi.cache_set("first-seen", value, 60)
        return value, "miss"
    return value, "hit"


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    headers = []
    if path == "/":
        body, kind = PAGE.format(pid=os.getpid()).encode(), "text/html; charset=utf-8"
    elif path == "/api/status":
        body, kind = json.dumps({"status": "ok", "pid": os.getpid()}).encode(), "application/json"
    elif path == "/slow":
        # Chapter 08: a request that keeps its worker busy, to make load by hand.
        time.sleep(1)
        body, kind = f"slept 1 s in worker {os.getpid()}\n".encode(), "text/plain"
    elif path == "/cached" and uwsgi is not None:
        body, hit = cached_time()
        kind, headers = "text/plain", [("X-Cache", hit)]
    elif path == "/job" and uwsgi is not None:
        name = environ.get("QUERY_STRING", "") or "job"
        uwsgi.spool({b"name": name.encode()})
        body, kind = f"queued {name}\n".encode(), "text/plain"
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]
    start_response("200 OK", [("Content-Type", kind), *headers])
    return [body]
