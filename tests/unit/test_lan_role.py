"""The lan role's argument spec takes the network settings as the kernel switches give them (ansible-playbook on
the controller only: the role's spec is checked with validate_argument_spec, no task of the role runs)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC = os.path.join(ROOT, "roles", "lan", "meta", "argument_specs.yml")
DEFAULTS = os.path.join(ROOT, "roles", "lan", "defaults", "main.yml")
DETAILS = os.path.join(ROOT, "roles", "lan", "vars", "main.yml")

CASES = {
    "the defaults": {},
    "lists": {
        "prenixos_lan_address": ["192.0.2.10/24", "2001:db8::10/64"],
        "prenixos_lan_gateway": ["192.0.2.1"],
        "prenixos_lan_dns": ["192.0.2.53"],
        "prenixos_lan_vlan": 42,
    },
    "kernel switch text": {
        "prenixos_lan_address": "192.0.2.10/24,2001:db8::10/64",
        "prenixos_lan_gateway": "192.0.2.1",
        "prenixos_lan_dns": "192.0.2.53,192.0.2.54",
        "prenixos_lan_vlan": "42",
    },
    # Left for the module, which says why on the consoles: the role's spec cannot.
    "a VLAN that is no number": {"prenixos_lan_vlan": "ten"},
    "an IPv6 wait that is no number": {"prenixos_lan_ipv6_timeout": "soon"},
    "addresses as a mapping": {"prenixos_lan_address": {"ip": "192.0.2.10/24"}},
}


def validate(tmp_path):
    """Each case through validate_argument_spec with the role's options: {case: failed}."""
    options = yaml.safe_load(open(SPEC))["argument_specs"]["main"]["options"]
    tasks = [
        {
            "name": name,
            "ansible.builtin.validate_argument_spec": {"argument_spec": options, "provided_arguments": variables},
            "ignore_errors": True,
            "register": "case%d" % index,
        }
        for index, (name, variables) in enumerate(CASES.items())
    ]
    verdicts = ", ".join("case%d.failed | default(false)" % index for index in range(len(CASES)))
    tasks.append({"name": "Verdicts", "ansible.builtin.debug": {"msg": "VERDICTS={{ [%s] | to_json }}" % verdicts}})
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps([{"name": "Spec", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    environment = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"),
    )
    command = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "--check", str(playbook)]
    run = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=tmp_path, check=False)
    found = re.search(r"VERDICTS=(\[[^\]]*\])", run.stdout)
    assert found, "expected the verdicts in the output, found:\n%s\n%s" % (run.stdout, run.stderr)
    return dict(zip(CASES, json.loads(found.group(1)), strict=True))


def test_the_network_settings_are_accepted_as_lists_or_as_kernel_switch_text_and_wrong_types_are_refused(tmp_path):
    assert validate(tmp_path) == {
        "the defaults": False,
        "lists": False,
        "kernel switch text": False,
        "a VLAN that is no number": False,
        "an IPv6 wait that is no number": True,
        "addresses as a mapping": True,
    }


def test_every_network_variable_has_a_default_and_the_result_carries_the_settings_and_ipv6():
    defaults = yaml.safe_load(open(DEFAULTS))
    options = yaml.safe_load(open(SPEC))["argument_specs"]["main"]["options"]
    assert {name: defaults[name] for name in options} == {name: spec["default"] for name, spec in options.items()}
    assert {"address6", "prefix6", "settings"} <= set(yaml.safe_load(open(DETAILS))["__prenixos_lan_details"])
