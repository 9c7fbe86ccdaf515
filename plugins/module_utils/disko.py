# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage plan as a disko ``disko.devices`` expression, for people who keep their layout in disko.

``render_disko(plan)``: the same disks, partition names, arrays, volume groups, sizes and labels as the
plan. Pure. Names and labels disko would paste into shell commands unquoted are checked
(``NixosConfigError`` names the value).
"""
from __future__ import annotations

import re

from ansible_collections.prenixos.baseline.plugins.module_utils.nix_syntax import (
    NixosConfigError,
    nix_comment,
    to_nix,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.nixos import ESP_MOUNT_OPTIONS

MiB = 1024 ** 2
DISKO_RAID_LEVELS = {"raid0": 0, "raid1": 1, "raid5": 5, "raid6": 6}
# disko pastes names and labels into shell scripts unquoted: only these characters are safe there.
DISKO_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*\Z")


def disko_safe(kind, name):
    if not DISKO_SAFE_NAME.match(str(name or "")):
        raise NixosConfigError(
            "the %s %r cannot go into a disko layout: disko writes it into shell commands unquoted "
            "(letters, digits, '_', '.', '+' and '-' only)" % (kind, name)
        )
    return name


def size_in_mib(size):
    return "%dM" % (size // MiB)


def disko_filesystem(filesystem, label, mountpoint, inode_ratio=None):
    disko_safe("filesystem label", label)
    if filesystem == "swap":
        return {"type": "swap", "extraArgs": ["-L", label]}
    content = {"type": "filesystem", "format": filesystem}
    if filesystem == "vfat":
        content["extraArgs"] = ["-n", label]
        content["mountOptions"] = list(ESP_MOUNT_OPTIONS)
    else:
        content["extraArgs"] = ["-L", label] + (["-i", str(inode_ratio)] if inode_ratio else [])
    if mountpoint:
        content["mountpoint"] = mountpoint
    return content


def disko_partition_content(plan, partition):
    if partition["filesystem"]:
        return disko_filesystem(partition["filesystem"], partition["label"], partition["mountpoint"])
    array = next((a for a in plan["arrays"] if partition["device"] in a["devices"]), None)
    if array is not None:
        return {"type": "mdraid", "name": disko_safe("array name", array["name"])}
    volume_group = next((vg for vg in plan["volume_groups"] if partition["device"] in vg["pvs"]), None)
    if volume_group is None:
        raise NixosConfigError("partition %s holds nothing in the plan" % partition["device"])
    return {"type": "lvm_pv", "vg": disko_safe("volume group", volume_group["name"])}


def disko_devices(plan):
    """``disko.devices`` as Python data (see ``render_disko``)."""
    disks = {}
    for disk in plan["disks"]:
        partitions = {}
        for partition in [p for p in plan["partitions"] if p["disk"] == disk["name"]]:
            partlabel = disko_safe("partition name", partition["partlabel"])
            partitions[partlabel] = {
                "priority": partition["number"],
                "label": partlabel,
                "type": partition["type_code"],
                "size": "100%" if partition["size"] is None else size_in_mib(partition["size"]),
                "content": disko_partition_content(plan, partition),
            }
        disks[disko_safe("disk name", disk["name"])] = {
            "type": "disk",
            "device": disk["path"],
            "content": {"type": "gpt", "partitions": partitions},
        }
    arrays = {}
    for array in plan["arrays"]:
        volume_group = next(vg for vg in plan["volume_groups"] if array["device"] in vg["pvs"])
        arrays[disko_safe("array name", array["name"])] = {
            "type": "mdadm",
            "level": DISKO_RAID_LEVELS[array["level"]],
            "metadata": array["metadata"],
            "content": {"type": "lvm_pv", "vg": disko_safe("volume group", volume_group["name"])},
        }
    volume_groups = {}
    for volume_group in plan["volume_groups"]:
        volumes = {}
        for lv in [lv for lv in plan["logical_volumes"] if lv["vg"] == volume_group["name"]]:
            volumes[disko_safe("logical volume", lv["name"])] = {
                "size": size_in_mib(lv["size"]),
                "content": disko_filesystem(lv["filesystem"], lv["label"], lv["mountpoint"], lv["inode_ratio"]),
            }
        volume_groups[disko_safe("volume group", volume_group["name"])] = {"type": "lvm_vg", "lvs": volumes}
    devices = {"disk": disks}
    if arrays:
        devices["mdadm"] = arrays
    devices["lvm_vg"] = volume_groups
    return devices


def render_disko(plan):
    """The plan as a disko ``disko.devices`` expression (a NixOS module that is a plain attribute set)."""
    header = [
        nix_comment("This machine's storage plan (version %s) as a disko layout, written by prenixos.baseline."
                    % plan.get("version")),
        nix_comment("Same disks, partition names, arrays, volume groups, sizes and labels as the plan. Not imported"),
        nix_comment("by configuration.nix (pre-nixos.nix already mounts everything by label); use it with disko."),
    ]
    return "\n".join(header) + "\n" + to_nix({"disko": {"devices": disko_devices(plan)}}) + "\n"
