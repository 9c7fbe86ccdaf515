# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A plan the operator brings (edited, or made in another boot), reviewed and bound to this machine's disks.

Pure: no command, no file. ``review_plan(plan, disks)`` takes a plan and the disk facts of the machine it is
to be built on and returns ``(the plan bound to today's kernel names, notes)``, or raises ``PlanRefused``
listing every problem at once, so the operator fixes them in one edit.

Binding
    Each planned disk is found by its ``identity`` (plan version 2: ``wwn:``, ``serial:`` or ``by-id:``); a
    disk without one, and every disk of a version 1 plan, by its kernel name (a note says so). Refused: an
    identity no disk has, or more than one disk has; a disk whose size is not the planned size; two planned
    disks that are one disk; the boot medium. Then every kernel name in the plan (disks, partitions, array
    members, PVs, VG disk lists) is rewritten to the name the disk has now, so a plan made when the disks
    were ``sda``/``sdb`` builds the same disks when they come up as ``sdb``/``sda``.

Rules (beyond what the applier's own reading of the plan, ``storage_inventory.PlanView``, refuses)
    the partitions of a disk fit on it (GPT overhead included, a rest-of-disk partition keeps at least 1 MiB);
    an array has as many members as its level needs (raid0, raid1, raid10 2; raid4, raid5 3; raid6 4);
    a volume group's ``raid_level`` and ``disks`` agree with the array and partitions it sits on;
    the logical volumes of a volume group fit in what its PVs hold (the planner's own, conservative estimate:
    RAID members lose ``MDADM_RESERVE``, each PV ``LVM_METADATA``, LVs round up to 4 MiB extents);
    one file system is mounted at ``/``; labels are unique (file systems are mounted by label).
"""
from __future__ import annotations

import copy

from ansible_collections.prenixos.baseline.plugins.module_utils.plan_input import (
    PlanError,
    normalise_disks,
    wwn_key,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.planner import (
    EXTENT,
    GPT_OVERHEAD,
    LVM_METADATA,
    MDADM_RESERVE,
    data_disk_count,
    round_down,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_contract import (
    PLAN_VERSION,
    READABLE_PLAN_VERSIONS,
    human_size,
    partition_device,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_inventory import PlanView

MiB = 1024 ** 2
MIN_MEMBERS = {"raid0": 2, "raid1": 2, "raid10": 2, "raid4": 3, "raid5": 3, "raid6": 4}
SECTIONS = ("disks", "partitions", "arrays", "volume_groups", "logical_volumes")


class PlanRefused(PlanError):
    """The plan cannot be built on this machine; ``problems`` lists every reason."""

    def __init__(self, problems):
        super().__init__("the plan is refused, nothing was changed:\n" + "\n".join("  - " + p for p in problems))
        self.problems = problems


def review_plan(plan, disks):
    """``(plan bound to the kernel names of ``disks``, notes)``; ``PlanRefused`` naming every problem."""
    if not isinstance(plan, dict):
        raise PlanRefused(["a plan must be a mapping (the JSON storage_plan writes), got %s" % type(plan).__name__])
    problems = []
    if plan.get("version") not in READABLE_PLAN_VERSIONS:
        raise PlanRefused(["plan version %r is not one this collection reads (%s)"
                           % (plan.get("version"), ", ".join(map(str, READABLE_PLAN_VERSIONS)))])
    missing = [key for key in SECTIONS if not isinstance(plan.get(key), list)]
    if missing:
        raise PlanRefused(["the plan lacks %s (each a list)" % ", ".join(missing)])
    view = PlanView(plan, refuse=False)
    problems += view.errors
    present = {disk["name"]: disk for disk in normalise_disks(disks)}
    renames, notes = bind_disks(plan, present, problems)
    problems += rule_problems(view, present, renames)
    if problems:
        raise PlanRefused(problems)
    return bind(plan, renames, present), notes


# ---------------------------------------------------------------- binding


def bind_disks(plan, present, problems):
    """``({planned name: name now}, notes)``; what cannot be bound goes into ``problems``."""
    renames, notes, taken = {}, [], {}
    if plan["version"] < PLAN_VERSION:
        notes.append("plan version %s names disks by kernel name only: each is taken to be the disk that has "
                     "its name in this boot (plan again for a plan that names disks by WWN or serial)"
                     % plan["version"])
    for disk in plan["disks"]:
        if not isinstance(disk, dict) or not isinstance(disk.get("name"), str):
            continue  # PlanView names it
        name = disk["name"]
        found, how = find_disk(disk, present, plan["version"], notes)
        if len(found) != 1:
            problems.append("disk %s (%s): %s" % (
                name, how, "no disk of this machine has it" if not found
                else "ambiguous, %s all have it" % ", ".join(sorted(d["name"] for d in found))))
            continue
        now = found[0]
        called = name if now["name"] == name else "%s (now %s)" % (name, now["name"])
        if now["name"] in taken:
            problems.append("disk %s is the disk planned as %s too: a disk is used twice"
                            % (called, taken[now["name"]]))
            continue
        taken[now["name"]] = name
        if now["name"] != name:
            notes.append("disk %s (%s) is %s in this boot" % (name, how, now["name"]))
        if disk.get("size") != now["size"]:
            problems.append("disk %s (%s): planned for %s bytes, it has %d bytes (%s)"
                            % (called, how, disk.get("size"), now["size"], human_size(now["size"])))
        if now["boot_medium"]:
            problems.append("disk %s is the boot medium (the running system lives on it); it is never planned" % called)
        renames[name] = now["name"]
    return renames, notes


def find_disk(disk, present, version, notes):
    """``([matching disks present], how the disk was looked for)``."""
    identity = disk.get("identity") if version >= 2 else None
    if not identity:
        if version >= 2:
            notes.append("disk %s has no WWN, serial or by-id link: it is taken to be the disk named %s now"
                         % (disk["name"], disk["name"]))
        return [present[disk["name"]]] if disk["name"] in present else [], "kernel name"
    kind, value = (str(identity).split(":", 1) + [""])[:2]
    if kind == "wwn":
        key = wwn_key(value)
        return [d for d in present.values() if key is not None and d["wwn_key"] == key], identity
    if kind == "serial":
        return [d for d in present.values() if d["serial_key"] == value.strip().lower()], identity
    if kind == "by-id":
        return [d for d in present.values() if d["path"] == value], identity
    return [], "identity %r is not wwn:, serial: or by-id:" % identity


def bind(plan, renames, present):
    """A copy of ``plan`` with every kernel name of a planned disk replaced by its name now."""
    bound = copy.deepcopy(plan)
    devices = {}
    for part in bound["partitions"]:
        old = part["device"]
        part["disk"] = renames[part["disk"]]
        part["device"] = partition_device(part["disk"], part["number"])
        devices[old] = part["device"]
    for disk in bound["disks"]:
        disk["name"] = renames[disk["name"]]
        disk["dev"] = "/dev/" + disk["name"]
        disk["path"] = present[disk["name"]]["path"]
    for array in bound["arrays"]:
        array["devices"] = [devices.get(member, member) for member in array["devices"]]
    for vg in bound["volume_groups"]:
        vg["pvs"] = [devices.get(pv, pv) for pv in vg["pvs"]]
        vg["disks"] = [renames.get(name, name) for name in vg.get("disks") or []]
    return bound


# ---------------------------------------------------------------- the rules


def rule_problems(view, present, renames):
    sizes = partition_sizes(view, present, renames)
    problems = fit_problems(view, present, renames)
    problems += array_problems(view)
    problems += volume_group_problems(view, sizes)
    problems += mount_problems(view)
    return problems


def partition_sizes(view, present, renames):
    """``{partition device: bytes}``; a rest-of-disk partition gets what the others leave."""
    sizes = {}
    for name in view.disks:
        parts = view.partitions_on(name)
        disk_size = present[renames[name]]["size"] if name in renames else view.disks[name].get("size") or 0
        fixed = fixed_bytes(parts)
        for part in parts:
            size = part.get("size")
            sizes[part["device"]] = size if isinstance(size, int) else max(disk_size - GPT_OVERHEAD - fixed, 0)
    return sizes


def fixed_bytes(parts):
    """What the partitions of a fixed size take together."""
    return sum(p["size"] for p in parts if isinstance(p.get("size"), int))


def fit_problems(view, present, renames):
    problems = []
    for name in view.disks:
        if name not in renames:
            continue
        parts = view.partitions_on(name)
        disk_size = present[renames[name]]["size"]
        rest = [p for p in parts if not isinstance(p.get("size"), int)]
        need = fixed_bytes(parts) + GPT_OVERHEAD + (MiB if rest else 0)
        if len(rest) > 1:
            problems.append("disk %s: only one partition can take the rest of the disk (size null), %d do"
                            % (name, len(rest)))
        if need > disk_size:
            problems.append("disk %s: its partitions need %s, the disk has %s"
                            % (name, human_size(need), human_size(disk_size)))
    return problems


def array_problems(view):
    problems = []
    for name, array in view.arrays.items():
        level, count = array.get("level"), len(array.get("devices") or [])
        if level in MIN_MEMBERS and count < MIN_MEMBERS[level]:
            problems.append("array %s: %s needs at least %d members, it has %d"
                            % (name, level, MIN_MEMBERS[level], count))
    return problems


def volume_group_problems(view, sizes):
    problems = []
    for name, vg in view.vgs.items():
        arrays = [a for a in view.arrays.values() if a.get("device") in vg["pvs"]]
        level = arrays[0]["level"] if len(arrays) == 1 and len(vg["pvs"]) == 1 else "none"
        if not arrays and vg.get("raid_level") != "none" or arrays and vg.get("raid_level") != level:
            problems.append("volume group %s: raid_level %r, but its PVs are %s"
                            % (name, vg.get("raid_level"), "array %s (%s)" % (arrays[0]["name"], level)
                               if arrays else "plain partitions (none)"))
        members = [m for a in arrays for m in a["devices"]] + [pv for pv in vg["pvs"] if pv in view.partition_by_device]
        disks = sorted({view.partition_by_device[m]["disk"] for m in members if m in view.partition_by_device})
        if sorted(vg.get("disks") or []) != disks:
            problems.append("volume group %s: disks %s, but its PVs are on %s"
                            % (name, ", ".join(vg.get("disks") or []) or "none", ", ".join(disks)))
        holds = sum(round_down(pv_size(view, pv, sizes) - LVM_METADATA) for pv in vg["pvs"])
        lvs = [lv for lv in view.lvs if lv["vg"] == name and isinstance(lv.get("size"), int)]
        asks = sum(-(-lv["size"] // EXTENT) * EXTENT for lv in lvs)
        if asks > holds:
            problems.append("volume group %s holds about %s, its logical volumes ask for %s (%s)"
                            % (name, human_size(max(holds, 0)), human_size(asks),
                               ", ".join("%s %s" % (lv["name"], human_size(lv["size"])) for lv in lvs)))
    return problems


def pv_size(view, pv, sizes):
    array = next((a for a in view.arrays.values() if a.get("device") == pv), None)
    if array is None:
        return sizes.get(pv, 0)
    members = array.get("devices") or []
    member = round_down(min(sizes.get(m, 0) for m in members) - MDADM_RESERVE) if members else 0
    return member * max(data_disk_count(array.get("level"), len(members)), 0)


def mount_problems(view):
    problems = []
    filesystems = [p for p in view.partitions if p.get("filesystem")] + list(view.lvs)
    if not any(fs.get("mountpoint") == "/" for fs in filesystems):
        problems.append("no file system is mounted at / (NixOS needs its root)")
    seen = {}
    for fs in filesystems:
        label = fs.get("label")
        where = fs.get("device")
        if label and label in seen:
            problems.append("label %s is on %s and %s: file systems are mounted by label" % (label, seen[label], where))
        seen.setdefault(label, where)
    return problems
