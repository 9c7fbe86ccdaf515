"""The disks the running system lives on, whatever the file system under it.

Partitions, md, LVM and loop devices are followed in ``test_disk_facts``; here the roots that are not one
device: a ZFS pool (its members are the ``zfs_member`` devices labelled with the pool's name) and a
multi-device btrfs (its members are in ``/sys/fs/btrfs/<fsid>/devices`` and share its UUID in lsblk).
A mount the running system needs that cannot be followed to its disks refuses every disk: disk facts
fail, and so does the storage engine's read, before any command.
"""
from __future__ import annotations

import json
import shutil

import pytest
from module_harness import run_module
from runners import RecordingRunner
from test_disk_facts import Machine, boot_media, point_module_at
from test_storage_apply_fake_machine import FakeMachine, GiB

from ansible_collections.prenixos.baseline.plugins.module_utils import block_devices
from ansible_collections.prenixos.baseline.plugins.module_utils.block_devices import DiskFactsError
from ansible_collections.prenixos.baseline.plugins.module_utils.planner import plan_storage
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_apply import Applier, ApplyError
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_state import read_state
from ansible_collections.prenixos.baseline.plugins.modules import disk_facts

REFUSAL = "could not be followed to its disks; refusing to touch any disk"


def edit_lsblk(machine, edit):
    """Change the machine's lsblk output: ``edit(node)`` on every node, depth first."""
    data = json.loads(machine.lsblk_text)

    def visit(node):
        edit(node)
        for child in node.get("children") or []:
            visit(child)

    for device in data["blockdevices"]:
        visit(device)
    machine.lsblk_text = json.dumps(data)
    machine.runner = RecordingRunner({("lsblk",): (0, machine.lsblk_text, "")})


def forget(*columns, only=None):
    """An lsblk edit: the columns are null (udev has not probed the device), on ``only`` or on every node."""

    def edit(node):
        if only is None or node["name"] in only:
            node.update(dict.fromkeys(columns))

    return edit


def set_mountinfo(machine, text):
    (machine.proc_root / "self" / "mountinfo").write_text(text)


def boot_flags(disks):
    return {disk["name"]: disk["boot_medium"] for disk in disks}


# ---------------------------------------------------------------- ZFS


def test_every_disk_of_the_zfs_pool_under_the_root_is_a_boot_disk_and_no_other_pool_is(tmp_path):
    disks = Machine(tmp_path, "installed_root_on_zfs").gather()
    assert boot_flags(disks) == {"nvme0n1": True, "nvme1n1": True, "sda": False, "sdb": False}
    assert {disk["name"]: disk["in_use_reasons"] for disk in disks}["sda"] == [
        "partition table (gpt)", "partitions: sda1", "signature zfs_member on sda1",
    ]


@pytest.mark.parametrize("dataset", ["rpool", "rpool/ROOT/nixos"])
def test_the_pool_is_read_from_the_root_dataset_name(tmp_path, dataset):
    machine = Machine(tmp_path, "installed_root_on_zfs")
    set_mountinfo(machine, "21 1 0:26 / / rw,relatime shared:1 - zfs %s rw,xattr\n" % dataset)
    assert boot_media(machine.gather()) == ["nvme0n1", "nvme1n1"]


def test_a_pool_on_encrypted_members_is_followed_through_the_mapping(tmp_path):
    machine = Machine(tmp_path, "installed_root_on_zfs")

    def encrypt(node):
        if node["name"] in ("nvme0n1p2", "nvme1n1p2"):
            number = "253:%s" % node["name"][4]
            node["children"] = [dict(node, name="crypt-" + node["name"], kname="dm-" + node["name"][4],
                                     path="/dev/mapper/crypt-" + node["name"], type="crypt", pkname=node["name"],
                                     **{"maj:min": number})]
            node.update(fstype="crypto_LUKS", label=None, uuid="0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6")

    edit_lsblk(machine, encrypt)
    for index in ("0", "1"):
        machine.write_sysfs("dm-" + index, "slaves/nvme%sn1p2" % index, "")
    set_mountinfo(machine, "21 1 0:26 / / rw,relatime shared:1 - zfs rpool/root rw,xattr\n")
    assert boot_media(machine.gather()) == ["nvme0n1", "nvme1n1"]


def test_a_zfs_root_whose_pool_shows_no_member_refuses_every_disk(tmp_path):
    machine = Machine(tmp_path, "installed_root_on_zfs")
    edit_lsblk(machine, forget("fstype", "label", "uuid"))
    with pytest.raises(DiskFactsError) as caught:
        machine.gather()
    assert str(caught.value) == "the running root rpool/root (zfs) " + REFUSAL
    assert isinstance(caught.value, block_devices.BootDisksUnknown)


