"""The plan as a disko layout: parsed and evaluated by Nix, checked against the plan it came from."""
from __future__ import annotations

import json
import re

import pytest
from test_nixos_render import needs_nix, nix, nix_parses, plan_for

from ansible_collections.prenixos.baseline.plugins.module_utils import disko


def evaluate_disko(tmp_path, plan):
    path = tmp_path / "disko.nix"
    path.write_text(disko.render_disko(plan))
    nix_parses(path)
    evaluated = json.loads(nix("--eval", "--strict", "--json", str(path)))
    assert list(evaluated) == ["disko"]
    return evaluated["disko"]["devices"]


def esp(label, mountpoint=None):
    content = {"type": "filesystem", "format": "vfat", "extraArgs": ["-n", label],
               "mountOptions": ["fmask=0077", "dmask=0077"]}
    if mountpoint:
        content["mountpoint"] = mountpoint
    return content


def ext4(label, mountpoint, *extra):
    return {"type": "filesystem", "format": "ext4", "extraArgs": ["-L", label, *extra], "mountpoint": mountpoint}


def part(name, priority, type_code, size, content):
    return {"priority": priority, "label": name, "type": type_code, "size": size, "content": content}


def gpt(device, *partitions):
    table = {"type": "gpt", "partitions": {p["label"]: p for p in partitions}}
    return {"type": "disk", "device": device, "content": table}


@needs_nix
def test_the_default_machine_as_disko(tmp_path):
    devices = evaluate_disko(tmp_path, plan_for("default"))

    def raid_member(name, number, array):
        return part(name, number, "FD00", "100%", {"type": "mdraid", "name": array})

    assert devices["disk"] == {
        "nvme0n1": gpt("/dev/disk/by-id/wwn-nvme0n1",
                       part("main_1-pv1", 1, "8E00", "100%", {"type": "lvm_pv", "vg": "main_1"})),
        "sda": gpt("/dev/disk/by-id/wwn-sda", part("main-esp1", 1, "EF00", "1024M", esp("EFI", "/boot")),
                   raid_member("main-raid1", 2, "main")),
        "sdb": gpt("/dev/disk/by-id/wwn-sdb", part("main-esp2", 1, "EF00", "1024M", esp("EFI2")),
                   raid_member("main-raid2", 2, "main")),
        "sdc": gpt("/dev/disk/by-id/wwn-sdc", raid_member("swap-raid1", 1, "swap")),
        "sdd": gpt("/dev/disk/by-id/wwn-sdd", raid_member("swap-raid2", 1, "swap")),
        "sde": gpt("/dev/disk/by-id/wwn-sde", raid_member("large-raid1", 1, "large")),
        "sdf": gpt("/dev/disk/by-id/wwn-sdf", raid_member("large-raid2", 1, "large")),
        "sdg": gpt("/dev/disk/by-id/wwn-sdg", raid_member("large-raid3", 1, "large")),
    }
    assert devices["mdadm"] == {
        name: {"type": "mdadm", "level": level, "metadata": "1.2", "content": {"type": "lvm_pv", "vg": name}}
        for name, level in (("main", 0), ("swap", 1), ("large", 5))
    }
    assert devices["lvm_vg"] == {
        "main": {"type": "lvm_vg", "lvs": {"slash": {"size": "51200M", "content": ext4("slash", "/")},
                                           "home": {"size": "3000M", "content": ext4("home", "/home")}}},
        "main_1": {"type": "lvm_vg", "lvs": {}},
        "swap": {"type": "lvm_vg",
                 "lvs": {"swap": {"size": "16240M", "content": {"type": "swap", "extraArgs": ["-L", "swap"]}}}},
        "large": {"type": "lvm_vg", "lvs": {"data": {"size": "48868M", "content": ext4("data", "/data")}}},
    }


@needs_nix
def test_raid6_with_backups_carries_the_dense_inode_table_and_a_plain_main_pv(tmp_path):
    plan = plan_for("raid6_backups")
    devices = evaluate_disko(tmp_path, plan)
    assert devices["disk"]["nvme0n1"] == gpt(
        "/dev/disk/by-id/wwn-nvme0n1",
        part("main-esp1", 1, "EF00", "1024M", esp("EFI", "/boot")),
        part("main-pv1", 2, "8E00", "100%", {"type": "lvm_pv", "vg": "main"}),
    )
    assert devices["mdadm"] == {"large": {"type": "mdadm", "level": 6, "metadata": "1.2",
                                          "content": {"type": "lvm_pv", "vg": "large"}}}
    data = devices["lvm_vg"]["large"]["lvs"]["data"]
    assert data["content"] == ext4("data", "/data", "-i", "2048")
    assert sorted(devices["lvm_vg"]["large"]["lvs"]) == ["data", "swap"]


@needs_nix
@pytest.mark.parametrize("machine", ["default", "ssd_only", "hdd_only", "raid6_backups", "redundant_raid6",
                                     "single_nvme"])
def test_disko_holds_exactly_the_plans_disks_partitions_arrays_and_volumes(tmp_path, machine):
    plan = plan_for(machine)
    devices = evaluate_disko(tmp_path, plan)
    assert sorted(devices["disk"]) == sorted(d["name"] for d in plan["disks"])
    assert sorted((disk, p) for disk, spec in devices["disk"].items() for p in spec["content"]["partitions"]) == \
        sorted((p["disk"], p["partlabel"]) for p in plan["partitions"])
    assert sorted(devices.get("mdadm", {})) == sorted(a["name"] for a in plan["arrays"])
    assert sorted(devices["lvm_vg"]) == sorted(vg["name"] for vg in plan["volume_groups"])
    sizes = {(vg, lv): spec["size"] for vg, group in devices["lvm_vg"].items() for lv, spec in group["lvs"].items()}
    assert sizes == {(lv["vg"], lv["name"]): "%dM" % (lv["size"] // 1024 ** 2) for lv in plan["logical_volumes"]}
    labels = []
    for spec in devices["disk"].values():
        labels += [p["content"]["extraArgs"][1] for p in spec["content"]["partitions"].values()
                   if "extraArgs" in p["content"]]
    for group in devices["lvm_vg"].values():
        labels += [lv["content"]["extraArgs"][1] for lv in group["lvs"].values()]
    assert sorted(labels) == sorted([p["label"] for p in plan["partitions"] if p["label"]]
                                    + [lv["label"] for lv in plan["logical_volumes"]])


@pytest.mark.parametrize(
    ("where", "value", "message"),
    [
        ("partition_label", "EFI; rm -rf /", "filesystem label 'EFI; rm -rf /' cannot go into a disko layout"),
        ("partlabel", "main esp1", "partition name 'main esp1'"),
        ("lv_label", "$(reboot)", "filesystem label '$(reboot)'"),
        ("disk", "sd`x`", "disk name 'sd`x`'"),
    ],
)
def test_names_disko_would_paste_into_shell_unquoted_are_refused(where, value, message):
    plan = plan_for("ssd_only")
    if where == "partition_label":
        plan["partitions"][0]["label"] = value
    elif where == "partlabel":
        plan["partitions"][0]["partlabel"] = value
    elif where == "lv_label":
        plan["logical_volumes"][0]["label"] = value
    else:
        plan["disks"][0]["name"] = value
        for partition in plan["partitions"]:
            if partition["disk"] == "sda":
                partition["disk"] = value
    with pytest.raises(disko.NixosConfigError, match=re.escape(message)):
        disko.render_disko(plan)
