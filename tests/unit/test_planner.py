"""The storage planner: the spec's rule table, the reference layouts, eligibility and capacity."""
from __future__ import annotations

import itertools

import pytest

from ansible_collections.prenixos.baseline.plugins.module_utils.planner import PlanError, plan_storage

MiB = 1024 ** 2
GiB = 1024 ** 3
TB = 1000 ** 4
RAM = 16 * GiB


def disk(name, size, rotational, **facts):
    """A disk as disk_facts reports it: an idle, fixed SATA disk unless ``facts`` say otherwise."""
    reported = {
        "name": name,
        "type": "disk",
        "path": "/dev/disk/by-id/wwn-" + name,
        "dev": "/dev/" + name,
        "size": size,
        "rotational": rotational,
        "removable": False,
        "read_only": False,
        "transport": "sata",
        "model": None,
        "serial": None,
        "wwn": None,
        "boot_medium": False,
        "in_use": False,
        "in_use_reasons": [],
        "children": [],
    }
    reported.update(facts)
    return reported


def ssd(name, size=TB, **facts):
    return disk(name, size, False, **facts)


def hdd(name, size=4 * TB, **facts):
    return disk(name, size, True, **facts)


def layout(plan):
    """The shape of a plan in one comparable value: VGs (name, RAID, class, disks) and LVs (vg, name, mount)."""
    return {
        "volume_groups": [(vg["name"], vg["raid_level"], vg["class"], vg["disks"]) for vg in plan["volume_groups"]],
        "logical_volumes": [(lv["vg"], lv["name"], lv["mountpoint"]) for lv in plan["logical_volumes"]],
    }


MAIN_LVS = [("main", "slash", "/"), ("main", "home", "/home")]


# The rule table, row by row

def test_the_ssd_group_with_the_largest_usable_capacity_becomes_main():
    # a RAID0 pair of 1 TB (2 TB usable) beats a single 1.5 TB SSD
    plan = plan_storage([ssd("sda"), ssd("sdb"), ssd("sdc", 1500 * 1000 ** 3)], RAM)
    assert layout(plan) == {
        "volume_groups": [("main", "raid0", "ssd", ["sda", "sdb"]), ("main_1", "none", "ssd", ["sdc"])],
        "logical_volumes": MAIN_LVS,
    }


def test_further_ssd_groups_become_numbered_main_groups_without_volumes():
    disks = [ssd("nvme0n1", 4 * TB), ssd("sda", 2 * TB), ssd("sdb", 2 * TB), ssd("sdc", TB)]
    plan = plan_storage(disks, RAM)
    assert layout(plan) == {
        "volume_groups": [
            ("main", "raid0", "ssd", ["sda", "sdb"]),
            ("main_1", "none", "ssd", ["nvme0n1"]),
            ("main_2", "none", "ssd", ["sdc"]),
        ],
        "logical_volumes": MAIN_LVS,
    }
    assert "VG main_1 (ssd, none) gets no logical volume and is not mounted" in plan["notes"]


def test_further_ssd_groups_follow_the_redundant_main_rule():
    disks = [ssd("sda"), ssd("sdb"), ssd("sdc"), ssd("sdd", 500 * 1000 ** 3), ssd("sde", 500 * 1000 ** 3)]
    plan = plan_storage(disks, RAM, {"redundant_main": True})
    assert layout(plan)["volume_groups"] == [
        ("main", "raid5", "ssd", ["sda", "sdb", "sdc"]),
        ("main_1", "raid1", "ssd", ["sdd", "sde"]),
    ]


def test_an_hdd_pair_becomes_the_swap_mirror():
    plan = plan_storage([ssd("nvme0n1"), hdd("sda"), hdd("sdb")], RAM)
    assert layout(plan) == {
        "volume_groups": [("main", "none", "ssd", ["nvme0n1"]), ("swap", "raid1", "hdd", ["sda", "sdb"])],
        "logical_volumes": MAIN_LVS + [("swap", "swap", None)],
    }
    assert plan["arrays"] == [
        {"name": "swap", "device": "/dev/md/swap", "level": "raid1", "devices": ["/dev/sda1", "/dev/sdb1"],
         "metadata": "1.2"},
    ]


def test_only_the_smallest_hdd_pair_is_swap_other_pairs_join_the_large_tier_as_mirrors():
    disks = [ssd("nvme0n1"), hdd("sda", 8 * TB), hdd("sdb", 8 * TB), hdd("sdc", 2 * TB), hdd("sdd", 2 * TB),
             hdd("sde", 4 * TB), hdd("sdf", 4 * TB)]
    plan = plan_storage(disks, RAM)
    assert layout(plan) == {
        "volume_groups": [
            ("main", "none", "ssd", ["nvme0n1"]),
            ("swap", "raid1", "hdd", ["sdc", "sdd"]),
            ("large", "raid1", "hdd", ["sda", "sdb"]),
            ("large_1", "raid1", "hdd", ["sde", "sdf"]),
        ],
        "logical_volumes": MAIN_LVS + [("swap", "swap", None), ("large", "data", "/data")],
    }


@pytest.mark.parametrize(
    ("count", "raid_level"), [(3, "raid5"), (4, "raid5"), (5, "raid6"), (8, "raid6")]
)
def test_an_hdd_group_of_three_or_more_joins_the_large_tier_with_parity(count, raid_level):
    hdds = [hdd("sd" + chr(ord("a") + index)) for index in range(count)]
    plan = plan_storage([ssd("nvme0n1")] + hdds, RAM)
    assert layout(plan) == {
        "volume_groups": [
            ("main", "none", "ssd", ["nvme0n1"]),
            ("large", raid_level, "hdd", [d["name"] for d in hdds]),
        ],
        "logical_volumes": MAIN_LVS + [("large", "swap", None), ("large", "data", "/data")],
    }


