# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Disk discovery: ``lsblk -J -b -O`` combined with sysfs, ``/dev/disk/by-id`` and mountinfo.

Every function here is pure apart from reading files under the root paths it is given
(``sysfs_root``, ``dev_root``, ``proc_root``) and running ``lsblk`` through the runner it is
given, so tests point it at fake trees and a fake runner.

:func:`gather_disks` returns one dict per top-level block device, in the shape documented in
``docs/contracts.md`` ("A disk"). It decides nothing about eligibility; the planner does.
"""
from __future__ import annotations

import json
import os
import re

LSBLK_ARGS = ("-J", "-b", "-O")

# Mountpoints whose devices carry the running system: an installed root, or a live medium
# (Debian live-boot, Ubuntu casper, dracut, archiso, NixOS ISO). Mounts under /mnt are the
# product's own target and are deliberately absent.
BOOT_MOUNTPOINTS = (
    "/",
    "/usr",
    "/boot",
    "/boot/efi",
    "/run/live/medium",
    "/lib/live/mount/medium",
    "/run/initramfs/live",
    "/run/archiso/bootmnt",
    "/iso",
    "/cdrom",
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
LETTERED_NAME = re.compile(r"^(sd|vd|hd|xvd)([a-z]+)$")
VIRTIO_BLK_NAME = re.compile(r"^vd[a-z]+$")
MOUNTINFO_ESCAPE = re.compile(r"\\([0-7]{3})")
MD_TYPES = ("linear", "md", "raid0", "raid1", "raid4", "raid5", "raid6", "raid10")


class DiskFactsError(Exception):
    """Discovery could not read or understand what the system reports."""


# ---------------------------------------------------------------- lsblk


def run_lsblk(runner, lsblk="lsblk"):
    """Run ``lsblk -J -b -O`` through the runner and return its top-level devices."""
    stdout = runner.run([lsblk] + list(LSBLK_ARGS))[1]
    return parse_lsblk(stdout)


def parse_lsblk(text):
    """Top-level devices of ``lsblk -J`` output, checked for the structure the rest relies on."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as err:
        message = "lsblk -J -b -O did not print valid JSON (%s); output starts: %r" % (err, text[:200])
        raise DiskFactsError(message) from None
    if not isinstance(data, dict) or not isinstance(data.get("blockdevices"), list):
        raise DiskFactsError("lsblk -J -b -O printed JSON without a 'blockdevices' list: %r" % (text[:200],))
    for device in data["blockdevices"]:
        check_lsblk_entry(device, "blockdevices")
    return data["blockdevices"]


# Columns used as names and keys (text or absent), and the ones that hold lists; every other is one value.
TEXT_COLUMNS = ("kname", "path", "maj:min", "pkname")
LIST_COLUMNS = ("children", "mountpoints", "fsroots")


def check_lsblk_entry(device, parent):
    """Fail clearly on an entry without the keys every later step needs."""
    if not isinstance(device, dict):
        raise DiskFactsError("lsblk entry under %s is not an object: %r" % (parent, device))
    for key in ("name", "type"):
        if not isinstance(device.get(key), str) or not device[key]:
            raise DiskFactsError("lsblk entry under %s has no %s: %r" % (parent, key, short_repr(device)))
    for key, value in device.items():
        if key in LIST_COLUMNS:
            continue
        wrong_text = key in TEXT_COLUMNS and value is not None and not isinstance(value, str)
        if isinstance(value, (list, dict)) or wrong_text:
            raise DiskFactsError("lsblk entry %s has %s=%r, expected %s"
                                 % (device["name"], key, value, "text" if key in TEXT_COLUMNS else "a single value"))
    children = device.get("children", [])
    if not isinstance(children, list):
        raise DiskFactsError("lsblk entry %s has 'children' that is not a list" % device["name"])
    for child in children:
        check_lsblk_entry(child, device["name"])


def short_repr(device):
    return {key: device[key] for key in ("name", "kname", "type", "path") if key in device}


def kernel_name(device):
    return device.get("kname") or device["name"]


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


