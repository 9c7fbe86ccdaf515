# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Disk facts: one dict per top-level block device, from ``lsblk -J -b -O``, sysfs, ``/dev/disk/by-id``
and the mounts.

Every function here is pure apart from reading files under the root paths it is given
(``sysfs_root``, ``dev_root``, ``proc_root``) and running ``lsblk`` through the runner it is
given, so tests point it at fake trees and a fake runner. The lsblk forest, the mounts and which
disks the running system lives on come from ``block_devices``; this room describes each disk.

:func:`gather_disks` returns one dict per top-level block device, in the shape documented in
``docs/contracts.md`` ("A disk"). It decides nothing about eligibility; the planner does.
"""
from __future__ import annotations

import os
import re

from ansible_collections.prenixos.baseline.plugins.module_utils.block_devices import (
    MD_TYPES,
    BlockDevices,
    BootMediumResolver,
    DiskFactsError,
    kernel_name,
    mountpoints_by_device,
    natural_key,
    read_mountinfo,
    read_sysfs,
    run_lsblk,
    text_or_none,
    walk,
)

# /dev/disk/by-id link prefixes, most preferred first. Readable ids (model and serial) come
# before opaque hex ids; the most specific matching prefix decides ("nvme-eui." is not "nvme-").
# Links not matching any prefix (lvm-pv-uuid-, md-uuid-, dm-name-, ...) describe content, not
# hardware, and are never used.
BY_ID_PREFERENCE = (
    "nvme-",
    "ata-",
    "scsi-0",
    "scsi-1",
    "scsi-S",
    "scsi-",
    "virtio-",
    "usb-",
    "mmc-",
    "wwn-",
    "nvme-eui.",
    "nvme-nvme.",
    "nvme-uuid.",
)

PARTITION_LINK = re.compile(r"-part\d+$")
VIRTIO_BLK_NAME = re.compile(r"^vd[a-z]+$")


# ---------------------------------------------------------------- lsblk columns


def lsblk_flag(device, key):
    """A boolean column: JSON true/false (util-linux >= 2.33) or "0"/"1" (older); None when absent."""
    value = device.get(key)
    if value is None or isinstance(value, bool):
        return value
    if value in (0, 1, "0", "1"):
        return value in (1, "1")
    raise DiskFactsError("lsblk reports %s=%r for %s, expected a boolean" % (key, value, device["name"]))


def lsblk_int(device, key):
    """An integer column (a number, or a string of digits from older lsblk); None when absent."""
    value = device.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    if isinstance(value, str) and value.isdecimal():
        return int(value)
    raise DiskFactsError("lsblk reports %s=%r for %s, expected a number of bytes" % (key, value, device["name"]))


def lsblk_mountpoints(device):
    """Mountpoints lsblk shows: the MOUNTPOINTS list (util-linux >= 2.37) or the single MOUNTPOINT."""
    values = device.get("mountpoints")
    if values is None:
        values = [device.get("mountpoint")]
    if not isinstance(values, list):
        raise DiskFactsError("lsblk reports mountpoints=%r for %s, expected a list" % (values, device["name"]))
    return [value for value in values if isinstance(value, str) and value]


# ---------------------------------------------------------------- sysfs and /dev


def describe_sysfs(sysfs_root, name, attribute):
    """A descriptive attribute (model, serial, wwid): None when missing or unreadable.

    Some drivers refuse to read such attributes (virtio-scsi's ``device/wwid`` gives EINVAL on newer
    kernels); that costs a description, never the discovery.
    """
    try:
        return read_sysfs(sysfs_root, name, attribute)
    except DiskFactsError:
        return None


def sysfs_flag(sysfs_root, name, attribute):
    value = read_sysfs(sysfs_root, name, attribute)
    if value is None:
        return None
    if value not in ("0", "1"):
        raise DiskFactsError(
            "%s holds %r, expected 0 or 1" % (os.path.join(sysfs_root, "block", name, attribute), value)
        )
    return value == "1"


def sysfs_size(sysfs_root, name):
    """Size in bytes from /sys/block/NAME/size, which counts 512-byte sectors whatever the disk's sector size."""
    value = read_sysfs(sysfs_root, name, "size")
    if value is None:
        return None
    if not value.isdecimal():
        raise DiskFactsError(
            "%s holds %r, expected a number of sectors" % (os.path.join(sysfs_root, "block", name, "size"), value)
        )
    return int(value) * 512


