# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The operator's plan: planned with a disk left out by serial, edited, a bad edit refused with every problem
named and nothing touched, the good edit built as edited, and the NixOS configuration matching the disks."""
from __future__ import annotations

import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from testlib import (  # noqa: E402
    converge_rounds,
    disks_by_serial,
    first_boot_status,
    guest_disks,
    guest_json,
    plan,
    planned_mounts,
)

MiB = 1024 ** 2
GiB = 1024 ** 3


def test_first_boot_only_planned(host):
    seen = converge_rounds(host)
    assert any(line.startswith("Storage plan (version 2)") for line in seen["planned"]), seen["planned"]
    assert any("plan written to /var/log/pre-nixos/plan.json" in line for line in seen["planned"]), seen["planned"]


def test_the_third_hdd_was_left_out_by_its_serial_and_never_touched(host):
    left_out = disks_by_serial(host)["pn-hdd3"]
    excluded = {entry["disk"]: entry["reason"] for entry in plan(host)["excluded"]}
    assert "excluded by the operator" in excluded.get(left_out, ""), excluded
    assert left_out not in {disk["name"] for disk in plan(host)["disks"]}
    assert host.check_output("lsblk --noheadings --output NAME /dev/%s" % left_out).split() == [left_out], (
        "expected %s to hold no partition" % left_out)


def test_the_bad_edit_was_refused_with_every_problem_named_and_nothing_touched(host):
    seen = converge_rounds(host)
    text = "\n".join(seen["refused"])
    assert seen["refused_rc"] != 0, text
    for problem in ("array main: raid6 needs at least 4 members, it has 2",
                    "volume group main: raid_level 'raid0', but its PVs are array main (raid6)",
                    "logical volume fast/slash: not a named volume of a planned VG",
                    "volume group main holds about",
                    "a disk is used twice"):
        assert problem in text, "expected the refusal to say %r:\n%s" % (problem, text)
    partitions = [line.split()[-1] for line in seen["after_refusal"] if re.match(r"^\s+\d+\s+\d+\s+\d+\s+\S+$", line)]
    assert not [name for name in partitions if re.match(r"^(sd[a-z]+\d+|md)", name)], (
        "expected no partition and no array after the refusal: %s" % seen["after_refusal"])


def test_check_mode_showed_the_commands_of_the_edited_plan_and_ran_none(host):
    seen = converge_rounds(host)
    text = "\n".join(seen["preview"])
    assert seen["preview_rc"] == 0, text
    flat = " ".join(text.split())  # the YAML callback folds long command lines
    assert re.search(r"mdadm --create /dev/md/main .*?--level=raid1 --raid-devices=2 ", flat), (
        "expected the preview to show main created as RAID1 over two:\n%s" % text)
    assert "lvcreate -L 3758096384b -n slash main --yes" in flat, "expected / at 3.5 GiB:\n%s" % text
    # the partitions read after the preview are checked by the refusal's test: none were made


def test_main_was_built_as_edited_raid1_over_the_two_ssds_with_a_3_5_gib_root(host):
    planned = plan(host)
    main = next(vg for vg in planned["volume_groups"] if vg["name"] == "main")
    ssds = sorted(name for name, kind in guest_disks(host).items() if kind == "ssd")
    assert (main["raid_level"], sorted(main["disks"])) == ("raid1", ssds), main
    detail = host.check_output("mdadm --detail --export /dev/md/main")
    assert "MD_LEVEL=raid1" in detail and "MD_DEVICES=2" in detail, detail
    sizes = {lv["lv_name"]: int(lv["lv_size"].rstrip("B")) for lv in guest_json(
        host, "lvs --reportformat json --units b -o lv_name,lv_size main")["report"][0]["lv"]}
    assert (sizes.get("slash"), sizes.get("home")) == (3584 * MiB, GiB), (
        "expected / as edited (3.5 GiB) and /home as planned (1 GiB): %s" % sizes)
    assert host.check_output("findmnt -n -o LABEL /mnt") == "slash"


def test_the_nixos_configuration_matches_the_disks(host):
    status = first_boot_status(host)
    assert status["phases"]["storage_apply"]["state"] == "done", status["phases"]["storage_apply"]
    text = host.file("/mnt/etc/nixos/pre-nixos.nix").content_string
    labels = planned_mounts(plan(host)).values()
    swaps = [lv["label"] for lv in plan(host)["logical_volumes"] if lv["filesystem"] == "swap"]
    missing = [label for label in labels if 'device = "/dev/disk/by-label/%s"' % label not in text]
    missing += [label for label in swaps if 'label = "%s"' % label not in text]
    assert not missing, "expected pre-nixos.nix to mount every planned label, missing: %s" % missing
    assert "swraid" in text and "/home" in text, "expected the arrays and /home in pre-nixos.nix:\n%s" % text


def test_pre_nixos_status_says_the_edited_plan_is_built(host):
    lines = converge_rounds(host)["status"]
    assert any(re.match(r"^\s*storage_plan\s+done\s.*the operator's plan, checked against the disks", line)
               for line in lines), lines
    # the last apply found the edited plan built: nothing to do
    assert any(re.match(r"^\s*storage_apply\s+done\s.*already built, nothing to do", line) for line in lines), lines


def test_building_the_edited_plan_again_changed_nothing(host):
    again = "\n".join(converge_rounds(host)["again"])
    recap = re.findall(r"changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", again)
    assert recap and recap[-1] == ("0", "0"), "expected a run that changed nothing:\n%s" % again
