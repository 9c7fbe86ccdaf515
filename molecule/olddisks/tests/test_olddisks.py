# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Disks with an old RAID1 + LVM: first boot refused and said why; the run with wipe built the plan."""
from __future__ import annotations

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from testlib import first_boot_status, guest_disks, guest_json, plan, serial_log  # noqa: E402


def hdds(host):
    return sorted(name for name, kind in guest_disks(host).items() if kind == "hdd")


def test_first_boot_refused_naming_the_disks_and_how_to_wipe(host):
    log = host.file("/var/log/pre-nixos/firstboot.log").content_string
    refusal = re.search(r"pre-nixos: storage_apply +skipped: planned only, nothing changed: ([^;]+) hold data;"
                        r" boot with prenixos\.wipe=1", serial_log())
    assert refusal, "expected the console to say storage_apply was skipped because disks hold data"
    assert sorted(refusal.group(1).split(", ")) == hdds(host), (
        "expected the refusal to name the HDDs %s, it names %s" % (hdds(host), refusal.group(1)))
    assert "hold data" in log, "expected the first-boot log to carry the refusal"
    assert "nixos_config   skipped" in serial_log(), "expected no NixOS configuration before the disks are built"


def test_the_run_with_wipe_tore_the_old_stack_down_and_built_the_plan(host):
    phase = first_boot_status(host)["phases"]["storage_apply"]
    assert phase["state"] == "done", "expected the plan built by the run with wipe, found %s" % phase
    vgs = {vg["vg_name"] for vg in guest_json(host, "vgs --reportformat json -o vg_name")["report"][0]["vg"]}
    assert vgs == {vg["name"] for vg in plan(host)["volume_groups"]} and "old" not in vgs, (
        "expected only the planned VGs, vgs shows %s" % sorted(vgs))
    detail = host.check_output("mdadm --detail --export /dev/md/swap")
    assert "MD_LEVEL=raid1" in detail, "expected the HDD pair rebuilt as the swap mirror:\n%s" % detail
    assert not host.file("/dev/md/old").exists, "expected the old array gone"
    assert host.check_output("findmnt -n -o SOURCE /mnt") and host.check_output("findmnt -n -o LABEL /mnt") == "slash"
    assert "pre-nixos: storage_apply" not in host.file("/etc/issue").content_string, (
        "expected the refusal line gone from /etc/issue once the plan is built")


def test_the_two_ssds_are_main_as_raid0_with_an_esp_on_each(host):
    planned = plan(host)
    main = next(vg for vg in planned["volume_groups"] if vg["name"] == "main")
    ssds = sorted(name for name, kind in guest_disks(host).items() if kind == "ssd")
    assert (main["raid_level"], main["disks"]) == ("raid0", ssds), "expected main as RAID0 of %s: %s" % (ssds, main)
    detail = host.check_output("mdadm --detail --export /dev/md/main")
    assert "MD_LEVEL=raid0" in detail and "MD_DEVICES=2" in detail, "expected /dev/md/main RAID0 of 2:\n%s" % detail
    labels = set(host.check_output("blkid -s LABEL -o value").split())
    assert {"EFI", "EFI2", "slash"} <= labels, "expected an ESP on each SSD (EFI, EFI2) and slash: %s" % labels