def test_a_single_hdd_is_a_plain_large_tier_member():
    plan = plan_storage([ssd("nvme0n1"), hdd("sda")], RAM)
    assert layout(plan) == {
        "volume_groups": [("main", "none", "ssd", ["nvme0n1"]), ("large", "none", "hdd", ["sda"])],
        "logical_volumes": MAIN_LVS + [("large", "swap", None), ("large", "data", "/data")],
    }
    assert plan["arrays"] == []
    assert [p for p in plan["partitions"] if p["disk"] == "sda"] == [
        {"disk": "sda", "number": 1, "device": "/dev/sda1", "type_code": "8E00", "size": None,
         "partlabel": "large-pv1", "filesystem": None, "label": None, "mountpoint": None},
    ]


def test_the_large_tier_group_with_the_largest_usable_capacity_is_large_the_others_numbered():
    # three 4 TB in RAID5 (8 TB usable) beat one 10 TB disk, which beats one 6 TB disk
    disks = [ssd("nvme0n1"), hdd("sda"), hdd("sdb"), hdd("sdc"), hdd("sdd", 10 * TB), hdd("sde", 6 * TB)]
    plan = plan_storage(disks, RAM)
    assert layout(plan) == {
        "volume_groups": [
            ("main", "none", "ssd", ["nvme0n1"]),
            ("large", "none", "hdd", ["sdd"]),
            ("large_1", "raid5", "hdd", ["sda", "sdb", "sdc"]),
            ("large_2", "none", "hdd", ["sde"]),
        ],
        "logical_volumes": MAIN_LVS + [("large", "swap", None), ("large", "data", "/data")],
    }


def test_without_ssd_main_goes_on_the_hdd_group_with_the_largest_usable_capacity_before_swap_and_large():
    # the 4-disk RAID5 (12 TB) takes main; the smaller pair still becomes swap, the single disk large
    disks = [hdd("sda"), hdd("sdb"), hdd("sdc"), hdd("sdd"), hdd("sde", 2 * TB), hdd("sdf", 2 * TB),
             hdd("sdg", 8 * TB)]
    plan = plan_storage(disks, RAM)
    assert layout(plan) == {
        "volume_groups": [
            ("main", "raid5", "hdd", ["sda", "sdb", "sdc", "sdd"]),
            ("swap", "raid1", "hdd", ["sde", "sdf"]),
            ("large", "none", "hdd", ["sdg"]),
        ],
        "logical_volumes": MAIN_LVS + [("swap", "swap", None), ("large", "data", "/data")],
    }
    assert "no SSD is eligible: VG main is on HDDs (raid5)" in plan["notes"]


# Reference layouts

def test_one_nvme_gets_an_esp_and_a_plain_main_with_slash_and_home():
    nvme = ssd("nvme0n1", 100 * GiB, transport="nvme", path="/dev/disk/by-id/nvme-Samsung_X")
    plan = plan_storage([nvme], RAM)
    # 100 GiB - 2 MiB GPT - 1 GiB ESP - 4 MiB LVM = 101370 MiB, rounded down to extents
    vg_size = 101368 * MiB
    # a quarter of what / leaves is below 16 GiB
    home_size = (vg_size - 50 * GiB) // 4 // (4 * MiB) * (4 * MiB)
    assert {key: value for key, value in plan.items() if key != "options"} == {
        "version": 2,
        "disks": [
            {"name": "nvme0n1", "path": "/dev/disk/by-id/nvme-Samsung_X", "dev": "/dev/nvme0n1", "size": 100 * GiB,
             "wwn": None, "serial": None, "identity": "by-id:/dev/disk/by-id/nvme-Samsung_X",
             "class": "ssd", "vg": "main"},
        ],
        "excluded": [],
        "partitions": [
            {"disk": "nvme0n1", "number": 1, "device": "/dev/nvme0n1p1", "type_code": "EF00", "size": GiB,
             "partlabel": "main-esp1", "filesystem": "vfat", "label": "EFI", "mountpoint": "/boot"},
            {"disk": "nvme0n1", "number": 2, "device": "/dev/nvme0n1p2", "type_code": "8E00", "size": None,
             "partlabel": "main-pv1", "filesystem": None, "label": None, "mountpoint": None},
        ],
        "arrays": [],
        "volume_groups": [
            {"name": "main", "raid_level": "none", "disks": ["nvme0n1"], "class": "ssd", "pvs": ["/dev/nvme0n1p2"],
             "size": vg_size},
        ],
        "logical_volumes": [
            {"vg": "main", "name": "slash", "device": "/dev/main/slash", "size": 50 * GiB, "filesystem": "ext4",
             "label": "slash", "mountpoint": "/", "inode_ratio": None},
            {"vg": "main", "name": "home", "device": "/dev/main/home", "size": home_size, "filesystem": "ext4",
             "label": "home", "mountpoint": "/home", "inode_ratio": None},
        ],
        "notes": ["no swap volume: there is no HDD volume group and swap_on_ssd is false"],
    }
    assert home_size == 12540 * MiB


