"""storage_apply's engine on a fake machine: exact commands, idempotence, check mode, safety, resumption.

The fake machine (test_storage_apply_fake_machine.py) applies every command to its model, so a
re-read sees what ran, a kill leaves what a real kill would leave, and every mutating command is
recorded with the disks it reached.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from test_storage_apply_fake_machine import FakeMachine, GiB, Killed, MiB

from ansible_collections.prenixos.baseline.plugins.module_utils.planner import plan_storage
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_apply import (
    Applier,
    ApplyError,
    Guard,
    PlanView,
    SafetyError,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_identity import BuildIdentity
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_state import read_state

FIXTURES = Path(__file__).parent / "fixtures" / "state"
DEFAULT_PLAN = json.loads((FIXTURES / "default_machine_plan.json").read_text())
IDENTITY = BuildIdentity(DEFAULT_PLAN)


def marked(lines, identity=IDENTITY):
    """Command lines with the build's marks filled in: ``{guid:DISK}``, ``{uuid:ARRAY}``, ``{tag}``."""
    def fill(line):
        line = re.sub(r"\{guid:([^}]+)\}", lambda m: identity.disk_guid(m.group(1)), line)
        line = re.sub(r"\{uuid:([^}]+)\}", lambda m: identity.array_uuid(m.group(1)), line)
        return line.replace("{tag}", identity.tag)
    return [fill(line) for line in lines]


# The default machine, blank: what a real run runs, in order.
BUILD_DEFAULT = marked([
    "sgdisk --clear --disk-guid={guid:nvme0n1} -n 1:0:0 -t 1:8E00 -c 1:main_1-pv1 /dev/nvme0n1",
    "partx -u /dev/nvme0n1",
    "sgdisk --clear --disk-guid={guid:sda} -n 1:0:+1024M -t 1:EF00 -c 1:main-esp1 -n 2:0:0 -t 2:FD00 "
    "-c 2:main-raid1 /dev/sda",
    "partx -u /dev/sda",
    "sgdisk --clear --disk-guid={guid:sdb} -n 1:0:+1024M -t 1:EF00 -c 1:main-esp2 -n 2:0:0 -t 2:FD00 "
    "-c 2:main-raid2 /dev/sdb",
    "partx -u /dev/sdb",
    "sgdisk --clear --disk-guid={guid:sdc} -n 1:0:0 -t 1:FD00 -c 1:swap-raid1 /dev/sdc",
    "partx -u /dev/sdc",
    "sgdisk --clear --disk-guid={guid:sdd} -n 1:0:0 -t 1:FD00 -c 1:swap-raid2 /dev/sdd",
    "partx -u /dev/sdd",
    "sgdisk --clear --disk-guid={guid:sde} -n 1:0:0 -t 1:FD00 -c 1:large-raid1 /dev/sde",
    "partx -u /dev/sde",
    "sgdisk --clear --disk-guid={guid:sdf} -n 1:0:0 -t 1:FD00 -c 1:large-raid2 /dev/sdf",
    "partx -u /dev/sdf",
    "sgdisk --clear --disk-guid={guid:sdg} -n 1:0:0 -t 1:FD00 -c 1:large-raid3 /dev/sdg",
    "partx -u /dev/sdg",
    "udevadm settle -t 30",
    "mkfs.vfat -F 32 -n EFI /dev/sda1",
    "mkfs.vfat -F 32 -n EFI2 /dev/sdb1",
    "mdadm --create /dev/md/main --name=main --homehost=any --uuid={uuid:main} "
    "--level=raid0 --raid-devices=2 --metadata=1.2 --run "
    "/dev/sda2 /dev/sdb2",
    "udevadm settle -t 30",
    "mdadm --create /dev/md/swap --name=swap --homehost=any --uuid={uuid:swap} "
    "--level=raid1 --raid-devices=2 --metadata=1.2 --run "
    "/dev/sdc1 /dev/sdd1",
    "udevadm settle -t 30",
    "mdadm --misc --action=frozen /dev/md/swap",
    "mdadm --create /dev/md/large --name=large --homehost=any --uuid={uuid:large} "
    "--level=raid5 --raid-devices=3 --metadata=1.2 --run "
    "/dev/sde1 /dev/sdf1 /dev/sdg1",
    "udevadm settle -t 30",
    "mdadm --misc --action=frozen /dev/md/large",
    "pvcreate /dev/md/main",
    "vgcreate --addtag {tag} main /dev/md/main",
    "pvcreate /dev/nvme0n1p1",
    "vgcreate --addtag {tag} main_1 /dev/nvme0n1p1",
    "pvcreate /dev/md/swap",
    "vgcreate --addtag {tag} swap /dev/md/swap",
    "pvcreate /dev/md/large",
    "vgcreate --addtag {tag} large /dev/md/large",
    "lvcreate -L 53687091200b -n slash main --yes",
    "lvcreate -L 3145728000b -n home main --yes",
    "lvcreate -L 4294967296b -n swap swap --yes",
    "lvcreate -L 51241811968b -n data large --yes",
    "mkfs.ext4 -L slash /dev/main/slash",
    "mkfs.ext4 -L home /dev/main/home",
    "mkswap -L swap /dev/swap/swap",
    "mkfs.ext4 -L data /dev/large/data",
    "udevadm settle -t 30",
    "mkdir -p /mnt",
    "mount -t ext4 -L slash /mnt",
    "mkdir -p /mnt/boot",
    "mount -t vfat /dev/sda1 /mnt/boot",  # the live stick's ESP is labelled EFI too: by device
    "mkdir -p /mnt/data",
    "mount -t ext4 -L data /mnt/data",
    "mkdir -p /mnt/home",
    "mount -t ext4 -L home /mnt/home",
    "swapon -L swap",
    "mdadm --misc --action=idle /dev/md/swap",
    "mdadm --misc --action=idle /dev/md/large",
    "vgchange --addtag prenixos_finished main",
    "vgchange --addtag prenixos_finished main_1",
    "vgchange --addtag prenixos_finished swap",
    "vgchange --addtag prenixos_finished large",
])

