# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""No link during first boot: the rest still ran, the failure was said, and the LAN came up later."""
from __future__ import annotations

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from testlib import (  # noqa: E402
    boot_medium,
    firmware,
    first_boot_status,
    guest_json,
    links_by_mac,
    nic_macs,
    plan,
    planned_mounts,
    serial_log,
)


def first_boot_log(host):
    """The log of the first run of first boot (converge runs it again once the LAN is up; firstboot.log is that one)."""
    first = host.check_output("ls /var/log/pre-nixos/firstboot-*.log | sort | head -n 1")
    return host.file(first).content_string


def test_first_boot_recorded_the_network_failure_and_said_it_on_the_console(host):
    log = first_boot_log(host)
    failure = re.search(r"pre-nixos: lan +failed: (no carrier on any NIC within \d+ s[^\n]*)", serial_log())
    assert failure, "expected the console to say the lan phase failed for want of a carrier"
    assert "no carrier on any NIC" in log, "expected the first-boot log to name the network failure"
    assert "retrying every" in failure.group(1), "expected the failure to say it retries: %s" % failure.group(1)


def test_ssh_hardening_and_storage_ran_without_the_network(host):
    phases = first_boot_status(host)["phases"]
    found = {name: phases[name]["state"] for name in ("ssh", "storage_plan", "storage_apply", "nixos_config")}
    assert found == dict.fromkeys(found, "done"), "expected SSH, storage and the NixOS configuration done: %s" % found
    effective = host.check_output("sshd -T -C user=root,host=localhost,addr=127.0.0.1")
    for setting in ("permitrootlogin without-password", "passwordauthentication no",
                    "kbdinteractiveauthentication no"):
        assert setting in effective.splitlines(), "expected sshd -T to show %r" % setting


def test_main_lives_on_the_hdds_and_root_is_mounted(host):
    planned = plan(host)
    main = next(vg for vg in planned["volume_groups"] if vg["name"] == "main")
    assert (main["raid_level"], len(main["disks"])) == ("raid5", 4), "expected main as RAID5 of the 4 HDDs: %s" % main
    mounted = {fs["target"]: fs["label"] for fs in guest_json(
        host, "findmnt -J -o TARGET,LABEL --mountpoint /mnt")["filesystems"]}
    assert mounted == {"/mnt": "slash"}, "expected / of the plan (label slash) at /mnt, found %s" % mounted
    assert planned_mounts(planned)["/mnt"] == "slash"
    # Four small HDDs: / (clipped to the VG) leaves no room for swap in main, and the plan says so.
    swaps = [lv for lv in planned["logical_volumes"] if lv["filesystem"] == "swap"]
    active = host.check_output("swapon --show=NAME --noheadings --raw").split()
    assert len(active) == len(swaps), "expected %d swap volume(s) active as planned, found %s" % (len(swaps), active)
    assert swaps or any(note.startswith("main/swap left out") for note in planned["notes"]), (
        "expected the plan to say why there is no swap: %s" % planned["notes"])


def test_the_lan_came_up_once_the_cable_was_in(host):
    status = first_boot_status(host)
    lan = status["phases"]["lan"]
    assert (lan["state"], lan["details"]["address"]) == ("done", "10.0.2.15"), "expected lan done later: %s" % lan
    assert links_by_mac(host).get(nic_macs()[0]) == "lan", "expected the only NIC renamed lan"
    assert status["state"] == "done", "expected the run done once its failed phase was done: %s" % status["state"]
    timer = host.run("systemctl is-active pre-nixos-lan-retry.timer").stdout.strip()
    assert timer != "active", "expected the retry timer stopped once lan is configured, it is %s" % timer


def test_the_nixos_configuration_names_the_lan(host):
    """After the late cable and first boot run again, pre-nixos.nix names the NIC that carries the LAN."""
    nix = host.file("/mnt/etc/nixos/pre-nixos.nix").content_string
    assert nic_macs()[0] in nix.lower(), "expected pre-nixos.nix to name the LAN's MAC %s:\n%s" % (nic_macs()[0], nix)


def test_legacy_bios_from_the_image_on_a_disk_with_wipe_typed_at_the_boot_menu(host):
    assert firmware(host) == "bios", "expected a legacy BIOS boot (no EFI in the guest): %s" % firmware(host)
    switches = host.file("/proc/cmdline").content_string.split()
    assert "prenixos.wipe=1" in switches and any(word.startswith("prenixos.medium=") for word in switches), (
        "expected the typed switch and the medium GRUB found on the kernel command line: %s" % switches)
    assert first_boot_status(host)["phases"]["storage_apply"]["state"] == "done"


def test_with_wipe_the_image_disk_is_left_out_of_the_plan_and_kept_byte_for_byte(host):
    medium = boot_medium(host)
    assert medium["name"] and "boot medium" in (medium["excluded"] or ""), (
        "expected the image's disk excluded from the plan as the boot medium: %s" % medium)
    assert medium["unchanged"], "expected the image's disk to hold the image byte for byte: %s" % medium