def test_two_ssds_become_a_raid0_main_with_an_esp_on_each():
    plan = plan_storage([ssd("sdb"), ssd("sda")], RAM)
    assert layout(plan) == {"volume_groups": [("main", "raid0", "ssd", ["sda", "sdb"])], "logical_volumes": MAIN_LVS}
    assert plan["partitions"] == [
        {"disk": "sda", "number": 1, "device": "/dev/sda1", "type_code": "EF00", "size": GiB,
         "partlabel": "main-esp1", "filesystem": "vfat", "label": "EFI", "mountpoint": "/boot"},
        {"disk": "sda", "number": 2, "device": "/dev/sda2", "type_code": "FD00", "size": None,
         "partlabel": "main-raid1", "filesystem": None, "label": None, "mountpoint": None},
        {"disk": "sdb", "number": 1, "device": "/dev/sdb1", "type_code": "EF00", "size": GiB,
         "partlabel": "main-esp2", "filesystem": "vfat", "label": "EFI2", "mountpoint": None},
        {"disk": "sdb", "number": 2, "device": "/dev/sdb2", "type_code": "FD00", "size": None,
         "partlabel": "main-raid2", "filesystem": None, "label": None, "mountpoint": None},
    ]
    assert plan["arrays"] == [
        {"name": "main", "device": "/dev/md/main", "level": "raid0", "devices": ["/dev/sda2", "/dev/sdb2"],
         "metadata": "1.2"},
    ]
    assert plan["volume_groups"][0]["pvs"] == ["/dev/md/main"]


def test_two_ssds_become_a_raid1_main_with_redundant_main():
    plan = plan_storage([ssd("sda"), ssd("sdb")], RAM, {"redundant_main": True})
    assert layout(plan) == {"volume_groups": [("main", "raid1", "ssd", ["sda", "sdb"])], "logical_volumes": MAIN_LVS}
    assert plan["arrays"][0]["level"] == "raid1"


@pytest.mark.parametrize(
    ("count", "raid_level"), [(3, "raid5"), (4, "raid5"), (5, "raid6"), (6, "raid6")]
)
def test_redundant_main_uses_parity_for_three_or_more_ssds(count, raid_level):
    ssds = [ssd("sd" + chr(ord("a") + index)) for index in range(count)]
    plan = plan_storage(ssds, RAM, {"redundant_main": True})
    assert layout(plan)["volume_groups"] == [("main", raid_level, "ssd", [d["name"] for d in ssds])]


def test_two_ssds_two_hdds_and_four_larger_hdds():
    disks = [ssd("sda"), ssd("sdb"), hdd("sdc", 2 * TB), hdd("sdd", 2 * TB)]
    disks += [hdd(name, 8 * TB) for name in ("sde", "sdf", "sdg", "sdh")]
    plan = plan_storage(disks, RAM)
    assert layout(plan) == {
        "volume_groups": [
            ("main", "raid0", "ssd", ["sda", "sdb"]),
            ("swap", "raid1", "hdd", ["sdc", "sdd"]),
            ("large", "raid5", "hdd", ["sde", "sdf", "sdg", "sdh"]),
        ],
        "logical_volumes": MAIN_LVS + [("swap", "swap", None), ("large", "data", "/data")],
    }
    assert [(a["name"], a["level"], a["devices"]) for a in plan["arrays"]] == [
        ("main", "raid0", ["/dev/sda2", "/dev/sdb2"]),
        ("swap", "raid1", ["/dev/sdc1", "/dev/sdd1"]),
        ("large", "raid5", ["/dev/sde1", "/dev/sdf1", "/dev/sdg1", "/dev/sdh1"]),
    ]
    swap = plan["logical_volumes"][2]
    assert swap == {"vg": "swap", "name": "swap", "device": "/dev/swap/swap", "size": RAM, "filesystem": "swap",
                    "label": "swap", "mountpoint": None, "inode_ratio": None}


def test_two_hdds_only_make_a_mirrored_main_that_also_holds_swap():
    plan = plan_storage([hdd("sda"), hdd("sdb")], RAM)
    assert layout(plan) == {
        "volume_groups": [("main", "raid1", "hdd", ["sda", "sdb"])],
        "logical_volumes": MAIN_LVS + [("main", "swap", None)],
    }
    assert [p["partlabel"] for p in plan["partitions"]] == ["main-esp1", "main-raid1", "main-esp2", "main-raid2"]


def test_four_hdds_only_make_a_raid5_main_that_also_holds_swap():
    plan = plan_storage([hdd("sda"), hdd("sdb"), hdd("sdc"), hdd("sdd")], RAM)
    assert layout(plan) == {
        "volume_groups": [("main", "raid5", "hdd", ["sda", "sdb", "sdc", "sdd"])],
        "logical_volumes": MAIN_LVS + [("main", "swap", None)],
    }


def test_two_ssds_of_different_sizes_make_main_on_the_larger_and_main_1_on_the_other():
    plan = plan_storage([ssd("sda", 500 * 1000 ** 3), ssd("sdb", TB)], RAM)
    assert layout(plan) == {
        "volume_groups": [("main", "none", "ssd", ["sdb"]), ("main_1", "none", "ssd", ["sda"])],
        "logical_volumes": MAIN_LVS,
    }
    assert [(p["disk"], p["partlabel"], p["type_code"]) for p in plan["partitions"]] == [
        ("sda", "main_1-pv1", "8E00"),
        ("sdb", "main-esp1", "EF00"),
        ("sdb", "main-pv1", "8E00"),
    ]


