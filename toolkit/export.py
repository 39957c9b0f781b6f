"""Hand a deployment to the tools that run things for real: systemd and Ansible."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from toolkit import __version__, fleet
from toolkit.deployment import Deployment
from toolkit.emperor.options import EmperorOptions
from toolkit.inventory import Inventory
from toolkit.pipeline import log_rotation, serving_addresses
from toolkit.settings import Variables

UNIT = """\
# Written by `toolkit export systemd`: runs the deployment's vassals under toolkit's Emperor.
[Unit]
Description=toolkit Emperor for {root}
After=network.target

[Service]
# The Emperor says READY=1 once every vassal serves and the site answers, STATUS= with how
# many vassals serve, and WATCHDOG=1 from its loop (toolkit/emperor/notify.py).
Type=notify
NotifyAccess=main
WatchdogSec=30
TimeoutStartSec=120
WorkingDirectory={root}
ExecStart={command}
# Returns once every vassal reloaded serves again.
ExecReload={reload}
Environment=NO_COLOR=1
# A cgroup of its own under the unit's for each vassal: what a daemonizing app leaves
# behind ends with it (toolkit/emperor/containment.py).
Delegate=yes
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
    max_bytes, backups = log_rotation(variables.values)
    options = EmperorOptions(
        uwsgi=uwsgi,
        run_dir=resolved.run_dir,
        logs_dir=resolved.logs_dir(variables),
        timestamps=False,  # the journal stamps every line
        log_max_bytes=max_bytes,
        log_backups=backups,
        serving=tuple(serving_addresses(variables.values)),
    )
    command = options.command(resolved.vassal_patterns(variables.recipe))
    command[0] = str(Path(sys.executable).absolute())
    toolkit = [str(Path(sys.executable).absolute()), "-m", "toolkit"]
    reload = [*toolkit, "reload", str(root), "--wait"]
    # systemd expands %-specifiers in ExecStart; a literal % must be doubled.
    return UNIT.format(
        root=root,
        command=shlex.join(command).replace("%", "%%"),
        reload=shlex.join(reload).replace("%", "%%"),
    )


# What each host makes or keeps for itself: rendered vassals, run state, logs.
NOT_SHIPPED = {"vassals", "run", "logs", "hosts", "ansible", "releases"}
PLAYBOOK = """\
# Written by `toolkit export ansible`: `ansible-playbook -i hosts.ini playbook.yml`.
# Each host gets the deployment folder, renders its own vassals with its inventory
# variables (`toolkit render --host`), and runs them under the Emperor's systemd unit.
# With -e toolkit_release_commit=COMMIT, each host then ships that same commit of the
# app's git repository with `toolkit release` (health-checked, switched without a gap);
# toolkit_release_repo names that repository on the host (default: the shipped code
# folder, if it holds .git), and `--tags release` runs that step alone.
- name: Deploy {name} with toolkit
  hosts: all
  vars:
    toolkit_source: {source}
    toolkit_home: /srv/toolkit
    toolkit_dest: "{{{{ toolkit_home }}}}/{name}"
    toolkit_venv: "{{{{ toolkit_home }}}}/venv"
    toolkit_package: {package}
    toolkit_controller_python: {python}
    toolkit_wheels: {wheels}
    toolkit_install: true
    toolkit_systemd: true
    toolkit_release_commit: ""
    toolkit_release_repo: "{{{{ toolkit_dest }}}}/{code}"
    # uWSGI compiles on the host; without the PCRE2 headers it builds without internal
    # routing, and the rendered gzip rules would be refused by `toolkit render`.
    toolkit_build_packages:
      Debian: [build-essential, python3-dev, python3-venv, libpcre2-dev]
      RedHat: [gcc, python3-devel, pcre2-devel]
  tasks:
    - name: Build toolkit's wheel on the controller
      ansible.builtin.command:
        argv: ["{{{{ toolkit_controller_python }}}}", "-m", "pip", "wheel", "--no-deps",
               "--wheel-dir", "{{{{ toolkit_wheels }}}}", "{{{{ toolkit_package }}}}"]
      delegate_to: localhost
      run_once: true
      changed_when: false
      when: toolkit_install | bool

    - name: Install what uWSGI is compiled with (a C compiler, Python and PCRE2 headers)
      ansible.builtin.package:
        name: "{{{{ toolkit_build_packages[ansible_os_family]
                | default(toolkit_build_packages.Debian) }}}}"
        state: present
      become: true
      when: toolkit_install | bool

    - name: Create toolkit's folder
      ansible.builtin.file:
        path: "{{{{ toolkit_home }}}}"
        state: directory
        mode: "0755"

    - name: Copy the wheel to the host
      ansible.builtin.copy:
        src: "{{{{ toolkit_wheels }}}}/{wheel}"
        dest: "{{{{ toolkit_home }}}}/{wheel}"
        mode: "0644"
      when: toolkit_install | bool

    - name: Install toolkit (and uWSGI, compiled there) into a virtualenv
      ansible.builtin.pip:
        name: "{{{{ toolkit_home }}}}/{wheel}"
        virtualenv: "{{{{ toolkit_venv }}}}"
        virtualenv_command: python3 -m venv
      when: toolkit_install | bool

    - name: Create the log folder (uWSGI will not)
      ansible.builtin.file:
        path: "{{{{ toolkit_dest }}}}/{logs}"
        state: directory
        mode: "0755"

    - name: Copy the deployment
      ansible.builtin.copy:
        src: "{{{{ toolkit_source }}}}/{{{{ item }}}}"
        dest: "{{{{ toolkit_dest }}}}/"
        mode: preserve
      loop: {files}

    - name: Render this host's vassals
      ansible.builtin.command:
        argv: ["{{{{ toolkit_venv }}}}/bin/toolkit", "render", "{{{{ toolkit_dest }}}}",
               "--host", "{{{{ inventory_hostname }}}}"]
      register: rendered
      changed_when: "'changed=0 ' not in rendered.stdout"

    - name: Write the Emperor's systemd unit
      ansible.builtin.command:
        argv: ["{{{{ toolkit_venv }}}}/bin/toolkit", "export", "systemd", "{{{{ toolkit_dest }}}}",
               "--output", "/etc/systemd/system/toolkit-{name}.service"]
      when: toolkit_systemd | bool

    - name: Run the Emperor
      ansible.builtin.systemd:
        name: toolkit-{name}
        state: restarted
        enabled: true
        daemon_reload: true
      when: toolkit_systemd | bool

    - name: Ship the release (the same commit on every host)
      ansible.builtin.command:
        argv: ["{{{{ toolkit_venv }}}}/bin/toolkit", "release", "{{{{ toolkit_dest }}}}",
               "--host", "{{{{ inventory_hostname }}}}",
               "--git", "{{{{ toolkit_release_commit }}}}",
               "--repo", "{{{{ toolkit_release_repo }}}}"]
      when: toolkit_release_commit | length > 0
      tags: [release]
"""


