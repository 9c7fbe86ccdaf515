"""A plan the operator brings: bound to this boot's kernel names by identity, refused with every problem at once."""
from __future__ import annotations

import copy

import pytest

from ansible_collections.prenixos.baseline.plugins.module_utils.plan_check import PlanRefused, review_plan
from ansible_collections.prenixos.baseline.plugins.module_utils.planner import plan_storage

MiB = 1024 ** 2
GiB = 1024 ** 3
RAM = 4 * GiB


def disk(name, size, rotational, serial, **facts):
    reported = {"name": name, "type": "disk", "path": "/dev/disk/by-id/ata-DISK_" + serial, "dev": "/dev/" + name,
                "size": size, "rotational": rotational, "removable": False, "read_only": False, "transport": "sata",
                "model": "DISK", "serial": serial, "wwn": None, "boot_medium": False, "in_use": False,
                "in_use_reasons": [], "children": []}
    reported.update(facts)
    return reported


def machine():
    """Two SSDs and four HDDs, each with a serial; sdb's WWN is known too."""
    return [disk("sda", 32 * GiB, False, "SSD1"), disk("sdb", 32 * GiB, False, "SSD2", wwn="0x5000c500a1b2c3d4"),
            disk("sdc", 8 * GiB, True, "HDD1"), disk("sdd", 8 * GiB, True, "HDD2"),
            disk("sde", 16 * GiB, True, "HDD3"), disk("sdf", 16 * GiB, True, "HDD4"),
            disk("sdg", 16 * GiB, True, "HDD5")]


def renamed(disks, names):
    """The same disks in another boot: ``names`` maps each old kernel name to the new one."""
    moved = []
    for facts in disks:
        new = names.get(facts["name"], facts["name"])
        moved.append(dict(facts, name=new, dev="/dev/" + new))
    return moved


def refusal(plan, disks):
    with pytest.raises(PlanRefused) as caught:
        review_plan(plan, disks)
    return caught.value.problems


@pytest.fixture
def plan():
    return plan_storage(machine(), RAM)


def test_the_plan_the_planner_made_is_accepted_unchanged(plan):
    bound, notes = review_plan(plan, machine())
    assert bound == plan and notes == []


@pytest.mark.parametrize("options", [{}, {"redundant_main": True}, {"backups": True, "swap_on_ssd": True}])
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_every_plan_the_planner_makes_is_accepted(options, count):
    disks = [disk("sd" + letter, (20 + i) * GiB, i % 2 == 1, "S%d" % i)
             for i, letter in zip(range(count * 2), "abcdefghij", strict=False)]
    made = plan_storage(disks, RAM, options)
    assert review_plan(made, disks)[0] == made


def test_after_a_name_swap_the_plan_builds_the_same_disks_under_their_new_names(plan):
    swapped = renamed(machine(), {"sda": "sdb", "sdb": "sda", "sdc": "sdg", "sdg": "sdc"})
    bound, notes = review_plan(plan, swapped)
    by_serial = {d["serial"]: d["name"] for d in swapped}
    # the operator is told which disk is which now, and only of the disks that moved
    assert sorted(note.split(" (")[0] for note in notes) == ["disk sda", "disk sdb", "disk sdc", "disk sdg"], notes
    assert any(note.startswith("disk sda (") and note.endswith("is sdb in this boot") for note in notes), notes
    for planned, now in zip(plan["disks"], bound["disks"], strict=True):
        assert now["name"] == by_serial[planned["serial"]] and now["dev"] == "/dev/" + now["name"]
    main = next(a for a in bound["arrays"] if a["name"] == "main")
    assert sorted(main["devices"]) == ["/dev/sda2", "/dev/sdb2"]
    esp_disks = {p["disk"]: p["label"] for p in bound["partitions"] if p["filesystem"] == "vfat"}
    old_esp = {p["disk"]: p["label"] for p in plan["partitions"] if p["filesystem"] == "vfat"}
    assert esp_disks == {"sdb": old_esp["sda"], "sda": old_esp["sdb"]}, "the ESP labels move with their disks"
    large = next(vg for vg in bound["volume_groups"] if vg["name"] == "large")
    assert "sdc" in large["disks"] and all(
        pv.startswith("/dev/md/") or pv[5:8] in large["disks"] for pv in large["pvs"])
    # the plan on the renamed machine is what the planner makes there, partition for partition
    assert sorted(bound["partitions"], key=lambda p: p["partlabel"]) == sorted(
        plan_storage(swapped, RAM)["partitions"], key=lambda p: p["partlabel"])


@pytest.mark.parametrize(("identity", "facts", "expected"), [
    ("wwn:naa.5000C500A1B2C3D4", {"name": "sdx"}, "sdx"),
    ("serial:SSD2", {"name": "sdx", "wwn": None}, "sdx"),
    ("by-id:/dev/disk/by-id/ata-DISK_SSD2", {"name": "sdx", "wwn": None, "serial": None}, "sdx"),
])
def test_each_identity_kind_finds_its_disk(plan, identity, facts, expected):
    edited = copy.deepcopy(plan)
    entry = next(d for d in edited["disks"] if d["name"] == "sdb")
    entry["identity"] = identity
    disks = [dict(d, **facts) if d["name"] == "sdb" else d for d in machine()]
    disks = [dict(d, dev="/dev/" + d["name"]) for d in disks]
    bound, _notes = review_plan(edited, disks)
    assert expected in {d["name"] for d in bound["disks"]} and "sdb" not in {d["name"] for d in bound["disks"]}