def test_the_usb_stick_and_the_boot_medium_are_excluded_with_their_reasons():
    disks = [
        ssd("sda"),
        ssd("sdb", 32 * 1000 ** 3, transport="usb", removable=True, boot_medium=True, in_use=True),
        hdd("sdc", boot_medium=True, in_use=True, in_use_reasons=["mounted: /"]),
    ]
    plan = plan_storage(disks, RAM)
    assert plan["excluded"] == [
        {"disk": "sdb", "reason": "removable; on USB; boot medium (the running system lives on it)"},
        {"disk": "sdc", "reason": "boot medium (the running system lives on it)"},
    ]
    assert layout(plan) == {"volume_groups": [("main", "none", "ssd", ["sda"])], "logical_volumes": MAIN_LVS}
    assert [d["name"] for d in plan["disks"]] == ["sda"]


def test_sizes_within_one_percent_form_one_group():
    plan = plan_storage([ssd("sda", 1000 * 1000 ** 3), ssd("sdb", 1009 * 1000 ** 3)], RAM)
    assert layout(plan)["volume_groups"] == [("main", "raid0", "ssd", ["sda", "sdb"])]


def test_the_tolerance_is_inclusive_at_exactly_one_percent():
    plan = plan_storage([ssd("sda", 100 * GiB), ssd("sdb", 101 * GiB)], RAM)
    assert layout(plan)["volume_groups"] == [("main", "raid0", "ssd", ["sda", "sdb"])]


def test_sizes_five_percent_apart_form_separate_groups():
    plan = plan_storage([hdd("sda", 4000 * 1000 ** 3), hdd("sdb", 4200 * 1000 ** 3)], RAM)
    assert layout(plan)["volume_groups"] == [("main", "none", "hdd", ["sdb"]), ("large", "none", "hdd", ["sda"])]


def test_a_wider_size_tolerance_groups_them_again():
    disks = [hdd("sda", 4000 * 1000 ** 3), hdd("sdb", 4200 * 1000 ** 3)]
    plan = plan_storage(disks, RAM, {"size_tolerance": 0.05})
    assert layout(plan)["volume_groups"] == [("main", "raid1", "hdd", ["sda", "sdb"])]


def test_three_ssds_group_the_same_way_in_every_input_order():
    # 0.8 % and 1.6 % above the smallest: the first two group, the third stays alone, whatever the order
    disks = [ssd("sda", 1000 * 1000 ** 3), ssd("sdb", 1008 * 1000 ** 3), ssd("sdc", 1016 * 1000 ** 3)]
    plans = [plan_storage(list(order), RAM) for order in itertools.permutations(disks)]
    assert all(plan == plans[0] for plan in plans)
    assert layout(plans[0])["volume_groups"] == [
        ("main", "raid0", "ssd", ["sda", "sdb"]),
        ("main_1", "none", "ssd", ["sdc"]),
    ]


def test_no_eligible_disk_fails_with_every_disk_and_its_reason():
    disks = [
        ssd("sda", 64 * 1000 ** 3, transport="usb", removable=True, boot_medium=True),
        disk("sr0", 0, False, type="rom", removable=True),
        disk("loop0", 2 * GiB, False, type="loop"),
        disk("zram0", 8 * GiB, False),
        disk("md127", TB, False, type="raid1"),
        disk("dm-0", TB, False, type="lvm"),
        ssd("sdb", read_only=True),
        ssd("sdc", GiB),
    ]
    with pytest.raises(PlanError) as error:
        plan_storage(disks, RAM)
    assert str(error.value) == "\n".join(
        [
            "No disk is eligible for the storage plan:",
            "  - dm-0: device-mapper device",
            "  - loop0: loop device",
            "  - md127: software RAID device",
            "  - sda: removable; on USB; boot medium (the running system lives on it)",
            "  - sdb: read-only",
            "  - sdc: 1.0 GiB, smaller than the 2.0 GiB minimum",
            "  - sr0: optical drive; removable; size 0 (no medium)",
            "  - zram0: compressed RAM device",
        ]
    )


def test_no_disk_at_all_fails_saying_so():
    with pytest.raises(PlanError, match="no disk was reported at all"):
        plan_storage([], RAM)


# Eligibility and class details

def test_every_never_eligible_kind_is_excluded_by_name_even_when_typed_disk():
    names = ["loop3", "ram0", "zram1", "nbd0", "fd0", "sr1", "md0", "dm-2"]
    plan = plan_storage([ssd("sda")] + [ssd(name) for name in names], RAM)
    assert {entry["disk"]: entry["reason"] for entry in plan["excluded"]} == {
        "dm-2": "device-mapper device",
        "fd0": "floppy drive",
        "loop3": "loop device",
        "md0": "software RAID device",
        "nbd0": "network block device",
        "ram0": "RAM disk",
        "sr1": "optical drive",
        "zram1": "compressed RAM device",
    }


def test_class_comes_from_rotational_not_from_transport():
    plan = plan_storage([disk("sda", TB, True, transport="nvme"), disk("sdb", TB, False, transport=None)], RAM)
    assert layout(plan)["volume_groups"] == [("main", "none", "ssd", ["sdb"]), ("large", "none", "hdd", ["sda"])]


def test_a_disk_in_use_is_planned_as_a_blank_one_so_building_the_plan_does_not_change_it():
    blank = plan_storage([ssd("sda"), hdd("sdb"), hdd("sdc")], RAM)
    old_stack = plan_storage([ssd("sda"), hdd("sdb", in_use=True, in_use_reasons=["signature linux_raid_member"]),
                              hdd("sdc", in_use=True, in_use_reasons=["signature linux_raid_member"])], RAM)
    built = plan_storage([ssd("sda", in_use=True, in_use_reasons=["logical volume main-slash"]),
                          hdd("sdb", in_use=True, in_use_reasons=["logical volume swap-swap"]),
                          hdd("sdc", in_use=True, in_use_reasons=["logical volume swap-swap"])], RAM)
    assert blank == old_stack == built
    assert [disk["name"] for disk in built["disks"]] == ["sda", "sdb", "sdc"]


