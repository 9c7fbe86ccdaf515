# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hermetic tests of iso/firstboot/pre_nixos_firstboot.py (switch parsing, closing the status)."""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def test_known_switches_are_read_and_the_last_one_wins(firstboot):
    switches, warnings = firstboot.parse_cmdline(
        "BOOT_IMAGE=/boot/vmlinuz console=ttyS0 prenixos.storage=apply prenixos.storage=plan prenixos.wipe=1 quiet")
    assert (switches, warnings) == ({"prenixos.storage": "plan", "prenixos.wipe": "1"}, [])


def test_unknown_switches_and_bad_values_are_reported_and_ignored(firstboot):
    switches, warnings = firstboot.parse_cmdline(
        "prenixos.bogus=1 prenixos.wipe=yes prenixos.storage prenixos.firstboot=0")
    assert switches == {"prenixos.firstboot": "0"}
    assert warnings == [
        "unknown switch 'prenixos.bogus=1' ignored (known: prenixos.backups, prenixos.dns, prenixos.exclude, "
        "prenixos.firstboot, prenixos.gw, prenixos.home, prenixos.include, prenixos.install, prenixos.ip, "
        "prenixos.mitogen, prenixos.reboot, prenixos.redundant, prenixos.slash, prenixos.storage, prenixos.swap, "
        "prenixos.vlan, prenixos.wipe)",
        "'prenixos.wipe=yes' ignored: prenixos.wipe takes one of 0|1",
        "'prenixos.storage' ignored: prenixos.storage takes one of plan|apply|skip",
    ]


NAMES = ["firstboot", "storage", "wipe", "redundant", "backups", "install", "reboot", "medium", "wype", "", "Storage",
         "exclude", "include", "slash", "home", "swap", "ip", "gw", "dns", "vlan"]
VALUES = ["", "=", "=0", "=1", "=plan", "==1", "=yes", "=apply ", "=20G", "=1.5T", "=20X", "=sda,serial:S3Z1",
          "=sda,,sdb", "=serial:", "=/dev/disk/by-path/x", "=model:Samsung*", "=192.0.2.10/24", "=42", "= "]
WORDS = (st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES))
         .map(lambda pair: "prenixos.%s%s" % pair) | st.text(max_size=20))


def taken_value(firstboot, key, sep, value):
    """Whether the switch ``key=value`` is one to take (checked here without the script's own code)."""
    if key in firstboot.INTERNAL:
        return True
    if not sep:
        return False
    if key in ("prenixos.slash", "prenixos.home", "prenixos.swap"):
        return value in ("0", "1", "20G", "1.5T", "42")
    if key in ("prenixos.ip", "prenixos.gw", "prenixos.dns", "prenixos.vlan"):
        return bool(value.strip())
    if key in ("prenixos.exclude", "prenixos.include"):
        pieces = value.split(",")
        return all(piece and piece != "serial:" and not piece.startswith("/dev/disk/by-path/") for piece in pieces)
    return value in firstboot.SWITCHES.get(key, ())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.lists(WORDS, max_size=6).map(" ".join))
def test_any_kernel_command_line_gives_valid_switches_and_a_warning_for_the_rest(firstboot, line):
    switches, warnings = firstboot.parse_cmdline(line)
    for key, value in switches.items():
        assert taken_value(firstboot, key, "=", value), (key, value)
    words = [word.partition("=") for word in line.split() if word.startswith("prenixos.")]
    taken = [key for key, sep, value in words if taken_value(firstboot, key, sep, value)]
    assert len(warnings) == len(words) - len(taken), "expected one warning for each switch not taken"
    assert all("prenixos." in warning for warning in warnings)
    firstboot.extra_vars(switches)


def test_the_boot_menus_medium_switch_is_internal(firstboot):
    assert firstboot.parse_cmdline("prenixos.medium=2026-11-22-09-19-39-00") == (
        {"prenixos.medium": "2026-11-22-09-19-39-00"}, [])


def test_switches_become_playbook_variables_and_unset_ones_keep_the_defaults(firstboot):
    assert firstboot.extra_vars({}) == {}
    assert firstboot.extra_vars({"prenixos.storage": "skip", "prenixos.wipe": "1", "prenixos.medium": "x"}) == {
        "prenixos_firstboot_storage_mode": "skip", "prenixos_storage_wipe": True}
    assert firstboot.extra_vars({"prenixos.wipe": "0"}) == {"prenixos_storage_wipe": False}
    assert firstboot.extra_vars({"prenixos.install": "1", "prenixos.reboot": "0"}) == {
        "prenixos_nixos_install": True, "prenixos_nixos_reboot": False}
    assert firstboot.extra_vars({"prenixos.redundant": "1", "prenixos.backups": "1"}) == {
        "prenixos_storage_redundant_main": True, "prenixos_storage_backups": True}


