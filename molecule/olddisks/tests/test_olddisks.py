# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An installed layout booted again with an HDD taken out, then with a blank HDD plugged in: first boot
refused both times and kept the file; provisioning with wipe tore the old layout down and built the plan."""
from __future__ import annotations

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from testlib import (  # noqa: E402
    boot_medium,
    converge_rounds,
    disks_by_serial,
    firmware,
    first_boot_status,
    guest_disks,
    guest_json,
    plan,
    serial_log,
)

REFUSAL = re.compile(r"pre-nixos: storage_apply +skipped: planned only, nothing changed: ([^;]+) hold data;"
                     r" boot with prenixos\.wipe=1")


def test_first_boot_refused_the_earlier_build_naming_every_disk_it_holds(host):
    refusals = REFUSAL.findall(serial_log())
    assert len(refusals) == 2, "expected two refusals on the console (first boot, then with a disk added): %s" % (
        refusals,)
    added = disks_by_serial(host)[converge_rounds(host)["plugged"]]
    old_disks = sorted(name for name in guest_disks(host) if name != added)
    for refusal in refusals:
        assert sorted(refusal.split(", ")) == old_disks, (
            "expected each refusal to name the disks of the installed layout %s (not the blank one, %s): %s"
            % (old_disks, added, refusal))
    foreign = converge_rounds(host)["second_run_storage_apply"]["details"]["foreign"]
    assert sorted(foreign) == old_disks and all(
        any(what.startswith("a GPT this build did not write") for what in found) for found in foreign.values()), (
        "expected the status to say, for each disk, that another build wrote its table: %s" % foreign)
    assert "nixos_config   skipped" in serial_log(), "expected no NixOS configuration before the disks are built"


def test_the_file_of_the_installed_system_survived_both_runs(host):
    seen = converge_rounds(host)
    assert seen["after_first_boot"][0] == "written by the installed system", seen["after_first_boot"]
    assert len(seen["after_first_boot"]) == 1 + 4, "expected the four members the layout was built on: %s" % seen
    assert seen["after_second_run"] == seen["after_first_boot"], (
        "expected the file unchanged after first boot ran again with a blank disk added: %s" % seen)


def test_with_a_blank_disk_added_first_boot_refused_again_and_ran_nothing(host):
    seen = converge_rounds(host)
    assert seen["second_run_rc"] == 0, "expected first boot to end cleanly the second time: %s" % seen
    phase = seen["second_run_storage_apply"]
    assert phase["state"] == "skipped" and "hold data" in phase["reason"], (
        "expected storage_apply skipped again, found %s" % phase)


def test_the_run_with_wipe_tore_the_old_layout_down_and_built_the_plan(host):
    phase = first_boot_status(host)["phases"]["storage_apply"]
    assert phase["state"] == "done", "expected the plan built by the run with wipe, found %s" % phase
    planned = plan(host)
    report = guest_json(host, "vgs --reportformat json -o vg_name,vg_tags")["report"][0]["vg"]
    assert {vg["vg_name"] for vg in report} == {vg["name"] for vg in planned["volume_groups"]}, (
        "expected only the planned VGs: %s" % report)
    for vg in report:
        tags = vg["vg_tags"].split(",")
        assert "prenixos_finished" in tags and any(tag.startswith("prenixos_build_") for tag in tags), (
            "expected VG %s to carry the build's tag and the finished mark: %s" % (vg["vg_name"], tags))
    detail = host.check_output("mdadm --detail --export /dev/md/large")
    added = disks_by_serial(host)[converge_rounds(host)["plugged"]]
    assert "MD_LEVEL=raid5" in detail and "MD_DEVICES=4" in detail and "/dev/%s1" % added in detail, (
        "expected large rebuilt as RAID5 over four HDDs, the added %s among them:\n%s" % (added, detail))
    assert host.check_output("findmnt -n -o LABEL /mnt") == "slash"
    assert "pre-nixos: storage_apply" not in host.file("/etc/issue").content_string, (
        "expected the refusal line gone from /etc/issue once the plan is built")


def test_the_two_ssds_are_main_as_raid0_with_an_esp_on_each(host):
    planned = plan(host)
    main = next(vg for vg in planned["volume_groups"] if vg["name"] == "main")
    ssds = sorted(name for name, kind in guest_disks(host).items() if kind == "ssd")
    assert (main["raid_level"], sorted(main["disks"])) == ("raid0", ssds), (
        "expected main as RAID0 of %s (in the order of their stable names): %s" % (ssds, main))
    detail = host.check_output("mdadm --detail --export /dev/md/main")
    assert "MD_LEVEL=raid0" in detail and "MD_DEVICES=2" in detail, "expected /dev/md/main RAID0 of 2:\n%s" % detail
    labels = set(host.check_output("blkid -s LABEL -o value").split())
    assert {"EFI", "EFI2", "slash"} <= labels, "expected an ESP on each SSD (EFI, EFI2) and slash: %s" % labels


def test_legacy_bios_from_a_stick_that_provisioning_with_wipe_left_alone(host):
    assert firmware(host) == "bios", "expected a legacy BIOS boot (no EFI in the guest): %s" % firmware(host)
    medium = boot_medium(host)
    assert medium["name"] and "boot medium" in (medium["excluded"] or ""), (
        "expected the stick excluded from the plan as the boot medium: %s" % medium)
    assert medium["unchanged"], "expected the stick to hold the image byte for byte after the wipe: %s" % medium
