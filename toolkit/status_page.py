"""The status page: a sample as one HTML page, read-only, readable without JavaScript, that
asks the browser to load it again every few seconds (a `refresh` meta tag)."""

from __future__ import annotations

import time
from html import escape

from toolkit.observe import Sample, VassalView
from toolkit.stats import Worker

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .2em; }
h2 { font-size: 1.1em; margin: 1.4em 0 .3em; }
table { border-collapse: collapse; margin: .3em 0; }
th, td { padding: .2em .7em; text-align: right; border-bottom: 1px solid #ddd; }
th:first-child, td:first-child { text-align: left; }
.serving { color: #176b2c; } .failed { color: #b00020; } .other { color: #8a5a00; }
.quiet { color: #666; }
"""


def page(sample: Sample, title: str, refresh: int) -> str:
    clock = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(sample.wall))
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{refresh}">',
        f"<title>{escape(title)}: toolkit status</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="quiet">{len(sample.vassals)} vassal(s) at {clock}; this page reloads '
        f'every {refresh} s. Metrics for Prometheus: <a href="/metrics">/metrics</a>.</p>',
        _summary(sample),
    ]
    for view in sorted(sample.vassals, key=lambda v: (v.status.name, v.status.release)):
        parts.append(_vassal(view))
    parts.append(_deaths(sample))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _state_class(view: VassalView) -> str:
    if view.status.serving:
        return "serving"
    return "failed" if view.status.failed else "other"


def _summary(sample: Sample) -> str:
    rows = [
        "<table><tr><th>vassal</th><th>state</th><th>release</th><th>pid</th>"
        "<th>restarts</th><th>requests</th><th>memory</th><th>uptime</th></tr>"
    ]
    for view in sorted(sample.vassals, key=lambda v: (v.status.name, v.status.release)):
        status, found = view.status, view.stats
        rows.append(
            f"<tr><td>{escape(status.name)}</td>"
            f'<td class="{_state_class(view)}">{escape(str(status.state))}</td>'
            f"<td>{escape(status.release or '-')}</td><td>{status.pid or '-'}</td>"
            f"<td>{status.restarts}</td><td>{found.requests if found else '-'}</td>"
            f"<td>{_megabytes(status.rss)}</td><td>{_duration(status.uptime)}</td></tr>"
        )
    return "".join(rows) + "</table>"


def _vassal(view: VassalView) -> str:
    status, found = view.status, view.stats
    name = status.name + (f" ({status.release})" if status.release else "")
    parts = [f"<h2>{escape(name)}</h2>"]
    notes = [
        ("last exit", status.last_exit),
        ("health check", status.health),
        ("log", status.log_problem),
        ("stats", view.problem),
    ]
    for label, note in notes:
        if note:
            parts.append(f'<p class="other">{escape(label)}: {escape(note)}</p>')
    if found is None:
        return "\n".join(parts)
    if found.workers:
        parts.append(
            f"<p>listen queue {found.listen_queue} (overflows {found.listen_queue_errors})</p>"
            "<table><tr><th>worker</th><th>status</th><th>pid</th><th>requests</th>"
            "<th>exceptions</th><th>avg ms</th><th>memory</th><th>spawned</th></tr>"
        )
        for worker in found.workers:
            parts.append(
                f"<tr><td>{worker.id}</td><td>{escape(worker.status)}</td>"
                f"<td>{worker.pid or '-'}</td><td>{worker.requests}</td>"
                f"<td>{worker.exceptions}</td><td>{_milliseconds(worker)}</td>"
                f"<td>{_megabytes(worker.rss)}</td><td>{worker.respawns}</td></tr>"
            )
        parts.append("</table>")
    if found.nodes:
        parts.append("<table><tr><th>app node</th><th>key</th><th>requests</th><th></th></tr>")
        for node in found.nodes:
            parts.append(
                f"<tr><td>{escape(node.name)}</td><td>{escape(node.key)}</td>"
                f"<td>{node.requests}</td><td>{'dead' if node.dead else ''}</td></tr>"
            )
        parts.append("</table>")
    return "\n".join(parts)


def _deaths(sample: Sample) -> str:
    deaths = sorted(
        (when, view.status.name, what)
        for view in sample.vassals
        for when, what in view.status.recent_worker_deaths or []
    )
    if not deaths:
        return "<h2>Last worker deaths</h2><p>none since the Emperor started</p>"
    rows = [
        f"<tr><td>{time.strftime('%H:%M:%S', time.localtime(when))}</td>"
        f"<td>{escape(name)}</td><td>{escape(what)}</td></tr>"
        for when, name, what in reversed(deaths[-10:])
    ]
    return "<h2>Last worker deaths</h2><table>" + "".join(rows) + "</table>"


def _megabytes(value: int | None) -> str:
    return f"{value / 1024 / 1024:.1f} MB" if value else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}h{minute:02d}m" if hours else f"{minute}m{second:02d}s"


def _milliseconds(worker: Worker) -> str:
    """uWSGI's running average of its response time; none before its first request."""
    return f"{worker.avg_rt / 1000:.2f}" if worker.requests else "-"