def text_or_none(value):
    """Trimmed text, or None for absent and empty values (lsblk prints both null and "")."""
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def lsblk_mountpoints(device):
    """Mountpoints lsblk shows: the MOUNTPOINTS list (util-linux >= 2.37) or the single MOUNTPOINT."""
    values = device.get("mountpoints")
    if values is None:
        values = [device.get("mountpoint")]
    if not isinstance(values, list):
        raise DiskFactsError("lsblk reports mountpoints=%r for %s, expected a list" % (values, device["name"]))
    return [value for value in values if isinstance(value, str) and value]


def walk(device):
    """The device and all its descendants, depth first."""
    yield device
    for child in device.get("children") or []:
        yield from walk(child)


def natural_key(name):
    """Sort key in kernel order: sda < sdb < sdz < sdaa, nvme0n1 < nvme1n1 < nvme10n1, sda2 < sda10."""
    lettered = LETTERED_NAME.match(name)
    if lettered:
        prefix, letters = lettered.groups()
        return ((1, prefix), (0, len(letters)), (1, letters))
    return tuple((0, int(token)) if token.isdigit() else (1, token) for token in re.split(r"(\d+)", name) if token)


class BlockDevices:
    """Every node of the lsblk forest, findable by kernel name, device number or /dev path."""

    def __init__(self, top_level):
        self.top_level = list(top_level)
        self.top_names = {kernel_name(device) for device in self.top_level}
        self.tops_of = {}
        self.by_number = {}
        self.by_path = {}
        for top in self.top_level:
            for node in walk(top):
                name = kernel_name(node)
                # one array over partitions of two disks appears under both: it belongs to both
                self.tops_of.setdefault(name, set()).add(kernel_name(top))
                if node.get("maj:min"):
                    self.by_number[node["maj:min"]] = name
                for path in (node.get("path"), "/dev/" + node["name"], "/dev/" + name):
                    if path:
                        self.by_path[path] = name

    def find(self, number, source, dev_root):
        """Kernel name of the device a mount comes from, or None (tmpfs, overlay, unknown)."""
        if number and not number.startswith("0:") and number in self.by_number:
            return self.by_number[number]
        if not source.startswith("/dev/"):
            return None
        if source in self.by_path:
            return self.by_path[source]
        # /dev/mapper/x, /dev/disk/by-uuid/..., /dev/md/name are symlinks to the kernel node
        resolved = os.path.realpath(os.path.join(dev_root, source[len("/dev/"):]))
        return self.by_path.get("/dev/" + os.path.relpath(resolved, os.path.realpath(dev_root)))


# ---------------------------------------------------------------- sysfs and /dev


def read_sysfs(sysfs_root, name, attribute):
    """Trimmed content of /sys/block/NAME/ATTRIBUTE; None when the file does not exist."""
    path = os.path.join(sysfs_root, "block", name, attribute)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        raise DiskFactsError("cannot read %s: %s" % (path, err.strerror or err)) from None


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


def sysfs_slaves(sysfs_root, name):
    """Kernel names a dm or md device is built on (/sys/block/NAME/slaves)."""
    path = os.path.join(sysfs_root, "block", name, "slaves")
    try:
        return sorted(os.listdir(path), key=natural_key)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as err:
        raise DiskFactsError("cannot list %s: %s" % (path, err.strerror or err)) from None


def loop_backing_file(sysfs_root, name):
    """The file behind a loop device, or None."""
    value = read_sysfs(sysfs_root, name, "loop/backing_file")
    if not value:
        return None
    # the kernel appends this when the file was unlinked while attached
    return value[: -len(" (deleted)")] if value.endswith(" (deleted)") else value


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


# ---------------------------------------------------------------- mounts


def read_mountinfo(proc_root):
    """Mounts of /proc/self/mountinfo; an unreadable file is an error (the boot medium depends on it)."""
    path = os.path.join(proc_root, "self", "mountinfo")
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            text = handle.read()
    except OSError as err:
        raise DiskFactsError("cannot read %s: %s" % (path, err.strerror or err)) from None
    return parse_mountinfo(text, path)