def first_known(*values):
    for value in values:
        if value is not None:
            return value
    return None


def by_id_rank(link):
    """Position of a by-id link name in BY_ID_PREFERENCE, or None when it must not be used."""
    matching = [prefix for prefix in BY_ID_PREFERENCE if link.startswith(prefix)]
    if not matching or PARTITION_LINK.search(link):
        return None
    return BY_ID_PREFERENCE.index(max(matching, key=len))


def read_by_id(dev_root):
    """Kernel name -> usable /dev/disk/by-id link names pointing at it, best first."""
    directory = os.path.join(dev_root, "disk", "by-id")
    try:
        entries = os.listdir(directory)
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise DiskFactsError("cannot list %s: %s" % (directory, err.strerror or err)) from None
    links = {}
    for entry in entries:
        if by_id_rank(entry) is None:
            continue
        try:
            target = os.readlink(os.path.join(directory, entry))
        except OSError:
            continue  # not a symlink: nothing udev made
        links.setdefault(os.path.basename(target), []).append(entry)
    # shorter first: "nvme-<model>_<serial>" before its namespace twin "nvme-<model>_<serial>_1"
    return {name: sorted(found, key=lambda link: (by_id_rank(link), len(link), link)) for name, found in links.items()}


def stable_path(name, by_id):
    links = by_id.get(name)
    return "/dev/disk/by-id/" + links[0] if links else "/dev/" + name


# ---------------------------------------------------------------- one disk


def transport_of(device, name):
    """lsblk TRAN, else what the kernel name implies (virtio-blk and NVMe); None when unknown."""
    transport = text_or_none(device.get("tran"))
    if transport:
        return transport
    if name.startswith("nvme"):
        return "nvme"
    if VIRTIO_BLK_NAME.match(name):
        return "virtio"
    return None


def node_mountpoints(node, mounted):
    return sorted(set(lsblk_mountpoints(node)) | mounted.get(kernel_name(node), set()))


def flatten_children(device, mounted):
    """Descendants depth first, siblings in natural order, each once."""
    children, seen = [], set()

    def visit(node):
        for child in sorted(node.get("children") or [], key=lambda c: natural_key(c["name"])):
            if child["name"] in seen:
                continue
            seen.add(child["name"])
            children.append(
                {
                    "name": child["name"],
                    "type": child["type"],
                    "fstype": text_or_none(child.get("fstype")),
                    "label": text_or_none(child.get("label")),
                    "partlabel": text_or_none(child.get("partlabel")),
                    "mountpoints": node_mountpoints(child, mounted),
                }
            )
            visit(child)

    visit(device)
    return children


def holder_reason(child):
    """How a device stacked on the disk is described, or None for a plain partition."""
    kind, name = child["type"], child["name"]
    if kind == "part":
        return None
    if kind in MD_TYPES:
        return "member of %s" % name
    if kind == "lvm":
        return "logical volume %s" % name
    if kind == "crypt":
        return "encrypted volume %s" % name
    return "holds %s %s" % (kind, name)


def mount_reasons(name, mountpoints):
    # lsblk shows active swap as the pseudo mountpoint [SWAP]
    return ["active swap on %s" % name if point == "[SWAP]" else "mounted: %s" % point for point in mountpoints]


