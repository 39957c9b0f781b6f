"""A sample in Prometheus' text format (version 0.0.4): every vassal in one scrape, with
`vassal` and `release` as labels. uWSGI's own numbers keep the names uwsgi_exporter gives
them (timonwong/uwsgi_exporter, `uwsgi_worker_requests_total`...), so dashboards made for
it read these; what only toolkit's Emperor knows is named `toolkit_*`."""

from __future__ import annotations

from collections.abc import Iterator

from toolkit.observe import Sample, VassalView

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WORKER_STATES = ("busy", "idle", "cheap")

# name -> (type, help), in the order they are written.
FAMILIES: dict[str, tuple[str, str]] = {
    "toolkit_vassal_up": ("gauge", "1 when the vassal serves, as `toolkit status` counts it."),
    "toolkit_vassal_state": ("gauge", "1 for the state the vassal is in (the `state` label)."),
    "toolkit_vassal_restarts_total": ("counter", "Times the Emperor started the vassal again."),
    "toolkit_vassal_worker_deaths_total": (
        "counter",
        "Worker ends its master reported, by cause (harakiri, oom, crash, recycled, exit, signal).",
    ),
    "toolkit_vassal_memory_bytes": ("gauge", "Resident memory of all the vassal's processes."),
    "toolkit_vassal_cpu_seconds_total": ("counter", "CPU time of all the vassal's processes."),
    "toolkit_vassal_stats_up": ("gauge", "1 when the vassal's stats server answered."),
    "uwsgi_listen_queue_length": ("gauge", "Connections waiting in the listen queue."),
    "uwsgi_listen_queue_errors": ("gauge", "Listen queue overflows."),
    "uwsgi_workers": ("gauge", "Worker processes running."),
    "uwsgi_worker_requests_total": ("counter", "Requests the worker (its slot) served."),
    "uwsgi_worker_exceptions_total": ("counter", "Exceptions the worker's app raised."),
    "uwsgi_worker_respawn_count_total": ("counter", "Times the worker slot was spawned."),
    "uwsgi_worker_rss_bytes": ("gauge", "Resident memory of the worker process."),
    "uwsgi_worker_average_response_time_seconds": (
        "gauge",
        "uWSGI's running average of the worker's response time.",
    ),
    "uwsgi_worker_busy": ("gauge", "1 when the worker is busy with a request."),
    "uwsgi_worker_idle": ("gauge", "1 when the worker waits for a request."),
    "uwsgi_worker_cheap": ("gauge", "1 when the worker slot is not running (cheaper mode)."),
    "toolkit_router_node_requests_total": (
        "counter",
        "Requests a router vassal sent to an app node.",
    ),
    "toolkit_scrape_duration_seconds": ("gauge", "How long this sample took to take."),
}


def exposition(sample: Sample, took: float) -> str:
    samples: dict[str, list[str]] = {name: [] for name in FAMILIES}
    for view in sample.vassals:
        for name, labels, value in _vassal(view):
            samples[name].append(f"{name}{{{_labels(labels)}}} {_number(value)}")
    samples["toolkit_scrape_duration_seconds"].append(
        f"toolkit_scrape_duration_seconds {_number(took)}"
    )
    lines = []
    for name, (kind, text) in FAMILIES.items():
        if samples[name]:
            lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *samples[name]]
    return "\n".join(lines) + "\n"


def _vassal(view: VassalView) -> Iterator[tuple[str, dict[str, str], float]]:
    status = view.status
    own = {"vassal": status.name, "release": status.release}
    yield "toolkit_vassal_up", own, 1 if status.answering else 0
    yield "toolkit_vassal_state", {**own, "state": str(status.state)}, 1
    yield "toolkit_vassal_restarts_total", own, status.restarts
    for cause, count in sorted((status.worker_deaths_by_cause or {}).items()):
        yield "toolkit_vassal_worker_deaths_total", {**own, "cause": cause}, count
    if status.rss is not None:
        yield "toolkit_vassal_memory_bytes", own, status.rss
    if status.cpu is not None:
        yield "toolkit_vassal_cpu_seconds_total", own, status.cpu
    yield "toolkit_vassal_stats_up", own, 1 if view.stats is not None else 0
    found = view.stats
    if found is None:
        return
    if found.workers:
        yield "uwsgi_listen_queue_length", own, found.listen_queue
        yield "uwsgi_listen_queue_errors", own, found.listen_queue_errors
        yield "uwsgi_workers", own, sum(1 for w in found.workers if w.running)
    for worker in found.workers:
        labels = {**own, "worker_id": str(worker.id)}
        yield "uwsgi_worker_requests_total", labels, worker.requests
        yield "uwsgi_worker_exceptions_total", labels, worker.exceptions
        yield "uwsgi_worker_respawn_count_total", labels, worker.respawns
        if worker.rss is not None:
            yield "uwsgi_worker_rss_bytes", labels, worker.rss
        yield "uwsgi_worker_average_response_time_seconds", labels, worker.avg_rt / 1e6
        for state in WORKER_STATES:
            yield f"uwsgi_worker_{state}", labels, 1 if worker.status == state else 0
    for node in found.nodes:
        labels = {**own, "node": node.name, "key": node.key}
        yield "toolkit_router_node_requests_total", labels, node.requests


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f'{key}="{_escaped(value)}"' for key, value in labels.items())


def _escaped(value: str) -> str:
    """A label value as the text format needs it: backslash, double quote, newline."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