def unescape_mountinfo(field):
    """Undo the kernel's octal escapes (\\040 for a space, ...)."""
    return MOUNTINFO_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_mountinfo(text, origin="mountinfo"):
    """List of ``{number, root, mountpoint, fstype, source, options}``, in mount order."""
    mounts = []
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        # optional fields sit between the 6th field and a lone "-"
        separator = fields.index("-", 6) if "-" in fields[6:] else None
        if separator is None or len(fields) < separator + 3:
            raise DiskFactsError("%s line %d is not a mountinfo line: %r" % (origin, line_number, line))
        mounts.append(
            {
                "number": fields[2],
                "root": unescape_mountinfo(fields[3]),
                "mountpoint": unescape_mountinfo(fields[4]),
                "fstype": fields[separator + 1],
                "source": unescape_mountinfo(fields[separator + 2]),
                "options": fields[separator + 3] if len(fields) > separator + 3 else "",
            }
        )
    return mounts


def is_under(path, directory):
    return directory == "/" or path == directory or path.startswith(directory.rstrip("/") + "/")


def containing_mount(mounts, path):
    """The mount a path lives on: the longest matching mountpoint, the latest mount on a tie."""
    best = None
    for mount in mounts:
        if is_under(path, mount["mountpoint"]) and (
            best is None or len(mount["mountpoint"]) >= len(best["mountpoint"])
        ):
            best = mount
    return best


def overlay_dirs(options):
    """Directories an overlay mount is made of (lowerdir may list several, ':'-separated)."""
    dirs = []
    for option in options.split(","):
        if "=" not in option:
            continue
        key, value = option.split("=", 1)
        if key == "lowerdir":
            dirs += [part for part in value.split(":") if part]
        elif key in ("upperdir", "workdir") and value:
            dirs.append(value)
    return dirs


def mountpoints_by_device(devices, mounts, dev_root):
    """Kernel name -> mountpoints, from mountinfo."""
    found = {}
    for mount in mounts:
        name = devices.find(mount["number"], mount["source"], dev_root)
        if name:
            found.setdefault(name, set()).add(mount["mountpoint"])
    return found


class BootMediumResolver:
    """Finds the top-level devices the running system lives on, following every layer down.

    Starts from the mounts at BOOT_MOUNTPOINTS and follows: a partition or holder to its
    top-level disk(s) (the lsblk tree), dm/md devices to /sys/block/X/slaves, a loop device to
    the mount holding its backing file, an overlay to the mounts of its layers. A tmpfs or
    overlay ``/`` leads nowhere by itself; the live-medium mounts then carry the answer.
    """

    def __init__(self, devices, mounts, sysfs_root, dev_root):
        self.devices = devices
        self.mounts = mounts
        self.sysfs_root = sysfs_root
        self.dev_root = dev_root
        self.found = set()
        self.seen_mounts = set()
        self.seen_devices = set()

    def resolve(self):
        for mount in self.mounts:
            if mount["mountpoint"] in BOOT_MOUNTPOINTS:
                self.from_mount(mount)
        return self.found

    def from_mount(self, mount):
        if id(mount) in self.seen_mounts:
            return
        self.seen_mounts.add(id(mount))
        name = self.devices.find(mount["number"], mount["source"], self.dev_root)
        if name:
            self.from_device(name)
        elif mount["fstype"] == "overlay":
            for directory in overlay_dirs(mount["options"]):
                self.from_path(directory)

    def from_path(self, path):
        mount = containing_mount(self.mounts, path)
        if mount is not None:
            self.from_mount(mount)

    def from_device(self, name):
        if name in self.seen_devices:
            return
        self.seen_devices.add(name)
        if name in self.devices.top_names:
            self.found.add(name)
        for top in sorted(self.devices.tops_of.get(name, ())):
            self.from_device(top)
        for slave in sysfs_slaves(self.sysfs_root, name):
            self.from_device(slave)
        backing = loop_backing_file(self.sysfs_root, name)
        if backing:
            self.from_path(backing)


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
