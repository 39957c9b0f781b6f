"""The Emperor's own process: `python -m toolkit.emperor`, importing only what supervising needs.

`toolkit up` and `toolkit emperor` exec into it once rendering and checking are done, so
the long-running supervisor carries neither Jinja2 nor typer in its memory.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from toolkit.emperor.emperor import Emperor
from toolkit.emperor.options import parse
from toolkit.emperor.printer import Printer
from toolkit.errors import ToolkitError
from toolkit.installed import uwsgi_executable


def main(arguments: list[str] | None = None) -> int:
    patterns, options = parse(arguments)
    try:
        options = replace(options, uwsgi=uwsgi_executable(options.uwsgi))
        printer = Printer(
            quiet=options.quiet,
            logs_dir=options.logs_dir,
            timestamps=options.timestamps,
            log_max_bytes=options.log_max_bytes,
            log_backups=options.log_backups,
        )
        return Emperor(patterns, options, printer=printer).run()
    except ToolkitError as error:
        sys.stderr.write(f"error: {error}\n")
        return error.exit_code