# The default machine, built: what the fake holds afterwards.
BUILT_DEFAULT = {
    "tables": {
        "nvme0n1": [(1, "main_1-pv1", "e6d6d379-f507-44c2-a23c-238f2a3df928", 68718411264)],
        "sda": [(1, "main-esp1", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", GiB),
                (2, "main-raid1", "a19d880f-05fc-4d3b-a006-743f0f84911e", 33284931072)],
        "sdb": [(1, "main-esp2", "c12a7328-f81f-11d2-ba4b-00a0c93ec93b", GiB),
                (2, "main-raid2", "a19d880f-05fc-4d3b-a006-743f0f84911e", 33284931072)],
        "sdc": [(1, "swap-raid1", "a19d880f-05fc-4d3b-a006-743f0f84911e", 17178803712)],
        "sdd": [(1, "swap-raid2", "a19d880f-05fc-4d3b-a006-743f0f84911e", 17178803712)],
        "sde": [(1, "large-raid1", "a19d880f-05fc-4d3b-a006-743f0f84911e", 25768738304)],
        "sdf": [(1, "large-raid2", "a19d880f-05fc-4d3b-a006-743f0f84911e", 25768738304)],
        "sdg": [(1, "large-raid3", "a19d880f-05fc-4d3b-a006-743f0f84911e", 25768738304)],
    },
    "filesystems": {
        "/dev/sda1": ("vfat", "EFI", None), "/dev/sdb1": ("vfat", "EFI2", None),
        "/dev/main/slash": ("ext4", "slash", None), "/dev/main/home": ("ext4", "home", None),
        "/dev/swap/swap": ("swap", "swap", None), "/dev/large/data": ("ext4", "data", None),
        "/dev/sdz1": ("iso9660", "d-live", None), "/dev/sdz2": ("vfat", "EFI", None),
        "/dev/loop0": ("squashfs", None, None),
    },
    "arrays": {"any:main": ("raid0", True, ["sda2", "sdb2"]), "any:swap": ("raid1", True, ["sdc1", "sdd1"]),
               "any:large": ("raid5", True, ["sde1", "sdf1", "sdg1"])},
    "vgs": {"main": ["md127"], "main_1": ["nvme0n1p1"], "swap": ["md126"], "large": ["md125"]},
    "lvs": {"large/data": (51241811968, True), "main/home": (3145728000, True), "main/slash": (53687091200, True),
            "swap/swap": (4294967296, True)},
    "mounts": {"/run/live/medium": "/dev/sdz1", "/run/live/rootfs/filesystem.squashfs": "/dev/loop0",
               "/mnt": "/dev/main/slash", "/mnt/boot": "/dev/sda1", "/mnt/data": "/dev/large/data",
               "/mnt/home": "/dev/main/home"},
    "swaps": ["/dev/swap/swap"],
}


def default_machine(tmp_path):
    """Booted from a live USB stick (sdz); NVMe 64 GiB, 2 SSD 32 GiB, 2 HDD 16 GiB, 3 HDD 24 GiB, all blank."""
    machine = FakeMachine(tmp_path)
    machine.boot_from_live_usb("sdz")
    machine.add_disk("nvme0n1", 64 * GiB, transport="nvme")
    for name in ("sda", "sdb"):
        machine.add_disk(name, 32 * GiB)
    for name in ("sdc", "sdd"):
        machine.add_disk(name, 16 * GiB, rotational=True)
    for name in ("sde", "sdf", "sdg"):
        machine.add_disk(name, 24 * GiB, rotational=True)
    return machine


class Clock:
    """Time that passes only when the engine sleeps."""

    def __init__(self):
        self.now = 0.0

    def sleep(self, seconds):
        self.now += seconds

    def __call__(self):
        return self.now


def apply(machine, plan=None, **options):
    clock = Clock()
    return Applier(plan or DEFAULT_PLAN, machine, sleep=clock.sleep, clock=clock, **machine.roots, **options).run()


def lines(commands):
    return [" ".join(argv) for argv in commands]


def refused(machine, plan=None, **options):
    with pytest.raises(ApplyError) as caught:
        apply(machine, plan, **options)
    return caught.value


def kill_before(machine, text):
    """Kill the run right before the first mutating command that starts with ``text``."""
    machine.kill_when = lambda argv: " ".join(argv).startswith(text)
    with pytest.raises(Killed):
        apply(machine)
    machine.kill_when = None


def old_stack(machine):
    """An old install: RAID1 over sdc+sdd with VG old (data mounted at /srv, swap active), a DOS disk, an ext4 disk."""
    members = [machine.add_partition(d, 1, None, name="old", type_code="FD00") for d in ("sdc", "sdd")]
    md = machine.add_array("oldhost:old", "raid1", members)
    machine.add_vg("old", [md], [("data", 2 * GiB), ("swap", GiB)])
    data, swap = machine.lvs[("old", "data")]["dm"], machine.lvs[("old", "swap")]["dm"]
    machine.put(data, "ext4", "olddata")
    machine.put(swap, "swap", "oldswap")
    machine.dirs.add("/srv")
    machine.add_mount(data, "/srv")
    machine.swaps.append(swap)
    part = machine.add_partition("sde", 1, None, table="dos")
    machine.put(part, "ext4", "photos")
    machine.put("sdf", "ext4", "wholedisk")


TEARDOWN_OLD_STACK = [
    "umount /srv",
    "swapoff /dev/mapper/old-swap",
    "vgchange -an old",
    "vgremove -ff -y old",
    "pvremove -ff -y /dev/md127",
    "wipefs -a /dev/md127",
    "mdadm --stop /dev/md127",
    "mdadm --zero-superblock /dev/sdc1",
    "mdadm --zero-superblock /dev/sdd1",
    "wipefs -a /dev/sdc1",
    "wipefs -a /dev/sdc",
    "sgdisk --zap-all /dev/sdc",
    "dd if=/dev/zero of=/dev/sdc bs=1M count=1 conv=fsync oflag=direct",
    "dd if=/dev/zero of=/dev/sdc bs=1M count=1 seek=16383 conv=fsync oflag=direct",
    "wipefs -a /dev/sdd1",
    "wipefs -a /dev/sdd",
    "sgdisk --zap-all /dev/sdd",
    "dd if=/dev/zero of=/dev/sdd bs=1M count=1 conv=fsync oflag=direct",
    "dd if=/dev/zero of=/dev/sdd bs=1M count=1 seek=16383 conv=fsync oflag=direct",
    "wipefs -a /dev/sde1",
    "wipefs -a /dev/sde",
    "sgdisk --zap-all /dev/sde",
    "dd if=/dev/zero of=/dev/sde bs=1M count=1 conv=fsync oflag=direct",
    "dd if=/dev/zero of=/dev/sde bs=1M count=1 seek=24575 conv=fsync oflag=direct",
    "wipefs -a /dev/sdf",
    "sgdisk --zap-all /dev/sdf",
    "dd if=/dev/zero of=/dev/sdf bs=1M count=1 conv=fsync oflag=direct",
    "dd if=/dev/zero of=/dev/sdf bs=1M count=1 seek=24575 conv=fsync oflag=direct",
    "udevadm settle -t 30",
]


# ---------------------------------------------------------------- building and idempotence


def test_blank_default_machine_is_built_with_exactly_these_commands_in_this_order(tmp_path):
    machine = default_machine(tmp_path)
    result = apply(machine)
    assert lines(result["commands"]) == BUILD_DEFAULT
    assert result["changed"] is True and result["wiped"] == []
    assert machine.summary() == BUILT_DEFAULT
    assert result["notes"] == [
        "label EFI is carried by another device too: /mnt/boot is mounted by device, not by label"]


def test_the_frozen_default_plan_is_what_the_planner_makes_for_the_default_machine(tmp_path):
    machine = default_machine(tmp_path)
    live = plan_storage(machine.disk_facts(), 4 * GiB)
    keys = ("disks", "partitions", "arrays", "volume_groups", "logical_volumes")
    assert {key: live[key] for key in keys} == {key: DEFAULT_PLAN[key] for key in keys}, (
        "the planner changed: regenerate fixtures/state/default_machine_plan.json and BUILD_DEFAULT")


def test_a_second_run_on_the_built_machine_runs_no_mutating_command_and_reports_no_change(tmp_path):
    machine = default_machine(tmp_path)
    apply(machine)
    machine.mutations.clear()
    result = apply(machine)
    assert (result["changed"], result["commands"], machine.mutations) == (False, [], [])
    assert result["before"] == result["after"] == result["layout"]
    assert result["layout"]["mounts"] == {"/mnt": "/dev/main/slash", "/mnt/boot": "/dev/sda1",
                                          "/mnt/data": "/dev/large/data", "/mnt/home": "/dev/main/home"}


def test_check_mode_runs_nothing_and_lists_exactly_what_the_real_run_then_runs(tmp_path):
    machine = default_machine(tmp_path)
    preview = apply(machine, check_mode=True)
    assert machine.mutations == []
    assert preview["changed"] is True
    assert lines(preview["commands"]) == BUILD_DEFAULT
    assert lines(apply(machine)["commands"]) == lines(preview["commands"])


def test_check_mode_on_a_built_machine_reports_no_change(tmp_path):
    machine = default_machine(tmp_path)
    apply(machine)
    preview = apply(machine, check_mode=True)
    assert (preview["changed"], preview["commands"], preview["before"] == preview["after"]) == (False, [], True)


def test_check_mode_diff_shows_blank_disks_before_and_the_planned_layout_after(tmp_path):
    machine = default_machine(tmp_path)
    preview = apply(machine, check_mode=True)
    assert preview["before"]["disks"]["sda"] == "blank" and preview["before"]["arrays"] == {}
    assert preview["after"]["disks"]["sda"] == "gpt: 1 main-esp1 EF00 1.0 GiB, 2 main-raid1 FD00 rest of disk"
    assert preview["after"]["arrays"]["large"] == "raid5 active: /dev/sde1 /dev/sdf1 /dev/sdg1"
    assert preview["after"]["mounts"] == {"/mnt": "/dev/main/slash", "/mnt/boot": "/dev/sda1",
                                          "/mnt/data": "/dev/large/data", "/mnt/home": "/dev/main/home"}
    assert preview["after"]["swaps"] == ["/dev/swap/swap"]


def test_the_esp_is_mounted_by_label_when_no_other_device_carries_it(tmp_path):
    machine = FakeMachine(tmp_path)
    machine.boot_from_root_partition("vda")
    machine.add_disk("sda", 64 * GiB)
    plan = plan_storage(machine.disk_facts(claim_boot=["vda"]), 4 * GiB)
    result = apply(machine, plan)
    assert lines(result["commands"])[-7:] == ["mkdir -p /mnt", "mount -t ext4 -L slash /mnt",
                                              "mkdir -p /mnt/boot", "mount -t vfat -L EFI /mnt/boot",
                                              "mkdir -p /mnt/home", "mount -t ext4 -L home /mnt/home",
                                              "vgchange --addtag prenixos_finished main"]
    assert result["notes"] == []


def test_backups_give_the_data_volume_one_inode_per_2_kib(tmp_path):
    machine = default_machine(tmp_path)
    plan = plan_storage(machine.disk_facts(), 4 * GiB, {"backups": True})
    apply(machine, plan)
    assert "mkfs.ext4 -L data -i 2048 /dev/large/data" in lines(machine.mutating_commands())
    assert machine.summary()["filesystems"]["/dev/large/data"] == ("ext4", "data", "2048")


def test_an_hdd_only_machine_gets_main_with_root_mounted(tmp_path):
    machine = FakeMachine(tmp_path)
    machine.boot_from_live_usb()
    for name in ("sda", "sdb", "sdc"):
        machine.add_disk(name, 40 * GiB, rotational=True)
    plan = plan_storage(machine.disk_facts(), 2 * GiB)
    apply(machine, plan)
    built = machine.summary()
    assert built["arrays"] == {"any:main": ("raid5", True, ["sda2", "sdb2", "sdc2"])}
    assert built["mounts"]["/mnt"] == "/dev/main/slash" and built["swaps"] == ["/dev/main/swap"]
    assert apply(machine, plan)["changed"] is False


# ---------------------------------------------------------------- sizes


def test_an_existing_volume_of_another_size_is_left_alone_and_reported(tmp_path):
    machine = default_machine(tmp_path)
    apply(machine)
    machine.lvs[("main", "home")]["size"] = 2 * GiB
    machine.sync()
    machine.mutations.clear()
    result = apply(machine)
    assert (result["changed"], machine.mutations) == (False, [])
    assert result["notes"][-1] == "LV main/home is 2.0 GiB, the plan says 2.9 GiB: left alone (never resized)"


def test_a_volume_is_clipped_to_the_real_free_space_when_first_created_never_with_percent_free(tmp_path):
    machine = default_machine(tmp_path)
    plan = json.loads(json.dumps(DEFAULT_PLAN))
    data = next(lv for lv in plan["logical_volumes"] if lv["name"] == "data")
    data["size"] += 4 * GiB  # more than the array holds
    preview = apply(machine, plan, check_mode=True)
    assert "lvcreate -L 55536779264b -n data large --yes" in lines(preview["commands"])
    result = apply(machine, plan)
    free = 51262783488  # what VG large on the fake's RAID5 of 3 x 24 GiB has, in whole 4 MiB extents
    assert "lvcreate -L %db -n data large --yes" % free in lines(result["commands"])
    assert machine.summary()["lvs"]["large/data"] == (free, True)
    assert "LV large/data clipped to the VG's free space: 47.7 GiB instead of 51.7 GiB" in result["notes"]


# ---------------------------------------------------------------- safety: foreign content


def test_foreign_content_without_wipe_is_refused_naming_each_disk_and_what_is_on_it(tmp_path):
    machine = default_machine(tmp_path)
    old_stack(machine)
    error = refused(machine)
    assert machine.mutations == []
    assert error.msg == "\n".join([
        "Refusing to change disks that hold data this plan did not make (nothing was changed; "
        "set wipe: true to destroy it):",
        "  - sdc: a GPT this build did not write (disk GUID %s); " % machine.disks["sdc"]["guid"]
        + 'partition 1 "old" (FD00, 16.0 GiB); sdc1: RAID member of oldhost:old (raid1); array /dev/md127 '
        "(name old, raid1, sdc1 sdd1); logical volume old/data, mounted at /srv; logical volume old/swap, "
        "active swap; volume group old",
        "  - sdd: a GPT this build did not write (disk GUID %s); " % machine.disks["sdd"]["guid"]
        + 'partition 1 "old" (FD00, 16.0 GiB); sdd1: RAID member of oldhost:old (raid1); array /dev/md127 '
        "(name old, raid1, sdc1 sdd1); logical volume old/data, mounted at /srv; logical volume old/swap, "
        "active swap; volume group old",
        '  - sde: dos partition table; sde1: ext4 "photos"',
        '  - sdf: ext4 "wholedisk" on the whole disk',
    ])
    assert sorted(error.details["foreign"]) == ["sdc", "sdd", "sde", "sdf"]


def test_a_partition_with_our_name_at_another_place_is_foreign(tmp_path):
    machine = default_machine(tmp_path)
    machine.add_partition("sda", 1, 512 * MiB, name="main-esp1", type_code="EF00")  # an older, smaller ESP
    error = refused(machine)
    assert error.details["foreign"] == {"sda": [
        "a GPT this build did not write (disk GUID %s)" % machine.disks["sda"]["guid"],
        'partition 1 "main-esp1" (EF00, 512.0 MiB)']}


def test_wipe_tears_down_leaf_to_root_verifies_then_builds(tmp_path):
    machine = default_machine(tmp_path)
    old_stack(machine)
    result = apply(machine, wipe=True)
    assert lines(result["commands"]) == TEARDOWN_OLD_STACK + BUILD_DEFAULT
    assert result["wiped"] == ["sdc", "sdd", "sde", "sdf"]
    assert machine.summary() == dict(BUILT_DEFAULT, arrays={
        "any:main": ("raid0", True, ["sda2", "sdb2"]), "any:swap": ("raid1", True, ["sdc1", "sdd1"]),
        "any:large": ("raid5", True, ["sde1", "sdf1", "sdg1"])},
        vgs={"main": ["md126"], "main_1": ["nvme0n1p1"], "swap": ["md125"], "large": ["md124"]})
    # the state was read again between the teardown and the first build command
    calls = lines(machine.calls)
    last_teardown = calls.index("sgdisk --zap-all /dev/sdf")
    first_build = calls.index(BUILD_DEFAULT[0])
    assert "lsblk -J -b -O" in calls[last_teardown:first_build]


def test_check_mode_with_wipe_lists_the_teardown_and_the_build_and_runs_none(tmp_path):
    machine = default_machine(tmp_path)
    old_stack(machine)
    preview = apply(machine, wipe=True, check_mode=True)
    assert machine.mutations == []
    assert lines(preview["commands"]) == TEARDOWN_OLD_STACK + BUILD_DEFAULT
    assert lines(apply(machine, wipe=True)["commands"]) == lines(preview["commands"])


def test_a_teardown_that_leaves_something_behind_stops_before_building(tmp_path):
    machine = default_machine(tmp_path)
    old_stack(machine)
    for name in ("do_wipefs", "do_sgdisk", "do_dd"):
        real = getattr(machine, name)
        setattr(machine, name, lambda argv, real=real: "" if any("/dev/sde" in arg for arg in argv) else real(argv))
    error = refused(machine, wipe=True)
    assert error.msg.startswith("the teardown did not leave sdc, sdd, sde, sdf blank: sde: dos partition table")
    assert not [argv for argv in machine.mutating_commands() if "--clear" in argv]


def test_a_busy_mount_stops_the_teardown_with_a_hint_and_is_never_unmounted_lazily(tmp_path):
    machine = default_machine(tmp_path)
    old_stack(machine)
    machine.busy_targets.add("/srv")
    error = refused(machine, wipe=True)
    assert error.msg == ("unmount /srv failed: command failed (rc=32): umount /srv: umount: /srv: target is busy. "
                         "(/srv is busy: stop what uses it (fuser -vm /srv) and run again; a lazy unmount is never "
                         "used)")
    assert (error.details["cmd"], error.details["rc"]) == (["umount", "/srv"], 32)
    assert lines(machine.mutating_commands()) == ["umount /srv"]


# ---------------------------------------------------------------- safety: the boot disk and unplanned disks


def boot_disk_in_plan(tmp_path, kind):
    """A machine whose boot disk looks like any other disk, planned from facts that do not say so."""
    machine = FakeMachine(tmp_path)
    if kind == "root partition":
        machine.boot_from_root_partition("sda", 32 * GiB)
        machine.add_disk("sdb", 32 * GiB)
    else:
        machine.boot_from_root_on_raid(("sda", "sdb"))
    machine.add_disk("sdc", 16 * GiB, rotational=True)
    machine.add_disk("sdd", 16 * GiB, rotational=True)
    plan = plan_storage(machine.disk_facts(claim_boot=()), 4 * GiB)
    assert {"sda", "sdb"} <= {disk["name"] for disk in plan["disks"]}
    return machine, plan


@pytest.mark.parametrize("kind, message", [
    ("root partition", "refusing to apply the plan: sda is in the plan, but the running system lives on it "
                       "(mounted at /); it is never touched"),
    ("root on lvm on raid", "refusing to apply the plan: sda is in the plan, but the running system lives on it "
                            "(mounted at /); it is never touched; sdb is in the plan, but the running system "
                            "lives on it (mounted at /); it is never touched"),
])
@pytest.mark.parametrize("wipe", [False, True])
@pytest.mark.parametrize("check_mode", [False, True])
def test_a_plan_naming_the_boot_disk_is_refused_whatever_the_options(tmp_path, kind, message, wipe, check_mode):
    machine, plan = boot_disk_in_plan(tmp_path, kind)
    error = refused(machine, plan, wipe=wipe, check_mode=check_mode)
    assert error.msg == message
    assert machine.mutations == []


def test_a_stack_reaching_a_disk_outside_the_plan_is_refused_even_with_wipe(tmp_path):
    machine = default_machine(tmp_path)
    machine.add_disk("sdu", 16 * GiB, transport="usb", removable=True)  # never planned
    members = [machine.add_partition(d, 1, None, type_code="FD00") for d in ("sdc", "sdu")]
    machine.add_array("old", "raid1", members)
    error = refused(machine, wipe=True)
    assert error.msg == ("refusing to apply the plan: md127 on sdc also uses sdu, which is not in the plan; it "
                         "cannot be torn down without touching it")
    assert machine.mutations == []


def test_a_stack_reaching_the_boot_disk_is_refused_even_with_wipe(tmp_path):
    machine = default_machine(tmp_path)
    machine.boot_from_root_partition("vda")
    extra = machine.add_partition("vda", 2, 15 * GiB, type_code="FD00")
    machine.add_partition("sdc", 1, 15 * GiB, type_code="FD00")
    machine.add_array("mirror", "raid1", ["sdc1", extra])
    error = refused(machine, wipe=True)
    assert "md127 on sdc also uses vda, which is the boot disk" in error.msg
    assert machine.mutations == []


def test_a_volume_group_name_taken_outside_the_plan_is_refused(tmp_path):
    machine = default_machine(tmp_path)
    machine.add_disk("sdu", 16 * GiB, transport="usb", removable=True)
    machine.add_vg("main", [machine.add_partition("sdu", 1, None, type_code="8E00")], [("root", GiB)])
    error = refused(machine, wipe=True)
    assert error.msg == ("refusing to apply the plan: a volume group named main already exists on sdu, outside the "
                         "plan; rename it (vgrename) first")
    assert machine.mutations == []


def test_disks_that_changed_since_planning_are_refused(tmp_path):
    machine = default_machine(tmp_path)
    machine.disks["sda"]["by_id"], machine.disks["sdb"]["by_id"] = "ata-FAKE_sdb", "ata-FAKE_sda"
    machine.disks["sdg"]["size"] = 48 * GiB
    machine.sync()
    error = refused(machine, wipe=True)
    assert error.msg == (
        "refusing to apply the plan: sda: the plan knew it as /dev/disk/by-id/ata-FAKE_sda, which now points at sdb; "
        "the disks changed since planning; sdb: the plan knew it as /dev/disk/by-id/ata-FAKE_sdb, which now points "
        "at sda; the disks changed since planning; sdg: planned for 25769803776 bytes, now 51539607552 bytes; the "
        "disks changed since planning")
    assert machine.mutations == []


def test_a_planned_disk_that_is_missing_is_refused(tmp_path):
    machine = default_machine(tmp_path)
    del machine.disks["sdg"]
    machine.sync()
    assert refused(machine).msg == "refusing to apply the plan: sdg is in the plan but not present"


@pytest.mark.parametrize("change, message", [
    (lambda plan: plan["partitions"][1].update(device="/dev/vda1"),
     "partition 1 of sda: device '/dev/vda1' should be /dev/sda1"),
    (lambda plan: plan["logical_volumes"][0].update(mountpoint="/../etc"),
     "mountpoint '/../etc' is not a clean absolute path"),
    (lambda plan: plan["arrays"][0]["devices"].append("/dev/vda2"),
     "array main: member '/dev/vda2' is not a planned partition without a filesystem"),
    (lambda plan: plan["volume_groups"][0]["pvs"].append("/dev/sdz1"),
     "volume group main: PV '/dev/sdz1' is neither a planned array nor a planned partition"),
    (lambda plan: plan.update(version=3), "plan version 3 is not supported"),
])
def test_a_plan_that_does_not_hold_together_is_refused_before_anything_runs(tmp_path, change, message):
    machine = default_machine(tmp_path)
    plan = json.loads(json.dumps(DEFAULT_PLAN))
    change(plan)
    assert message in refused(machine, plan).msg
    assert machine.calls == []


def test_the_guard_refuses_any_command_naming_what_the_plan_does_not_account_for(tmp_path):
    machine = default_machine(tmp_path)
    machine.boot_from_root_partition("vda")
    old_vg = machine.add_partition("sdg", 1, None, type_code="8E00")
    machine.add_vg("old", [old_vg], [("x", GiB)])
    state = read_state(machine, ["sda", "sdb"], **machine.roots)
    guard = Guard(PlanView(DEFAULT_PLAN), state, "/mnt")
    for argv, why in [
        (["wipefs", "-a", "/dev/sdz1"], "/dev/sdz1 is not a planned device nor on a disk being wiped"),
        (["sgdisk", "--zap-all", "/dev/vda"], "/dev/vda is not a planned device"),
        (["vgremove", "-ff", "-y", "old"], "volume group old is not in the plan nor on a disk being wiped"),
        (["mount", "-t", "ext4", "-L", "slash", "/etc"], "/etc is not a planned mount point under /mnt"),
        (["lvchange", "-ay", "old/x"], "logical volume old/x is not in the plan"),
    ]:
        with pytest.raises(SafetyError, match=why):
            guard.check(argv)
    guard.check(["mkfs.ext4", "-L", "slash", "/dev/main/slash"])
    wiping = Guard(PlanView(DEFAULT_PLAN), state, "/mnt", wiped_disks=["sdg"])
    wiping.check(["vgremove", "-ff", "-y", "old"])
    wiping.check(["pvremove", "-ff", "-y", "/dev/sdg1"])


# ---------------------------------------------------------------- resumption


def test_a_run_killed_after_partitioning_finishes_with_only_the_remaining_steps(tmp_path):
    machine = default_machine(tmp_path)
    kill_before(machine, "mkfs.vfat")
    result = apply(machine)
    assert lines(result["commands"]) == BUILD_DEFAULT[BUILD_DEFAULT.index("mkfs.vfat -F 32 -n EFI /dev/sda1"):]
    assert machine.summary() == BUILT_DEFAULT


def test_a_run_killed_before_the_kernel_saw_the_new_partitions_lets_it_see_them(tmp_path):
    machine = default_machine(tmp_path)
    machine.defer_reread = True
    kill_before(machine, "partx -u /dev/sda")
    machine.defer_reread = False
    result = apply(machine)
    # nvme0n1 was done; sda has its table on the disk but not in the kernel: no second sgdisk for it
    assert lines(result["commands"])[:4] == marked([
        "partx -u /dev/sda",
        "sgdisk --clear --disk-guid={guid:sdb} -n 1:0:+1024M -t 1:EF00 -c 1:main-esp2 -n 2:0:0 -t 2:FD00 -c "
        "2:main-raid2 /dev/sdb",
        "partx -u /dev/sdb",
        "sgdisk --clear --disk-guid={guid:sdc} -n 1:0:0 -t 1:FD00 -c 1:swap-raid1 /dev/sdc"])
    assert lines(result["commands"])[:1] + lines(result["commands"])[1:] == (
        ["partx -u /dev/sda"] + BUILD_DEFAULT[BUILD_DEFAULT.index("partx -u /dev/sda") + 1:])
    assert machine.summary() == BUILT_DEFAULT


def test_an_array_half_created_by_a_killed_mdadm_is_zeroed_and_created_again(tmp_path):
    machine = default_machine(tmp_path)
    machine.tear_create = None
    machine.kill_when = None
    original = machine.md_create

    def create(argv):
        if "/dev/md/large" in argv:
            machine.tear_create = 1  # sde1 got its superblock, sdf1 and sdg1 did not
        return original(argv)

    machine.md_create = create
    with pytest.raises(Killed):
        apply(machine)
    machine.md_create = original
    assert "md125 : inactive sde1[0](S)" in (tmp_path / "proc" / "mdstat").read_text()
    result = apply(machine)
    assert lines(result["commands"]) == marked([
        "mdadm --stop /dev/md125",
        "mdadm --zero-superblock /dev/sde1",
        "mdadm --create /dev/md/large --name=large --homehost=any --uuid={uuid:large} --level=raid5 --raid-devices=3 "
        "--metadata=1.2 --run /dev/sde1 /dev/sdf1 /dev/sdg1",
        "udevadm settle -t 30",
        "mdadm --misc --action=frozen /dev/md/large",
    ]) + BUILD_DEFAULT[BUILD_DEFAULT.index("pvcreate /dev/md/main"):]
    assert machine.summary()["arrays"]["any:large"] == ("raid5", True, ["sde1", "sdf1", "sdg1"])


class CountingRunner:
    """The runner the engine sees: what it starts itself, however many devices a shell reads."""

    def __init__(self, inner):
        self.inner, self.argvs = inner, []

    def run(self, argv, **kwargs):
        self.argvs.append(list(argv))
        return self.inner.run(argv, **kwargs)


def test_a_read_starts_the_same_commands_however_many_disks_and_arrays_there_are(tmp_path):
    machine = default_machine(tmp_path)
    apply(machine)
    runner = CountingRunner(machine)
    state = read_state(runner, list(PlanView(DEFAULT_PLAN).disks), **machine.roots)
    assert [argv[0] if argv[0] != "sh" else "sh " + argv[3] for argv in runner.argvs] == [
        "udevadm", "lsblk", "sh mdadm", "pvs", "vgs", "lvs", "sh blkid", "sh partx", "sh mdadm"], runner.argvs
    assert len(state.md_details) == 3 and len(state.superblocks) == 7 and len(state.tables) == 8
    assert all(state.tables.values()), state.tables


def test_new_arrays_do_not_sync_while_the_build_runs_and_sync_once_it_is_done(tmp_path):
    machine = default_machine(tmp_path)
    during = {}

    def watch(argv):
        if argv[0] == "mkfs.ext4":
            during[argv[2]] = {a["name"]: a.get("sync") for a in machine.arrays.values()}

    machine.on_command = watch
    apply(machine)
    assert during["slash"] == {"any:main": None, "any:swap": "frozen", "any:large": "frozen"}, during
    assert {a["name"]: a.get("sync") for a in machine.arrays.values()} == {
        "any:main": None, "any:swap": "resync", "any:large": "resync"}, "expected the held syncs released"
    assert not [argv for argv in machine.mutating_commands() if "/dev/md/main" in argv and "--misc" in argv], (
        "raid0 has no sync to hold")


def test_a_failed_build_lets_the_arrays_it_held_sync_again(tmp_path):
    machine = default_machine(tmp_path)
    machine.fail_when = lambda argv: (1, "mke2fs: Input/output error") if argv[:3] == [
        "mkfs.ext4", "-L", "data"] else None
    error = refused(machine)
    assert "mke2fs: Input/output error" in str(error.details), error.details
    assert {a["name"]: a.get("sync") for a in machine.arrays.values()} == {
        "any:main": None, "any:swap": "resync", "any:large": "resync"}
    assert lines(machine.mutating_commands())[-2:] == [
        "mdadm --misc --action=idle /dev/md/swap", "mdadm --misc --action=idle /dev/md/large"]


def test_an_array_whose_members_all_carry_our_superblock_is_assembled_not_created(tmp_path):
    machine = default_machine(tmp_path)
    kill_before(machine, "mdadm --create /dev/md/large")
    del machine.arrays["md126"]  # swap: created, then stopped (no udev incremental assembly here)
    machine.sync()
    result = apply(machine)
    assert lines(result["commands"])[:4] == [
        "mdadm --assemble /dev/md/swap /dev/sdc1 /dev/sdd1",
        "udevadm settle -t 30",
        next(line for line in BUILD_DEFAULT if line.startswith("mdadm --create /dev/md/large")),
        "udevadm settle -t 30",
    ]
    assert machine.summary()["arrays"]["any:swap"] == ("raid1", True, ["sdc1", "sdd1"])


def test_a_run_killed_after_the_volume_groups_creates_only_volumes_filesystems_and_mounts(tmp_path):
    machine = default_machine(tmp_path)
    kill_before(machine, "lvcreate")
    result = apply(machine)
    assert lines(result["commands"]) == BUILD_DEFAULT[BUILD_DEFAULT.index("lvcreate -L 53687091200b -n slash main "
                                                                          "--yes"):]
    assert machine.summary() == BUILT_DEFAULT


def test_a_run_killed_after_mkfs_only_mounts_and_enables_swap(tmp_path):
    machine = default_machine(tmp_path)
    kill_before(machine, "mkdir -p /mnt")
    result = apply(machine)
    assert lines(result["commands"]) == BUILD_DEFAULT[BUILD_DEFAULT.index("mkdir -p /mnt"):]
    assert machine.summary() == BUILT_DEFAULT


def test_after_a_reboot_mid_build_a_new_run_reactivates_nothing_twice_and_finishes(tmp_path):
    machine = default_machine(tmp_path)
    kill_before(machine, "mkfs.ext4 -L home")
    machine.reboot()
    result = apply(machine)
    rest = BUILD_DEFAULT[BUILD_DEFAULT.index("mkfs.ext4 -L home /dev/main/home"):]
    assert lines(result["commands"]) == [line for line in rest if "--action=idle" not in line], (
        "expected nothing built twice, and no array to release: a reboot forgets that a sync was held")
    assert machine.summary() == BUILT_DEFAULT


def test_a_degraded_mirror_is_assembled_with_its_data_and_the_replaced_disk_added(tmp_path):
    machine = default_machine(tmp_path)
    apply(machine)
    # sdd dies and is replaced by a blank disk; at the next boot the swap mirror has only sdc1
    machine.disks["sdd"].update(table=None, parts={}, kernel=set())
    machine.superblocks.pop("sdd1")
    machine.sigs.pop("sdd1")
    machine.arrays["md126"]["members"].remove("sdd1")
    machine.reboot()
    assert "md126 : inactive sdc1[0](S)" in (tmp_path / "proc" / "mdstat").read_text()
    machine.mutations.clear()
    result = apply(machine)
    assert lines(result["commands"]) == marked([
        "sgdisk --clear --disk-guid={guid:sdd} -n 1:0:0 -t 1:FD00 -c 1:swap-raid2 /dev/sdd",
        "partx -u /dev/sdd",
        "udevadm settle -t 30",
        "mdadm --stop /dev/md126",
        "mdadm --assemble /dev/md/swap --run /dev/sdc1",
        "udevadm settle -t 30",
        "mdadm --manage /dev/md/swap --add /dev/sdd1",
        "lvchange -ay swap/swap",  # the boot could not activate it without its PV; its swap is kept (no mkswap)
        "udevadm settle -t 30",
        "mkdir -p /mnt",
        "mount -t ext4 -L slash /mnt",
        "mkdir -p /mnt/boot",
        "mount -t vfat /dev/sda1 /mnt/boot",
        "mkdir -p /mnt/data",
        "mount -t ext4 -L data /mnt/data",
        "mkdir -p /mnt/home",
        "mount -t ext4 -L home /mnt/home",
        "swapon -L swap",
    ])
    assert not [argv for argv in machine.mutating_commands() if "--zero-superblock" in argv or "--create" in argv]
    assert machine.summary()["lvs"]["swap/swap"] == (4294967296, True)


@pytest.mark.parametrize("reboot", [False, True], ids=["no reboot", "reboot"])
@pytest.mark.parametrize("kill_at", range(len([c for c in BUILD_DEFAULT if not c.startswith("udevadm")])))
def test_killed_before_any_command_a_new_run_finishes_the_job(tmp_path, kill_at, reboot):
    machine = default_machine(tmp_path)
    seen = []

    def kill(argv):
        seen.append(argv)
        return len(seen) > kill_at

    machine.kill_when = kill
    with pytest.raises(Killed):
        apply(machine)
    machine.kill_when = None
    if reboot:
        machine.reboot()
    apply(machine)
    assert machine.summary() == BUILT_DEFAULT
    machine.mutations.clear()
    assert (apply(machine)["changed"], machine.mutations) == (False, [])


# ---------------------------------------------------------------- failures


def test_a_filesystem_that_appears_before_mkfs_stops_the_run(tmp_path):
    machine = default_machine(tmp_path)

    def intruder(argv):
        if argv == ["blkid", "-p", "-o", "export", "/dev/main/home"] and not machine.sigs.get(
                machine.lvs[("main", "home")]["dm"]):
            machine.put(machine.lvs[("main", "home")]["dm"], "ext4", "intruder")

    machine.on_command = intruder
    error = refused(machine)
    assert error.msg == 'refusing to make a filesystem on /dev/main/home: blkid finds ext4 "intruder" there'
    assert "mkfs.ext4 -L home /dev/main/home" not in lines(machine.mutating_commands())


def test_a_failing_command_stops_the_run_with_its_command_rc_and_stderr(tmp_path):
    machine = default_machine(tmp_path)
    machine.fail_when = lambda argv: (1, "mdadm: RUN_ARRAY failed: Invalid argument\n") if "--create" in argv else None
    error = refused(machine)
    assert error.msg.startswith("create array main failed: command failed (rc=1): mdadm --create /dev/md/main")
    assert error.details["rc"] == 1
    assert error.details["stderr"] == "mdadm: RUN_ARRAY failed: Invalid argument\n"
    assert error.details["cmd"][:3] == ["mdadm", "--create", "/dev/md/main"]
    assert lines(error.details["commands"])[-1].startswith("mdadm --create /dev/md/main")


def test_a_probe_that_fails_right_before_a_step_stops_the_run_with_an_apply_error(tmp_path):
    """The check right before a write cannot read the device: a clear error, the held syncs released."""
    machine = default_machine(tmp_path)
    machine.fail_when = lambda argv: ((4, "blkid: error: /dev/md/main: Input/output error\n")
                                      if argv[-1] == "/dev/md/main" and "-p" in argv else None)
    error = refused(machine)
    assert error.msg.endswith(": cannot read the device again right before it: "
                              "blkid -p /dev/md/main failed with exit code 4")
    assert not any(argv[:1] == ["pvcreate"] and argv[-1] == "/dev/md/main" for argv in machine.calls)
    syncs = {a["name"]: a.get("sync") for a in machine.arrays.values()}
    assert {"any:swap", "any:large"} <= set(syncs) and "frozen" not in syncs.values(), syncs


def test_a_device_node_that_never_appears_fails_after_the_settle_timeout(tmp_path):
    machine = default_machine(tmp_path)
    machine.hidden_nodes.add("/dev/md/main")
    error = refused(machine, settle_timeout=5)
    assert error.msg == "/dev/md/main did not appear within 5 s (after: wait for /dev/md/main)"


@pytest.mark.parametrize("kill_at", range(len([c for c in TEARDOWN_OLD_STACK if not c.startswith("udevadm")])))
def test_a_teardown_killed_anywhere_is_finished_by_the_next_run_with_wipe_and_refused_without(tmp_path, kill_at):
    machine = default_machine(tmp_path)
    old_stack(machine)
    seen = []
    machine.kill_when = lambda argv: seen.append(argv) or len(seen) > kill_at
    with pytest.raises(Killed):
        apply(machine, wipe=True)
    machine.kill_when = None
    machine.mutations.clear()
    try:
        apply(machine)  # without wipe: refused while anything foreign is left, changing nothing
    except ApplyError as leftover:
        assert leftover.msg.startswith("Refusing to change disks that hold data this plan did not make")
        assert machine.mutations == []
    else:
        assert kill_at == len(seen) - 1 and seen[-1] == TEARDOWN_OLD_STACK[-2].split()  # all was blank
    apply(machine, wipe=True)
    assert machine.summary()["mounts"] == BUILT_DEFAULT["mounts"]
    assert set(machine.summary()["vgs"]) == {"main", "main_1", "swap", "large"}
    assert (apply(machine)["changed"]) is False
