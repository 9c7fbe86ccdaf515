# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage build, killed at several points, converges on the next run to the full layout each time."""
from __future__ import annotations

import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "collections"))
from testlib import first_boot_status, plan, planned_mounts  # noqa: E402

from ansible_collections.prenixos.baseline.plugins.module_utils.storage_identity import (  # noqa: E402
    BuildIdentity,
    normal_uuid,
)

# The rounds converge.yml runs, and the builder's commands the run after the kill must not repeat.
ROUNDS = {
    "after partitioning": {"fired": "before: mkfs.vfat", "not_again": ["sgdisk"]},
    "mid-array creation": {"fired": "after: mdadm --create", "not_again": ["sgdisk"], "creates": 1},
    "after VG creation": {"fired": "before: lvcreate", "not_again": ["sgdisk", "mdadm --create", "vgcreate"]},
    # "during (killed running)": the next run makes that filesystem again; "during (had ended)" (mkfs was
    # quicker than the stand-in's wait) is the point between two mkfs calls: the next run must not.
    "during mkfs": {"fired": "during (", "not_again": ["sgdisk", "mdadm --create", "vgcreate", "lvcreate"]},
    "after mkfs": {"fired": "before: mount",
                   "not_again": ["sgdisk", "mdadm --create", "vgcreate", "lvcreate", "mkfs.ext4", "mkswap"]},
}


@pytest.fixture(scope="module")
def rounds(host):
    return {entry["name"]: entry for entry in json.loads(
        host.file("/var/log/pre-nixos/resume-rounds.json").content_string)}


@pytest.fixture(scope="module")
def planned(host):
    return plan(host)


def commands_with(entry, words):
    """The resumed run's commands that start with ``words`` (tool by base name, then arguments)."""
    tool, *args = words.split()
    return [argv for argv in entry["resumed_commands"]
            if os.path.basename(argv[0]) == tool and argv[1:1 + len(args)] == args]


def section(holds, name):
    return holds.split("== %s\n" % name, 1)[1].split("\n== ", 1)[0].splitlines()


def test_every_round_ran(rounds):
    assert sorted(rounds) == sorted(ROUNDS), "expected the rounds %s, ran %s" % (sorted(ROUNDS), sorted(rounds))


@pytest.mark.parametrize("name", sorted(ROUNDS))
def test_the_build_was_killed_at_its_point(rounds, name):
    entry = rounds[name]
    assert entry["fired"].startswith(ROUNDS[name]["fired"]), (
        "expected the kill at %r, the stand-in recorded %r" % (ROUNDS[name]["fired"], entry["fired"]))
    assert entry["killed_rc"] == 128 + 9, (
        "expected the killed module to die of SIGKILL, got rc %s: %s" % (entry["killed_rc"], entry["killed_msg"]))


@pytest.mark.parametrize("name", sorted(ROUNDS))
def test_the_next_run_went_on_from_where_the_kill_left_it(rounds, name):
    entry, expected = rounds[name], ROUNDS[name]
    assert entry["resumed_changed"], "expected the run after the kill to finish the build"
    for words in expected["not_again"]:
        repeated = commands_with(entry, words)
        assert not repeated, "%s: expected the run after the kill to keep what was built, it ran %s" % (name, repeated)
    if entry["fired"].startswith("during (killed running): mkfs.ext4"):
        expected = dict(expected, again=["mkfs.ext4"])
    elif entry["fired"].startswith("during (had ended): mkfs.ext4"):
        expected = dict(expected, not_again=expected["not_again"] + ["mkfs.ext4 -L slash"])
    for words in expected.get("again", []):
        assert commands_with(entry, words), "%s: expected %r again: the killed call had not finished" % (name, words)
    if "creates" in expected:
        creates = commands_with(entry, "mdadm --create")
        assert len(creates) == expected["creates"], (
            "%s: expected only the array not yet made to be created: %s" % (name, creates))


@pytest.mark.parametrize("name", sorted(ROUNDS))
def test_each_round_ended_with_the_full_layout(rounds, planned, name):
    holds = rounds[name]["holds"]
    mounted = {}
    for line in section(holds, "findmnt"):
        source, target, *label = line.split()
        mounted[target] = label[0] if label else None
    assert mounted == planned_mounts(planned), (
        "%s: expected every planned filesystem mounted by label, findmnt shows %s" % (name, mounted))
    swaps = [line.split() for line in section(holds, "swap")]
    assert [label for _name, label in swaps] == ["swap"], "%s: expected the swap LV active: %s" % (name, swaps)
    levels = sorted(re.findall(r"^md\S+ : active (raid\d+)", "\n".join(section(holds, "mdstat")), re.M))
    assert levels == sorted(array["level"] for array in planned["arrays"]), (
        "%s: expected the planned arrays running, /proc/mdstat:\n%s" % (name, "\n".join(section(holds, "mdstat"))))


