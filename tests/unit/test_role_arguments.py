"""The roles' argument specs stop a wrong variable before any task runs (ansible-playbook, localhost).

Every run is in check mode as well: should a validation ever pass, the role still changes nothing here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_role(tmp_path, role, variables):
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps([{"name": "Role", "hosts": "localhost", "gather_facts": False,
                                     "roles": [{"role": "prenixos.baseline." + role, "vars": variables}]}]))
    environment = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                       ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"))
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "--check", str(playbook)]
    return subprocess.run(command, capture_output=True, text=True, env=environment, cwd=tmp_path, check=False)


@pytest.mark.parametrize(("role", "variables", "message"), [
    ("storage", {"prenixos_storage_mode": "build"},
     "value of prenixos_storage_mode must be one of: plan, apply, skip, got: build"),
    ("storage", {"prenixos_storage_wipe": "perhaps"}, "prenixos_storage_wipe"),
    ("storage", {"prenixos_storage_size_tolerance": "one percent"}, "prenixos_storage_size_tolerance"),
    ("storage", {"prenixos_storage_exclude": {"serial": "S3Z1NB0K123"}}, "prenixos_storage_exclude"),
    ("lan", {"prenixos_lan_carrier_timeout": "a minute"}, "prenixos_lan_carrier_timeout"),
    ("ssh_hardening", {"prenixos_ssh_authorized_keys": {"ops": "ssh-ed25519 AAAA"}}, "prenixos_ssh_authorized_keys"),
    ("lan", {"prenixos_lan_announce_consoles": {"tty": "/dev/tty1"}}, "prenixos_lan_announce_consoles"),
    ("nixos_install",
     {"prenixos_nixos_authorized_keys": ["ssh-ed25519 AAAA"], "prenixos_nixos_storage_built": "perhaps"},
     "prenixos_nixos_storage_built"),
    ("baseline", {"prenixos_baseline_authorized_keys": {"ops": "ssh-ed25519 AAAA"}},
     "prenixos_baseline_authorized_keys"),
    ("baseline", {"prenixos_baseline_authorized_keys": [], "prenixos_baseline_lan_retry_interval": "half a minute"},
     "prenixos_baseline_lan_retry_interval"),
])
def test_a_wrong_variable_stops_the_role_before_it_does_anything(tmp_path, role, variables, message):
    result = run_role(tmp_path, role, variables)
    assert result.returncode != 0, result.stdout
    assert "Validating arguments against arg spec" in result.stdout and message in result.stdout, result.stdout
    tasks = [line for line in result.stdout.splitlines() if line.startswith("TASK [")]
    assert len(tasks) == 1 and "Validating arguments" in tasks[0], (
        "expected no task after the failed validation, found %s" % tasks)