def test_partition_devices_get_a_p_when_the_disk_name_ends_in_a_digit():
    plan = plan_storage([ssd("nvme0n1"), ssd("nvme1n1"), ssd("mmcblk0", 64 * GiB), hdd("vda")], RAM)
    assert sorted(p["device"] for p in plan["partitions"]) == [
        "/dev/mmcblk0p1",
        "/dev/nvme0n1p1",
        "/dev/nvme0n1p2",
        "/dev/nvme1n1p1",
        "/dev/nvme1n1p2",
        "/dev/vda1",
    ]


# Ties

def test_equal_usable_capacity_prefers_more_disks():
    # a RAID0 pair of 1 TB and a single 2 TB disk both give 2 TB
    plan = plan_storage([ssd("sda", 2 * TB), ssd("sdb"), ssd("sdc")], RAM)
    assert layout(plan)["volume_groups"] == [
        ("main", "raid0", "ssd", ["sdb", "sdc"]),
        ("main_1", "none", "ssd", ["sda"]),
    ]


def test_the_large_tier_is_ranked_by_usable_capacity_and_the_smaller_pair_is_swap():
    disks = [ssd("nvme0n1"), hdd("sdc"), hdd("sdd"), hdd("sda", int(4.1 * TB)), hdd("sdb", int(4.1 * TB))]
    disks += [hdd("sde", 3 * TB), hdd("sdf", int(4.2 * TB))]
    plan = plan_storage(disks, RAM)
    assert layout(plan)["volume_groups"][1:] == [
        ("swap", "raid1", "hdd", ["sdc", "sdd"]),
        ("large", "none", "hdd", ["sdf"]),
        ("large_1", "raid1", "hdd", ["sda", "sdb"]),
        ("large_2", "none", "hdd", ["sde"]),
    ]


# Capacity estimate and logical volume sizes

def test_volume_group_sizes_are_conservative_estimates():
    disks = [ssd("sda", 100 * GiB), ssd("sdb", 100 * GiB), hdd("sdc", 100 * GiB), hdd("sdd", 100 * GiB)]
    disks += [hdd(name, 200 * GiB) for name in ("sde", "sdf", "sdg")]
    sizes = {vg["name"]: vg["size"] for vg in plan_storage(disks, RAM)["volume_groups"]}
    assert sizes == {
        # per member: 102400 MiB - 2 GPT - 1024 ESP - 136 mdadm = 101238 -> 101236; x2; - 4 LVM
        "main": 202468 * MiB,
        # per member: 102400 - 2 - 136 = 102262 -> 102260; x1; - 4
        "swap": 102256 * MiB,
        # per member: 204800 - 2 - 136 = 204662 -> 204660; x2; - 4
        "large": 409316 * MiB,
    }


def test_logical_volumes_never_exceed_their_volume_group():
    plan = plan_storage([hdd("sda", 60 * GiB), hdd("sdb", 60 * GiB)], 64 * GiB)
    main_size = plan["volume_groups"][0]["size"]
    sizes = [(lv["name"], lv["size"]) for lv in plan["logical_volumes"]]
    home = (main_size - 50 * GiB) // 4 // (4 * MiB) * (4 * MiB)
    swap = main_size - 50 * GiB - home
    assert sizes == [("slash", 50 * GiB), ("home", home), ("swap", swap)]
    assert plan["notes"][-1] == "main/swap clipped to %.1f GiB (32.0 GiB requested)" % (swap / GiB)


def test_default_swap_follows_the_ram_size_up_to_32_gib():
    plan = plan_storage([ssd("sda"), hdd("sdb", 200 * GiB)], 256 * GiB)
    assert [lv["size"] for lv in plan["logical_volumes"] if lv["name"] == "swap"] == [32 * GiB]


def test_a_volume_below_256_mib_is_left_out_with_a_note():
    plan = plan_storage([ssd("sda", 3 * GiB)], RAM)
    assert layout(plan)["logical_volumes"] == [("main", "slash", "/")]
    assert plan["logical_volumes"][0]["size"] == 2040 * MiB  # 3072 - 2 - 1024 - 4 = 2042, down to extents
    assert "main/home left out: only 0 B available (0 B requested, the minimum is 256.0 MiB)" in plan["notes"]


def test_swap_stays_off_ssd_unless_asked():
    assert layout(plan_storage([ssd("sda")], RAM))["logical_volumes"] == MAIN_LVS
    plan = plan_storage([ssd("sda")], RAM, {"swap_on_ssd": True})
    assert layout(plan)["logical_volumes"] == MAIN_LVS + [("main", "swap", None)]
    assert plan["logical_volumes"][2]["size"] == RAM


def test_swap_size_defaults_to_ram_and_can_be_set():
    plan = plan_storage([ssd("sda"), hdd("sdb")], 12 * GiB + 1)
    assert plan["options"]["swap_size"] == 12 * GiB + 1
    assert plan["logical_volumes"][2]["size"] == 12 * GiB  # rounded down to the 4 MiB extent
    plan = plan_storage([ssd("sda"), hdd("sdb")], 12 * GiB, {"swap_size": 2 * GiB})
    assert plan["logical_volumes"][2]["size"] == 2 * GiB


