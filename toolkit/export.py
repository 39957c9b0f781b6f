"""Hand a deployment to the tools that run things for real: a systemd unit for its Emperor."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from toolkit.deployment import Deployment
from toolkit.emperor.main import argv
from toolkit.settings import Variables

UNIT = """\
# Written by `toolkit export systemd`: runs the deployment's vassals under toolkit's Emperor.
[Unit]
Description=toolkit Emperor for {root}
After=network.target

[Service]
Type=simple
WorkingDirectory={root}
ExecStart={command}
Environment=NO_COLOR=1
# The Emperor stops every vassal gracefully on SIGINT (uWSGI would take SIGTERM as a reload);
# whatever is left after the timeout is killed with the whole cgroup.
KillSignal=SIGINT
KillMode=mixed
TimeoutStopSec=30
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
"""


def systemd_unit(deployment: Deployment, variables: Variables, uwsgi: Path) -> str:
    root = deployment.root.resolve()
    resolved = Deployment(root)
    command = argv(
        resolved.vassal_patterns(variables.recipe),
        uwsgi=uwsgi,
        run_dir=resolved.run_dir,
        logs_dir=resolved.logs_dir(variables),
    )
    command[0] = str(Path(sys.executable).absolute())
    # systemd expands %-specifiers in ExecStart; a literal % must be doubled.
    return UNIT.format(root=root, command=shlex.join(command).replace("%", "%%"))
