"""The storage_plan module: a thin shell over the planner that may write the plan to a file."""
from __future__ import annotations

import json

import pytest
import yaml
from module_harness import run_module

from ansible_collections.prenixos.baseline.plugins.module_utils.plan_input import DEFAULT_OPTIONS
from ansible_collections.prenixos.baseline.plugins.module_utils.planner import plan_storage
from ansible_collections.prenixos.baseline.plugins.modules import storage_plan

GiB = 1024 ** 3
TB = 1000 ** 4


def disk(name, size, rotational, **facts):
    reported = {"name": name, "type": "disk", "path": "/dev/" + name, "dev": "/dev/" + name, "size": size,
                "rotational": rotational, "removable": False, "read_only": False, "transport": "sata",
                "boot_medium": False, "in_use": False, "in_use_reasons": []}
    reported.update(facts)
    return reported


TWO_SSDS_TWO_HDDS = [disk("sda", TB, False), disk("sdb", TB, False), disk("sdc", 4 * TB, True),
                     disk("sdd", 4 * TB, True)]


def test_the_module_returns_the_planners_plan_and_changes_nothing(capsys):
    result = run_module(storage_plan.main, {"disks": TWO_SSDS_TWO_HDDS, "ram_bytes": 8 * GiB}, capsys)
    assert result["changed"] is False
    assert result["plan"] == plan_storage(TWO_SSDS_TWO_HDDS, 8 * GiB, {"size_tolerance": 0.01})
    assert "dest" not in result


def test_options_reach_the_planner(capsys):
    args = {"disks": TWO_SSDS_TWO_HDDS, "ram_bytes": 8 * GiB, "redundant_main": True, "backups": True,
            "swap_size": 2 * GiB, "slash_size": 20 * GiB, "home_size": 4 * GiB, "size_tolerance": 0.02}
    plan = run_module(storage_plan.main, args, capsys)["plan"]
    assert [(vg["name"], vg["raid_level"]) for vg in plan["volume_groups"]] == [("main", "raid1"), ("swap", "raid1")]
    assert [(lv["name"], lv["size"]) for lv in plan["logical_volumes"]] == [
        ("slash", 20 * GiB),
        ("home", 4 * GiB),
        ("swap", 2 * GiB),
    ]
    assert (plan["options"]["backups"], plan["options"]["size_tolerance"]) == (True, 0.02)


def test_check_mode_with_dest_writes_nothing_and_reports_the_change(tmp_path, capsys):
    dest = tmp_path / "plan.json"
    args = {"disks": TWO_SSDS_TWO_HDDS, "ram_bytes": 8 * GiB, "dest": str(dest)}
    result = run_module(storage_plan.main, args, capsys, check_mode=True)
    assert (result["changed"], result["dest"]) == (True, str(dest))
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_dest_is_written_once_and_a_second_run_changes_nothing(tmp_path, capsys):
    dest = tmp_path / "plan.json"
    args = {"disks": TWO_SSDS_TWO_HDDS, "ram_bytes": 8 * GiB, "dest": str(dest)}
    first = run_module(storage_plan.main, args, capsys)
    second = run_module(storage_plan.main, args, capsys)
    in_check_mode = run_module(storage_plan.main, args, capsys, check_mode=True)
    assert (first["changed"], second["changed"], in_check_mode["changed"]) == (True, False, False)
    assert json.loads(dest.read_text()) == first["plan"]
    assert [path.name for path in tmp_path.iterdir()] == ["plan.json"]


def test_a_different_plan_replaces_the_file(tmp_path, capsys):
    dest = tmp_path / "plan.json"
    dest.write_text('{"version": 1}\n')
    args = {"disks": TWO_SSDS_TWO_HDDS, "ram_bytes": 8 * GiB, "dest": str(dest)}
    result = run_module(storage_plan.main, args, capsys)
    assert result["changed"] is True
    assert json.loads(dest.read_text()) == result["plan"]


def test_no_eligible_disk_fails_with_every_disk_and_its_reason(capsys):
    disks = [disk("sda", 64 * 1000 ** 3, False, transport="usb", removable=True, boot_medium=True),
             disk("sr0", 0, False, type="rom", removable=True)]
    result = run_module(storage_plan.main, {"disks": disks, "ram_bytes": 8 * GiB}, capsys)
    assert result["failed"] is True
    assert result["msg"] == (
        "No disk is eligible for the storage plan:\n"
        "  - sda: removable; on USB; boot medium (the running system lives on it)\n"
        "  - sr0: optical drive; removable; size 0 (no medium)"
    )