def test_backups_give_the_data_volume_a_dense_inode_table():
    disks = [ssd("sda"), hdd("sdb"), hdd("sdc"), hdd("sdd")]
    assert plan_storage(disks, RAM)["logical_volumes"][-1]["inode_ratio"] is None
    data = plan_storage(disks, RAM, {"backups": True})["logical_volumes"][-1]
    assert (data["name"], data["mountpoint"], data["inode_ratio"]) == ("data", "/data", 2048)


def test_data_takes_the_rest_of_large_after_swap():
    plan = plan_storage([ssd("sda"), hdd("sdb")], RAM)
    large = plan["volume_groups"][1]
    swap, data = plan["logical_volumes"][2:]
    assert (swap["vg"], data["vg"]) == ("large", "large")
    assert swap["size"] + data["size"] == large["size"]


def test_sizes_and_vg_names_can_be_changed():
    options = {"slash_size": 20 * GiB, "home_size": 4 * GiB, "esp_size": 512 * MiB, "main_vg": "system",
               "swap_vg": "sw", "large_vg": "bulk"}
    plan = plan_storage([ssd("sda"), hdd("sdb"), hdd("sdc"), hdd("sdd"), hdd("sde", 2 * TB)], RAM, options)
    assert layout(plan) == {
        "volume_groups": [
            ("system", "none", "ssd", ["sda"]),
            ("bulk", "raid5", "hdd", ["sdb", "sdc", "sdd"]),
            ("bulk_1", "none", "hdd", ["sde"]),
        ],
        "logical_volumes": [("system", "slash", "/"), ("system", "home", "/home"), ("bulk", "swap", None),
                            ("bulk", "data", "/data")],
    }
    assert [lv["size"] for lv in plan["logical_volumes"][:2]] == [20 * GiB, 4 * GiB]
    assert plan["partitions"][0]["size"] == 512 * MiB


# Options and input errors

def test_effective_options_are_returned_with_every_default():
    assert plan_storage([ssd("sda")], RAM)["options"] == {
        "size_tolerance": 0.01,
        "redundant_main": False,
        "swap_on_ssd": False,
        "backups": False,
        "esp_size": GiB,
        "slash_size": 50 * GiB,
        "home_size": 16 * GiB,
        "swap_size": RAM,
        "min_disk_size": 2 * GiB,
        "include": [],
        "exclude": [],
        "main_vg": "main",
        "swap_vg": "swap",
        "large_vg": "large",
    }


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sizetolerance": 0.02}, "unknown planner option(s): sizetolerance"),
        ({"size_tolerance": 1.5}, "size_tolerance must be a number from 0 to below 1, got 1.5"),
        ({"redundant_main": "yes"}, "redundant_main must be true or false, got 'yes'"),
        ({"slash_size": -1},
         "slash_size must be a size: bytes or a number with a binary unit (20G, 512M, 1.5T), got -1"),
        ({"main_vg": "main vg"}, "volume group name 'main vg' must be 1-16 characters of A-Z a-z 0-9 _ . + -"),
        # a trailing newline is not the end of the name ("$" would let it through to mdadm and LVM)
        ({"main_vg": "main\n"}, "volume group name 'main\\n' must be 1-16 characters of A-Z a-z 0-9 _ . + -"),
        ({"large_vg": "main"}, "main_vg, swap_vg and large_vg must differ, got main, swap, main"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(options, message):
    with pytest.raises(PlanError) as error:
        plan_storage([ssd("sda")], RAM, options)
    assert str(error.value) == message


def test_malformed_disks_are_refused_with_a_clear_message():
    with pytest.raises(PlanError, match="disk 'sda' lacks size, rotational"):
        plan_storage([{"name": "sda"}], RAM)
    with pytest.raises(PlanError, match="disk names must be unique; seen more than once: sda"):
        plan_storage([ssd("sda"), ssd("sda")], RAM)


def test_flags_given_as_strings_are_read_as_booleans():
    plan = plan_storage([disk("sda", TB, "false", removable="no"), disk("sdb", 4 * TB, "True")], RAM)
    assert layout(plan)["volume_groups"] == [("main", "none", "ssd", ["sda"]), ("large", "none", "hdd", ["sdb"])]
    with pytest.raises(PlanError, match="disk sda: rotational must be true or false, got 'maybe'"):
        plan_storage([disk("sda", TB, "maybe")], RAM)


def test_minimal_disks_are_planned_with_defaults_for_the_missing_facts():
    plan = plan_storage([{"name": "vda", "size": 20 * GiB, "rotational": False}], RAM)
    assert plan["disks"] == [{"name": "vda", "path": "/dev/vda", "dev": "/dev/vda", "size": 20 * GiB,
                              "wwn": None, "serial": None, "identity": None, "class": "ssd", "vg": "main"}]


def test_main_too_small_for_root_fails_clearly():
    with pytest.raises(PlanError, match=r"VG main \(0 B\) is too small to hold /"):
        plan_storage([ssd("sda", 2 * GiB)], RAM, {"esp_size": 2 * GiB})


# Bad input is refused at the door, naming the disk and the field, never a traceback

@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../../etc/passwd", "disk name '../../etc/passwd' is not a kernel disk name"),
        ("sd a; rm -rf /", "disk name 'sd a; rm -rf /' is not a kernel disk name"),
        ("", "disk name '' is not a kernel disk name"),
        # a newline inside a name is not two names
        ("sda\nsdb", "disk name 'sda\\nsdb' is not a kernel disk name"),
        (5, "disk name 5 is not a kernel disk name"),
    ],
)
def test_a_name_that_is_not_a_kernel_disk_name_is_refused_before_planning(name, message):
    with pytest.raises(PlanError) as error:
        plan_storage([ssd("sda"), dict(ssd("sdb"), name=name)], RAM)
    assert str(error.value) == message + " (A-Z a-z 0-9 _ . -, starting with a letter or digit)"


