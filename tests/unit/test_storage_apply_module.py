"""The storage_apply module: a thin shell over the engine, run in-process against the fake machine."""
from __future__ import annotations

import functools
import inspect
import os

import pytest
import yaml
from module_harness import run_module
from test_storage_apply import BUILD_DEFAULT, DEFAULT_PLAN, TEARDOWN_OLD_STACK, default_machine, old_stack

from ansible_collections.prenixos.baseline.plugins.modules import storage_apply


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """The default machine, answering as the module's runner, its trees read as /sys, /proc and /dev (the module
    has no option for them); tools resolve under /usr/sbin."""
    fake = default_machine(tmp_path)
    monkeypatch.setattr(storage_apply, "Runner", lambda module: fake)
    monkeypatch.setattr(storage_apply, "Applier", functools.partial(storage_apply.Applier, **fake.roots))
    monkeypatch.setattr(storage_apply.AnsibleModule, "get_bin_path",
                        lambda self, name, required=False, opt_dirs=None: "/usr/sbin/" + name)
    return fake


def args(machine, **extra):
    return dict({"plan": DEFAULT_PLAN}, **extra)


def warnings(result):
    """Warning texts (ansible-core 2.19 returns them as event dicts)."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]


def short(commands):
    return [" ".join([os.path.basename(argv[0])] + argv[1:]) for argv in commands]


def test_the_module_builds_the_plan_and_returns_the_commands_with_tool_paths_the_layout_and_a_diff(machine, capsys):
    result = run_module(storage_apply.main, args(machine), capsys, diff=True)
    assert result["changed"] is True
    assert result["commands"][0][:2] == ["/usr/sbin/sgdisk", "--clear"]
    assert short(result["commands"]) == BUILD_DEFAULT
    assert result["diff"]["before"]["disks"]["sdc"] == "blank"
    assert result["diff"]["after"] == result["layout"]
    assert result["layout"]["arrays"] == {"main": "raid0 active: /dev/sda2 /dev/sdb2",
                                          "swap": "raid1 active: /dev/sdc1 /dev/sdd1",
                                          "large": "raid5 active: /dev/sde1 /dev/sdf1 /dev/sdg1"}
    assert warnings(result) == [
        "label EFI is carried by another device too: /mnt/boot is mounted by device, not by label"]


def test_the_module_run_twice_reports_no_change_the_second_time(machine, capsys):
    run_module(storage_apply.main, args(machine), capsys)
    machine.mutations.clear()
    result = run_module(storage_apply.main, args(machine), capsys, diff=True)
    assert (result["changed"], result["commands"], machine.mutations) == (False, [], [])
    assert result["diff"]["before"] == result["diff"]["after"]


def test_the_module_in_check_mode_changes_nothing_and_returns_what_it_would_run(machine, capsys):
    result = run_module(storage_apply.main, args(machine), capsys, check_mode=True, diff=True)
    assert machine.mutations == []
    assert result["changed"] is True
    assert short(result["commands"]) == BUILD_DEFAULT
    assert result["diff"]["before"]["mounts"] == {}
    assert result["diff"]["after"]["mounts"]["/mnt"] == "/dev/main/slash"


def test_the_module_refuses_foreign_content_naming_it_per_disk_and_runs_nothing(machine, capsys):
    old_stack(machine)
    result = run_module(storage_apply.main, args(machine), capsys)
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("Refusing to change disks that hold data this plan did not make")
    assert result["foreign"]["sde"] == ["dos partition table", 'sde1: ext4 "photos"']
    assert (result["commands"], machine.mutations) == ([], [])


def test_the_module_with_wipe_in_check_mode_lists_the_teardown_first(machine, capsys):
    old_stack(machine)
    result = run_module(storage_apply.main, args(machine, wipe=True), capsys, check_mode=True)
    assert short(result["commands"]) == TEARDOWN_OLD_STACK + BUILD_DEFAULT
    assert result["wiped"] == ["sdc", "sdd", "sde", "sdf"]
    assert machine.mutations == []


def test_a_failing_command_fails_the_task_with_the_command_its_rc_and_its_stderr(machine, capsys):
    machine.fail_when = lambda argv: (5, "  Cannot use /dev/md/main: device is too small\n") if (
        os.path.basename(argv[0]) == "pvcreate") else None
    result = run_module(storage_apply.main, args(machine), capsys)
    assert result["failed"] is True and result["changed"] is True
    assert result["cmd"] == ["/usr/sbin/pvcreate", "/dev/md/main"]
    assert (result["rc"], result["stderr"]) == (5, "  Cannot use /dev/md/main: device is too small\n")
    assert result["msg"] == ("make /dev/md/main an LVM physical volume failed: command failed (rc=5): "
                             "/usr/sbin/pvcreate /dev/md/main: Cannot use /dev/md/main: device is too small")
    assert short(result["commands"])[-1] == "pvcreate /dev/md/main"


@pytest.mark.parametrize("extra, message", [
    ({"root": "/"}, "root must be a clean absolute path other than /, got '/'"),
    ({"settle_timeout": 0}, "settle_timeout must be at least 1 second, got 0"),
    ({"plan": {"version": 1, "disks": [{"name": "../vda"}]}}, "the plan is not consistent: disk name '../vda'"),
])
def test_the_module_refuses_bad_options_before_running_anything(machine, capsys, extra, message):
    result = run_module(storage_apply.main, args(machine, **extra), capsys)
    assert result["failed"] is True and message in result["msg"]
    assert machine.calls == []


def test_the_boot_disk_is_found_from_the_real_proc_and_dev_whatever_the_options(machine, capsys):
    defaults = {name: p.default for name, p in inspect.signature(storage_apply.Applier.func).parameters.items()
                if name.endswith("_root")}
    assert defaults == {"sysfs_root": "/sys", "proc_root": "/proc", "dev_root": "/dev"}
    for name in defaults:
        result = run_module(storage_apply.main, args(machine, **{name: "/tmp/elsewhere"}), capsys)
        assert result["failed"] is True and "Unsupported parameters" in result["msg"] and name in result["msg"]
    assert machine.calls == []


def test_the_documented_options_are_exactly_the_argument_spec(monkeypatch):
    captured = {}

    class Captured(Exception):
        pass

    def capture(**kwargs):
        captured.update(kwargs)
        raise Captured

    monkeypatch.setattr(storage_apply, "AnsibleModule", capture)
    with pytest.raises(Captured):
        storage_apply.main()
    documented = yaml.safe_load(storage_apply.DOCUMENTATION)["options"]
    spec = captured["argument_spec"]
    assert sorted(documented) == sorted(spec)
    for name, option in spec.items():
        assert documented[name]["type"] == option["type"], name
        assert documented[name].get("default") == option.get("default"), name
        assert documented[name].get("required", False) == option.get("required", False), name
    assert captured["supports_check_mode"] is True
