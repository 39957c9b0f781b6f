"""Chapter 18: the spooler runs each queued job here, in its own process."""

from pathlib import Path

import uwsgi

# The spooler works inside the spool folder; finished jobs are recorded next to the logs.
DONE = Path(__file__).resolve().parents[1] / "logs" / "jobs"


def run_job(job):
    name = job[b"name"].decode()
    DONE.mkdir(parents=True, exist_ok=True)
    (DONE / name).write_text("done\n")
    print(f"job {name} done", flush=True)
    return uwsgi.SPOOL_OK


uwsgi.spooler = run_job