@pytest.mark.parametrize(
    ("facts", "message"),
    [
        ({"dev": "/etc/passwd"}, "disk sdb: dev '/etc/passwd' must be /dev/sdb"),
        ({"dev": "/dev/sda"}, "disk sdb: dev '/dev/sda' must be /dev/sdb"),
        ({"path": "/etc/passwd"}, "disk sdb: path '/etc/passwd' must be /dev/sdb or a /dev/disk/by-id/ link"),
        ({"path": "/dev/sda"}, "disk sdb: path '/dev/sda' must be /dev/sdb or a /dev/disk/by-id/ link"),
        ({"path": "/dev/disk/by-id/../../sda"},
         "disk sdb: path '/dev/disk/by-id/../../sda' must be /dev/sdb or a /dev/disk/by-id/ link"),
        ({"path": "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4-part1"},
         "disk sdb: path '/dev/disk/by-id/wwn-0x5000c500a1b2c3d4-part1' must be /dev/sdb or a /dev/disk/by-id/ link"),
        ({"path": "/dev/disk/by-id/ata-X\nsda"},
         "disk sdb: path '/dev/disk/by-id/ata-X\\nsda' must be /dev/sdb or a /dev/disk/by-id/ link"),
        ({"size": float("inf")}, "disk sdb: size must be a whole number of bytes (0 or more), got inf"),
        ({"size": 1.5}, "disk sdb: size must be a whole number of bytes (0 or more), got 1.5"),
        ({"size": -1}, "disk sdb: size must be a whole number of bytes (0 or more), got -1"),
        ({"size": True}, "disk sdb: size must be a whole number of bytes (0 or more), got True"),
        ({"size": [1]}, "disk sdb: size must be a whole number of bytes (0 or more), got [1]"),
        ({"in_use_reasons": 5}, "disk sdb: in_use_reasons must be a list of strings, got 5"),
        ({"in_use_reasons": "mounted: /"}, "disk sdb: in_use_reasons must be a list of strings, got 'mounted: /'"),
        ({"in_use_reasons": [["x"]]}, "disk sdb: in_use_reasons must be a list of strings, got [['x']]"),
        ({"type": ["disk"]}, "disk sdb: type must be a string or null, got ['disk']"),
        ({"transport": 5}, "disk sdb: transport must be a string or null, got 5"),
        ({"wwn": {"a": 1}}, "disk sdb: wwn must be a string or null, got {'a': 1}"),
        ({"serial": 7}, "disk sdb: serial must be a string or null, got 7"),
        ({"children": "sdb1"}, "disk sdb: children must be a list of devices, got 'sdb1'"),
        ({"children": [5]}, "disk sdb: children must be a list of devices, got [5]"),
    ],
)
def test_a_malformed_fact_is_refused_naming_the_disk_and_the_field(facts, message):
    with pytest.raises(PlanError) as error:
        plan_storage([ssd("sda"), ssd("sdb", **facts)], RAM)
    assert str(error.value) == message


def test_sizes_and_paths_as_disk_facts_writes_them_are_still_accepted():
    # an integral float (JSON 1e12) and a string of digits are whole numbers; /dev/NAME and by-id links are paths
    disks = [ssd("sda", float(TB), path="/dev/sda"), ssd("sdb", str(TB), path="/dev/disk/by-id/ata-X_\\x20Y")]
    plan = plan_storage(disks, RAM)
    assert [(d["name"], d["path"], d["size"]) for d in plan["disks"]] == [
        ("sda", "/dev/sda", TB),
        ("sdb", "/dev/disk/by-id/ata-X_\\x20Y", TB),
    ]


@pytest.mark.parametrize(
    ("disks", "options", "message"),
    [
        (None, None, "disks must be a list of disk facts, got None"),
        ({"name": "sda"}, None, "disks must be a list of disk facts, got {'name': 'sda'}"),
        ([ssd("sda")], ["redundant_main"], "planner options must be a dict, got ['redundant_main']"),
        ([ssd("sda")], {"size_tolerance": float("inf")}, "size_tolerance must be a number from 0 to below 1, got inf"),
        ([ssd("sda")], {"esp_size": float("inf")},
         "esp_size must be a size: bytes or a number with a binary unit (20G, 512M, 1.5T), got inf"),
    ],
)
def test_a_malformed_disk_list_or_options_are_refused(disks, options, message):
    with pytest.raises(PlanError) as error:
        plan_storage(disks, RAM, options)
    assert str(error.value) == message


# Two paths to one disk are one disk

def mpath_child(name):
    return {"name": name, "type": "mpath", "fstype": None, "label": None, "partlabel": None, "mountpoints": []}


def test_a_second_path_with_the_same_wwn_is_excluded_not_mirrored_onto_its_first():
    disks = [ssd("sda"), hdd("sdc", wwn="0x5000c500a1b2c3d4"), hdd("sdd", wwn="0x5000c500a1b2c3d4")]
    plans = [plan_storage(list(order), RAM) for order in itertools.permutations(disks)]
    assert all(plan == plans[0] for plan in plans)
    assert plans[0]["excluded"] == [{"disk": "sdd", "reason": "second path to sdc (same WWN 0x5000c500a1b2c3d4)"}]
    assert layout(plans[0]) == {
        "volume_groups": [("main", "none", "ssd", ["sda"]), ("large", "none", "hdd", ["sdc"])],
        "logical_volumes": MAIN_LVS + [("large", "swap", None), ("large", "data", "/data")],
    }
    assert plans[0]["arrays"] == []


