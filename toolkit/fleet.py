"""A release across many hosts, with Ansible as the engine (it connects, fans out, batches)
and toolkit's own steps on each host making it safe: every host stages the release and
proves it healthy before any host switches; the steps that change shared state run once; a
canary switches and serves while it is watched; then the rest in batches; a failure past the
budget sends every switched host back. The same release ID everywhere.

`release.yml` is that playbook (`toolkit export ansible` writes it too, for
`ansible-playbook -e toolkit_release_commit=REF`); `release()` runs it, with a plan
printed first and a summary per host at the end, read from the results each host's steps
leave on the controller."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.errors import ExitCode, ToolkitError

PLAYBOOK = """\
# Written by toolkit: one release on every host, all or nothing.
# `toolkit release DIR --all-hosts --git REF` runs it; by hand:
#   ansible-playbook -i hosts.ini release.yml -e toolkit_release_commit=REF
# Each host's `toolkit_dest` is its deployment folder; `toolkit_bin` its toolkit.
- name: Plan the release
  hosts: all
  gather_facts: false
  tasks:
    - name: One release ID for every host
      ansible.builtin.set_fact:
        toolkit_release_id: >-
          {{ toolkit_release_id | default(lookup('pipe', 'date -u +%Y%m%dT%H%M%S')
          ~ '-' ~ toolkit_release_commit[:8], true) }}
        toolkit_allowed_failures: "{{ (ansible_play_hosts_all | length)
          * (toolkit_max_fail | default(0) | int) // 100 }}"
      run_once: true

- name: Stage it on every host (one failure stops the release, nobody switched)
  hosts: all
  gather_facts: false
  any_errors_fatal: true
  tasks:
    - name: Note the release live now
      ansible.builtin.command:
        argv: ["{{ toolkit_bin }}", "releases", "{{ toolkit_dest }}", "--json"]
      register: toolkit_before
      changed_when: false
    - name: Stage
      block:
        - name: Copy, build and health-check the release, not live
          ansible.builtin.command:
            argv: "{{ [toolkit_bin, 'release', toolkit_dest, '--stage', toolkit_release_id,
                        '--git', toolkit_release_commit, '--repo', toolkit_release_repo]
                      + (['--host', inventory_hostname] if toolkit_inventory | default(false)
                         | bool else []) }}"
          register: toolkit_step
      always:
        - name: Keep what staging did on the controller
          ansible.builtin.copy:
            content: "{{ {'step': 'stage', 'rc': toolkit_step.rc | default(-1),
                         'start': toolkit_step.start | default(''),
                         'end': toolkit_step.end | default(''),
                         'said': (toolkit_step.stderr | default('')).splitlines()[:1]
                         | join('') | regex_replace('^error: ', '')} | to_json }}"
            dest: "{{ toolkit_results }}/{{ inventory_hostname }}-stage.json"
            mode: "0600"
          delegate_to: localhost
    - name: Remember the release to go back to
      ansible.builtin.set_fact:
        toolkit_previous: "{{ toolkit_before.stdout | from_json | selectattr('live')
                              | map(attribute='id') | first | default('') }}"

- name: Run the steps that change what every host shares, once, before any host switches
  hosts: all
  gather_facts: false
  any_errors_fatal: true
  tasks:
    - name: release_once_commands on one host, against the new code
      ansible.builtin.command:
        argv: "{{ [toolkit_bin, 'release', toolkit_dest, '--once', toolkit_release_id]
                  + (['--host', inventory_hostname] if toolkit_inventory | default(false)
                     | bool else []) }}"
      run_once: true

