# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Three NICs, the link comes late on the third; one SSD and six HDDs as RAID6 with backups on."""
from __future__ import annotations

import datetime
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from testlib import (  # noqa: E402
    CONSOLE_LANDMARKS,
    boot_medium,
    firmware,
    first_boot_status,
    guest_json,
    links_by_mac,
    nic_macs,
    plan,
    serial_log,
)


def seconds(phase):
    started, finished = (datetime.datetime.fromisoformat(phase[key]) for key in ("started", "finished"))
    return (finished - started).total_seconds()


def test_first_boot_waited_for_the_late_link_and_named_that_nic_lan(host):
    macs = nic_macs()
    links = links_by_mac(host)
    assert links.get(macs[2]) == "lan", "expected the third NIC (%s, the one with the link) named lan: %s" % (
        macs[2], links)
    others = [links.get(mac, "") for mac in macs[:2]]
    assert all(name.startswith("en") for name in others), "expected the other NICs to keep their names: %s" % others
    lan = first_boot_status(host)["phases"]["lan"]
    assert lan["state"] == "done" and lan["details"]["mac"] == macs[2], "expected lan done on the third NIC: %s" % lan
    assert seconds(lan) >= 20, "expected the lan phase to have waited for the link (20 s), it took %s s" % seconds(lan)


def test_the_six_hdds_are_raid6_with_a_dense_inode_table_for_backups(host):
    planned = plan(host)
    large = next(vg for vg in planned["volume_groups"] if vg["name"] == "large")
    assert (large["raid_level"], len(large["disks"])) == ("raid6", 6), "expected large as RAID6 of 6 HDDs: %s" % large
    detail = host.check_output("mdadm --detail --export /dev/md/large")
    assert "MD_LEVEL=raid6" in detail and "MD_DEVICES=6" in detail, "expected /dev/md/large RAID6 of 6:\n%s" % detail
    data = next(lv for lv in planned["logical_volumes"] if lv["name"] == "data")
    assert data["inode_ratio"] == 2048, "expected the plan to ask one inode per 2 KiB for data: %s" % data
    fields = dict(line.split(":", 1) for line in host.check_output(
        "tune2fs -l /dev/disk/by-label/data").splitlines() if ":" in line)
    inodes, blocks, block_size = (int(fields[key].strip()) for key in ("Inode count", "Block count", "Block size"))
    ratio = blocks * block_size / inodes
    assert 1800 <= ratio <= 2100, "expected about one inode per 2048 bytes on /data, tune2fs gives %.0f" % ratio
    mounted = {fs["target"]: fs["label"] for fs in guest_json(
        host, "findmnt -J -o TARGET,LABEL --mountpoint /mnt/data")["filesystems"]}
    assert mounted == {"/mnt/data": "data"}, "expected /data mounted by its label under /mnt, found %s" % mounted


def test_main_is_the_ssd_and_swap_stays_off_it(host):
    planned = plan(host)
    main = next(vg for vg in planned["volume_groups"] if vg["name"] == "main")
    assert (main["raid_level"], len(main["disks"])) == ("none", 1), "expected main plain on the SSD: %s" % main
    swap = next(lv for lv in planned["logical_volumes"] if lv["filesystem"] == "swap")
    assert swap["vg"] == "large", "expected swap on the HDDs (large), not on the SSD: %s" % swap


def test_secure_boot_from_a_stick_console_on_ttys1_chosen_and_the_switch_typed_at_the_boot_menu(host):
    assert firmware(host) == "uefi-secureboot", "expected the guest to say Secure Boot is on: %s" % firmware(host)
    assert "Kernel is locked down from EFI Secure Boot" in serial_log(), "expected the kernel locked down"
    switches = host.file("/proc/cmdline").content_string.split()
    assert "prenixos.backups=1" in switches and any(word.startswith("prenixos.medium=") for word in switches), (
        "expected the typed switch and the medium GRUB found on the kernel command line: %s" % switches)
    assert "console=ttyS1,115200n8" in switches and "console=ttyS0,115200n8" not in switches, (
        "expected the kernel's console on ttyS1 only: %s" % switches)


@pytest.mark.parametrize("what, pattern", CONSOLE_LANDMARKS + [
    ("the menu's ttyS1 entry", r"pre-nixos baseline \S+: console on ttyS1")])
def test_ttys1_shows_the_menu_the_kernel_first_boot_and_a_getty(what, pattern):
    assert re.search(pattern, serial_log()), "expected %s on ttyS1 (%s)" % (what, pattern)


def test_the_stick_is_left_out_of_the_plan_and_never_written(host):
    medium = boot_medium(host)
    assert medium["name"] and "boot medium" in (medium["excluded"] or ""), (
        "expected the stick excluded from the plan as the boot medium: %s" % medium)
    assert medium["unchanged"], "expected the stick to hold the image byte for byte: %s" % medium