def test_the_wwn_is_compared_as_lsblk_and_sysfs_write_it():
    plan = plan_storage([ssd("sda", wwn="0x5000C500A1B2C3D4"), ssd("sdb", wwn="naa.5000c500a1b2c3d4 ")], RAM)
    assert plan["excluded"] == [{"disk": "sdb", "reason": "second path to sda (same WWN 0x5000C500A1B2C3D4)"}]


def test_without_a_wwn_the_same_serial_and_size_is_a_second_path():
    disks = [hdd("sdc", serial="ZA1B2C3D"), hdd("sdd", serial="ZA1B2C3D"), hdd("sde", serial="ZA1B2C3E"), ssd("sda")]
    plan = plan_storage(disks, RAM)
    assert plan["excluded"] == [{"disk": "sdd", "reason": "second path to sdc (same serial ZA1B2C3D and size 3.6 TiB)"}]
    assert layout(plan)["volume_groups"] == [("main", "none", "ssd", ["sda"]), ("swap", "raid1", "hdd", ["sdc", "sde"])]


def test_the_same_by_id_link_twice_is_one_disk():
    plan = plan_storage([ssd("sda", path="/dev/disk/by-id/ata-X"), ssd("sdb", path="/dev/disk/by-id/ata-X")], RAM)
    assert plan["excluded"] == [{"disk": "sdb", "reason": "second path to sda (same by-id link /dev/disk/by-id/ata-X)"}]


def test_the_first_path_in_kernel_order_is_kept_whatever_the_input_order():
    # sdc comes before sdaa in kernel order (and sdaa before sdc in alphabetical order)
    disks = [hdd("sdaa", wwn="0x5000c500a1b2c3d4"), hdd("sdc", wwn="0x5000c500a1b2c3d4"), ssd("sda")]
    for order in itertools.permutations(disks):
        plan = plan_storage(list(order), RAM)
        assert plan["excluded"] == [{"disk": "sdaa", "reason": "second path to sdc (same WWN 0x5000c500a1b2c3d4)"}]


def test_a_second_path_to_the_boot_medium_is_excluded_too():
    disks = [ssd("sda"), hdd("sdc", serial="S1", boot_medium=True), hdd("sdd", serial="S1")]
    plan = plan_storage(disks, RAM)
    assert plan["excluded"] == [
        {"disk": "sdc", "reason": "boot medium (the running system lives on it)"},
        {"disk": "sdd", "reason": "second path to sdc (same serial S1 and size 3.6 TiB)"},
    ]
    assert [d["name"] for d in plan["disks"]] == ["sda"]


def test_both_paths_under_a_multipath_device_are_excluded_naming_it():
    disks = [ssd("sda"), hdd("sdc", wwn="0x5000c500a1b2c3d4", children=[mpath_child("mpatha")]),
             hdd("sdd", wwn="0x5000c500a1b2c3d4", children=[mpath_child("mpatha")]), hdd("sde"), hdd("sdf")]
    plan = plan_storage(disks, RAM)
    assert plan["excluded"] == [
        {"disk": "sdc", "reason": "path of multipath device mpatha (multipath devices are not planned)"},
        {"disk": "sdd", "reason": "path of multipath device mpatha (multipath devices are not planned); "
                                  "second path to sdc (same WWN 0x5000c500a1b2c3d4)"},
    ]
    assert layout(plan)["volume_groups"] == [("main", "none", "ssd", ["sda"]), ("swap", "raid1", "hdd", ["sde", "sdf"])]


def test_namespaces_of_one_controller_share_a_serial_but_not_a_wwn_and_are_two_disks():
    disks = [ssd("nvme0n1", serial="S4EW", wwn="eui.0025385b91b00001"),
             ssd("nvme0n2", serial="S4EW", wwn="eui.0025385b91b00002")]
    plan = plan_storage(disks, RAM)
    assert plan["excluded"] == []
    assert layout(plan)["volume_groups"] == [("main", "raid0", "ssd", ["nvme0n1", "nvme0n2"])]


def test_the_same_serial_on_disks_of_different_sizes_or_a_placeholder_id_does_not_make_one_disk():
    placeholder = {"wwn": "0x0000000000000000", "serial": "000000"}
    disks = [hdd("sdc", serial="S1"), hdd("sdd", 8 * TB, serial="S1"),
             ssd("sda", **placeholder), ssd("sdb", **placeholder)]
    plan = plan_storage(disks, RAM)
    assert plan["excluded"] == []
    assert [d["name"] for d in plan["disks"]] == ["sda", "sdb", "sdc", "sdd"]


def test_a_size_beyond_any_disk_is_refused_before_it_reaches_a_float():
    # human_size divides as floats: 10**400 bytes raised OverflowError in the notes and the summary
    with pytest.raises(PlanError) as error:
        plan_storage([ssd("sda"), ssd("sdb", 10 ** 400)], RAM)
    assert str(error.value) == "disk sdb: size of %d bytes is beyond any disk (2^64 at most)" % 10 ** 400
    with pytest.raises(PlanError) as error:
        plan_storage([ssd("sda")], RAM, {"slash_size": 10 ** 400})
    assert str(error.value) == "slash_size of %d bytes is beyond any disk (2^64 at most)" % 10 ** 400
    with pytest.raises(PlanError) as error:
        plan_storage([ssd("sda", "9" * 5000)], RAM)
    assert str(error.value).startswith("disk sda: size must be a whole number of bytes (0 or more), got '9999")
