"""A wipe that cannot stop halfway, and data no signature names.

Two holes the review found (issue 14, findings 2 and 5):

* A teardown removed mounts, swap, LVM and md, but a holder no kind of the engine makes (dm-crypt,
  multipath, bcache, a loop device on a disk) was only reported: ``wipefs`` then failed with EBUSY
  after ``vgremove`` and ``--zero-superblock`` had already run. Now the whole teardown is checked
  first, and such a holder stops the run before any command, naming it and what to do.
* A disk blkid calls blank was blank, whatever it held: plain dm-crypt, raw data, a disk whose
  primary GPT was zeroed but whose backup GPT remains. Now its first and last MiB are read: not
  zero, or a backup GPT header at the end, is unknown data (foreign); a wipe zeroes both edges.
"""
from __future__ import annotations

import errno

import pytest
from test_storage_apply import BUILD_DEFAULT, DEFAULT_PLAN, apply, default_machine, lines, refused
from test_storage_apply_fake_machine import FakeMachine, GiB, Killed, MiB

from ansible_collections.prenixos.baseline.plugins.module_utils.storage_apply import (
    TOOLS,
    Guard,
    PlanView,
    SafetyError,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_inventory import teardown_steps
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_state import read_disk_edges, read_state
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_step import Tools

PLANNED = sorted(disk["name"] for disk in DEFAULT_PLAN["disks"])


def old_raid_and_a_luks_partition(machine):
    """sdc and sdd: an old RAID1 over sdc1+sdd1 with VG old on it, and LUKS on sdc2, open as luks-0a1b."""
    machine.add_partition("sdc", 1, 8 * GiB, name="old", type_code="FD00")
    machine.add_partition("sdc", 2, None, name="secret")
    machine.add_partition("sdd", 1, 8 * GiB, name="old", type_code="FD00")
    md = machine.add_array("oldhost:old", "raid1", ["sdc1", "sdd1"])
    machine.add_vg("old", [md], [("data", GiB)])
    return machine.add_mapping(["sdc2"], "luks-0a1b", kind="crypt")


# ---------------------------------------------------------------- finding 2: holders the teardown cannot remove


def test_a_luks_mapping_on_a_disk_to_wipe_stops_the_run_before_the_first_command_naming_it(tmp_path):
    machine = default_machine(tmp_path)
    old_raid_and_a_luks_partition(machine)
    error = refused(machine, wipe=True)
    assert error.msg == ("refusing to wipe sdc, sdd: sdc2 is held by dm-crypt device luks-0a1b (crypt); close it "
                         "(cryptsetup close luks-0a1b) or remove it, then run again; nothing was changed")
    assert error.details["held"] == ["sdc2 is held by dm-crypt device luks-0a1b (crypt)"]
    assert machine.mutations == [], "expected nothing to run, ran: %s" % lines(machine.mutating_commands())
    assert set(machine.vgs) == {"old"} and machine.superblocks.keys() == {"sdc1", "sdd1"}


def test_check_mode_refuses_the_same_teardown_it_could_not_finish(tmp_path):
    machine = default_machine(tmp_path)
    old_raid_and_a_luks_partition(machine)
    error = refused(machine, wipe=True, check_mode=True)
    assert error.msg.startswith("refusing to wipe sdc, sdd: sdc2 is held by dm-crypt device luks-0a1b (crypt)")
    assert machine.mutations == []


def test_without_wipe_the_luks_mapping_is_named_among_what_the_disk_holds(tmp_path):
    machine = default_machine(tmp_path)
    old_raid_and_a_luks_partition(machine)
    error = refused(machine)
    assert "sdc2 is held by dm-crypt device luks-0a1b (crypt)" in error.details["foreign"]["sdc"]
    assert machine.mutations == []


def test_once_the_mapping_is_closed_the_wipe_runs_to_the_end(tmp_path):
    machine = default_machine(tmp_path)
    dm = old_raid_and_a_luks_partition(machine)
    refused(machine, wipe=True)
    del machine.mappings[dm]  # cryptsetup close luks-0a1b
    machine.sync()
    result = apply(machine, wipe=True)
    assert result["wiped"] == ["sdc", "sdd"]
    assert apply(machine)["changed"] is False


def test_a_loop_device_on_a_blank_planned_disk_is_foreign_and_stops_a_wipe(tmp_path):
    machine = default_machine(tmp_path)
    loop = machine.attach_loop("/dev/sdd")  # lsblk shows it on its own, not under sdd
    error = refused(machine)
    assert error.details["foreign"] == {"sdd": ["sdd is held by loop device %s (loop)" % loop]}
    assert machine.mutations == []
    error = refused(machine, wipe=True)
    assert error.msg == ("refusing to wipe sdd: sdd is held by loop device %s (loop); detach it (losetup -d /dev/%s), "
                         "then run again; nothing was changed" % (loop, loop))
    assert machine.mutations == []


def test_a_holder_only_sysfs_knows_stops_a_wipe(tmp_path):
    machine = default_machine(tmp_path)
    machine.put("sde", "ext4", "old")
    dm = machine.add_mapping(["sde"], "hidden", kind="dm", listed=False)
    error = refused(machine, wipe=True)
    assert error.msg == ("refusing to wipe sde: sde is held by device-mapper device %s (not listed by lsblk); remove "
                         "it (dmsetup remove /dev/%s), then run again; nothing was changed" % (dm, dm))
    assert machine.mutations == []


def test_multipath_and_bcache_holders_are_named_with_what_to_do(tmp_path):
    machine = default_machine(tmp_path)
    machine.add_mapping(["sde"], "mpatha", kind="mpath")
    machine.put("sdf", "bcache")
    machine.add_mapping(["sdf"], "bcache0", kind="disk", kname="bcache0")  # lsblk calls a bcache device a disk
    error = refused(machine, wipe=True)
    assert error.msg == ("refusing to wipe sde, sdf: sde is held by multipath device mpatha (mpath); flush it "
                         "(multipath -f mpatha), then run again; sdf is held by bcache device bcache0 (disk); stop it "
                         "(echo 1 > /sys/block/bcache0/bcache/stop), then run again; nothing was changed")
    assert machine.mutations == []


# ---------------------------------------------------------------- finding 5: data no signature names


def test_a_disk_blkid_calls_blank_with_data_at_its_edges_is_unknown_data_and_refused_without_wipe(tmp_path):
    machine = default_machine(tmp_path)
    machine.disks["sdb"]["edges"].update(head=True, tail=True, backup_gpt=True)  # primary GPT zeroed, backup kept
    machine.disks["sdc"]["edges"].update(tail=True)  # raw data at the end only
    error = refused(machine)
    assert error.details["foreign"] == {"sdb": ["unknown data (first MiB not zero; backup GPT header at the end)"],
                                        "sdc": ["unknown data (last MiB not zero)"]}
    assert "  - sdb: unknown data (first MiB not zero; backup GPT header at the end)" in error.msg.splitlines()
    assert machine.mutations == []


def test_a_disk_whose_edges_cannot_be_read_is_unknown_data_with_the_reason(tmp_path):
    machine = default_machine(tmp_path)
    machine.disks["sdb"]["edges_error"] = (errno.EIO, "Input/output error")
    error = refused(machine)
    assert error.details["foreign"] == {"sdb": ["unknown data (reading it failed: Input/output error)"]}
    assert machine.mutations == []


def test_only_the_planned_disks_blkid_calls_blank_are_read_and_only_once(tmp_path):
    machine = default_machine(tmp_path)
    machine.put("sdg", "ext4", "old")
    refused(machine)
    assert sorted(machine.edge_reads) == [disk for disk in PLANNED if disk != "sdg"]  # never sdz, never sdg
    machine.sigs.pop("sdg")
    machine.edge_reads.clear()
    apply(machine)
    assert sorted(machine.edge_reads) == PLANNED, "the first read only: afterwards every disk has a table"
    machine.edge_reads.clear()
    assert apply(machine)["changed"] is False
    assert machine.edge_reads == []


TEARDOWN_SDB = [
    "wipefs -a /dev/sdb",
    "sgdisk --zap-all /dev/sdb",
    "dd if=/dev/zero of=/dev/sdb bs=1M count=1 conv=fsync oflag=direct",
    "dd if=/dev/zero of=/dev/sdb bs=1M count=1 seek=32767 conv=fsync oflag=direct",
    "udevadm settle -t 30",
]


def test_with_wipe_unknown_data_is_zeroed_at_both_edges_and_the_disk_built(tmp_path):
    machine = default_machine(tmp_path)
    machine.disks["sdb"]["edges"].update(head=True, tail=True, backup_gpt=True)
    preview = apply(machine, wipe=True, check_mode=True)
    assert machine.mutations == []
    assert lines(preview["commands"]) == TEARDOWN_SDB + BUILD_DEFAULT
    result = apply(machine, wipe=True)
    assert lines(result["commands"]) == TEARDOWN_SDB + BUILD_DEFAULT
    assert result["wiped"] == ["sdb"]
    assert machine.disks["sdb"]["edges"] == {"head": False, "tail": False, "backup_gpt": False}
    assert apply(machine)["changed"] is False


def test_a_teardown_that_leaves_data_at_an_edge_stops_before_building(tmp_path):
    machine = default_machine(tmp_path)
    machine.disks["sdb"]["edges"].update(head=True, tail=True, backup_gpt=True)
    machine.do_dd = lambda argv: ""  # the zeroing reaches nothing (a write cache that lies)
    error = refused(machine, wipe=True)
    assert error.msg == ("the teardown did not leave sdb blank: sdb: unknown data (first MiB not zero; backup GPT "
                         "header at the end)")
    assert not [argv for argv in machine.mutating_commands() if "--clear" in argv]


def test_a_whole_disk_filesystem_wiped_leaves_its_first_mib_to_zero(tmp_path):
    machine = default_machine(tmp_path)
    machine.put("sdf", "ext4", "wholedisk")
    machine.kill_when = lambda argv: argv[0] == "dd"
    with pytest.raises(Killed, match="dd if=/dev/zero of=/dev/sdf"):
        apply(machine, wipe=True)
    machine.kill_when = None
    machine.mutations.clear()
    error = refused(machine)  # wipefs took the signature, not the rest of the filesystem
    assert error.details["foreign"] == {"sdf": ["unknown data (first MiB not zero)"]}
    assert machine.mutations == []
    apply(machine, wipe=True)
    assert apply(machine)["changed"] is False


def test_the_zeroing_covers_the_last_mib_exactly_whatever_the_disk_size(tmp_path):
    machine = FakeMachine(tmp_path)
    sizes = {"sda": 512110080, "sdb": 1572864, "sdc": 512 * 1024, "sdd": 0}  # odd sectors, < 2 MiB, < 1 MiB, empty
    for name, size in sizes.items():
        machine.add_disk(name, size)
    state = read_state(machine, list(sizes), **machine.roots)
    steps = [line for line in lines(step.argv for step in teardown_steps(state, list(sizes), Tools(), 30))
             if line.startswith("dd ")]
    assert steps == [
        "dd if=/dev/zero of=/dev/sda bs=1M count=1 conv=fsync oflag=direct",
        "dd if=/dev/zero of=/dev/sda bs=512 count=2048 seek=998167 conv=fsync oflag=direct",
        "dd if=/dev/zero of=/dev/sdb bs=1M count=1 conv=fsync oflag=direct",
        "dd if=/dev/zero of=/dev/sdb bs=4096 count=256 seek=128 conv=fsync oflag=direct",
        "dd if=/dev/zero of=/dev/sdc bs=4096 count=128 conv=fsync oflag=direct",
    ]
    for name in ("sda", "sdb", "sdc"):
        machine.disks[name]["edges"].update(head=True, tail=True, backup_gpt=True)
    for line in steps:
        machine.run(line.split())
    assert [machine.disks[name]["edges"] for name in ("sda", "sdb", "sdc")] == [
        {"head": False, "tail": False, "backup_gpt": False}] * 3


def test_dd_is_a_tool_of_the_run_and_the_guard_lets_it_zero_only_a_disk_being_wiped(tmp_path):
    assert "dd" in TOOLS
    machine = default_machine(tmp_path)
    machine.boot_from_root_partition("vda")
    state = read_state(machine, PLANNED, **machine.roots)
    wiping = Guard(PlanView(DEFAULT_PLAN), state, "/mnt", wiped_disks=["sdb"])
    wiping.check(["dd", "if=/dev/zero", "of=/dev/sdb", "bs=1M", "count=1", "conv=fsync", "oflag=direct"])
    for argv, why in [
        (["dd", "if=/dev/zero", "of=/dev/vda", "bs=1M", "count=1"], "/dev/vda is not a planned device"),
        (["dd", "if=/dev/zero", "of=/dev/sdz", "bs=1M", "count=1"], "/dev/sdz is not a planned device"),
        (["dd", "if=/dev/sdz", "of=/dev/sdb", "bs=1M", "count=1"], "/dev/sdz is not a planned device"),
        (["wipefs", "-a", "--backup=/dev/zero", "/dev/sdb"], "/dev/zero is not a planned device"),
    ]:
        with pytest.raises(SafetyError, match=why):
            wiping.check(argv)


# ---------------------------------------------------------------- reading the edges (regular files only)


def disk_image(tmp_path, size, writes=()):
    """A temporary regular file standing in for a disk: zeros, with ``writes`` [(offset, bytes)]."""
    path = tmp_path / "disk.img"
    with open(path, "wb") as handle:
        handle.truncate(size)
        for offset, data in writes:
            handle.seek(offset)
            handle.write(data)
    return str(path)


@pytest.mark.parametrize("size, writes, edges", [
    (8 * MiB, [], {"head": False, "tail": False, "backup_gpt": False}),
    (8 * MiB, [(MiB - 1, b"x")], {"head": True, "tail": False, "backup_gpt": False}),
    (8 * MiB, [(MiB, b"x"), (7 * MiB - 1, b"x")], {"head": False, "tail": False, "backup_gpt": False}),
    (8 * MiB, [(7 * MiB, b"x")], {"head": False, "tail": True, "backup_gpt": False}),
    (8 * MiB, [(8 * MiB - 512, b"EFI PART")], {"head": False, "tail": True, "backup_gpt": True}),
    (8 * MiB, [(8 * MiB - 4096, b"EFI PART")], {"head": False, "tail": True, "backup_gpt": True}),  # 4Kn
    (8 * MiB, [(8 * MiB - 1024, b"EFI PART")], {"head": False, "tail": True, "backup_gpt": False}),
    (MiB + 512, [(512, b"x")], {"head": True, "tail": True, "backup_gpt": False}),  # the edges overlap
    (1000, [(999, b"x")], {"head": True, "tail": True, "backup_gpt": False}),
    (0, [], {"head": False, "tail": False, "backup_gpt": False}),
])
def test_the_edges_of_a_disk_are_its_first_and_last_mib_and_the_backup_gpt_header(tmp_path, size, writes, edges):
    assert read_disk_edges(disk_image(tmp_path, size, writes), size) == edges


def test_a_device_shorter_than_lsblk_says_is_a_read_error(tmp_path):
    with pytest.raises(OSError, match="read 0 of 1048576 bytes at offset 7340032"):
        read_disk_edges(disk_image(tmp_path, 4 * MiB), 8 * MiB)
    with pytest.raises(OSError):
        read_disk_edges(str(tmp_path / "missing"), 8 * MiB)


def test_a_failed_read_is_in_the_state_never_a_traceback(tmp_path):
    machine = FakeMachine(tmp_path)
    machine.add_disk("sdb", 32 * GiB)
    machine.add_disk("sdc", 32 * GiB)
    machine.add_partition("sdc", 1, None)

    def failing(path, size):
        raise OSError(errno.EIO, "Input/output error", path)

    roots = dict(machine.roots)
    roots["read_edges"] = failing
    state = read_state(machine, ["sdb", "sdc"], **roots)
    assert state.edges == {"sdb": {"error": "Input/output error"}}
