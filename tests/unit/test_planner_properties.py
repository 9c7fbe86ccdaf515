"""Properties of the storage planner that hold for any set of disks (hypothesis)."""
from __future__ import annotations

import collections
import copy
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.prenixos.baseline.plugins.module_utils.planner import PlanError, plan_storage

MiB = 1024 ** 2
GiB = 1024 ** 3
TB = 1000 ** 4

ELIGIBLE_LOOKING_NAMES = ["sd" + letter for letter in "abcdefghijklmnop"] + ["nvme%dn1" % n for n in range(6)] + [
    "vda",
    "vdb",
]
NEVER_ELIGIBLE_NAMES = ["loop0", "sr0", "zram0", "md127", "dm-0", "nbd0", "ram0", "fd0"]
COMMON_SIZES = [0, GiB, 2 * GiB, 64 * GiB, 500 * 1000 ** 3, TB, 2 * TB, 4 * TB, 8 * TB, 16 * TB]


@st.composite
def disk_sizes(draw):
    """Mostly common sizes with a little jitter, so that groups form and split near the tolerance."""
    if draw(st.booleans()):
        return draw(st.integers(min_value=0, max_value=20 * TB))
    base = draw(st.sampled_from(COMMON_SIZES))
    return base + base * draw(st.integers(min_value=0, max_value=30)) // 1000


@st.composite
def disks(draw, name):
    return {
        "name": name,
        "type": draw(st.sampled_from(["disk"] * 8 + ["rom", "loop"])),
        "path": "/dev/disk/by-id/test-" + name,
        "dev": "/dev/" + name,
        "size": draw(disk_sizes()),
        "rotational": draw(st.booleans()),
        "removable": draw(st.sampled_from([False] * 5 + [True])),
        "read_only": draw(st.sampled_from([False] * 9 + [True])),
        "transport": draw(st.sampled_from([None, "sata", "sas", "nvme", "virtio", "usb"])),
        "model": None,
        "serial": None,
        "wwn": None,
        "boot_medium": draw(st.sampled_from([False] * 9 + [True])),
        "in_use": draw(st.booleans()),
        "in_use_reasons": [],
        "children": [],
    }


@st.composite
def machines(draw):
    """A machine's disks: unique names, eligible-looking ones and a few that never are."""
    names = draw(
        st.lists(st.sampled_from(ELIGIBLE_LOOKING_NAMES + NEVER_ELIGIBLE_NAMES), unique=True, min_size=0, max_size=14)
    )
    return [draw(disks(name)) for name in names]


@st.composite
def plan_options(draw):
    return {
        "redundant_main": draw(st.booleans()),
        "swap_on_ssd": draw(st.booleans()),
        "backups": draw(st.booleans()),
        "size_tolerance": draw(st.sampled_from([0.0, 0.01, 0.05])),
    }


RAM_SIZES = st.sampled_from([0, 512 * MiB, 8 * GiB, 64 * GiB, 1024 * GiB])


def plan_or_error(machine, ram, options):
    try:
        return plan_storage(machine, ram, options), None
    except PlanError as error:
        return None, error


@settings(deadline=None)
@given(st.data(), machines(), RAM_SIZES, plan_options())
def test_the_same_disks_in_any_order_give_an_identical_plan(data, machine, ram, options):
    shuffled = data.draw(st.permutations(machine))
    first, first_error = plan_or_error(machine, ram, options)
    second, second_error = plan_or_error(shuffled, ram, options)
    assert first == second
    assert str(first_error) == str(second_error)


@settings(deadline=None)
@given(machines(), RAM_SIZES, plan_options())
def test_every_disk_is_used_at_most_once(machine, ram, options):
    plan, _error = plan_or_error(machine, ram, options)
    if plan is None:
        return
    vg_disks = [name for vg in plan["volume_groups"] for name in vg["disks"]]
    assert len(vg_disks) == len(set(vg_disks))
    assert sorted(vg_disks) == sorted(d["name"] for d in plan["disks"])
    member_devices = [device for array in plan["arrays"] for device in array["devices"]]
    member_devices += [pv for vg in plan["volume_groups"] for pv in vg["pvs"] if not pv.startswith("/dev/md/")]
    assert len(member_devices) == len(set(member_devices))
    partition_keys = [(p["disk"], p["number"]) for p in plan["partitions"]]
    assert len(partition_keys) == len(set(partition_keys))
    assert all(p["disk"] in vg_disks for p in plan["partitions"])


