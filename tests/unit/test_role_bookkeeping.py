"""Only the first-boot path (role baseline) keeps the books: the other roles do their job and return results.

A reusable role writes no status file, no console progress lines and no /etc/issue lines of its own; the
baseline role records the phases around them. Read from the roles' task files, defaults and argument specs.
"""
from __future__ import annotations

import os

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = os.path.join(ROOT, "roles")
REUSABLE = sorted(role for role in os.listdir(ROLES) if role != "baseline")
TASK_KEYS = {"name", "when", "register", "changed_when", "failed_when", "loop", "vars", "notify", "block",
             "rescue", "always", "check_mode", "tags", "become", "no_log", "delegate_to", "run_once", "args"}
# What a role's result variable is called, and who sets it.
RESULTS = {"ssh_hardening": "prenixos_ssh_result", "lan": "prenixos_lan_result",
           "storage": "prenixos_storage_result", "nixos_install": "prenixos_nixos_result"}


def task_files(role):
    folder = os.path.join(ROLES, role, "tasks")
    return sorted(os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".yml"))


def tasks_of(tasks):
    for task in tasks or []:
        if "block" in task:
            for part in ("block", "rescue", "always"):
                yield from tasks_of(task.get(part))
        else:
            yield task


def action(task):
    return next(key for key in task if key not in TASK_KEYS)


def load(path):
    with open(path, encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def test_the_roles_are_the_ones_this_test_knows():
    assert REUSABLE == sorted(RESULTS), "expected the reusable roles %s, found %s" % (sorted(RESULTS), REUSABLE)


@pytest.mark.parametrize("role", REUSABLE)
def test_a_reusable_role_records_no_status_and_writes_no_issue_lines(role):
    found = []
    for path in task_files(role):
        for task in tasks_of(load(path)):
            name = action(task)
            arguments = task[name] if isinstance(task[name], dict) else {}
            if name.endswith("firstboot_status"):
                found.append("%s: %s (firstboot_status)" % (os.path.basename(path), task.get("name")))
            # The lan module announces where to SSH itself, where its caller asks (the role's default: nowhere).
            allowed = {"issue_path"} if name == "prenixos.baseline.lan" else set()
            if {"issue_path", "status_path"} & set(arguments) - allowed:
                found.append("%s: %s (%s)" % (os.path.basename(path), task.get("name"), sorted(arguments)))
    assert found == [], "expected no bookkeeping in role %s, found: %s" % (role, found)


@pytest.mark.parametrize("role", REUSABLE)
def test_a_reusable_role_has_no_status_console_or_issue_variable(role):
    defaults = load(os.path.join(ROLES, role, "defaults", "main.yml"))
    options = set()
    for entry in load(os.path.join(ROLES, role, "meta", "argument_specs.yml"))["argument_specs"].values():
        options |= set(entry.get("options", {}))
    bookkeeping = sorted(name for name in set(defaults) | options if name.endswith(("_status_path", "_retry")))
    assert bookkeeping == [], "expected no status or retry variable in role %s, found %s" % (role, bookkeeping)
    announced = (defaults.get("prenixos_lan_issue_path", ""), defaults.get("prenixos_lan_announce_consoles", []))
    assert announced == ("", []), "expected role %s to announce nowhere by default, found %s" % (role, announced)


@pytest.mark.parametrize("role", REUSABLE)
def test_a_reusable_role_publishes_its_result_with_set_fact(role):
    setters = [os.path.basename(path) for path in task_files(role) for task in tasks_of(load(path))
               if action(task) == "ansible.builtin.set_fact" and RESULTS[role] in task[action(task)]]
    assert setters, "expected role %s to set %s with set_fact, found none" % (role, RESULTS[role])
    readme = open(os.path.join(ROLES, role, "README.md"), encoding="utf-8").read()
    assert "## Outputs" in readme and RESULTS[role] in readme, (
        "expected an Outputs section naming %s in the README of %s" % (RESULTS[role], role))


def test_only_baseline_reads_the_status_file_or_another_role_s_private_variables():
    private = ("__prenixos_storage_plan", "__prenixos_lan", "__prenixos_nixos_status", "status.json")
    found = []
    for path in task_files("baseline"):
        text = open(path, encoding="utf-8").read()
        found += ["%s: %s" % (os.path.basename(path), word) for word in private if word in text]
    for role in REUSABLE:
        for path in task_files(role):
            if "status.json" in open(path, encoding="utf-8").read():
                found.append("%s/%s: status.json" % (role, os.path.basename(path)))
    assert found == [], "expected phases to pass results as variables, found: %s" % found


def test_baseline_records_every_phase_of_first_boot():
    phases = set()
    for path in task_files("baseline"):
        for task in tasks_of(load(path)):
            if action(task).endswith("firstboot_status"):
                phase = task[action(task)]["phase"]
                phases |= set(task.get("loop", [])) if "{{" in phase else {phase}
    assert phases == {"ssh", "lan", "storage_plan", "storage_apply", "nixos_config", "nixos_install"}, (
        "expected baseline to record the six phases, found %s" % sorted(phases))
