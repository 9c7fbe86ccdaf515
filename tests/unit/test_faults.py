"""Faults during a run: a planned disk that disappears, an array member that fails, a full filesystem.

Each gives the operator a clear message and leaves alone what it says it leaves alone.
"""
from __future__ import annotations

import os

import pytest
from module_harness import run_module
from test_storage_apply import BUILD_DEFAULT, apply, default_machine, lines, refused

from ansible_collections.prenixos.baseline.plugins.module_utils import files
from ansible_collections.prenixos.baseline.plugins.modules import authorized_keys, firstboot_status

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBxJ0Ip1e0R2X1Xy3Fi/3kB2s3wH0ZSxQjKXnKk0u0Ev operator@desk"


# ---------------------------------------------------------------- a planned disk disappears


def test_a_disk_pulled_mid_build_stops_the_run_naming_it_and_keeps_what_is_built(tmp_path):
    machine = default_machine(tmp_path)

    def pull(argv):
        if argv[:3] == ["mdadm", "--create", "/dev/md/swap"] and "sdd" in machine.disks:
            machine.pull_disk("sdd")

    machine.on_command = pull
    error = refused(machine)
    assert error.msg.startswith("planned disk sdd disappeared during the build (create array swap failed: "
                                "command failed (rc=1): mdadm --create /dev/md/swap"), error.msg
    assert error.msg.endswith("nothing more was done, what is built is kept: run again once the disk is back, "
                              "or plan again without it")
    done = lines(machine.mutating_commands())
    failed = next(i for i, line in enumerate(done) if line.startswith("mdadm --create /dev/md/swap"))
    assert done[failed + 1:] == [], "expected the run to stop at the failed command: %s" % done[failed + 1:]
    assert done[:failed] == [c for c in BUILD_DEFAULT if not c.startswith("udevadm")][:failed]
    arrays = {name.split(":")[-1]: level for name, (level, _active, _members) in machine.summary()["arrays"].items()}
    assert arrays == {"main": "raid0"}, "expected the array made before the pull kept, and no other: %s" % arrays

    machine.on_command = None
    machine.mutations.clear()
    again = refused(machine)
    assert again.msg == "refusing to apply the plan: sdd is in the plan but not present"
    assert machine.mutations == [], "expected the run without the disk to change nothing"


# ---------------------------------------------------------------- an array member fails


def test_a_member_failing_during_the_build_fails_the_run_naming_the_array_and_disk(tmp_path):
    machine = default_machine(tmp_path)

    def fail_member(argv):
        if argv == ["pvcreate", "/dev/md/swap"]:
            machine.fail_member(machine.resolve("/dev/md/swap"), "sdd1")

    machine.on_command = fail_member
    error = refused(machine)
    assert error.msg == ("array swap (/dev/md/swap) runs degraded: sdd1 failed (disk sdd); the layout is built and "
                         "kept, replace the disk and run again to rebuild the array")
    assert lines(error.details["commands"])[-7:] == [
        "swapon -L swap", "mdadm --misc --action=idle /dev/md/swap", "mdadm --misc --action=idle /dev/md/large",
        "vgchange --addtag prenixos_finished main", "vgchange --addtag prenixos_finished main_1",
        "vgchange --addtag prenixos_finished swap", "vgchange --addtag prenixos_finished large",
    ], "expected the rest of the layout built, the arrays left to sync, the build marked finished"
    assert error.details["layout"], "expected the built layout in the failure"

    machine.on_command = None
    machine.mutations.clear()
    again = refused(machine)
    assert again.msg == error.msg, "expected every later run to say it again until the disk is replaced"
    assert machine.mutations == []


def test_a_spare_being_rebuilt_is_not_a_failed_member(tmp_path):
    machine = default_machine(tmp_path)
    apply(machine)
    mdstat = (tmp_path / "proc" / "mdstat").read_text()
    (tmp_path / "proc" / "mdstat").write_text(mdstat.replace("sdg1[2]", "sdg1[3](S)"))
    machine.mutations.clear()
    result = apply(machine)
    assert (result["changed"], machine.mutations) == (False, [])


# ---------------------------------------------------------------- a full filesystem (/run)


@pytest.fixture
def full_filesystem(monkeypatch):
    """Every file write_text makes lands on a full filesystem (writes to /dev/full fail with ENOSPC)."""
    made = []

    def mkstemp(prefix, dir):
        path = os.path.join(dir, prefix + "tmp")
        open(path, "w").close()
        made.append(path)
        return os.open("/dev/full", os.O_WRONLY), path

    monkeypatch.setattr(files.tempfile, "mkstemp", mkstemp)
    return made


def test_a_file_on_a_full_filesystem_is_left_as_it_was_with_no_temporary_file(tmp_path, full_filesystem):
    path = tmp_path / "status.json"
    path.write_text("before\n")
    with pytest.raises(files.WriteError) as caught:
        files.write_text(None, str(path), "after\n")
    assert str(caught.value) == "cannot write %s: No space left on device" % path
    assert path.read_text() == "before\n"
    assert full_filesystem and not any(os.path.exists(made) for made in full_filesystem)


def test_a_status_record_on_a_full_run_warns_and_still_reaches_the_console(tmp_path, capsys, full_filesystem):
    path, console = tmp_path / "run" / "status.json", tmp_path / "console"
    console.touch()
    result = run_module(firstboot_status.main, {"phase": "storage_apply", "state": "done", "reason": "built",
                                                "path": str(path), "console": str(console)}, capsys)
    assert not result.get("failed"), "a status record must never be the reason the job stops: %s" % result
    warnings = [w["event"]["msg"] if isinstance(w, dict) else w for w in result["warnings"]]  # 2.19: summaries
    assert warnings == ["storage_apply done is not recorded: cannot write %s: No space left on device"
                        % path]
    assert console.read_text() == "pre-nixos: storage_apply  done: built\n"
    assert not path.exists()


def test_authorized_keys_on_a_full_filesystem_fails_clearly_keeping_the_old_keys(tmp_path, capsys, full_filesystem):
    path = tmp_path / "root" / ".ssh" / "authorized_keys"
    path.parent.mkdir(parents=True)
    path.write_text("ssh-ed25519 AAAA old@key\n")
    result = run_module(authorized_keys.main, {"keys": [KEY], "path": str(path)}, capsys)
    assert result["failed"] and result["msg"] == (
        "cannot write %s: No space left on device; the keys root had before are kept" % path)
    assert path.read_text() == "ssh-ed25519 AAAA old@key\n"


def test_a_disk_pulled_right_before_a_steps_read_is_named_too(tmp_path):
    machine = default_machine(tmp_path)

    def pulled(argv):
        # The read right before mdadm --create of swap (blkid -p on each member) fails: sdd is gone.
        created = any("--create" in done for done, _disks in machine.mutations)
        if created and os.path.basename(argv[0]) == "blkid" and argv[-1] == "/dev/sdd1":
            machine.hidden_nodes.add("/dev/sdd")  # its node is gone
            machine.sync()
            return 1, "sh: /dev/sdd1: No such device"
        return None

    machine.fail_when = pulled
    error = refused(machine)
    assert error.msg.startswith("planned disk sdd disappeared during the build (create array swap: cannot read "
                                "the device again right before it: "), error.msg
    assert error.msg.endswith("nothing more was done, what is built is kept: run again once the disk is back, "
                              "or plan again without it")