def ansible_files(deployment: Deployment, inventory: Inventory) -> dict[str, str]:
    """playbook.yml and an Ansible hosts.ini made from the deployment's inventory.ini."""
    root = deployment.root.resolve()
    shipped = sorted(
        p.name for p in root.iterdir() if p.name not in NOT_SHIPPED and not p.name.startswith(".")
    )
    hosts = ["# Written by `toolkit export ansible` from inventory.ini."]
    for name, group in sorted(inventory.groups.items()):
        hosts += [f"[{name}]", *group.hosts, ""]
    ungrouped = [
        h
        for h in inventory.host_names()
        if not any(h in g.hosts for g in inventory.groups.values())
    ]
    if ungrouped:
        hosts += ["[ungrouped]", *ungrouped, ""]
    variables = deployment.load(live=False)
    logs = deployment.logs_dir(variables).resolve().relative_to(root)
    playbook = PLAYBOOK.format(
        name=root.name, source=root, package=Path(__file__).resolve().parent.parent,
        python=Path(sys.executable).absolute(), wheels=root / ".wheels",
        wheel=f"uwsgi_toolkit-{__version__}-py3-none-any.whl",
        files="[" + ", ".join(shipped) + "]", logs=logs,
        code=variables.values.get("pythonpath", "code"),
    )  # fmt: skip
    shared = GROUP_VARS.format(
        name=root.name, code=variables.values.get("pythonpath", "code"),
        inventory="true" if inventory.host_names() else "false",
    )  # fmt: skip
    return {
        "playbook.yml": playbook,
        "hosts.ini": "\n".join(hosts) + "\n",
        "group_vars/all.yml": shared,
        "release.yml": fleet.PLAYBOOK,
        "rollback.yml": fleet.ROLLBACK_PLAYBOOK,
    }


# What release.yml and rollback.yml read for every host (playbook.yml sets the same).
GROUP_VARS = """\
# Written by `toolkit export ansible`: where each host keeps toolkit and the deployment.
toolkit_home: /srv/toolkit
toolkit_dest: "{{{{ toolkit_home }}}}/{name}"
toolkit_venv: "{{{{ toolkit_home }}}}/venv"
toolkit_bin: "{{{{ toolkit_venv }}}}/bin/toolkit"
toolkit_release_repo: "{{{{ toolkit_dest }}}}/{code}"
# Each host renders with its own inventory.ini variables (`--host`).
toolkit_inventory: {inventory}
"""
