# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render a storage plan (see ``planner.py``) for people.

``render_summary(plan)``: a tree disk -> partition -> array -> VG -> LV -> filesystem -> mount,
then the excluded disks with their reasons and the planner's notes. A pure function of the plan dict.

The plan for NixOS is ``nixos.render_storage``: one renderer for the plan's fragment and ``pre-nixos.nix``.
"""
from __future__ import annotations

from ansible_collections.prenixos.baseline.plugins.module_utils.storage_contract import human_size


def render_summary(plan):
    """A readable tree of the plan, with the excluded disks and the notes after it."""
    header = "Storage plan (version %d): %d disk(s) planned, %d excluded" % (
        plan["version"],
        len(plan["disks"]),
        len(plan["excluded"]),
    )
    lines = [header]
    shown = set()
    for disk in plan["disks"]:
        lines.append(disk_label(disk))
        lines += tree_lines([partition_node(plan, partition, shown) for partition in partitions_of(plan, disk["name"])])
    if plan["excluded"]:
        lines.append("Excluded:")
        lines += ["  %s: %s" % (entry["disk"], entry["reason"]) for entry in plan["excluded"]]
    if plan["notes"]:
        lines.append("Notes:")
        lines += ["  - %s" % note for note in plan["notes"]]
    return "\n".join(lines) + "\n"


def tree_lines(nodes, prefix=""):
    """``nodes`` are ``(label, children)`` pairs; returns the lines of an ASCII tree."""
    lines = []
    for index, (label, children) in enumerate(nodes):
        last = index == len(nodes) - 1
        lines.append(prefix + ("`-- " if last else "|-- ") + label)
        lines += tree_lines(children, prefix + ("    " if last else "|   "))
    return lines


def disk_label(disk):
    """``sda  ssd  32.0 GiB  /dev/disk/by-id/...  serial S3Z1NB0K123``: what an operator selects a disk by."""
    label = "%s  %s  %s  %s" % (disk["name"], disk["class"], human_size(disk["size"]), disk["path"])
    for key in ("serial", "wwn"):
        if disk.get(key):
            label += "  %s %s" % (key, disk[key])
    return label


def partitions_of(plan, disk_name):
    return [partition for partition in plan["partitions"] if partition["disk"] == disk_name]


def partition_node(plan, partition, shown):
    size = "rest of disk" if partition["size"] is None else human_size(partition["size"])
    label = "%s  %s  %s  %s" % (partition["device"], partition["partlabel"], partition["type_code"], size)
    if partition["filesystem"]:
        label += "  " + filesystem_text(partition["filesystem"], partition["label"], partition["mountpoint"])
        return (label, [])
    array = next((a for a in plan["arrays"] if partition["device"] in a["devices"]), None)
    if array is not None:
        return (label, [array_node(plan, array, shown)])
    volume_group = next(vg for vg in plan["volume_groups"] if partition["device"] in vg["pvs"])
    return (label, [volume_group_node(plan, volume_group, shown)])


def array_node(plan, array, shown):
    label = "%s  %s of %s" % (array["device"], array["level"], ", ".join(array["devices"]))
    if array["device"] in shown:
        return (array["device"] + "  (see above)", [])
    shown.add(array["device"])
    volume_group = next(vg for vg in plan["volume_groups"] if array["device"] in vg["pvs"])
    return (label, [volume_group_node(plan, volume_group, shown)])


def volume_group_node(plan, volume_group, shown):
    key = "vg:" + volume_group["name"]
    if key in shown:
        return ("VG %s  (see above)" % volume_group["name"], [])
    shown.add(key)
    label = "VG %s  %s  %s  %s" % (
        volume_group["name"],
        volume_group["class"],
        volume_group["raid_level"],
        human_size(volume_group["size"]),
    )
    volumes = [lv for lv in plan["logical_volumes"] if lv["vg"] == volume_group["name"]]
    children = [(logical_volume_text(lv), []) for lv in volumes]
    free = volume_group["size"] - sum(lv["size"] for lv in volumes)
    children.append(("free  %s" % human_size(free), []))
    return (label, children)


def logical_volume_text(volume):
    text = "LV %s  %s  %s" % (volume["name"], human_size(volume["size"]), filesystem_text(
        volume["filesystem"], volume["label"], volume["mountpoint"]
    ))
    if volume["inode_ratio"]:
        text += "  (one inode per %d bytes)" % volume["inode_ratio"]
    return text


def filesystem_text(filesystem, label, mountpoint):
    where = "-> %s" % mountpoint if mountpoint else "(not mounted)"
    if filesystem == "swap":
        where = "(swap)"
    return '%s "%s" %s' % (filesystem, label, where)
