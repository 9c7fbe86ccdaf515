"""The planner's door (plan_input): disk facts and options checked and normalised, identities made comparable.

What is refused and how the planner reports it is in test_planner.py (through ``plan_storage``); these are the
door's own answers for what it lets in.
"""
from __future__ import annotations

import pytest

from ansible_collections.prenixos.baseline.plugins.module_utils.plan_input import (
    PlanError,
    effective_options,
    normalise_disk,
    normalise_disks,
    parse_size,
    wwn_key,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.planner import PlanError as PlannersPlanError

TB = 1000 ** 4


def test_a_disk_as_disk_facts_reports_it_is_normalised_to_what_the_planner_reads():
    reported = {
        "name": "sdc", "type": "disk", "path": "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4", "dev": "/dev/sdc",
        "size": 4 * TB, "rotational": True, "removable": False, "read_only": False, "transport": "sas",
        "model": "ST4000NM0023", "serial": " Z1Z2ABCD ", "wwn": "0x5000C500A1B2C3D4", "boot_medium": False,
        "in_use": True, "in_use_reasons": ["holds mpath mpatha"],
        "children": [{"name": "mpatha", "type": "mpath", "fstype": None, "label": None, "partlabel": None,
                      "mountpoints": []}],
    }
    assert normalise_disk(reported) == {
        "name": "sdc", "type": "disk", "path": "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4", "dev": "/dev/sdc",
        "size": 4 * TB, "transport": "sas", "model": "ST4000NM0023", "in_use_reasons": ["holds mpath mpatha"],
        "rotational": True,
        "removable": False, "read_only": False, "boot_medium": False, "in_use": True,
        "wwn": "0x5000C500A1B2C3D4", "wwn_key": "5000c500a1b2c3d4", "serial": "Z1Z2ABCD", "serial_key": "z1z2abcd",
        "multipath": ["mpatha"],
    }


def test_a_minimal_disk_gets_a_default_for_every_missing_fact():
    assert normalise_disk({"name": "vda", "size": "21474836480", "rotational": "false"}) == {
        "name": "vda", "type": "disk", "path": "/dev/vda", "dev": "/dev/vda", "size": 21474836480,
        "transport": None, "model": None, "in_use_reasons": [], "rotational": False, "removable": False,
        "read_only": False, "boot_medium": False, "in_use": False, "wwn": None, "wwn_key": None, "serial": None,
        "serial_key": None, "multipath": [],
    }


@pytest.mark.parametrize(
    "path",
    [
        "/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0R123456A",
        "/dev/disk/by-id/nvme-eui.0025385b01234567",
        "/dev/disk/by-id/usb-SanDisk_Ultra_4C530001-0:0",
        "/dev/disk/by-id/scsi-SATA_ST4000NM0023_Z1Z2ABCD",
        "/dev/disk/by-id/ata-WDC_WD20EFRX\\x2068EUZN0_WD-WCC4M1234567",
        "/dev/sdc",
    ],
)
def test_every_kind_of_by_id_link_udev_writes_is_a_path(path):
    assert normalise_disk({"name": "sdc", "size": TB, "rotational": True, "path": path})["path"] == path


@pytest.mark.parametrize(
    ("reported", "key"),
    [
        ("0x5000c500a1b2c3d4", "5000c500a1b2c3d4"),
        ("naa.5000C500A1B2C3D4", "5000c500a1b2c3d4"),
        ("eui.0025385b01234567", "eui.0025385b01234567"),
        ("nvme.1b36-6465616462656566-51454d55204e564d65204374726c-00000001",
         "nvme.1b36-6465616462656566-51454d55204e564d65204374726c-00000001"),
        # placeholders some firmware reports are no identity
        ("0x0000000000000000", None),
        ("eui.0000000000000000", None),
        (None, None),
    ],
)
def test_a_wwn_is_compared_without_its_spelling(reported, key):
    assert wwn_key(reported) == key


def test_a_serial_of_zeros_is_no_identity():
    disk = normalise_disk({"name": "sda", "size": TB, "rotational": False, "serial": "0000", "wwn": "  "})
    assert (disk["serial"], disk["serial_key"], disk["wwn"], disk["wwn_key"]) == ("0000", None, None, None)


def test_the_disks_come_out_sorted_by_name_and_the_planner_raises_the_doors_error():
    reported = [{"name": "sdb", "size": TB, "rotational": 1}, {"name": "sda", "size": TB, "rotational": 0}]
    disks = normalise_disks(reported)
    assert [disk["name"] for disk in disks] == ["sda", "sdb"]
    assert PlanError is PlannersPlanError


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (21474836480, 20 * 1024 ** 3),
        (2.0 ** 30, 1024 ** 3),
        ("21474836480", 20 * 1024 ** 3),
        ("20G", 20 * 1024 ** 3),
        ("20GiB", 20 * 1024 ** 3),
        ("20GB", 20 * 1024 ** 3),
        ("20 g", 20 * 1024 ** 3),
        ("20Gi", 20 * 1024 ** 3),
        ("512M", 512 * 1024 ** 2),
        ("64k", 64 * 1024),
        ("1.5T", 3 * 1024 ** 4 // 2),
        ("0.1K", 102),  # a fraction of a byte is dropped
        ("1P", 1024 ** 5),
        ("4096B", 4096),
        ("0", 0),
        (0, 0),
    ],
)
def test_a_size_is_bytes_or_a_number_with_a_binary_unit(value, size):
    assert parse_size("slash_size", value) == size


@pytest.mark.parametrize("value", ["20X", "G", "", "-1G", "1.5", "20 G B", "20iB", "1e9", "twenty", -1, True, 1.5,
                                   None, [20], "1,5G"])
def test_anything_else_is_not_a_size_and_the_error_names_the_option(value):
    with pytest.raises(PlanError) as error:
        parse_size("home_size", value)
    assert str(error.value) == (
        "home_size must be a size: bytes or a number with a binary unit (20G, 512M, 1.5T), got %r" % (value,))


def test_a_size_beyond_any_disk_is_refused():
    with pytest.raises(PlanError, match=r"^swap_size of 19140298416324608000 bytes is beyond any disk"):
        parse_size("swap_size", "17000P")


def test_size_options_take_units_and_the_plan_carries_bytes():
    options = effective_options({"slash_size": "20G", "home_size": "4GiB", "swap_size": "512M", "esp_size": "256M",
                                 "min_disk_size": "1.5T"}, 8 * 1024 ** 3)
    assert {key: options[key] for key in ("slash_size", "home_size", "swap_size", "esp_size", "min_disk_size")} == {
        "slash_size": 20 * 1024 ** 3, "home_size": 4 * 1024 ** 3, "swap_size": 512 * 1024 ** 2,
        "esp_size": 256 * 1024 ** 2, "min_disk_size": 3 * 1024 ** 4 // 2}


def test_the_model_is_kept_trimmed_for_the_disk_selectors():
    assert normalise_disk({"name": "sda", "size": TB, "rotational": False, "model": " Samsung SSD 860 "})["model"] == (
        "Samsung SSD 860")
    with pytest.raises(PlanError, match=r"^disk sda: model must be a string or null, got 860$"):
        normalise_disk({"name": "sda", "size": TB, "rotational": False, "model": 860})
