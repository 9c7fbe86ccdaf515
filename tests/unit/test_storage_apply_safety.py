"""The safety property of storage_apply, over random machines, plans, contents and options.

Whatever the machine holds, whatever the options (wipe, check mode) and wherever a run is killed:

* no mutating command reaches the disk the running system lives on or a disk outside the plan
  (the fake machine resolves each command's devices itself, at the moment it runs);
* a plan that includes the boot disk changes nothing;
* without ``wipe``, foreign content on a planned disk changes nothing, and no teardown command runs;
* check mode changes nothing;
* once a run finishes, the next one changes nothing.

The disk facts given to the planner may lie about the boot medium, so that plans naming the boot
disk are produced: the module must find it from the live mounts by itself.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from test_storage_apply_fake_machine import FakeMachine, GiB, Killed

from ansible_collections.prenixos.baseline.plugins.module_utils.planner import PlanError, plan_storage
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_apply import Applier, ApplyError

BOOT_MOUNTPOINTS = ("/", "/run/live/medium")
TEARDOWN = ("wipefs", "vgremove", "pvremove", "vgchange", "umount", "swapoff")
CONTENTS = ("ext4 on the whole disk", "dos table", "foreign gpt partition", "old raid1 over two disks",
            "old raid1 with the usb disk", "old raid1 with the boot disk", "old vg", "mounted filesystem")


class Clock:
    def __init__(self):
        self.now = 0.0

    def sleep(self, seconds):
        self.now += seconds

    def __call__(self):
        return self.now


@st.composite
def scenarios(draw):
    return {
        "boot": draw(st.sampled_from(["live usb", "root partition on vda", "root partition on sda",
                                      "root on raid over sda and sdb"])),
        "ssds": draw(st.lists(st.sampled_from([16, 32, 64]), min_size=0, max_size=3)),
        "hdds": draw(st.lists(st.sampled_from([16, 24]), min_size=0, max_size=4)),
        "usb disk": draw(st.booleans()),
        "contents": draw(st.lists(st.tuples(st.sampled_from(CONTENTS), st.integers(0, 9), st.integers(0, 9)),
                                  max_size=3)),
        "honest facts": draw(st.sampled_from([True, True, False])),
        "wipe": draw(st.booleans()),
        "check mode": draw(st.sampled_from([False, False, False, True])),
        "kill at": draw(st.one_of(st.none(), st.integers(0, 60))),
        "reboot": draw(st.booleans()),
    }


def build(tmp, scenario):
    machine = FakeMachine(tmp)
    boot = scenario["boot"]
    names = iter("sd" + letter for letter in "abcdefghijklmn")
    if boot == "live usb":
        machine.boot_from_live_usb("sdz")
    elif boot == "root partition on vda":
        machine.boot_from_root_partition("vda")
    elif boot == "root partition on sda":
        machine.boot_from_root_partition(next(names), 32 * GiB)
    else:
        machine.boot_from_root_on_raid((next(names), next(names)))
    for size in scenario["ssds"]:
        machine.add_disk(next(names), size * GiB)
    for size in scenario["hdds"]:
        machine.add_disk(next(names), size * GiB, rotational=True)
    if scenario["usb disk"]:
        machine.add_disk("sdu", 16 * GiB, transport="usb", removable=True)
    boot_disks = sorted(machine_boot_disks(machine))
    candidates = sorted(name for name in machine.disks if name not in boot_disks and name != "sdu")
    foreign_on = set()
    for kind, first, second in scenario["contents"]:
        if not candidates:
            break
        disk = candidates[first % len(candidates)]
        other = candidates[second % len(candidates)]
        foreign_on |= place(machine, kind, disk, other, boot_disks)
    return machine, boot_disks, foreign_on


def free_number(machine, disk):
    return max(machine.disks[disk]["parts"], default=0) + 1


def place(machine, kind, disk, other, boot_disks):
    """Put foreign content on ``disk`` (and maybe ``other``, the USB disk or the boot disk); return the disks used."""
    if machine.disks[disk]["table"] == "dos" or (machine.disks[disk]["table"] is None and machine.sigs.get(disk)):
        return set()
    if kind == "ext4 on the whole disk":
        if machine.disks[disk]["table"]:
            return set()
        machine.put(disk, "ext4", "old")
        return {disk}
    if kind == "dos table":
        if machine.disks[disk]["table"]:
            return set()
        machine.put(machine.add_partition(disk, 1, GiB, table="dos"), "ext4", "dos")
        return {disk}
    if kind == "foreign gpt partition":
        machine.put(machine.add_partition(disk, free_number(machine, disk), GiB, name="other"), "xfs", "other")
        return {disk}
    if kind == "old vg":
        part = machine.add_partition(disk, free_number(machine, disk), 2 * GiB, name="lvm", type_code="8E00")
        machine.add_vg("old%s" % part, [part], [("lv", GiB)])
        return {disk}
    if kind == "mounted filesystem":
        part = machine.add_partition(disk, free_number(machine, disk), GiB, name="srv")
        machine.put(part, "ext4", "srv")
        machine.dirs.add("/srv/" + part)
        machine.add_mount(part, "/srv/" + part)
        return {disk}
    partner = {"old raid1 over two disks": other, "old raid1 with the usb disk": "sdu",
               "old raid1 with the boot disk": boot_disks[0] if boot_disks else None}[kind]
    if partner is None or partner == disk or partner not in machine.disks:
        return set()
    if machine.disks[partner]["table"] not in (None, "gpt"):
        return set()
    members = [machine.add_partition(d, free_number(machine, d), 2 * GiB, name="old", type_code="FD00")
               for d in (disk, partner)]
    machine.add_array("old:%s" % members[0], "raid1", members)
    return {disk, partner}


def machine_boot_disks(machine):
    """The disks the running system lives on, found by the fake from its own model."""
    found = set()
    for mount in machine.mounts:
        if mount["target"] in BOOT_MOUNTPOINTS and mount["kname"]:
            found |= machine.disks_under(mount["kname"])
    return {disk for disk in found if disk in machine.disks}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_no_mutating_command_ever_reaches_the_boot_disk_or_a_disk_outside_the_plan(scenario):
    with tempfile.TemporaryDirectory() as tmp:
        machine, boot_disks, foreign_on = build(Path(tmp), scenario)
        claimed = boot_disks if scenario["honest facts"] else []
        try:
            plan = plan_storage(machine.disk_facts(claim_boot=claimed), 4 * GiB)
        except PlanError:
            assume(False)
        planned = {disk["name"] for disk in plan["disks"]}
        allowed = planned - set(boot_disks)
        clock = Clock()
        options = {"wipe": scenario["wipe"], "check_mode": scenario["check mode"], "sleep": clock.sleep,
                   "clock": clock, **machine.roots}

        if scenario["kill at"] is not None:
            seen = []
            machine.kill_when = lambda argv: seen.append(argv) or len(seen) > scenario["kill at"]
        try:
            Applier(plan, machine, **options).run()
        except (ApplyError, Killed):
            pass
        machine.kill_when = None
        if scenario["reboot"]:
            machine.reboot()
        try:
            finished = Applier(plan, machine, **options).run()
        except ApplyError:
            finished = None
        if finished is not None and not scenario["check mode"]:
            before = len(machine.mutations)
            again = Applier(plan, machine, **options).run()
            assert (again["changed"], machine.mutations[before:]) == (False, []), "a finished run left work to do"

        event("boot disk planned" if planned & set(boot_disks) else "boot disk not planned")
        event("foreign content planned, wipe %s" % scenario["wipe"] if foreign_on & planned else "no foreign content")
        event("ran mutating commands" if machine.mutations else "ran none")
        event("teardown ran" if any(argv[0] == "wipefs" for argv, _outcome in machine.mutations) else "no teardown")
        for argv, reached in machine.mutations:
            assert reached <= allowed, "%s reached %s (planned %s, boot %s)" % (
                argv, sorted(reached - allowed), sorted(planned), boot_disks)
        if planned & set(boot_disks) or scenario["check mode"]:
            assert machine.mutations == []
        if foreign_on & planned and not scenario["wipe"]:
            assert machine.mutations == []
        if not scenario["wipe"]:
            assert not [argv for argv, _outcome in machine.mutations
                        if (argv[0] in TEARDOWN and "--addtag" not in argv) or "--zap-all" in argv]