def test_a_missing_an_ambiguous_and_a_resized_disk_are_each_named(plan):
    disks = [d for d in machine() if d["name"] != "sdc"]
    disks = [dict(d, serial="HDD3") if d["name"] == "sdf" else d for d in disks]
    disks = [dict(d, size=d["size"] + GiB) if d["name"] == "sda" else d for d in disks]
    problems = refusal(plan, disks)
    assert any(p.startswith("disk sdc (serial:HDD1): no disk of this machine has it") for p in problems), problems
    assert any("disk sde (serial:HDD3): ambiguous, sde, sdf all have it" in p for p in problems), problems
    assert any(p.startswith("disk sda (serial:SSD1): planned for %d bytes, it has" % (32 * GiB)) for p in problems)
    assert not any("sdb" in p for p in problems), problems


def test_the_boot_medium_and_a_disk_used_twice_are_refused(plan):
    edited = copy.deepcopy(plan)
    edited["disks"][1]["identity"] = edited["disks"][0]["identity"]
    edited["disks"][1]["size"] = edited["disks"][0]["size"]
    disks = [dict(d, boot_medium=True) if d["name"] == "sdd" else d for d in machine()]
    problems = refusal(edited, disks)
    assert "disk sdb (now sda) is the disk planned as sda too: a disk is used twice" in problems, problems
    assert any(p.startswith("disk sdd is the boot medium") for p in problems), problems


def test_a_version_1_plan_is_read_by_kernel_name_and_says_so(plan):
    old = copy.deepcopy(plan)
    old["version"] = 1
    for entry in old["disks"]:
        for key in ("wwn", "serial", "identity"):
            del entry[key]
    bound, notes = review_plan(old, machine())
    assert [d["name"] for d in bound["disks"]] == [d["name"] for d in plan["disks"]]
    assert notes and notes[0].startswith("plan version 1 names disks by kernel name only")
    swapped = renamed(machine(), {"sda": "sdc", "sdc": "sda"})
    problems = refusal(old, swapped)
    assert any(p.startswith("disk sda (kernel name): planned for") for p in problems), problems


def edit_main_to(plan, level):
    edited = copy.deepcopy(plan)
    next(a for a in edited["arrays"] if a["name"] == "main")["level"] = level
    next(vg for vg in edited["volume_groups"] if vg["name"] == "main")["raid_level"] = level
    return edited


def lv(plan, vg, name):
    return next(v for v in plan["logical_volumes"] if (v["vg"], v["name"]) == (vg, name))


def test_main_as_raid1_is_accepted_when_its_volumes_fit_and_refused_when_they_do_not(plan):
    edited = edit_main_to(plan, "raid1")
    lv(edited, "main", "slash")["size"] = 20 * GiB
    lv(edited, "main", "home")["size"] = 4 * GiB
    bound, _notes = review_plan(edited, machine())
    assert next(a for a in bound["arrays"] if a["name"] == "main")["level"] == "raid1"
    lv(edited, "main", "slash")["size"] = 40 * GiB
    problems = refusal(edited, machine())
    assert any(p.startswith("volume group main holds about") and "slash 40.0 GiB" in p for p in problems), problems


def test_every_rule_a_hand_written_plan_breaks_is_listed_at_once(plan):
    edited = copy.deepcopy(plan)
    next(a for a in edited["arrays"] if a["name"] == "large")["level"] = "raid6"  # three members
    next(vg for vg in edited["volume_groups"] if vg["name"] == "large")["raid_level"] = "raid6"
    next(a for a in edited["arrays"] if a["name"] == "main")["level"] = "raid1"  # the VG still says raid0
    edited["logical_volumes"].append(dict(lv(edited, "main", "home"), vg="fast", device="/dev/fast/home"))
    lv(edited, "main", "home")["label"] = "slash"
    esp = next(p for p in edited["partitions"] if p["disk"] == "sda" and p["number"] == 1)
    esp["size"] = 64 * GiB
    lv(edited, "main", "slash")["mountpoint"] = "/srv"
    problems = refusal(edited, machine())
    expected = [
        "logical volume fast/home: not a named volume of a planned VG",
        "array large: raid6 needs at least 4 members, it has 3",
        "volume group main: raid_level 'raid0', but its PVs are array main (raid1)",
        "disk sda: its partitions need 64.0 GiB, the disk has 32.0 GiB",
        "no file system is mounted at / (NixOS needs its root)",
        "label slash is on /dev/main/slash and /dev/main/home: file systems are mounted by label",
    ]
    for line in expected:
        assert any(p.startswith(line) for p in problems), (line, problems)
    message = str(pytest.raises(PlanRefused, review_plan, edited, machine()).value)
    assert message.startswith("the plan is refused, nothing was changed:") and message.count("\n  - ") == len(problems)


@pytest.mark.parametrize("broken", [None, [], "plan", {"version": 7}, {"version": 2, "disks": []}])
def test_what_is_not_a_plan_is_refused_with_a_reason(broken):
    problems = refusal(broken, machine())
    assert len(problems) == 1 and problems[0], problems


def test_a_volume_group_whose_disks_do_not_match_its_pvs_is_refused(plan):
    edited = copy.deepcopy(plan)
    vg = next(vg for vg in edited["volume_groups"] if vg["name"] == "main")
    vg["disks"] = ["sda"]
    assert "volume group main: disks sda, but its PVs are on sda, sdb" in refusal(edited, machine())


def test_binding_never_changes_the_plan_it_was_given(plan):
    before = copy.deepcopy(plan)
    review_plan(plan, renamed(machine(), {"sda": "sdb", "sdb": "sda"}))
    assert plan == before


def test_two_partitions_that_both_take_the_rest_of_a_disk_are_refused(plan):
    edited = copy.deepcopy(plan)
    esp = next(p for p in edited["partitions"] if p["disk"] == "sda" and p["number"] == 1)
    esp["size"] = None
    assert "disk sda: only one partition can take the rest of the disk (size null), 2 do" in refusal(edited, machine())
