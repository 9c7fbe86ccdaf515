"""The operator's disk selectors (disk_selectors): every kind, the no-match error, what the planner makes of them."""
from __future__ import annotations

import pytest

from ansible_collections.prenixos.baseline.plugins.module_utils.disk_selectors import (
    Selector,
    matches,
    operator_reasons,
    parse_selector,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.plan_input import PlanError, normalise_disks
from ansible_collections.prenixos.baseline.plugins.module_utils.planner import plan_storage

GiB = 1024 ** 3
TB = 1000 ** 4

REPORTED = [
    {"name": "sda", "size": TB, "rotational": False, "model": "Samsung SSD 860 EVO 1TB", "serial": "S3Z1NB0K123",
     "wwn": "0x5002538e40a1b2c3", "path": "/dev/disk/by-id/ata-Samsung_SSD_860_EVO_1TB_S3Z1NB0K123"},
    {"name": "sdb", "size": TB, "rotational": False, "model": "Samsung SSD 860 EVO 1TB", "serial": "S3Z1NB0K456",
     "wwn": "0x5002538e40a1b2c4", "path": "/dev/disk/by-id/ata-Samsung_SSD_860_EVO_1TB_S3Z1NB0K456"},
    {"name": "sdc", "size": 4 * TB, "rotational": True, "model": "ST4000NM0023", "serial": "Z1Z2ABCD",
     "wwn": "naa.5000C500A1B2C3D4", "path": "/dev/disk/by-id/scsi-35000c500a1b2c3d4"},
    {"name": "nvme0n1", "size": TB, "rotational": False, "model": "INTEL SSDPE2KX010T8", "serial": "PHLJ0001"},
]
DISKS = normalise_disks(REPORTED)


def picked(text):
    selector = parse_selector(text)
    return [disk["name"] for disk in DISKS if matches(selector, disk)]


@pytest.mark.parametrize(("text", "kind", "value"), [
    ("sda", "any", "sda"),
    ("name:sda", "name", "sda"),
    ("/dev/sda", "name", "sda"),
    ("serial:S3Z1NB0K123", "serial", "S3Z1NB0K123"),
    ("WWN:naa.5002538E40A1B2C3", "wwn", "naa.5002538E40A1B2C3"),
    ("by-id:ata-X_1", "by-id", "/dev/disk/by-id/ata-X_1"),
    ("/dev/disk/by-id/ata-X_1", "by-id", "/dev/disk/by-id/ata-X_1"),
    ("model:Samsung*", "model", "Samsung*"),
    ("  S3Z1NB0K123 ", "any", "S3Z1NB0K123"),
    ("vendor:x", "any", "vendor:x"),
])
def test_a_selector_says_its_kind_or_is_a_bare_word(text, kind, value):
    assert parse_selector(text) == Selector(text.strip(), kind, value)


@pytest.mark.parametrize(("text", "names"), [
    # kernel name
    ("sdb", ["sdb"]),
    ("name:sdb", ["sdb"]),
    ("/dev/nvme0n1", ["nvme0n1"]),
    ("name:sd*", ["sda", "sdb", "sdc"]),
    ("name:SDB", []),
    # serial, ignoring case
    ("serial:S3Z1NB0K123", ["sda"]),
    ("serial:s3z1nb0k123", ["sda"]),
    ("S3Z1NB0K456", ["sdb"]),
    ("serial:S3Z1NB0K*", ["sda", "sdb"]),
    # WWN in any spelling
    ("wwn:0x5002538e40a1b2c3", ["sda"]),
    ("wwn:naa.5002538E40A1B2C3", ["sda"]),
    ("wwn:5002538E40A1B2C3", ["sda"]),
    ("wwn:0x5000c500a1b2c3d4", ["sdc"]),
    ("naa.5000c500a1b2c3d4", ["sdc"]),
    ("0x5002538E40A1B2C4", ["sdb"]),
    # by-id: the disk's link, its name alone, or a wwn- link of its WWN
    ("/dev/disk/by-id/ata-Samsung_SSD_860_EVO_1TB_S3Z1NB0K123", ["sda"]),
    ("by-id:ata-Samsung_SSD_860_EVO_1TB_S3Z1NB0K456", ["sdb"]),
    ("ata-Samsung_SSD_860_EVO_1TB_S3Z1NB0K456", ["sdb"]),
    ("/dev/disk/by-id/wwn-0x5000c500a1b2c3d4", ["sdc"]),
    ("by-id:scsi-3*", ["sdc"]),
    # model: a glob, ignoring case, blanks as _
    ("model:Samsung*", ["sda", "sdb"]),
    ("Samsung*", ["sda", "sdb"]),
    ("model:samsung_ssd_860_evo_1tb", ["sda", "sdb"]),
    ("model:Samsung SSD 860 EVO 1TB", ["sda", "sdb"]),
    ("model:ST4000NM0023", ["sdc"]),
    ("INTEL*", ["nvme0n1"]),
    ("model:S3Z1NB0K123", []),
])
def test_every_kind_of_selector_picks_its_disks(text, names):
    assert picked(text) == names


@pytest.mark.parametrize(("text", "message"), [
    ("", "exclude: a disk selector must be a non-empty string, got ''"),
    ("serial:", "exclude: 'serial:' names no serial"),
    ("/dev/disk/by-path/pci-0000:00:1f.2-ata-1", "exclude: '/dev/disk/by-path/pci-0000:00:1f.2-ata-1' is not a disk "
     "selector: a path must be /dev/NAME or a /dev/disk/by-id/ link"),
    (7, "exclude: a disk selector must be a non-empty string, got 7"),
])
def test_an_unusable_selector_is_refused_naming_it(text, message):
    with pytest.raises(PlanError) as error:
        parse_selector(text, "exclude")
    assert str(error.value) == message


def test_a_selector_that_matches_no_disk_is_an_error_listing_every_disk():
    with pytest.raises(PlanError) as error:
        operator_reasons(DISKS, include=["Samsung*"], exclude=["S3Z1NB0K999", "sda", "model:WDC*"])
    assert str(error.value) == "\n".join([
        "disk selector(s) matching no disk: exclude: 'S3Z1NB0K999', exclude: 'model:WDC*'",
        "the disks (a selector is a name, serial:, wwn:, by-id:, model: or a bare word):",
        "  - nvme0n1: serial PHLJ0001, model INTEL SSDPE2KX010T8",
        "  - sda: serial S3Z1NB0K123, model Samsung SSD 860 EVO 1TB, WWN 0x5002538e40a1b2c3, "
        "/dev/disk/by-id/ata-Samsung_SSD_860_EVO_1TB_S3Z1NB0K123",
        "  - sdb: serial S3Z1NB0K456, model Samsung SSD 860 EVO 1TB, WWN 0x5002538e40a1b2c4, "
        "/dev/disk/by-id/ata-Samsung_SSD_860_EVO_1TB_S3Z1NB0K456",
        "  - sdc: serial Z1Z2ABCD, model ST4000NM0023, WWN naa.5000C500A1B2C3D4, "
        "/dev/disk/by-id/scsi-35000c500a1b2c3d4",
    ])


def test_an_include_selector_that_matches_no_disk_is_an_error_too():
    with pytest.raises(PlanError, match=r"^disk selector\(s\) matching no disk: include: 'sdz'\n"):
        operator_reasons(DISKS, include=["sdz"])


def test_a_disk_without_serial_or_model_is_described_as_such():
    with pytest.raises(PlanError) as error:
        operator_reasons(normalise_disks([{"name": "vda", "size": TB, "rotational": True}]), exclude=["vdb"])
    assert str(error.value).endswith("\n  - vda: no serial, no model")


def test_include_and_exclude_together_leave_the_included_disks_but_the_excluded():
    reasons = operator_reasons(DISKS, include=["Samsung*", "sdc"], exclude=["serial:S3Z1NB0K456", "sdb"])
    assert reasons == {
        "nvme0n1": ["not in the operator's include list"],
        "sdb": ["excluded by the operator (exclude: serial:S3Z1NB0K456, sdb)"],
    }


def test_no_selector_leaves_every_disk():
    assert operator_reasons(DISKS) == {}


def test_the_plan_lists_the_operators_exclusions_with_their_reasons_and_plans_the_rest():
    plan = plan_storage(REPORTED, 8 * GiB, {"exclude": ["S3Z1NB0K123"], "include": ["name:sd*"]})
    assert plan["excluded"] == [
        {"disk": "nvme0n1", "reason": "not in the operator's include list"},
        {"disk": "sda", "reason": "excluded by the operator (exclude: S3Z1NB0K123)"},
    ]
    assert [(disk["name"], disk["vg"]) for disk in plan["disks"]] == [("sdb", "main"), ("sdc", "large")]
    assert (plan["options"]["include"], plan["options"]["exclude"]) == (["name:sd*"], ["S3Z1NB0K123"])


def test_the_operators_reason_comes_before_the_planners_own():
    reported = REPORTED + [{"name": "sdd", "size": 64 * 1000 ** 3, "rotational": False, "removable": True,
                            "transport": "usb", "serial": "USB0001"}]
    plan = plan_storage(reported, 8 * GiB, {"exclude": ["USB0001"]})
    assert plan["excluded"] == [
        {"disk": "sdd", "reason": "excluded by the operator (exclude: USB0001); removable; on USB"}]


def test_including_only_an_ineligible_disk_plans_nothing_and_says_why():
    reported = [dict(REPORTED[0], read_only=True), REPORTED[1]]
    with pytest.raises(PlanError) as error:
        plan_storage(reported, 8 * GiB, {"include": ["sda"]})
    assert str(error.value) == "\n".join([
        "No disk is eligible for the storage plan:",
        "  - sda: read-only",
        "  - sdb: not in the operator's include list",
    ])


def test_a_misspelt_exclusion_stops_the_plan_rather_than_planning_the_disk():
    with pytest.raises(PlanError, match=r"^disk selector\(s\) matching no disk: exclude: 'S3Z1NB0K12'\n"):
        plan_storage(REPORTED, 8 * GiB, {"exclude": ["S3Z1NB0K12"]})


@pytest.mark.parametrize(("options", "message"), [
    ({"exclude": "sda"}, "exclude must be a list of disk selectors (non-empty strings), got 'sda'"),
    ({"include": ["sda", " "]}, "include must be a list of disk selectors (non-empty strings), got ['sda', ' ']"),
    ({"exclude": [7]}, "exclude must be a list of disk selectors (non-empty strings), got [7]"),
])
def test_selector_options_that_are_not_lists_of_strings_are_refused(options, message):
    with pytest.raises(PlanError) as error:
        plan_storage(REPORTED, 8 * GiB, options)
    assert str(error.value) == message