def in_use_reasons(device, children, mounted):
    """Why the disk is not blank, in the order a person would check: table, partitions, stack, mounts."""
    name = device["name"]
    reasons = []
    if text_or_none(device.get("pttype")):
        reasons.append("partition table (%s)" % text_or_none(device.get("pttype")))
    partitions = sorted(
        (child["name"] for child in device.get("children") or [] if child["type"] == "part"), key=natural_key
    )
    if partitions:
        reasons.append("partitions: %s" % ", ".join(partitions))
    if text_or_none(device.get("fstype")):
        reasons.append("signature %s on %s" % (text_or_none(device.get("fstype")), name))
    reasons += mount_reasons(name, node_mountpoints(device, mounted))
    nodes_by_name = {node["name"]: node for node in walk(device)}
    for child in children:
        holder = holder_reason(child)
        if holder:
            reasons.append(holder)
        # a partition's PTTYPE is its parent's table; only a holder can carry a table of its own
        child_pttype = text_or_none(nodes_by_name[child["name"]].get("pttype"))
        if child["type"] != "part" and child_pttype:
            reasons.append("partition table (%s) on %s" % (child_pttype, child["name"]))
        if child["fstype"]:
            reasons.append("signature %s on %s" % (child["fstype"], child["name"]))
        reasons += mount_reasons(child["name"], child["mountpoints"])
    return reasons


def describe_disk(device, sysfs_root, by_id, boot_names, mounted):
    """The contract dict for one top-level lsblk device."""
    name = kernel_name(device)
    size = first_known(sysfs_size(sysfs_root, name), lsblk_int(device, "size"))
    rotational = first_known(sysfs_flag(sysfs_root, name, "queue/rotational"), lsblk_flag(device, "rota"))
    removable = first_known(sysfs_flag(sysfs_root, name, "removable"), lsblk_flag(device, "rm"))
    read_only = first_known(sysfs_flag(sysfs_root, name, "ro"), lsblk_flag(device, "ro"))
    for key, value in (("size", size), ("rotational", rotational), ("removable", removable), ("ro", read_only)):
        if value is None:
            raise DiskFactsError("neither sysfs nor lsblk tell the %s of %s" % (key, name))
    children = flatten_children(device, mounted)
    reasons = in_use_reasons(device, children, mounted)
    return {
        "name": name,
        "type": device["type"],
        "path": stable_path(name, by_id),
        "dev": "/dev/" + name,
        "size": size,
        "rotational": rotational,
        "removable": removable,
        "read_only": read_only,
        "transport": transport_of(device, name),
        "model": first_known(
            text_or_none(device.get("model")),
            text_or_none(describe_sysfs(sysfs_root, name, "device/model")),
        ),
        "serial": first_known(
            text_or_none(device.get("serial")),
            text_or_none(describe_sysfs(sysfs_root, name, "device/serial")),
            text_or_none(describe_sysfs(sysfs_root, name, "serial")),
        ),
        "wwn": first_known(
            text_or_none(device.get("wwn")),
            text_or_none(describe_sysfs(sysfs_root, name, "wwid")),
            text_or_none(describe_sysfs(sysfs_root, name, "device/wwid")),
        ),
        "boot_medium": name in boot_names,
        "in_use": bool(reasons),
        "in_use_reasons": reasons,
        "children": children,
    }


# ---------------------------------------------------------------- everything


def describe_disks(top_level, mounts, sysfs_root="/sys", dev_root="/dev"):
    """Contract dicts for parsed lsblk devices and parsed mounts, in natural name order."""
    devices = BlockDevices(top_level)
    boot_names = BootMediumResolver(devices, mounts, sysfs_root, dev_root).resolve()
    mounted = mountpoints_by_device(devices, mounts, dev_root)
    by_id = read_by_id(dev_root)
    disks = [describe_disk(device, sysfs_root, by_id, boot_names, mounted) for device in top_level]
    disks.sort(key=lambda disk: (natural_key(disk["name"]), disk["name"]))
    return disks


def gather_disks(runner, sysfs_root="/sys", dev_root="/dev", proc_root="/proc", lsblk="lsblk"):
    """Every top-level block device of the machine as a contract dict (see docs/contracts.md).

    Raises DiskFactsError when lsblk, sysfs or mountinfo cannot be understood, and the runner's
    CommandError when lsblk fails.
    """
    top_level = run_lsblk(runner, lsblk)
    mounts = read_mountinfo(proc_root)
    return describe_disks(top_level, mounts, sysfs_root, dev_root)