def test_a_boot_mount_from_another_pool_that_shows_no_member_is_named(tmp_path):
    machine = Machine(tmp_path, "installed_root_on_zfs")
    text = (machine.proc_root / "self" / "mountinfo").read_text()
    set_mountinfo(machine, text.replace("259:1 / /boot rw,relatime shared:21 - vfat /dev/nvme0n1p1",
                                        "0:47 / /boot rw,relatime shared:21 - zfs bpool/boot"))
    with pytest.raises(DiskFactsError) as caught:
        machine.gather()
    assert str(caught.value) == "the mount bpool/boot at /boot (zfs) " + REFUSAL


def test_an_automount_point_not_yet_triggered_leads_nowhere_and_refuses_nothing(tmp_path):
    machine = Machine(tmp_path, "installed_root_on_zfs")
    text = (machine.proc_root / "self" / "mountinfo").read_text()
    set_mountinfo(machine, text.replace(
        "31 21 259:1 / /boot rw,relatime shared:21 - vfat /dev/nvme0n1p1 rw,fmask=0077,dmask=0077,codepage=437\n",
        "31 21 0:48 / /boot rw,relatime shared:21 - autofs systemd-1 rw,fd=51,pgrp=1,timeout=120,minproto=5\n"))
    assert boot_media(machine.gather()) == ["nvme0n1", "nvme1n1"]


# ---------------------------------------------------------------- btrfs


def test_every_device_of_a_multi_device_btrfs_root_is_a_boot_disk(tmp_path):
    disks = Machine(tmp_path, "installed_root_on_btrfs_raid1").gather()
    assert boot_flags(disks) == {"sda": True, "sdb": True, "sdc": False, "sdd": False}


def test_btrfs_members_come_from_sysfs_when_lsblk_has_not_probed_them(tmp_path):
    machine = Machine(tmp_path, "installed_root_on_btrfs_raid1")
    edit_lsblk(machine, forget("fstype", "label", "uuid"))
    assert boot_media(machine.gather()) == ["sda", "sdb"]


def test_btrfs_members_come_from_the_shared_uuid_when_sysfs_lists_none(tmp_path):
    machine = Machine(tmp_path, "installed_root_on_btrfs_raid1")
    shutil.rmtree(machine.sysfs_root / "fs")
    assert boot_media(machine.gather()) == ["sda", "sdb"]


def test_a_btrfs_root_neither_sysfs_nor_lsblk_describes_refuses_every_disk(tmp_path):
    machine = Machine(tmp_path, "installed_root_on_btrfs_raid1")
    shutil.rmtree(machine.sysfs_root / "fs")
    edit_lsblk(machine, forget("uuid", only=("sda2",)))
    with pytest.raises(DiskFactsError) as caught:
        machine.gather()
    assert str(caught.value) == "the running root /dev/sda2 (btrfs) " + REFUSAL


def test_a_btrfs_root_with_a_device_lsblk_does_not_show_refuses_every_disk(tmp_path):
    machine = Machine(tmp_path, "installed_root_on_btrfs_raid1")
    machine.add_sysfs_fs("btrfs/5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d/devices/sdq1", "../../../../devices/virtual/sdq1")
    with pytest.raises(DiskFactsError) as caught:
        machine.gather()
    assert str(caught.value) == "the running root /dev/sda2 (btrfs) " + REFUSAL


def test_every_device_of_a_multi_device_bcachefs_root_is_a_boot_disk(tmp_path):
    machine = Machine(tmp_path, "installed_root_on_btrfs_raid1")
    set_mountinfo(machine, "21 1 0:32 / / rw,relatime shared:1 - bcachefs /dev/sda2:/dev/sdb1 rw\n")
    assert boot_media(machine.gather()) == ["sda", "sdb"]


# ---------------------------------------------------------------- what cannot be followed, and what needs no disk


@pytest.mark.parametrize("line, named", [
    ("0:30 / / rw - aufs none rw,si=7d3a1c2b", "none (aufs)"),
    ("0:30 / / rw - fuse.rootfs rootfs rw,user_id=0", "rootfs (fuse.rootfs)"),
    ("65:1 / / rw - ext4 /dev/sdq1 rw", "/dev/sdq1 (ext4)"),
    ("0:30 / / rw - bcachefs /dev/sda2:/dev/sdq1 rw", "/dev/sda2:/dev/sdq1 (bcachefs)"),
])
def test_a_root_that_leads_to_no_known_device_refuses_every_disk(tmp_path, line, named):
    machine = Machine(tmp_path, "installed_root_on_btrfs_raid1")
    set_mountinfo(machine, "21 1 %s\n" % line)
    with pytest.raises(DiskFactsError) as caught:
        machine.gather()
    assert str(caught.value) == "the running root %s %s" % (named, REFUSAL)


