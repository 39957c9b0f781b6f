"""Asking an app for a path over its own uwsgi socket, and saying what happened in words:
refused, accepted and then silent (a hang), answered with a status and a body."""

from __future__ import annotations

from dataclasses import dataclass

from toolkit import uwsgi_packet

# What a Django site with DEBUG = False answers for an error, and logs nowhere by default.
DJANGO_500 = b"<h1>Server Error (500)</h1>"
BODY_SHOWN = 120


@dataclass(frozen=True)
class Probe:
    """One request's outcome: `answer` when the app answered, else why not."""

    answer: uwsgi_packet.Answer | None
    failure: str = ""
    refused: bool = False

    def says(self, path: str, want: int) -> str | None:
        """None when it answered `want`; otherwise what happened, in one sentence."""
        if self.answer is None:
            return self.failure
        if self.answer.status == want:
            return None
        body = self.answer.body[:BODY_SHOWN].decode("utf-8", errors="replace")
        shown = " ".join(body.split())
        return f"GET {path} answered {self.answer.status}, not {want}: {shown!r}"


def probe(address: tuple[str, int], path: str, host: str, timeout: float) -> Probe:
    try:
        return Probe(uwsgi_packet.request(address, path, host, timeout))
    except ConnectionRefusedError:
        return Probe(None, "it refused the connection", refused=True)
    except TimeoutError:
        return Probe(
            None, f"it accepted the connection but did not answer within {timeout:g} s (a hang)"
        )
    except (OSError, ConnectionError) as error:
        return Probe(None, f"the connection failed: {error}")


def django_logged_nothing(answer: uwsgi_packet.Answer | None, log: str) -> str | None:
    """A hint when Django with DEBUG = False answered its bare 500 page and logged nothing."""
    if answer is None or answer.status != 500 or DJANGO_500 not in answer.body:
        return None
    if "Traceback" in log:
        return None
    return (
        "Django answered its plain 500 page and logged nothing (with DEBUG = False it sends "
        "errors to the admins by mail only): add a LOGGING setting that logs "
        "'django.request' to the console, or run `python manage.py check --deploy` in the "
        "release's folder, to see the error"
    )