def test_the_role_run_after_the_rounds_found_the_layout_built(host):
    result = json.loads(host.file("/var/log/pre-nixos/resume-role-result.json").content_string)
    assert result == {"applied": True, "root": "/mnt"}, (
        "expected the storage role, run after the rounds, to end with the plan built under /mnt: %s" % result)
    assert host.check_output("findmnt -n -o LABEL /mnt") == "slash"


def test_the_storage_role_keeps_no_first_boot_books(host):
    """Run over SSH after first boot, the role leaves the status file as first boot left it."""
    status = first_boot_status(host)
    phase = status["phases"]["storage_apply"]
    assert phase["state"] == "done" and phase["finished"] <= status["finished"], (
        "expected storage_apply recorded by first boot only (finished %s, first boot finished %s)"
        % (phase["finished"], status["finished"]))


@pytest.fixture(scope="module")
def cuts(host):
    return json.loads(host.file("/var/log/pre-nixos/resume-cuts.json").content_string)


def test_the_power_was_cut_mid_array_creation_and_mid_mkfs(cuts):
    fired = {cut["name"]: cut["fired"] for cut in cuts["cuts"]}
    assert sorted(fired) == ["mid-array creation", "mid-mkfs"], fired
    assert fired["mid-array creation"].startswith("cut: mdadm --create"), fired
    assert fired["mid-mkfs"].startswith("cut: mkfs.ext4"), fired


def test_after_each_boot_and_the_disk_put_back_the_plan_followed_each_disk_by_its_identity(cuts):
    # Kernel names may swap at a boot (virtio-scsi): a plan kept from the boot before is bound again by serial,
    # WWN or by-id link, never taken by kernel name alone; each disk that moved is named in a note.
    bindings = cuts["bindings"]
    assert [entry["why"] for entry in bindings] == [
        "the pulled disk put back", "booted again after the cut mid-array creation"], bindings
    for entry in bindings:
        for note in entry["notes"]:
            assert re.fullmatch(r"disk sd[a-z]+ \((serial|wwn|by-id):\S+\) is sd[a-z]+ in this boot", note), (
                "expected only notes of disks followed by their identity: %s" % entry)


def test_first_boot_after_the_cuts_finished_the_same_build_without_wipe(host, cuts, planned):
    identity = BuildIdentity(cuts["plan"])
    assert BuildIdentity(planned).id == identity.id, "expected first boot to plan the build the cuts interrupted"
    phase = first_boot_status(host)["phases"]["storage_apply"]
    assert phase["state"] == "done", "expected first boot to finish the build: %s" % phase
    assert "prenixos.wipe" not in first_boot_status(host)["switches"], "expected first boot without wipe"
    for array in planned["arrays"]:
        detail = host.check_output("mdadm --detail --export %s" % array["device"])
        uuid = re.search(r"^MD_UUID=(\S+)$", detail, re.M).group(1)
        assert normal_uuid(uuid) == normal_uuid(identity.array_uuid(array["name"])), (
            "expected array %s to be this build's (UUID %s), found %s" % (
                array["name"], identity.array_uuid(array["name"]), uuid))
    mounted = dict(line.split() for line in host.check_output("findmnt -rn -o TARGET,LABEL -R /mnt").splitlines()
                   if len(line.split()) == 2)
    assert mounted == planned_mounts(planned), "expected every planned filesystem mounted by label: %s" % mounted


def test_a_disk_pulled_during_the_build_stopped_it_with_the_clear_message_and_the_next_run_converged(cuts):
    pull = cuts["pull"]
    assert pull["held"].startswith("hold: mdadm --create /dev/md/swap"), pull["held"]
    assert not any(line.split()[-1] == "pn-hdd2" for line in pull["disks_without"] if len(line.split()) == 2), (
        "expected the second HDD gone while the build went on: %s" % pull["disks_without"])
    assert "disappeared during the build" in pull["msg"] and "what is built is kept" in pull["msg"], (
        "expected the build to stop naming the pulled disk: %s" % pull["msg"])
    assert pull["after_changed"], "expected the run with the disk back to finish the build"
    again = [" ".join(argv) for argv in pull["after_commands"]]
    assert not [line for line in again if "mdadm --create /dev/md/main" in line], (
        "expected the array made before the pull kept: %s" % again)
    assert [line for line in again if "mdadm --create /dev/md/swap" in line], (
        "expected the array the pull stopped to be created once the disk was back: %s" % again)
