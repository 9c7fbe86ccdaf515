"""Ownership by build identity: only what this build wrote is resumed; an earlier build is foreign.

The case that made this necessary: a server installed from a pre-nixos layout (``large`` as RAID5
over four HDDs) boots the image again with one HDD gone. The planner now plans RAID5 over three;
the old array sits inactive on those three members (mdadm's last-resort timer has not started it
yet). Applying the new plan without ``wipe`` must not stop, zero or create anything.
"""
from __future__ import annotations

import pytest
from test_storage_apply import DEFAULT_PLAN, apply, default_machine, refused
from test_storage_apply_fake_machine import GiB

from ansible_collections.prenixos.baseline.plugins.module_utils.planner import plan_storage
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_identity import (
    FINISHED_TAG,
    BuildIdentity,
    normal_uuid,
)

DESTRUCTIVE = ("--stop", "--zero-superblock", "--create", "--zap-all", "--clear", "vgremove", "pvremove", "wipefs",
               "mkfs.ext4", "mkfs.vfat", "mkswap", "pvcreate", "vgcreate", "lvcreate")


def destructive(machine):
    """The mutating commands that can destroy or overwrite something, as lines."""
    found = []
    for argv, _disks in machine.mutations:
        if any(word in argv or argv[0] == word for word in DESTRUCTIVE):
            found.append(" ".join(argv))
    return found


def installed_with_four_hdds(tmp_path):
    """The default machine plus a fourth 24 GiB HDD, built by its plan: ``large`` is RAID5 over sde-sdh."""
    machine = default_machine(tmp_path)
    machine.add_disk("sdh", 24 * GiB, rotational=True)
    plan = plan_storage(machine.disk_facts(), 4 * GiB)
    assert next(a for a in plan["arrays"] if a["name"] == "large")["devices"] == [
        "/dev/sde1", "/dev/sdf1", "/dev/sdg1", "/dev/sdh1"]
    apply(machine, plan)
    return machine, plan


def remove_while_off(machine, disk):
    """The disk is taken out while the machine is off; the next boot assembles what it can."""
    machine.disks.pop(disk)
    for table in (machine.superblocks, machine.sigs):
        for kname in [k for k in table if k.startswith(disk)]:
            table.pop(kname)
    for array in machine.arrays.values():
        array["members"] = [m for m in array["members"] if not m.startswith(disk)]
    machine.reboot()


def test_the_identity_of_a_plan_is_pinned_because_changing_it_makes_every_built_machine_foreign():
    identity = BuildIdentity(DEFAULT_PLAN)
    assert identity.id == "9ab2bf2af01523aa"
    assert identity.tag == "prenixos_build_9ab2bf2af01523aa"
    assert identity.disk_guid("sda") == "0b713b51-e19e-4323-bee2-e5f632af7433"
    assert identity.array_uuid("large") == "51aa4445-8f0a-43f5-9b3c-7f47eba7e650"


def test_the_identity_follows_the_shape_of_the_plan_not_its_options_notes_or_volumes():
    same_shape = dict(DEFAULT_PLAN, options={"swap_size": 1}, notes=["another note"], excluded=[],
                      logical_volumes=[])
    assert BuildIdentity(same_shape).id == BuildIdentity(DEFAULT_PLAN).id
    one_disk_less = dict(DEFAULT_PLAN, disks=DEFAULT_PLAN["disks"][:-1])
    replaced = dict(DEFAULT_PLAN, disks=[dict(d, path="/dev/disk/by-id/ata-NEW") if d["name"] == "sdg" else d
                                         for d in DEFAULT_PLAN["disks"]])
    assert BuildIdentity(replaced).id != BuildIdentity(DEFAULT_PLAN).id, "a replaced disk is another build"
    assert BuildIdentity(one_disk_less).id != BuildIdentity(DEFAULT_PLAN).id
    other_level = dict(DEFAULT_PLAN, arrays=[dict(a, level="raid1") if a["name"] == "main" else a
                                             for a in DEFAULT_PLAN["arrays"]])
    assert BuildIdentity(other_level).id != BuildIdentity(DEFAULT_PLAN).id


def test_uuids_compare_in_every_spelling_the_tools_print():
    assert normal_uuid("51AA4445:8F0A43F5:9B3C7F47:EBA7E650") == normal_uuid("51aa4445-8f0a-43f5-9b3c-7f47eba7e650")
    assert BuildIdentity(DEFAULT_PLAN).marks_array("51aa4445:8f0a43f5:9b3c7f47:eba7e650", "large")
    assert not BuildIdentity(DEFAULT_PLAN).marks_array(None, "large")


def test_a_fresh_build_writes_its_identity_on_every_disk_array_and_volume_group(tmp_path):
    machine = default_machine(tmp_path)
    apply(machine)
    identity = BuildIdentity(DEFAULT_PLAN)
    for disk in ("nvme0n1", "sda", "sdb", "sdc", "sdd", "sde", "sdf", "sdg"):
        assert machine.disks[disk]["guid"] == identity.disk_guid(disk)
    assert {a["name"]: normal_uuid(a["uuid"]) for a in machine.arrays.values()} == {
        "any:" + name: normal_uuid(identity.array_uuid(name)) for name in ("main", "swap", "large")}
    assert {name: vg["tags"] for name, vg in machine.vgs.items()} == {
        name: [identity.tag, FINISHED_TAG] for name in ("main", "main_1", "swap", "large")}