def test_ram_defaults_to_memtotal_of_the_host(monkeypatch, capsys):
    monkeypatch.setattr(storage_plan, "ram_bytes_from_meminfo", lambda: 6 * GiB)
    plan = run_module(storage_plan.main, {"disks": TWO_SSDS_TWO_HDDS}, capsys)["plan"]
    assert plan["options"]["swap_size"] == 6 * GiB


def test_memtotal_is_read_in_bytes(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16318412 kB\nMemFree:         1234 kB\n")
    assert storage_plan.ram_bytes_from_meminfo(str(meminfo)) == 16318412 * 1024
    assert storage_plan.ram_bytes_from_meminfo(str(tmp_path / "missing")) is None


def test_unreadable_ram_without_swap_size_fails_clearly(monkeypatch, capsys):
    monkeypatch.setattr(storage_plan, "ram_bytes_from_meminfo", lambda: None)
    result = run_module(storage_plan.main, {"disks": TWO_SSDS_TWO_HDDS}, capsys)
    assert result["failed"] is True
    assert result["msg"] == "cannot read MemTotal from /proc/meminfo; set ram_bytes or swap_size"


def test_bad_disk_facts_fail_the_module_with_the_disk_and_the_field_not_a_traceback(capsys):
    # JSON carries 1e400 as infinity; int(inf) raised OverflowError out of the module
    for facts, message in [
        ({"size": float("inf")}, "disk sdd: size must be a whole number of bytes (0 or more), got inf"),
        ({"in_use_reasons": 5}, "disk sdd: in_use_reasons must be a list of strings, got 5"),
        ({"dev": "/etc/passwd"}, "disk sdd: dev '/etc/passwd' must be /dev/sdd"),
    ]:
        disks = TWO_SSDS_TWO_HDDS[:3] + [dict(disk("sdd", 4 * TB, True), **facts)]
        result = run_module(storage_plan.main, {"disks": disks, "ram_bytes": 8 * GiB}, capsys)
        assert (result.get("failed"), result["msg"], result.get("changed")) == (True, message, False)
        assert "plan" not in result


def test_a_plan_that_cannot_be_written_fails_and_reports_no_change(tmp_path, capsys):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    dest = blocker / "plan.json"
    result = run_module(storage_plan.main, {"disks": TWO_SSDS_TWO_HDDS, "ram_bytes": 8 * GiB, "dest": str(dest)},
                        capsys)
    assert (result.get("failed"), result["changed"], result["dest"]) == (True, False, str(dest))
    assert result["msg"].startswith("the plan was made but cannot write %s: " % dest)
    assert blocker.read_text() == ""
    assert sorted(path.name for path in tmp_path.iterdir()) == ["not-a-directory"]


def test_a_size_beyond_any_disk_fails_the_module_instead_of_its_summary(capsys):
    disks = TWO_SSDS_TWO_HDDS[:3] + [disk("sdd", 10 ** 400, True)]
    result = run_module(storage_plan.main, {"disks": disks, "ram_bytes": 8 * GiB}, capsys)
    assert (result.get("failed"), result["msg"]) == (
        True, "disk sdd: size of %d bytes is beyond any disk (2^64 at most)" % 10 ** 400)


def with_serials(disks):
    return [dict(d, serial="SERIAL-" + d["name"]) for d in disks]


def test_a_given_plan_file_is_reviewed_and_bound_to_the_disks_present(tmp_path, capsys):
    planned = plan_storage(with_serials(TWO_SSDS_TWO_HDDS), 8 * GiB)
    plan_file = tmp_path / "edited.json"
    plan_file.write_text(json.dumps(planned))
    swapped = [dict(d, name=new, dev="/dev/" + new, path="/dev/" + new)
               for d, new in zip(with_serials(TWO_SSDS_TWO_HDDS), ["sdb", "sda", "sdd", "sdc"], strict=True)]
    result = run_module(storage_plan.main, {"disks": swapped, "ram_bytes": 8 * GiB, "plan": str(plan_file)}, capsys)
    assert result["changed"] is False and result["review_notes"] == [
        "disk sda (serial:SERIAL-sda) is sdb in this boot", "disk sdb (serial:SERIAL-sdb) is sda in this boot",
        "disk sdc (serial:SERIAL-sdc) is sdd in this boot", "disk sdd (serial:SERIAL-sdd) is sdc in this boot"]
    by_serial = {d["serial"]: d["name"] for d in result["plan"]["disks"]}
    assert by_serial == {"SERIAL-sda": "sdb", "SERIAL-sdb": "sda", "SERIAL-sdc": "sdd", "SERIAL-sdd": "sdc"}
    assert "sdb" in result["summary"] and "fileSystems" in result["nixos"]


def test_a_refused_plan_fails_with_every_problem_and_writes_nothing(tmp_path, capsys):
    planned = plan_storage(with_serials(TWO_SSDS_TWO_HDDS), 8 * GiB)
    planned["arrays"][0]["level"] = "raid6"
    dest = tmp_path / "plan.json"
    args = {"disks": with_serials(TWO_SSDS_TWO_HDDS[:3]), "ram_bytes": 8 * GiB, "plan": planned, "dest": str(dest)}
    result = run_module(storage_plan.main, args, capsys)
    assert result["failed"] is True and result["changed"] is False and not dest.exists()
    assert result["msg"].startswith("the plan is refused, nothing was changed:")
    assert any(p.startswith("disk sdd (serial:SERIAL-sdd): no disk of this machine has it") for p in result["problems"])
    assert any(p.startswith("array main: raid6 needs at least 4 members") for p in result["problems"])


def test_a_plan_file_that_is_missing_or_not_json_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for path, message in ((tmp_path / "none.json", "cannot read the plan file"), (bad, "is not JSON")):
        result = run_module(storage_plan.main, {"disks": TWO_SSDS_TWO_HDDS, "plan": str(path), "ram_bytes": GiB},
                            capsys)
        assert result["failed"] is True and message in result["msg"], result


SELECTABLE = [dict(d, serial="S-" + d["name"], model="Samsung SSD 860" if not d["rotational"] else "ST4000NM0023")
              for d in TWO_SSDS_TWO_HDDS]


def test_every_planner_rule_is_a_documented_module_option():
    documented = yaml.safe_load(storage_plan.DOCUMENTATION)["options"]
    rules = set(DEFAULT_OPTIONS) - {"main_vg", "swap_vg", "large_vg"}
    assert set(storage_plan.PLANNER_OPTIONS) == rules
    assert rules <= set(documented)
    assert {key: documented[key]["type"] for key in ("esp_size", "slash_size", "home_size", "swap_size",
                                                     "min_disk_size", "include", "exclude")} == {
        "esp_size": "raw", "slash_size": "raw", "home_size": "raw", "swap_size": "raw", "min_disk_size": "raw",
        "include": "list", "exclude": "list"}


def test_sizes_with_units_and_disk_selectors_reach_the_planner(capsys):
    args = {"disks": SELECTABLE, "ram_bytes": 8 * GiB, "slash_size": "20G", "home_size": "4GiB", "swap_size": "512M",
            "esp_size": "256M", "min_disk_size": "100G", "include": ["Samsung*", "sdc"], "exclude": ["serial:S-sda"]}
    result = run_module(storage_plan.main, args, capsys)
    plan = result["plan"]
    assert plan["excluded"] == [
        {"disk": "sda", "reason": "excluded by the operator (exclude: serial:S-sda)"},
        {"disk": "sdd", "reason": "not in the operator's include list"},
    ]
    assert [(lv["vg"], lv["name"], lv["size"]) for lv in plan["logical_volumes"]] == [
        ("main", "slash", 20 * GiB), ("main", "home", 4 * GiB), ("large", "swap", 512 * 1024 ** 2),
        ("large", "data", plan["logical_volumes"][3]["size"])]
    assert plan["partitions"][0]["size"] == 256 * 1024 ** 2
    assert (plan["options"]["min_disk_size"], plan["options"]["include"]) == (100 * GiB, ["Samsung*", "sdc"])


def test_a_comma_separated_string_is_a_list_of_selectors(capsys):
    args = {"disks": SELECTABLE, "ram_bytes": 8 * GiB, "exclude": "sdc,serial:S-sdd"}
    plan = run_module(storage_plan.main, args, capsys)["plan"]
    assert [entry["disk"] for entry in plan["excluded"]] == ["sdc", "sdd"]


@pytest.mark.parametrize(("args", "message"), [
    ({"exclude": ["S-sdz"]}, "disk selector(s) matching no disk: exclude: 'S-sdz'\n"),
    ({"slash_size": "20X"}, "slash_size must be a size: bytes or a number with a binary unit (20G, 512M, 1.5T), "
                            "got '20X'"),
])
def test_a_selector_matching_nothing_or_a_bad_size_fails_the_module(capsys, args, message):
    result = run_module(storage_plan.main, dict(args, disks=SELECTABLE, ram_bytes=8 * GiB), capsys)
    assert (result.get("failed"), result["changed"]) == (True, False)
    assert result["msg"].startswith(message), result["msg"]
    assert "plan" not in result
