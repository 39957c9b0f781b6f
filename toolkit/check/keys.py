"""Groups of option names the rules share, and the settings of a config by how uWSGI reads
them."""

from __future__ import annotations

from toolkit.check.model import Context
from toolkit.check.reading import INLINE_COMMENT
from toolkit.uwsgi_config import Config, Setting
from toolkit.uwsgi_options import ValueKind

APP_KEYS = ("module", "wsgi", "wsgi-file", "file", "mount", "callable", "eval", "pymodule-alias")
PATH_KEYS = ("chdir", "pythonpath", "python-path", "pp", "wsgi-file", "file", "check-static")
VIRTUALENV_KEYS = ("home", "virtualenv", "venv", "pyhome")
OUTPUT_REDIRECT_KEYS = ("logto", "logto2", "daemonize", "daemonize2")
FILE_FOLDER_KEYS = ("pidfile", "pidfile2", *OUTPUT_REDIRECT_KEYS)
LOGGER_KEYS = ("logger", "req-logger")
APP_SOCKET_KEYS = ("socket", "uwsgi-socket")


def valued(config: Config, context: Context, kind: ValueKind) -> list[Setting]:
    """The settings whose values uWSGI reads the `kind` way."""
    return config.of_kind(context.table, kind)


def inline_comment(setting: Setting) -> bool:
    """A value with what looks like a comment in it (uWSGI has no inline comments)."""
    return bool(INLINE_COMMENT.search(setting.value))