@pytest.mark.parametrize("line", [
    "0:30 / / rw - tmpfs tmpfs rw,mode=755",
    "0:30 / / rw - nfs4 10.0.0.1:/export/root rw,vers=4.2",
    "0:30 / / rw - virtiofs rootfs rw",
    "0:30 / / rw - 9p root rw,trans=virtio",
    "0:30 / / rw - overlay overlay rw",
])
def test_a_root_on_no_disk_refuses_nothing_and_protects_nothing(tmp_path, line):
    machine = Machine(tmp_path, "installed_root_on_btrfs_raid1")
    set_mountinfo(machine, "21 1 %s\n" % line)
    assert boot_media(machine.gather()) == []


def test_every_unfollowed_mount_is_named_in_one_refusal(tmp_path):
    machine = Machine(tmp_path, "installed_root_on_zfs")
    set_mountinfo(machine, "21 1 0:26 / / rw - zfs spool/root rw\n"
                           "22 21 0:27 / /usr rw - zfs upool/usr rw\n")
    with pytest.raises(DiskFactsError) as caught:
        machine.gather()
    assert str(caught.value) == ("the running root spool/root (zfs) could not be followed to its disks; "
                                 "the mount upool/usr at /usr (zfs) " + REFUSAL)


def test_the_module_fails_naming_the_root_it_could_not_follow(tmp_path, capsys, monkeypatch):
    machine = Machine(tmp_path, "installed_root_on_zfs")
    edit_lsblk(machine, forget("fstype", "label", "uuid"))
    runner = RecordingRunner({("/usr/bin/lsblk",): (0, machine.lsblk_text, "")})
    point_module_at(machine, monkeypatch, runner)
    result = run_module(disk_facts.main, {}, capsys)
    assert result["failed"] is True
    assert result["msg"] == "disk discovery failed: the running root rpool/root (zfs) " + REFUSAL
    assert "ansible_facts" not in result


# ---------------------------------------------------------------- the storage engine


def zfs_root_machine(tmp_path, members=("sdx", "sdy"), labelled=True):
    """Booted from an installed system whose / is rpool/root, a pool over the first partition of ``members``."""
    machine = FakeMachine(tmp_path)
    for disk in members:
        machine.add_disk(disk, 32 * GiB)
        part = machine.add_partition(disk, 1, None, name="zfs")
        if labelled:
            machine.put(part, "zfs_member", "rpool")
    machine.add_mount(None, "/", "zfs", source="rpool/root")
    machine.add_disk("sdc", 16 * GiB, rotational=True)
    machine.add_disk("sdd", 16 * GiB, rotational=True)
    return machine


def apply(machine, plan, **options):
    return Applier(plan, machine, sleep=lambda seconds: None, clock=lambda: 0.0, **machine.roots, **options).run()


def test_read_state_counts_every_disk_of_the_zfs_root_pool_as_the_boot_disk(tmp_path):
    machine = zfs_root_machine(tmp_path)
    assert read_state(machine, ["sdc"], **machine.roots).boot_disks == {"sdx", "sdy"}


def test_read_state_counts_every_device_of_a_multi_device_btrfs_root_as_the_boot_disk(tmp_path):
    machine = FakeMachine(tmp_path)
    for disk in ("sdx", "sdy"):
        machine.add_disk(disk, 32 * GiB)
        machine.put(machine.add_partition(disk, 1, None), "btrfs", "nixos",
                    UUID="5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d")
    machine.add_mount(None, "/", "btrfs", source="/dev/sdx1")
    machine.add_disk("sdc", 16 * GiB)
    assert read_state(machine, ["sdc"], **machine.roots).boot_disks == {"sdx", "sdy"}


@pytest.mark.parametrize("wipe", [False, True])
def test_a_plan_naming_a_disk_of_the_zfs_root_pool_is_refused_and_nothing_runs(tmp_path, wipe):
    machine = zfs_root_machine(tmp_path)
    plan = plan_storage(machine.disk_facts(claim_boot=()), 4 * GiB)
    assert {"sdx", "sdy"} <= {disk["name"] for disk in plan["disks"]}
    with pytest.raises(ApplyError) as caught:
        apply(machine, plan, wipe=wipe)
    assert caught.value.msg == ("refusing to apply the plan: sdx is in the plan, but the running system lives on "
                                "it; it is never touched; sdy is in the plan, but the running system lives on it; "
                                "it is never touched")
    assert machine.mutations == []


@pytest.mark.parametrize("wipe", [False, True])
def test_a_root_that_cannot_be_followed_refuses_every_disk_before_any_command(tmp_path, wipe):
    machine = zfs_root_machine(tmp_path, labelled=False)
    plan = plan_storage(machine.disk_facts(claim_boot=("sdx", "sdy")), 4 * GiB)
    assert {disk["name"] for disk in plan["disks"]} == {"sdc", "sdd"}
    with pytest.raises(ApplyError) as caught:
        apply(machine, plan, wipe=wipe)
    assert caught.value.msg == ("cannot read the storage state: cannot tell which disk the running system lives "
                                "on: the running root rpool/root (zfs) " + REFUSAL)
    assert machine.mutations == []
