"""The nixos_install role, run by ansible-playbook against localhost with everything under tmp_path.

Most tests run it as first boot does, through the NixOS hand-off of the baseline role (tasks_from
nixos.yml), which records the nixos_config and nixos_install phases around it; the last ones run the
role alone and check that it records nothing and publishes prenixos_nixos_result.
The root, the plan, the status file and the log live in tmp_path; nixos-generate-config and nixos-install
are fakes on PATH that record their arguments; the reboot command is a fake given by absolute path.
Nothing outside tmp_path is touched.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest
from test_nixos_render import KEY, LAN, ROOT, plan_for

from ansible_collections.prenixos.baseline.plugins.module_utils import status as status_file

ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
NO_NIX_HINT = (
    "this image has no nixos-install (the Debian image): the configuration is in {root}/etc/nixos; install it "
    "from the NixOS flavour of the image (iso/nixos, boot it with prenixos.install=1) or from a machine with Nix "
    "with nixos-anywhere --disko-mode mount (the layout is in disko.nix with prenixos_nixos_disko=true); "
    "see docs/nixos.md"
)

FAKE_GENERATE_CONFIG = """#!/bin/sh
echo "nixos-generate-config $*" >> "{calls}"
root=$2
mkdir -p "$root/etc/nixos"
[ -e "$root/etc/nixos/configuration.nix" ] && echo "warning: not overwriting existing $root/etc/nixos/configuration.nix"
echo '{{ ... }}: {{ }}' > "$root/etc/nixos/hardware-configuration.nix"
"""
FAKE_INSTALL = """#!/bin/sh
echo "nixos-install $*" >> "{calls}"
echo "building the configuration in $2/etc/nixos/configuration.nix..."
[ -n "$FAIL_INSTALL" ] && {{ echo "error: attribute 'oops' missing" >&2; exit 1; }}
mkdir -p "$2/nix/var/nix/profiles" && touch "$2/nix/var/nix/profiles/system"
echo "installation finished!"
"""
FAKE_REBOOT = """#!/bin/sh
echo "reboot $*" >> "{calls}"
"""


class Machine:
    """A fake host in tmp_path: root, plan, status file, fake tools."""

    def __init__(self, tmp_path, with_nix):
        self.tmp = tmp_path
        self.root = tmp_path / "mnt"
        self.root.mkdir()
        self.plan = tmp_path / "plan.json"
        self.plan.write_text(json.dumps(plan_for("default")))
        self.status = tmp_path / "status.json"
        self.log = tmp_path / "log" / "nixos-install.log"
        self.calls = tmp_path / "calls.log"
        self.result = tmp_path / "result.json"
        self.storage_built = False
        self.bin = tmp_path / "bin"
        self.bin.mkdir()
        self.reboot = self.bin / "fake-reboot"
        self.write_tool(self.reboot, FAKE_REBOOT)
        if with_nix:
            self.write_tool(self.bin / "nixos-generate-config", FAKE_GENERATE_CONFIG)
            self.write_tool(self.bin / "nixos-install", FAKE_INSTALL)

    def write_tool(self, path, text):
        path.write_text(text.format(calls=self.calls))
        path.chmod(0o755)

    def record(self, phase, state, details=None):
        """Record a phase as the phases before the NixOS hand-off would; storage_apply done is the built plan."""
        if phase == "storage_apply":
            self.storage_built = state == "done"
        status = status_file.load(str(self.status))
        status_file.save(status_file.set_phase(status, phase, state, details=details), str(self.status))

    def phases(self):
        phases = json.loads(self.status.read_text())["phases"]
        return {name: (entry["state"], entry["reason"]) for name, entry in phases.items()
                if name in ("nixos_config", "nixos_install")}

    def calls_made(self):
        return self.calls.read_text().splitlines() if self.calls.exists() else []

    def run(self, env=None, options=(), role_alone=False, **variables):
        """First boot's NixOS hand-off (baseline, tasks_from nixos.yml), or the role alone; the role's result
        lands in result.json either way."""
        values = {
            "prenixos_nixos_root": str(self.root),
            "prenixos_nixos_require_mounted": False,
            "prenixos_nixos_plan_path": str(self.plan),
            "prenixos_nixos_log_path": str(self.log),
            "prenixos_nixos_reboot_command": [str(self.reboot)],
        }
        if role_alone:
            values.update(prenixos_nixos_authorized_keys=[KEY], prenixos_nixos_storage_built=self.storage_built)
            include = "        name: prenixos.baseline.nixos_install\n"
        else:
            values.update(prenixos_baseline_authorized_keys=[KEY], prenixos_baseline_status_path=str(self.status),
                          prenixos_storage_result={"applied": self.storage_built})
            include = "        name: prenixos.baseline.baseline\n        tasks_from: nixos.yml\n"
        values.update(variables)
        playbook = self.tmp / "play.yml"
        playbook.write_text(
            "- name: NixOS hand-off\n  hosts: localhost\n  gather_facts: false\n  tasks:\n"
            "    - name: Run the role\n      ansible.builtin.include_role:\n" + include
            + "    - name: Keep the result\n      when: prenixos_nixos_result is defined\n"
            "      ansible.builtin.copy:\n        content: '{{ prenixos_nixos_result | to_json }}'\n"
            "        dest: %s\n      changed_when: false\n" % self.result
        )
        (self.tmp / "vars.json").write_text(json.dumps(values))
        environment = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
                           ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, "collections"), ANSIBLE_NOCOLOR="1",
                           PATH="%s:%s" % (self.bin, os.environ["PATH"]))
        environment.update(env or {})
        result = subprocess.run([ANSIBLE_PLAYBOOK, str(playbook), "-e", "@%s" % (self.tmp / "vars.json"), *options],
                                capture_output=True, text=True, env=environment, cwd=self.tmp, check=False)
        recap = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)"
                          r"\s+skipped=\d+\s+rescued=(\d+)", result.stdout)
        assert recap, result.stdout + result.stderr
        return {"rc": result.returncode, "changed": int(recap.group(2)), "failed": int(recap.group(3)),
                "rescued": int(recap.group(4)), "output": result.stdout}

    def published(self):
        return json.loads(self.result.read_text())


@pytest.fixture
def debian(tmp_path):
    return Machine(tmp_path, with_nix=False)


@pytest.fixture
def nixos_image(tmp_path):
    return Machine(tmp_path, with_nix=True)


def test_nothing_is_written_before_the_plan_is_built(debian):
    """storage_apply skipped: the hand-off records both phases as skipped and the role is not even run."""
    debian.record("storage_apply", "skipped")
    run = debian.run()
    assert (run["rc"], run["changed"]) == (0, 0)
    reason = ("the storage plan is not built (storage_apply: skipped), so there is no NixOS root under %s yet"
              % debian.root)
    assert debian.phases() == {"nixos_config": ("skipped", reason), "nixos_install": ("skipped", reason)}
    assert list(debian.root.iterdir()) == []


def test_on_debian_the_configuration_is_written_and_the_install_explains_what_to_do_instead(debian):
    debian.record("storage_apply", "done")
    debian.record("lan", "done", details=LAN)
    run = debian.run(prenixos_nixos_install=True, prenixos_nixos_hostname="web1")
    assert (run["rc"], run["changed"]) == (0, 1), run["output"]
    pre_nixos = debian.root / "etc/nixos/pre-nixos.nix"
    assert debian.phases() == {
        "nixos_config": ("done", "%s written" % pre_nixos),
        "nixos_install": ("skipped", NO_NIX_HINT.format(root=debian.root)),
    }
    text = pre_nixos.read_text()
    assert 'matchConfig = { PermanentMACAddress = "52:54:00:12:34:56"; };' in text  # LAN facts from the status file
    assert 'networking.hostName = lib.mkDefault "web1";' in text
    assert (debian.root / "etc/nixos/configuration.nix").exists()
    assert debian.calls_made() == []

    again = debian.run(prenixos_nixos_install=True, prenixos_nixos_hostname="web1")
    assert (again["rc"], again["changed"]) == (0, 0), again["output"]
    assert debian.phases()["nixos_config"] == ("done", "%s up to date" % pre_nixos)


def test_install_not_asked_is_recorded_as_skipped(nixos_image):
    nixos_image.record("storage_apply", "done")
    run = nixos_image.run()
    assert run["rc"] == 0
    assert nixos_image.phases()["nixos_install"] == (
        "skipped", "not asked (boot with prenixos.install=1 or set prenixos_nixos_install=true)")
    assert nixos_image.calls_made() == []


def test_on_a_nix_image_it_generates_the_hardware_config_installs_and_reboots_when_asked(nixos_image):
    nixos_image.record("storage_apply", "done")
    root = nixos_image.root
    run = nixos_image.run(prenixos_nixos_install=True, prenixos_nixos_reboot=True, prenixos_nixos_lan=LAN)
    assert run["rc"] == 0, run["output"]
    assert nixos_image.calls_made() == [
        "nixos-generate-config --root %s" % root,
        "nixos-install --root %s --no-root-passwd" % root,
        "reboot ",
    ]
    assert nixos_image.phases()["nixos_install"] == ("done", "NixOS installed on %s; rebooting into it" % root)
    assert nixos_image.log.read_text() == (
        "building the configuration in %s/etc/nixos/configuration.nix...\ninstallation finished!\n" % root)
    # nixos-generate-config kept the configuration.nix that imports pre-nixos.nix.
    assert "./pre-nixos.nix" in (root / "etc/nixos/configuration.nix").read_text()

    again = nixos_image.run(prenixos_nixos_install=True, prenixos_nixos_lan=LAN)
    assert (again["rc"], again["changed"]) == (0, 0), again["output"]
    assert len(nixos_image.calls_made()) == 3
    assert nixos_image.phases()["nixos_install"] == (
        "done", "NixOS is installed on %s and its configuration did not change "
                "(prenixos_nixos_reinstall=true runs nixos-install again)" % root)


def test_a_changed_configuration_is_installed_again_without_a_reboot_unless_asked(nixos_image):
    nixos_image.record("storage_apply", "done")
    nixos_image.run(prenixos_nixos_install=True, prenixos_nixos_lan=LAN)
    run = nixos_image.run(prenixos_nixos_install=True, prenixos_nixos_lan=LAN, prenixos_nixos_hostname="web2")
    assert run["rc"] == 0
    assert [call.split()[0] for call in nixos_image.calls_made()] == [
        "nixos-generate-config", "nixos-install", "nixos-install"]
    assert nixos_image.phases()["nixos_install"] == (
        "done", "NixOS installed on %s; reboot into it when ready (remove the boot medium first)" % nixos_image.root)


def test_a_failing_install_is_recorded_with_the_log_and_fails_the_role(nixos_image):
    nixos_image.record("storage_apply", "done")
    run = nixos_image.run(env={"FAIL_INSTALL": "1"}, prenixos_nixos_install=True, prenixos_nixos_reboot=True)
    # First boot carries on after the failed phase (rescued); the role alone fails.
    assert (run["rc"], run["failed"], run["rescued"]) == (0, 0, 1), run["output"]
    state, reason = nixos_image.phases()["nixos_install"]
    assert state == "failed"
    assert reason.endswith("(see %s)" % nixos_image.log)
    assert "error: attribute 'oops' missing" in nixos_image.log.read_text()
    assert not any(call.startswith("reboot") for call in nixos_image.calls_made())

    nixos_image.storage_built = True
    before = nixos_image.status.read_text()
    alone = nixos_image.run(env={"FAIL_INSTALL": "1"}, role_alone=True, prenixos_nixos_install=True,
                            prenixos_nixos_reboot=True, prenixos_nixos_reinstall=True)
    assert alone["rc"] != 0 and alone["failed"] == 1, alone["output"]
    assert nixos_image.status.read_text() == before
    assert not any(call.startswith("reboot") for call in nixos_image.calls_made())


def test_a_bad_key_fails_the_configuration_phase_with_the_reason(debian):
    debian.record("storage_apply", "done")
    run = debian.run(prenixos_nixos_authorized_keys=["ssh-ed25519 garbage"])
    assert (run["rc"], run["failed"], run["rescued"]) == (0, 0, 1), run["output"]
    assert debian.phases() == {
        "nixos_config": ("failed", "cannot write the NixOS configuration: authorized key 1 is not usable: "
                                   "key data is not base64 in 'ssh-ed25519 garbage'"),
        "nixos_install": ("skipped", "no NixOS configuration to install"),
    }
    alone = debian.run(role_alone=True, prenixos_nixos_authorized_keys=["ssh-ed25519 garbage"])
    assert alone["rc"] != 0 and alone["failed"] == 1, alone["output"]
    assert "authorized key 1 is not usable" in alone["output"]


def test_check_mode_writes_nothing_and_runs_nothing(nixos_image):
    nixos_image.record("storage_apply", "done")
    before = nixos_image.status.read_text()
    run = nixos_image.run(options=["--check"], prenixos_nixos_install=True, prenixos_nixos_reboot=True)
    assert run["rc"] == 0, run["output"]
    assert list(nixos_image.root.iterdir()) == []
    assert nixos_image.status.read_text() == before
    assert nixos_image.calls_made() == []


def test_the_role_alone_records_nothing_and_publishes_its_result(debian, tmp_path):
    debian.storage_built = True
    run = debian.run(role_alone=True, prenixos_nixos_install=True, prenixos_nixos_lan=LAN)
    assert (run["rc"], run["changed"]) == (0, 1), run["output"]
    assert not debian.status.exists()
    pre_nixos = debian.root / "etc/nixos/pre-nixos.nix"
    assert 'matchConfig = { PermanentMACAddress = "52:54:00:12:34:56"; };' in pre_nixos.read_text()
    assert debian.published() == {
        "configured": True, "root": str(debian.root), "path": str(pre_nixos), "changed": True,
        "configuration": str(debian.root / "etc/nixos/configuration.nix"), "configuration_state": "written",
        "imports_pre_nixos": True, "install": True, "can_install": False,
        "cannot_install_hint": NO_NIX_HINT.format(root=debian.root), "installed": False,
        "install_needed": False, "log_path": str(debian.log), "installed_now": False, "reboot": False,
    }


def test_the_role_alone_writes_nothing_when_told_the_storage_is_not_built(debian):
    run = debian.run(role_alone=True)
    assert (run["rc"], run["changed"]) == (0, 0), run["output"]
    assert list(debian.root.iterdir()) == [] and not debian.status.exists()
    assert debian.published() == {"configured": False, "root": str(debian.root)}


def test_the_role_alone_installs_and_reboots_at_the_end_of_the_play(nixos_image):
    nixos_image.storage_built = True
    run = nixos_image.run(role_alone=True, prenixos_nixos_install=True, prenixos_nixos_reboot=True)
    assert run["rc"] == 0, run["output"]
    assert [call.split()[0] for call in nixos_image.calls_made()] == ["nixos-generate-config", "nixos-install",
                                                                      "reboot"]
    assert not nixos_image.status.exists()
    published = nixos_image.published()
    assert (published["installed"], published["installed_now"], published["reboot"]) == (True, True, True)
    # The result was kept before the reboot handler ran: the reboot comes last.
    assert run["output"].index("Keep the result") < run["output"].index("RUNNING HANDLER")


# The network of the installed system

LAN_ON_VLAN = dict(LAN, settings={"addresses": ["192.0.2.10/24", "2001:db8::10/64"], "gateways": ["192.0.2.1"],
                                  "dns": ["192.0.2.53"], "vlan": 42})


@pytest.mark.parametrize("handed", ["lan_result", "recorded"])
def test_first_boot_hands_the_live_network_over_to_nixos_with_no_extra_variable(debian, handed):
    """The lan phase's facts, from this run (prenixos_lan_result) or from its record, carry the static/VLAN
    settings the image was reached on into pre-nixos.nix."""
    debian.record("storage_apply", "done")
    if handed == "recorded":
        debian.record("lan", "done", details=LAN_ON_VLAN)
        run = debian.run()
    else:
        run = debian.run(prenixos_lan_result={"lan": LAN_ON_VLAN})
    assert (run["rc"], run["changed"], run["rescued"]) == (0, 1, 0), run["output"]
    text = (debian.root / "etc/nixos/pre-nixos.nix").read_text()
    assert 'systemd.network.links."10-lan-port" = {' in text
    assert 'netdevConfig = { Name = "lan"; Kind = "vlan"; };\n    vlanConfig = { Id = 42; };' in text
    assert 'address = [ "192.0.2.10/24" "2001:db8::10/64" ];\n    gateway = [ "192.0.2.1" ];\n' in text
    assert 'dns = [ "192.0.2.53" ];' in text


def test_the_role_takes_addresses_gateways_and_dns_as_a_string_or_a_list_and_a_vlan(debian):
    debian.storage_built = True
    run = debian.run(role_alone=True, prenixos_nixos_lan=LAN, prenixos_nixos_address="2001:db8::10/64",
                     prenixos_nixos_gateway=["2001:db8::1"], prenixos_nixos_dns="2001:db8::53, 192.0.2.53",
                     prenixos_nixos_vlan=7)
    assert (run["rc"], run["changed"]) == (0, 1), run["output"]
    text = (debian.root / "etc/nixos/pre-nixos.nix").read_text()
    assert "# lan: static 2001:db8::10/64 via 2001:db8::1, no IPv6 router advertisements, no IPv4; " \
           "DNS 2001:db8::53 and 192.0.2.53." in text
    assert 'vlanConfig = { Id = 7; };' in text

    # 0 is the LAN facts' VLAN: none here.
    again = debian.run(role_alone=True, prenixos_nixos_lan=LAN, prenixos_nixos_address=["2001:db8::10/64"],
                       prenixos_nixos_gateway="2001:db8::1", prenixos_nixos_dns=["2001:db8::53", "192.0.2.53"],
                       prenixos_nixos_vlan=0)
    assert (again["rc"], again["changed"]) == (0, 1), again["output"]
    assert "vlanConfig" not in (debian.root / "etc/nixos/pre-nixos.nix").read_text()


def test_a_bad_vlan_fails_the_configuration_phase_with_the_reason(debian):
    debian.record("storage_apply", "done")
    run = debian.run(prenixos_nixos_lan=LAN, prenixos_nixos_vlan=4095)
    assert (run["rc"], run["rescued"]) == (0, 1), run["output"]
    assert debian.phases()["nixos_config"] == (
        "failed", "cannot write the NixOS configuration: the VLAN ID 4095 is not a number from 1 to 4094")