- name: Switch, a canary first, then the rest in batches
  hosts: all
  gather_facts: false
  serial: [1, "{{ toolkit_batch | default(1) }}"]
  tasks:
    - name: Check the failure budget before this host switches
      ansible.builtin.set_fact:
        toolkit_may_switch: "{{ (ansible_play_hosts_all | map('extract', hostvars)
          | selectattr('toolkit_switch_failed', 'defined') | list | length)
          <= (toolkit_allowed_failures | int) }}"
    - name: Switch and watch, unless the failure budget is spent
      when: toolkit_may_switch | bool
      block:
        - name: Make the release live here, then watch its health
          ansible.builtin.command:
            argv: "{{ [toolkit_bin, 'release', toolkit_dest, '--switch', toolkit_release_id,
                       '--watch', (toolkit_canary_watch | default(10))
                       if inventory_hostname == ansible_play_hosts_all[0]
                       else (toolkit_batch_watch | default(2))]
                      + (['--host', inventory_hostname] if toolkit_inventory | default(false)
                         | bool else []) }}"
          register: toolkit_step
        - name: Note the switch
          ansible.builtin.set_fact:
            toolkit_switched: true
      rescue:
        - name: Note the failure (this host is back on its release)
          ansible.builtin.set_fact:
            toolkit_switch_failed: "{{ (toolkit_step.stderr | default('')).splitlines()[:1]
                                       | join('') | regex_replace('^error: ', '')
                                       or 'failed' }}"
      always:
        - name: Keep what the switch did on the controller
          ansible.builtin.copy:
            content: "{{ {'step': 'switch', 'rc': toolkit_step.rc | default(-1),
                         'start': toolkit_step.start | default(''),
                         'end': toolkit_step.end | default(''),
                         'said': toolkit_switch_failed | default('')} | to_json }}"
            dest: "{{ toolkit_results }}/{{ inventory_hostname }}-switch.json"
            mode: "0600"
          delegate_to: localhost

- name: All or nothing
  hosts: all
  gather_facts: false
  tasks:
    - name: Count the failures
      ansible.builtin.set_fact:
        toolkit_failed: "{{ ansible_play_hosts_all | map('extract', hostvars)
                            | selectattr('toolkit_switch_failed', 'defined') | list }}"
    - name: Send every switched host back to its release (the budget is spent)
      when:
        - toolkit_switched | default(false) | bool
        - toolkit_failed | length > (toolkit_allowed_failures | int)
      block:
        - name: Switch back
          ansible.builtin.command:
            argv: "{{ [toolkit_bin, 'rollback', toolkit_dest]
                      + ([toolkit_previous] if toolkit_previous else [])
                      + (['--host', inventory_hostname] if toolkit_inventory | default(false)
                         | bool else []) }}"
          register: toolkit_step
      always:
        - name: Keep what going back did on the controller
          ansible.builtin.copy:
            content: "{{ {'step': 'rollback', 'rc': toolkit_step.rc | default(-1),
                         'start': toolkit_step.start | default(''),
                         'end': toolkit_step.end | default('')} | to_json }}"
            dest: "{{ toolkit_results }}/{{ inventory_hostname }}-rollback.json"
            mode: "0600"
          delegate_to: localhost
    - name: Fail, naming each host that failed and why
      ansible.builtin.fail:
        msg: >-
          release {{ toolkit_release_id }} failed on
          {{ toolkit_failed | map(attribute='inventory_hostname') | zip(toolkit_failed
             | map(attribute='toolkit_switch_failed')) | map('join', ': ') | join('; ') }}
      when: toolkit_failed | length > 0
      run_once: true
"""

ROLLBACK_PLAYBOOK = """\
# Written by toolkit: every host back to one release they all have, or none.
# `toolkit rollback DIR --all-hosts ID` runs it; by hand:
#   ansible-playbook -i hosts.ini rollback.yml -e toolkit_release_id=ID
- name: Check that every host has the release
  hosts: all
  gather_facts: false
  any_errors_fatal: true
  tasks:
    - name: List its releases
      ansible.builtin.command:
        argv: ["{{ toolkit_bin }}", "releases", "{{ toolkit_dest }}", "--json"]
      register: toolkit_releases
      changed_when: false
    - name: Refuse if this host lacks it
      ansible.builtin.fail:
        msg: "{{ inventory_hostname }} has no release {{ toolkit_release_id }}: no host goes back"
      when: toolkit_release_id not in (toolkit_releases.stdout | from_json
                                       | map(attribute='id') | list)