@settings(deadline=None)
@given(machines(), RAM_SIZES, plan_options())
def test_excluded_disks_are_never_planned_and_every_disk_is_accounted_for(machine, ram, options):
    plan, error = plan_or_error(machine, ram, options)
    if plan is None:
        assert all(disk["name"] in str(error) for disk in machine)
        return
    excluded = {entry["disk"] for entry in plan["excluded"]}
    planned = {disk["name"] for disk in plan["disks"]}
    assert not excluded & planned
    assert not excluded & {p["disk"] for p in plan["partitions"]}
    assert excluded | planned == {disk["name"] for disk in machine}
    assert all(entry["reason"] for entry in plan["excluded"])


@settings(deadline=None)
@given(machines(), RAM_SIZES, plan_options())
def test_any_eligible_disk_gives_a_main_volume_group_with_root(machine, ram, options):
    plan, error = plan_or_error(machine, ram, options)
    if plan is None:
        assert str(error).startswith("No disk")
        return
    assert plan["volume_groups"][0]["name"] == "main"
    root = [lv for lv in plan["logical_volumes"] if lv["mountpoint"] == "/"]
    assert [(lv["vg"], lv["name"]) for lv in root] == [("main", "slash")]
    assert [p["mountpoint"] for p in plan["partitions"]].count("/boot") == 1


@settings(deadline=None)
@given(machines(), RAM_SIZES, plan_options())
def test_every_logical_volume_fits_its_volume_group(machine, ram, options):
    plan, _error = plan_or_error(machine, ram, options)
    if plan is None:
        return
    used = collections.Counter()
    for lv in plan["logical_volumes"]:
        assert lv["size"] >= 256 * MiB
        assert lv["size"] % (4 * MiB) == 0
        used[lv["vg"]] += lv["size"]
    for vg in plan["volume_groups"]:
        assert used[vg["name"]] <= vg["size"]


@settings(deadline=None)
@given(machines(), RAM_SIZES, plan_options())
def test_labels_are_unique_and_short(machine, ram, options):
    plan, _error = plan_or_error(machine, ram, options)
    if plan is None:
        return
    labels = [lv["label"] for lv in plan["logical_volumes"]]
    labels += [p["label"] for p in plan["partitions"] if p["label"] is not None]
    assert len(labels) == len(set(labels))
    assert all(0 < len(label) <= 16 for label in labels)
    partlabels = [p["partlabel"] for p in plan["partitions"]]
    assert len(partlabels) == len(set(partlabels))
    assert all(0 < len(partlabel) <= 36 for partlabel in partlabels)


# Two paths to one disk

