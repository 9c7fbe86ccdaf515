# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The machine's block devices as the kernel shows them, and the disks the running system lives on.

* the ``lsblk -J -b -O`` forest, parsed and checked (:func:`parse_lsblk`), and :class:`BlockDevices`,
  which finds any node of it by kernel name, device number or /dev path;
* the mounts (``/proc/self/mountinfo``, :func:`parse_mountinfo`);
* :class:`BootMediumResolver`: from the mounts the running system needs (an installed root, a live
  medium) down to the top-level disks under them.

Pure apart from reading files under the root paths it is given (``sysfs_root``, ``dev_root``,
``proc_root``) and running ``lsblk`` through the runner it is given. Imports nothing of the
collection; ``disks`` (the disk facts) and ``storage_state`` (what the disks hold now) both build on it.
"""
from __future__ import annotations

import json
import os
import re

LSBLK_ARGS = ("-J", "-b", "-O")

# File systems that live on no disk: a mount of one leads to no device, and that is not a doubt.
# (An overlay leads to the mounts of its layers.) Any other mount that leads to no device is a doubt.
DISKLESS_FSTYPES = frozenset(
    ("tmpfs", "ramfs", "rootfs", "devtmpfs", "autofs", "proc", "sysfs", "nfs", "nfs4", "cifs", "smb3", "9p",
     "virtiofs")
)

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

LETTERED_NAME = re.compile(r"^(sd|vd|hd|xvd)([a-z]+)$")
MOUNTINFO_ESCAPE = re.compile(r"\\([0-7]{3})")
MD_TYPES = ("linear", "md", "raid0", "raid1", "raid4", "raid5", "raid6", "raid10")


class DiskFactsError(Exception):
    """Discovery could not read or understand what the system reports."""


class BootDisksUnknown(DiskFactsError):
    """A mount the running system needs leads to no known disk: which disks must never be touched is unknown."""


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
    for key in ("name", "kname", "pkname", "path"):
        # Names become sysfs and /dev paths, which cannot hold a NUL byte.
        if isinstance(device.get(key), str) and "\0" in device[key]:
            raise DiskFactsError("lsblk entry under %s has %s=%r, which is no kernel name or path"
                                 % (parent, key, device[key]))
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


def text_or_none(value):
    """Trimmed text, or None for absent and empty values (lsblk prints both null and "")."""
    if value is None:
        return None
    value = str(value).strip()
    return value or None


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
        self.nodes = {}
        self.tops_of = {}
        self.by_number = {}
        self.by_path = {}
        for top in self.top_level:
            for node in walk(top):
                name = kernel_name(node)
                self.nodes.setdefault(name, node)
                # one array over partitions of two disks appears under both: it belongs to both
                self.tops_of.setdefault(name, set()).add(kernel_name(top))
                if node.get("maj:min"):
                    self.by_number[node["maj:min"]] = name
                for path in (node.get("path"), "/dev/" + node["name"], "/dev/" + name):
                    if path:
                        self.by_path[path] = name

    def with_signature(self, fstype, **columns):
        """Kernel names of the nodes lsblk shows with file system ``fstype`` and these column values."""
        return sorted((name for name, node in self.nodes.items()
                       if text_or_none(node.get("fstype")) == fstype
                       and all(text_or_none(node.get(key)) == value for key, value in columns.items())),
                      key=natural_key)

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


# ---------------------------------------------------------------- sysfs


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


def sysfs_slaves(sysfs_root, name):
    """Kernel names a dm or md device is built on (/sys/block/NAME/slaves)."""
    path = os.path.join(sysfs_root, "block", name, "slaves")
    try:
        return sorted(os.listdir(path), key=natural_key)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as err:
        raise DiskFactsError("cannot list %s: %s" % (path, err.strerror or err)) from None


def btrfs_devices(sysfs_root, name):
    """Kernel names of every device of the btrfs that ``name`` belongs to (/sys/fs/btrfs/FSID/devices), or []."""
    path = os.path.join(sysfs_root, "fs", "btrfs")
    try:
        for fsid in sorted(os.listdir(path)):
            devices = os.path.join(path, fsid, "devices")
            if os.path.isdir(devices):
                members = sorted(os.listdir(devices), key=natural_key)
                if name in members:
                    return members
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as err:
        raise DiskFactsError("cannot list %s: %s" % (path, err.strerror or err)) from None
    return []


def loop_backing_file(sysfs_root, name):
    """The file behind a loop device, or None."""
    value = read_sysfs(sysfs_root, name, "loop/backing_file")
    if not value:
        return None
    # the kernel appends this when the file was unlinked while attached
    return value[: -len(" (deleted)")] if value.endswith(" (deleted)") else value


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
    the mount holding its backing file, an overlay to the mounts of its layers, a btrfs to every
    device of the file system (/sys/fs/btrfs, and the UUID its devices share), a ZFS dataset to
    every ``zfs_member`` labelled with its pool, a bcachefs to each of its devices. A tmpfs or
    overlay ``/`` leads nowhere by itself; the live-medium mounts then carry the answer.

    A mount that leads to no device and is not one of DISKLESS_FSTYPES is a doubt: ``resolve``
    then raises BootDisksUnknown naming it, so that no disk is touched rather than the wrong one.
    """

    def __init__(self, devices, mounts, sysfs_root, dev_root):
        self.devices = devices
        self.mounts = mounts
        self.sysfs_root = sysfs_root
        self.dev_root = dev_root
        self.found = set()
        self.seen_mounts = set()
        self.seen_devices = set()
        self.unknown = []

    def resolve(self):
        for mount in self.mounts:
            if mount["mountpoint"] in BOOT_MOUNTPOINTS:
                self.from_mount(mount)
        if self.unknown:
            raise BootDisksUnknown("; ".join("%s could not be followed to its disks" % describe_mount(mount)
                                             for mount in self.unknown) + "; refusing to touch any disk")
        return self.found

    def from_mount(self, mount):
        if id(mount) in self.seen_mounts:
            return
        self.seen_mounts.add(id(mount))
        if mount["fstype"] == "overlay":
            for directory in overlay_dirs(mount["options"]):
                self.from_path(directory)
            return
        members = self.mount_devices(mount)
        if not members and mount["fstype"] not in DISKLESS_FSTYPES:
            self.unknown.append(mount)
        for name in members:
            self.from_device(name)

    def mount_devices(self, mount):
        """Kernel names of the devices a mount lives on; [] when none is known."""
        fstype, source = mount["fstype"], mount["source"]
        if fstype == "zfs":
            # a dataset (rpool/ROOT/nixos) or a snapshot (rpool@x) names its pool first
            return self.devices.with_signature("zfs_member", label=re.split("[/@]", source)[0])
        if fstype == "bcachefs" and ":" in source:
            names = [self.devices.find(None, part, self.dev_root) for part in source.split(":")]
            return names if all(names) else []
        name = self.devices.find(mount["number"], source, self.dev_root)
        if name is None or fstype != "btrfs":
            return [name] if name else []
        members = set(btrfs_devices(self.sysfs_root, name))
        uuid = text_or_none(self.devices.nodes[name].get("uuid"))
        if uuid:
            members.update(self.devices.with_signature("btrfs", uuid=uuid))
        # neither the kernel nor lsblk tells the other devices of this btrfs, or the kernel names one lsblk
        # does not show: unknown, not "just the devices we know"
        if not members or not members <= set(self.devices.nodes):
            return []
        return sorted(members | {name}, key=natural_key)

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


def describe_mount(mount):
    """``the running root rpool/root (zfs)``, ``the mount /dev/x at /boot (ext4)``."""
    if mount["mountpoint"] == "/":
        return "the running root %s (%s)" % (mount["source"], mount["fstype"])
    return "the mount %s at %s (%s)" % (mount["source"], mount["mountpoint"], mount["fstype"])