- name: Go back, one host at a time
  hosts: all
  gather_facts: false
  serial: 1
  any_errors_fatal: true
  tasks:
    - name: Make the release live again
      block:
        - name: Switch to it
          ansible.builtin.command:
            argv: "{{ [toolkit_bin, 'release', toolkit_dest, '--switch', toolkit_release_id]
                      + (['--host', inventory_hostname] if toolkit_inventory | default(false)
                         | bool else []) }}"
          register: toolkit_step
      always:
        - name: Keep what it did on the controller
          ansible.builtin.copy:
            content: "{{ {'step': 'rollback', 'rc': toolkit_step.rc | default(-1),
                         'start': toolkit_step.start | default(''),
                         'end': toolkit_step.end | default('')} | to_json }}"
            dest: "{{ toolkit_results }}/{{ inventory_hostname }}-rollback.json"
            mode: "0600"
          delegate_to: localhost
"""


@dataclass(frozen=True)
class Plan:
    """What `release --all-hosts` was asked: where the hosts are, what to ship, how."""

    inventory: Path
    commit: str
    repo: Path | None
    canary_watch: float
    batch: int
    max_fail: int


@dataclass
class HostResult:
    host: str
    steps: dict[str, dict[str, Any]]

    def line(self) -> str:
        words = []
        for step in ("stage", "switch", "rollback"):
            found = self.steps.get(step)
            if found is None:
                continue
            seconds = _seconds(found)
            outcome = "ok" if found.get("rc") == 0 else "failed"
            if step == "switch" and found.get("rc") == -1 and not found.get("said"):
                outcome = "skipped"
            words.append(f"{step} {outcome}" + (f" {seconds:.1f} s" if seconds else ""))
        return f"{self.host}: " + (", ".join(words) or "nothing ran")


def hosts_of(inventory: Path) -> list[str]:
    """The inventory's hosts, in the order Ansible runs them."""
    if not inventory.is_file():
        raise ToolkitError(
            "no Ansible inventory", file=inventory,
            hint="write one (`toolkit export ansible DIR` makes hosts.ini), or give --inventory",
        )  # fmt: skip
    listed = subprocess.run(
        [_ansible("ansible-inventory"), "-i", str(inventory), "--list"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if listed.returncode != 0:
        raise ToolkitError(
            f"Ansible cannot read the inventory: {listed.stderr.strip().splitlines()[-1:]}",
            file=inventory,
        )
    groups = json.loads(listed.stdout)
    hosts: list[str] = []
    for group in groups.get("all", {}).get("children", []):
        for host in groups.get(group, {}).get("hosts", []):
            if host not in hosts:
                hosts.append(host)
    return hosts


def _ansible(name: str) -> str:
    """An Ansible command from toolkit's own install, else from PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        raise ToolkitError(f"{name} is not installed", hint="pip install ansible-core")
    return found


def release(plan: Plan, say: Callable[[str], None]) -> list[HostResult]:
    """Run release.yml for `plan`: print the plan, Ansible's own lines, then one line per
    host; ToolkitError (exit 1) naming the hosts that failed."""
    hosts = hosts_of(plan.inventory)
    release_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + plan.commit[:8]
    batches = [hosts[:1]] + [hosts[i : i + plan.batch] for i in range(1, len(hosts), plan.batch)]
    say(f"release {release_id}: commit {plan.commit} on {len(hosts)} host(s)")
    say(f"  stage everywhere: {', '.join(hosts)}")
    say(f"  canary: {batches[0][0]}, watched {plan.canary_watch:g} s")
    for number, batch in enumerate(batches[1:], start=1):
        say(f"  batch {number}: {', '.join(batch)}")
    allowed = len(hosts) * plan.max_fail // 100
    say(f"  failure budget: {allowed} host(s) ({plan.max_fail} %); past it every host goes back")
    extra = {
        "toolkit_release_commit": plan.commit,
        "toolkit_release_id": release_id,
        "toolkit_canary_watch": plan.canary_watch,
        "toolkit_batch": plan.batch,
        "toolkit_max_fail": plan.max_fail,
    }
    if plan.repo is not None:
        extra["toolkit_release_repo"] = str(plan.repo.resolve())
    found = _run(plan.inventory, PLAYBOOK, extra, hosts, release_id, say)
    say(f"release {release_id} is live on every host")
    return found


def rollback(inventory: Path, release_id: str, say: Callable[[str], None]) -> list[HostResult]:
    """Every host back to `release_id`, one at a time, or none if one host lacks it."""
    hosts = hosts_of(inventory)
    say(f"rollback to {release_id} on {len(hosts)} host(s): {', '.join(hosts)}, one at a time")
    found = _run(inventory, ROLLBACK_PLAYBOOK, {"toolkit_release_id": release_id}, hosts,
                 release_id, say)  # fmt: skip
    say(f"release {release_id} is live on every host")
    return found


def _run(
    inventory: Path,
    playbook: str,
    extra: dict[str, Any],
    hosts: list[str],
    release_id: str,
    say: Callable[[str], None],
) -> list[HostResult]:
    with tempfile.TemporaryDirectory(prefix="toolkit-fleet-") as work:
        folder = Path(work)
        (folder / "playbook.yml").write_text(playbook)
        results = folder / "results"
        results.mkdir()
        (folder / "extra.json").write_text(json.dumps({**extra, "toolkit_results": str(results)}))
        started = time.monotonic()
        process = subprocess.Popen(
            [_ansible("ansible-playbook"), "-i", str(inventory.resolve()),
             str(folder / "playbook.yml"), "-e", f"@{folder / 'extra.json'}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={
                # Pipelining: a module runs over the task's one SSH session, not a copy first.
                "ANSIBLE_PIPELINING": "1",
                **os.environ,
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_RETRY_FILES_ENABLED": "0",
            },
        )  # fmt: skip
        assert process.stdout is not None
        for line in process.stdout:
            if line.strip():
                say(f"ansible | {line.rstrip()}")
        code = process.wait()
        took = time.monotonic() - started
        found = [HostResult(host, _steps(results, host)) for host in hosts]
    say(f"summary ({took:.1f} s):")
    for result in found:
        say(f"  {result.line()}")
    failed = [r for r in found if any(s.get("rc") not in (0, -1) for s in r.steps.values())]
    if code != 0 or failed:
        named = "; ".join(
            f"{r.host}: {next((s.get('said') for s in r.steps.values() if s.get('said')), '')}"
            for r in failed
        )
        raise ToolkitError(
            f"release {release_id} did not go through on every host"
            + (f" ({named})" if named else f" (ansible-playbook exited {code})"),
            exit_code=ExitCode.PROBLEMS,
        )
    return found


def _steps(results: Path, host: str) -> dict[str, dict[str, Any]]:
    steps = {}
    for path in results.glob(f"{host}-*.json"):
        try:
            steps[path.stem.rpartition("-")[2]] = json.loads(path.read_text())
        except ValueError:
            continue
    return steps


def _seconds(step: dict[str, Any]) -> float:
    """From Ansible's `start` and `end` (YYYY-MM-DD HH:MM:SS.ffffff)."""
    from datetime import datetime

    try:
        start = datetime.fromisoformat(str(step["start"]))
        end = datetime.fromisoformat(str(step["end"]))
    except (KeyError, ValueError):
        return 0.0
    return (end - start).total_seconds()