def twin_name(index):
    """``vdaa``, ``vdab``...: after every name ``machines`` draws, in kernel order as in alphabetical order."""
    return "vd" + "abcdefghijklmnopqrstuvwxyz"[index // 26] + "abcdefghijklmnopqrstuvwxyz"[index % 26]


@settings(deadline=None)
@given(st.data(), machines(), RAM_SIZES, plan_options())
def test_a_second_path_to_any_disk_changes_nothing_but_the_excluded_list(data, machine, ram, options):
    machine = [dict(disk, wwn="0x5000c500%08x" % index) for index, disk in enumerate(machine)]
    originals = data.draw(st.lists(st.sampled_from(machine), unique_by=lambda disk: disk["name"])) if machine else []
    originals = [disk for disk in originals if disk["name"] in ELIGIBLE_LOOKING_NAMES]
    twins = [dict(disk, name=twin_name(index), dev="/dev/" + twin_name(index), path="/dev/" + twin_name(index))
             for index, disk in enumerate(originals)]
    plan, error = plan_or_error(machine, ram, options)
    with_twins, twin_error = plan_or_error(data.draw(st.permutations(machine + twins)), ram, options)
    if plan is None:
        # the same refusal ("No disk is eligible ...: " then every disk, the twins too)
        assert str(twin_error).partition(":")[0] == str(error).partition(":")[0]
        return
    # a twin has its original's reasons (the same facts) and one more
    own_reasons = {entry["disk"]: [entry["reason"]] for entry in plan["excluded"]}
    twin_entries = [
        {"disk": twin["name"], "reason": "; ".join(
            own_reasons.get(disk["name"], []) + ["second path to %s (same WWN %s)" % (disk["name"], disk["wwn"])])}
        for disk, twin in zip(originals, twins, strict=True)
    ]
    assert with_twins == dict(plan, excluded=sorted(plan["excluded"] + twin_entries, key=lambda entry: entry["disk"]))


# Any input: a plan or the planner's own clear error, never a traceback

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
# What disk_facts gives on a live USB stick with one SSD (tests/unit/fixtures/disks/usb_live_stick), options and RAM.
PLANNER_INPUT = {
    "disks": [
        {"name": "loop0", "type": "loop", "path": "/dev/loop0", "dev": "/dev/loop0", "size": 1176502272,
         "rotational": False, "removable": False, "read_only": True, "transport": None, "model": None,
         "serial": None, "wwn": None, "boot_medium": True, "in_use": True,
         "in_use_reasons": ["signature squashfs on loop0", "mounted: /run/live/rootfs/filesystem.squashfs"],
         "children": []},
        {"name": "sda", "type": "disk", "path": "/dev/disk/by-id/ata-INTEL_SSDSC2KB480G8_PHYF123456AB480BGN",
         "dev": "/dev/sda", "size": 480103981056, "rotational": False, "removable": False, "read_only": False,
         "transport": "sata", "model": "INTEL SSDSC2KB480G8", "serial": "PHYF123456AB480BGN",
         "wwn": "0x55cd2e4150a1b2c3", "boot_medium": False, "in_use": True,
         "in_use_reasons": ["partition table (gpt)", "partitions: sda1", "signature ext4 on sda1"],
         "children": [{"name": "sda1", "type": "part", "fstype": "ext4", "label": "old", "partlabel": None,
                       "mountpoints": []}]},
        {"name": "sdb", "type": "disk", "path": "/dev/disk/by-id/usb-SanDisk_Ultra_4C530001-0:0",
         "dev": "/dev/sdb", "size": 30752636928, "rotational": False, "removable": True, "read_only": False,
         "transport": "usb", "model": "Ultra", "serial": "4C530001", "wwn": None, "boot_medium": True,
         "in_use": True, "in_use_reasons": ["partition table (dos)", "mounted: /run/live/medium"], "children": []},
    ],
    "ram_bytes": 8 * GiB,
    "options": {"redundant_main": False, "swap_size": None, "size_tolerance": 0.01},
}


def places(value, path=()):
    """Every path into a JSON document below the document itself."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        yield path + (key,)
        yield from places(child, path + (key,))


@st.composite
def mutated_planner_input(draw):
    """``PLANNER_INPUT`` with one value replaced by any JSON value (infinity included) or one key dropped."""
    document = copy.deepcopy(PLANNER_INPUT)
    path = draw(st.sampled_from(list(places(PLANNER_INPUT))))
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(JSON_VALUES)
    return document


def test_the_unchanged_planner_input_is_planned():
    plan = plan_storage(PLANNER_INPUT["disks"], PLANNER_INPUT["ram_bytes"], PLANNER_INPUT["options"])
    assert ([d["name"] for d in plan["disks"]], [e["disk"] for e in plan["excluded"]]) == (["sda"], ["loop0", "sdb"])


@settings(max_examples=300, deadline=None)
@given(mutated_planner_input())
def test_any_planner_input_gives_a_plan_or_a_clear_error(document):
    try:
        plan = plan_storage(document.get("disks"), document.get("ram_bytes"), document.get("options"))
    except PlanError as error:
        assert str(error), "a PlanError must say what is wrong"
    else:
        assert json.loads(json.dumps(plan, allow_nan=False)) == plan