@pytest.mark.parametrize("started_by_last_resort", [False, True])
def test_an_installed_layout_booted_again_with_a_disk_removed_is_foreign_and_nothing_runs(
        tmp_path, started_by_last_resort):
    machine, _old_plan = installed_with_four_hdds(tmp_path)
    remove_while_off(machine, "sdh")
    mdstat = (tmp_path / "proc" / "mdstat").read_text()
    assert "inactive sde1[0](S) sdf1[1](S) sdg1[2](S)" in mdstat
    if started_by_last_resort:
        kname = next(k for k, a in machine.arrays.items() if a["name"] == "any:large")
        machine.arrays[kname]["active"] = True
        machine.sync()
    plan = plan_storage(machine.disk_facts(), 4 * GiB)
    assert next(a for a in plan["arrays"] if a["name"] == "large")["devices"] == [
        "/dev/sde1", "/dev/sdf1", "/dev/sdg1"]
    machine.mutations.clear()
    error = refused(machine, plan)
    assert machine.mutations == [], "expected nothing to run: %s" % destructive(machine)
    assert sorted(error.details["foreign"]) == ["nvme0n1", "sda", "sdb", "sdc", "sdd", "sde", "sdf", "sdg"]
    assert any("array /dev/" in what and "name large" in what for what in error.details["foreign"]["sde"])
    assert error.msg.startswith("Refusing to change disks that hold data this plan did not make")


def test_a_blank_disk_added_to_an_installed_layout_changes_nothing_without_wipe(tmp_path):
    machine, _old_plan = installed_with_four_hdds(tmp_path)
    machine.reboot()
    machine.add_disk("sdi", 24 * GiB, rotational=True)
    plan = plan_storage(machine.disk_facts(), 4 * GiB)
    machine.mutations.clear()
    refused(machine, plan)
    assert machine.mutations == []


def test_with_wipe_the_earlier_build_is_torn_down_and_this_one_built(tmp_path):
    machine, _old_plan = installed_with_four_hdds(tmp_path)
    remove_while_off(machine, "sdh")
    plan = plan_storage(machine.disk_facts(), 4 * GiB)
    result = apply(machine, plan, wipe=True)
    assert result["wiped"] == ["nvme0n1", "sda", "sdb", "sdc", "sdd", "sde", "sdf", "sdg"]
    identity = BuildIdentity(plan)
    assert {name: vg["tags"] for name, vg in machine.vgs.items()} == {
        name: [identity.tag, FINISHED_TAG] for name in ("main", "main_1", "swap", "large")}
    assert apply(machine, plan)["changed"] is False


def test_an_array_of_this_build_that_cannot_start_after_its_volume_groups_exist_is_not_created_again(tmp_path):
    machine = default_machine(tmp_path)
    apply(machine)
    machine.superblocks.pop("sdb2")  # main (raid0 over sda2 sdb2) lost a superblock; its data is on sda2 and sdb2
    machine.sigs.pop("sdb2")
    for array in machine.arrays.values():
        array["members"] = [m for m in array["members"] if m != "sdb2"]
    machine.reboot()
    machine.mutations.clear()
    error = refused(machine)
    assert machine.mutations == [], "expected nothing to run: %s" % destructive(machine)
    assert ("array main: 1 of its 2 members carry this build's superblock, too few to start it, and the build got "
            "past its arrays; it is not created again") in error.details["foreign"]["sda"]


def test_an_array_with_the_planned_name_and_another_builds_uuid_is_foreign(tmp_path):
    machine = default_machine(tmp_path)
    for disk, number in (("sdc", 1), ("sdd", 1)):
        machine.add_partition(disk, number, None, name="swap-raid%d" % (1 if disk == "sdc" else 2), type_code="FD00")
        machine.disks[disk]["guid"] = BuildIdentity(DEFAULT_PLAN).disk_guid(disk)  # even the table looks ours
    machine.add_array("any:swap", "raid1", ["sdc1", "sdd1"], active=False)
    machine.mutations.clear()
    error = refused(machine)
    assert machine.mutations == []
    assert error.details["foreign"] == {"sdc": ["sdc1: RAID member of any:swap (raid1)"],
                                        "sdd": ["sdd1: RAID member of any:swap (raid1)"]}


def test_the_result_says_which_build_and_whether_it_is_finished(tmp_path):
    machine = default_machine(tmp_path)
    assert apply(machine, check_mode=True)["build"] == {"id": BuildIdentity(DEFAULT_PLAN).id, "finished": False}
    assert apply(machine)["build"] == {"id": BuildIdentity(DEFAULT_PLAN).id, "finished": True}
    assert apply(machine)["build"]["finished"] is True


def test_kernel_names_that_change_between_boots_change_neither_the_plan_on_each_disk_nor_the_build(tmp_path):
    machine = default_machine(tmp_path)
    facts = machine.disk_facts()
    before = plan_storage(facts, 4 * GiB)
    swapped_names = {"sda": "sdb", "sdb": "sda", "sde": "sdg", "sdg": "sde"}
    renamed = []
    for disk in facts:
        name = swapped_names.get(disk["name"], disk["name"])
        renamed.append(dict(disk, name=name, dev="/dev/" + name))  # the by-id path stays with the disk
    after = plan_storage(renamed, 4 * GiB)

    def by_path(plan):
        path_of = {d["name"]: d["path"] for d in plan["disks"]}
        return sorted((path_of[p["disk"]], p["number"], p["partlabel"]) for p in plan["partitions"])

    assert by_path(after) == by_path(before), "expected each disk, by its by-id path, to get the same partitions"
    assert BuildIdentity(after).id == BuildIdentity(before).id
    assert BuildIdentity(after).disk_guid("sdb") == BuildIdentity(before).disk_guid("sda")