def test_closing_leaves_no_phase_pending_or_running(firstboot, tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    monkeypatch.setattr(firstboot, "STATUS_PATH", str(path))
    status = firstboot.statusfile.new_status()
    status = firstboot.statusfile.set_phase(status, "ssh", "done")
    status = firstboot.statusfile.set_phase(status, "storage_plan", "running")
    firstboot.statusfile.save(status, str(path))

    closed = firstboot.close_status(2, "/var/log/pre-nixos/firstboot-x.log")

    assert json.loads(path.read_text()) == closed
    assert closed["state"] == "failed" and closed["finished"]
    assert {name: phase["state"] for name, phase in closed["phases"].items()} == {
        "lan": "skipped", "ssh": "done", "storage_plan": "failed",
        "storage_apply": "skipped", "nixos_config": "skipped", "nixos_install": "skipped"}
    assert closed["phases"]["storage_plan"]["reason"] == (
        "ansible-playbook stopped (exit code 2) while this phase ran; see /var/log/pre-nixos/firstboot-x.log")


def test_a_failed_playbook_fails_the_run_even_when_no_phase_says_so(firstboot, tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    monkeypatch.setattr(firstboot, "STATUS_PATH", str(path))
    firstboot.statusfile.save(firstboot.statusfile.new_status(), str(path))

    closed = firstboot.close_status(4, "/log")

    assert (closed["state"], closed["reason"]) == ("failed", "ansible-playbook exited with code 4; see /log")


def test_a_clean_run_is_done(firstboot, tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    monkeypatch.setattr(firstboot, "STATUS_PATH", str(path))
    firstboot.statusfile.save(firstboot.statusfile.new_status(), str(path))

    closed = firstboot.close_status(0, "/log")

    assert closed["state"] == "done" and "reason" not in closed


def test_the_playbook_runs_under_mitogen_unless_switched_off(firstboot, tmp_path, monkeypatch):
    monkeypatch.setattr(firstboot, "MITOGEN_STRATEGIES", str(tmp_path))
    env = firstboot.ansible_environment()
    assert (env["ANSIBLE_STRATEGY"], env["ANSIBLE_STRATEGY_PLUGINS"]) == ("mitogen_linear", str(tmp_path))
    assert "ANSIBLE_STRATEGY" not in firstboot.ansible_environment(mitogen=False)
    monkeypatch.setattr(firstboot, "MITOGEN_STRATEGIES", str(tmp_path / "absent"))
    assert "ANSIBLE_STRATEGY" not in firstboot.ansible_environment()


def test_mitogen_is_a_switch(firstboot):
    assert firstboot.parse_cmdline("prenixos.mitogen=0") == ({"prenixos.mitogen": "0"}, [])


def test_with_the_boot_medium_protected_a_wipe_goes_ahead(firstboot):
    variables, said = firstboot.protect_medium({"prenixos.medium": "1234-ABCD"}, {"prenixos_storage_wipe": True},
                                               mount=lambda uuid: None)
    assert (variables, said) == ({"prenixos_storage_wipe": True}, None)


@pytest.mark.parametrize("switches, mount, why", [
    ({"prenixos.medium": "1234-ABCD"}, lambda uuid: "the boot medium /dev/disk/by-uuid/%s was not found (removed?)"
     % uuid, "the boot medium /dev/disk/by-uuid/1234-ABCD was not found (removed?)"),
    ({"prenixos.medium": "1234-ABCD"}, lambda uuid: "the boot medium X could not be mounted: bad superblock",
     "the boot medium X could not be mounted: bad superblock"),
    ({}, None, "the kernel command line does not name the boot medium (prenixos.medium)"),
])
def test_a_wipe_is_refused_when_the_boot_medium_cannot_be_protected(firstboot, switches, mount, why):
    variables, said = firstboot.protect_medium(switches, {"prenixos_storage_wipe": True, "other": 1},
                                               mount=mount or (lambda uuid: pytest.fail("nothing to mount")))
    assert variables == {"prenixos_storage_wipe": False, "other": 1}
    assert said == ("prenixos.wipe=1 refused: %s, so it cannot be kept out of a wipe; planning and building on "
                    "blank disks still run" % why)


def test_without_a_wipe_an_unprotected_medium_is_only_said(firstboot):
    variables, said = firstboot.protect_medium({}, {"prenixos_storage_redundant_main": True})
    assert variables == {"prenixos_storage_redundant_main": True}
    assert said.startswith("the kernel command line does not name the boot medium")


def test_disk_selectors_and_sizes_are_switches_that_set_the_storage_variables(firstboot):
    switches, warnings = firstboot.parse_cmdline(
        "console=ttyS0 prenixos.exclude=S3Z1NB0K123,model:Samsung_SSD* prenixos.include=name:sd*,wwn:naa.5000C500A1 "
        "prenixos.slash=20G prenixos.home=4GiB prenixos.swap=0")
    assert warnings == []
    assert firstboot.extra_vars(switches) == {
        "prenixos_storage_exclude": ["S3Z1NB0K123", "model:Samsung_SSD*"],
        "prenixos_storage_include": ["name:sd*", "wwn:naa.5000C500A1"],
        "prenixos_storage_slash_size": "20G",
        "prenixos_storage_home_size": "4GiB",
        "prenixos_storage_swap_size": "0",
    }


@pytest.mark.parametrize(("word", "warning"), [
    ("prenixos.slash=20X", "'prenixos.slash=20X' ignored: prenixos.slash takes a size: bytes or a number with a "
     "binary unit (20G, 512M, 1.5T)"),
    ("prenixos.swap", "'prenixos.swap' ignored: prenixos.swap takes a size: bytes or a number with a binary unit "
     "(20G, 512M, 1.5T)"),
    ("prenixos.home=-4G", "'prenixos.home=-4G' ignored: prenixos.home takes a size: bytes or a number with a binary "
     "unit (20G, 512M, 1.5T)"),
    ("prenixos.exclude=", "'prenixos.exclude=' ignored: prenixos.exclude takes disk selectors separated by commas "
     "(a disk selector must be a non-empty string, got '')"),
    ("prenixos.exclude=sda,,sdb", "'prenixos.exclude=sda,,sdb' ignored: prenixos.exclude takes disk selectors "
     "separated by commas (a disk selector must be a non-empty string, got '')"),
    ("prenixos.include=serial:", "'prenixos.include=serial:' ignored: prenixos.include takes disk selectors "
     "separated by commas ('serial:' names no serial)"),
    ("prenixos.exclude=/dev/disk/by-path/pci-0", "'prenixos.exclude=/dev/disk/by-path/pci-0' ignored: "
     "prenixos.exclude takes disk selectors separated by commas ('/dev/disk/by-path/pci-0' is not a disk selector: "
     "a path must be /dev/NAME or a /dev/disk/by-id/ link)"),
])
def test_a_bad_size_or_selector_is_reported_and_ignored(firstboot, word, warning):
    assert firstboot.parse_cmdline("prenixos.slash=30G " + word) == ({"prenixos.slash": "30G"}, [warning])


def test_network_switches_pass_on_as_given_for_the_lan_phase_to_check_together(firstboot):
    switches, warnings = firstboot.parse_cmdline(
        "console=ttyS0 prenixos.ip=192.0.2.10/24,2001:db8::10/64 prenixos.gw=192.0.2.1 prenixos.dns=192.0.2.53,"
        "192.0.2.54 prenixos.vlan=42")
    assert warnings == []
    assert firstboot.extra_vars(switches) == {
        "prenixos_lan_address": ["192.0.2.10/24", "2001:db8::10/64"],
        "prenixos_lan_gateway": ["192.0.2.1"],
        "prenixos_lan_dns": ["192.0.2.53", "192.0.2.54"],
        "prenixos_lan_vlan": "42",
    }
    # A wrong value is the lan phase's to refuse, with the reason on the console (a gateway is checked against
    # the address's network there); only an empty one is refused here.
    assert firstboot.extra_vars(firstboot.parse_cmdline("prenixos.ip=192.0.2.10 prenixos.vlan=x")[0]) == {
        "prenixos_lan_address": ["192.0.2.10"], "prenixos_lan_vlan": "x"}
    assert firstboot.parse_cmdline("prenixos.ip=")[1] == [
        "'prenixos.ip=' ignored: prenixos.ip takes addresses with their prefix, separated by commas"]
