# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The planner's door: disk facts and options checked and normalised before any planning.

Pure: no command, no file. Whatever comes in (hand-written YAML, a template, a newer ``disk_facts``),
what goes out is either typed data the planner can trust or ``PlanError`` naming the disk and the
field, never another exception.

Disks
    ``name`` a kernel disk name (``storage_contract.DISK_NAME_PATTERN``: no ``/``, no space, no newline);
    ``dev`` ``/dev/NAME``; ``path`` ``/dev/NAME`` or a ``/dev/disk/by-id/`` link of one component that
    is not a ``-partN`` link (where the link points is checked on the machine, by ``storage_apply``);
    ``size`` a whole number of bytes (an int, an integral float, a string of digits) from 0 to 2^64;
    flags read as YAML reads them; ``type``, ``transport``, ``serial`` and ``wwn`` strings or null;
    ``in_use_reasons`` a list of strings; ``children`` a list of dicts; ``model`` a string or null (kept, trimmed,
    for the operator's disk selectors: ``disk_selectors``).

Sizes
    ``esp_size``, ``slash_size``, ``home_size``, ``swap_size`` and ``min_disk_size`` are bytes (an int, an
    integral float, a string of digits) or a number with a binary unit (``parse_size``): ``20G``, ``20GiB``,
    ``20GB`` are all 20 x 2^30 bytes; ``512M``, ``1.5T``, ``64K``, ``1P``; any case, blanks allowed before the
    unit. The effective options carry bytes.

Disk selection
    ``include`` and ``exclude`` are lists of disk selectors (non-empty strings, see ``disk_selectors``);
    ``include`` empty means every disk.

Identity
    ``wwn_key`` and ``serial_key`` are what two paths to one disk have in common: the WWN without the
    ``0x``/``naa.`` spelling that lsblk and sysfs differ by, the serial trimmed; an all-zero value (a
    placeholder some firmware reports) is no identity. ``multipath`` names the dm-multipath devices
    over the disk. ``second_paths`` finds the disks that are another path to a disk before them;
    ``disk_identity`` is what names a disk in any boot (the plan records it, ``plan_check`` binds by it).
"""
from __future__ import annotations

import re
from collections import Counter

from ansible_collections.prenixos.baseline.plugins.module_utils.block_devices import natural_key
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_contract import (
    DISK_NAME_PATTERN,
    VG_NAME_PATTERN,
    human_size,
)

MiB = 1024 ** 2
GiB = 1024 ** 3

MIN_LV_SIZE = 256 * MiB
MAX_BYTES = 2 ** 64  # beyond any disk; sizes are also written as floats (human_size), which stop near 10**308
SWAP_CEILING = 32 * GiB  # default swap follows the RAM size up to this

DEFAULT_OPTIONS = {
    "size_tolerance": 0.01,
    "redundant_main": False,
    "swap_on_ssd": False,
    "backups": False,
    "esp_size": GiB,
    "slash_size": 50 * GiB,
    "home_size": 16 * GiB,
    "swap_size": None,  # None: the RAM size
    "min_disk_size": 2 * GiB,
    "include": [],  # disk selectors; empty: every disk
    "exclude": [],
    "main_vg": "main",
    "swap_vg": "swap",
    "large_vg": "large",
}

# udev names by-id links with A-Z a-z 0-9 # + - . : = @ _ and \xNN escapes for anything else
BY_ID_LINK = re.compile(r"^/dev/disk/by-id/[A-Za-z0-9][A-Za-z0-9#+.:=@_\\-]*\Z")
PARTITION_LINK = re.compile(r"-part[0-9]+\Z")
DIGITS = re.compile(r"^\s*[0-9]{1,30}\s*\Z")
WWN_SPELLING = re.compile(r"^(0x|naa\.)")
SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(?:([KMGTP])(?:iB|i|B)?|B)?\s*\Z", re.IGNORECASE)
UNIT_BYTES = {"K": 1024, "M": MiB, "G": GiB, "T": 1024 ** 4, "P": 1024 ** 5}
SIZE_OPTIONS = ("esp_size", "slash_size", "home_size", "swap_size", "min_disk_size")
SELECTOR_OPTIONS = ("include", "exclude")


class PlanError(Exception):
    """The disks cannot be planned; the message says why, disk by disk."""


# Options

def effective_options(options, ram_bytes):
    """Defaults filled in, values checked; ``swap_size`` resolved from the RAM size."""
    if options is not None and not isinstance(options, dict):
        raise PlanError("planner options must be a dict, got %r" % (options,))
    options = dict(options or {})
    unknown = sorted(str(key) for key in set(options) - set(DEFAULT_OPTIONS))
    if unknown:
        raise PlanError("unknown planner option(s): %s" % ", ".join(unknown))
    effective = dict(DEFAULT_OPTIONS)
    effective.update((key, value) for key, value in options.items() if value is not None)

    tolerance = effective["size_tolerance"]
    if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or not 0 <= tolerance < 1:
        raise PlanError("size_tolerance must be a number from 0 to below 1, got %r" % (tolerance,))
    for key in ("redundant_main", "swap_on_ssd", "backups"):
        if not isinstance(effective[key], bool):
            raise PlanError("%s must be true or false, got %r" % (key, effective[key]))
    if effective["swap_size"] is None:
        effective["swap_size"] = min(require_size("ram_bytes", ram_bytes), SWAP_CEILING)
    for key in SIZE_OPTIONS:
        effective[key] = parse_size(key, effective[key])
    for key in SELECTOR_OPTIONS:
        effective[key] = selector_list(key, effective[key])
    if effective["slash_size"] < MIN_LV_SIZE:
        raise PlanError("slash_size must be at least 256 MiB, got %d bytes" % effective["slash_size"])
    if effective["esp_size"] < 32 * MiB:
        raise PlanError("esp_size must be at least 32 MiB (FAT32 minimum), got %d bytes" % effective["esp_size"])

    vg_names = [effective[key] for key in ("main_vg", "swap_vg", "large_vg")]
    for name in vg_names:
        if not isinstance(name, str) or not VG_NAME_PATTERN.match(name):
            raise PlanError("volume group name %r must be 1-16 characters of A-Z a-z 0-9 _ . + -" % (name,))
    if len(set(vg_names)) != len(vg_names):
        raise PlanError("main_vg, swap_vg and large_vg must differ, got %s" % ", ".join(vg_names))
    return effective


def require_size(key, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PlanError("%s must be a whole number of bytes (0 or more), got %r" % (key, value))
    return within_any_disk(key, value)


def parse_size(key, value):
    """Bytes from an int, an integral float, a string of digits, or a number with a binary unit (``20G``,
    ``512MiB``, ``1.5T``: 1 K = 1024 bytes); a fraction of a byte is dropped. PlanError naming ``key`` otherwise."""
    if isinstance(value, float) and not isinstance(value, bool) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 0:
            return within_any_disk(key, value)
    elif isinstance(value, str):
        found = SIZE.match(value)
        if found and (found.group(2) or "." not in found.group(1)):
            number, unit = found.groups()
            whole, _dot, fraction = number.partition(".")
            factor = UNIT_BYTES[unit.upper()] if unit else 1
            # exact: no float between the digits and the bytes
            size = int(whole) * factor + int(fraction or "0") * factor // 10 ** len(fraction)
            return within_any_disk(key, size)
    raise PlanError("%s must be a size: bytes or a number with a binary unit (20G, 512M, 1.5T), got %r" % (key, value))


def selector_list(key, value):
    """A list of disk selectors (non-empty strings, trimmed); what each one selects is ``disk_selectors``'."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) and item.strip() for item in value):
        raise PlanError("%s must be a list of disk selectors (non-empty strings), got %r" % (key, value))
    return [item.strip() for item in value]


def within_any_disk(what, size):
    if size > MAX_BYTES:
        raise PlanError("%s of %d bytes is beyond any disk (2^64 at most)" % (what, size))
    return size


# Disks

def normalise_disks(disks):
    """Every disk normalised, sorted by name; PlanError for anything malformed or a name seen twice."""
    if not isinstance(disks, (list, tuple)):
        raise PlanError("disks must be a list of disk facts, got %r" % (disks,))
    normalised = sorted((normalise_disk(disk) for disk in disks), key=lambda disk: disk["name"])
    refuse_duplicate_names(normalised)
    return normalised


def normalise_disk(disk):
    """A disk dict with every key the planner reads, or PlanError naming the disk and the field."""
    if not isinstance(disk, dict):
        raise PlanError("every disk must be a dict, got %r" % (disk,))
    missing = [key for key in ("name", "size", "rotational") if disk.get(key) is None]
    if missing:
        raise PlanError("disk %r lacks %s" % (disk.get("name", disk), ", ".join(missing)))
    name = disk["name"]
    if not isinstance(name, str) or not DISK_NAME_PATTERN.match(name):
        raise PlanError("disk name %r is not a kernel disk name (A-Z a-z 0-9 _ . -, starting with a letter or digit)"
                        % (name,))
    for key in ("type", "transport", "wwn", "serial", "model"):
        if disk.get(key) is not None and not isinstance(disk[key], str):
            raise PlanError("disk %s: %s must be a string or null, got %r" % (name, key, disk[key]))
    normalised = {
        "name": name,
        "type": disk.get("type") or "disk",
        "path": device_path(name, disk.get("path")),
        "dev": disk.get("dev") or "/dev/" + name,
        "size": whole_bytes(name, disk["size"]),
        "transport": disk.get("transport") or None,
        "model": disk.get("model") and disk["model"].strip() or None,
        "in_use_reasons": text_list(name, disk.get("in_use_reasons")),
    }
    if normalised["dev"] != "/dev/" + name:
        raise PlanError("disk %s: dev %r must be /dev/%s" % (name, normalised["dev"], name))
    for flag in ("rotational", "removable", "read_only", "boot_medium", "in_use"):
        normalised[flag] = as_bool(name, flag, disk.get(flag, False))
    add_identity(normalised, disk)
    return normalised


def device_path(name, path):
    path = path or "/dev/" + name
    if path != "/dev/" + name and not (
        isinstance(path, str) and BY_ID_LINK.match(path) and not PARTITION_LINK.search(path)
    ):
        raise PlanError("disk %s: path %r must be /dev/%s or a /dev/disk/by-id/ link" % (name, path, name))
    return path


def whole_bytes(name, value):
    """An int, an integral float or a string of digits as a whole number of bytes (0 to 2^64)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return within_any_disk("disk %s: size" % name, value)
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return within_any_disk("disk %s: size" % name, int(value))
    if isinstance(value, str) and DIGITS.match(value):
        return within_any_disk("disk %s: size" % name, int(value))
    raise PlanError("disk %s: size must be a whole number of bytes (0 or more), got %r" % (name, value))


def text_list(name, value):
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PlanError("disk %s: in_use_reasons must be a list of strings, got %r" % (name, value))
    return list(value)


def as_bool(disk_name, key, value):
    """A fact flag as a bool; strings such as ``"false"`` are read as YAML would, never as truthy."""
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0", ""):
        return False
    raise PlanError("disk %s: %s must be true or false, got %r" % (disk_name, key, value))


def refuse_duplicate_names(disks):
    counts = Counter(disk["name"] for disk in disks)
    duplicates = sorted(name for name, count in counts.items() if count > 1)
    if duplicates:
        raise PlanError("disk names must be unique; seen more than once: %s" % ", ".join(duplicates))


# Identity

def add_identity(normalised, disk):
    """``wwn``, ``serial`` (as reported, trimmed), their comparable keys, and the multipath devices over the disk."""
    wwn = disk.get("wwn") and disk["wwn"].strip() or None
    serial = disk.get("serial") and disk["serial"].strip() or None
    children = disk.get("children") or []
    if not isinstance(children, list) or not all(isinstance(child, dict) for child in children):
        raise PlanError("disk %s: children must be a list of devices, got %r" % (normalised["name"], children))
    normalised["wwn"] = wwn
    normalised["wwn_key"] = wwn_key(wwn)
    normalised["serial"] = serial
    normalised["serial_key"] = serial.lower() if serial and serial.strip("0") else None
    normalised["multipath"] = [str(child.get("name")) for child in children if child.get("type") == "mpath"]


def wwn_key(wwn):
    """``0x5000c500a1b2c3d4`` and ``naa.5000C500A1B2C3D4`` are one WWN; ``eui.0000000000000000`` is none."""
    if wwn is None:
        return None
    key = WWN_SPELLING.sub("", wwn.lower())
    return key if key.split(".", 1)[-1].strip("0-") else None


def second_paths(disks):
    """``{name: [reason]}`` for every disk that is a disk seen before it in kernel order (the first path is kept)."""
    by_wwn, by_serial, by_link, found = {}, {}, {}, {}
    identified = [d for d in disks if d["wwn_key"] or d["serial_key"] or d["path"].startswith("/dev/disk/by-id/")]
    for disk in sorted(identified, key=lambda d: natural_key(d["name"])):
        first = first_path_of(disk, by_wwn, by_serial, by_link)
        if first is not None:
            found[disk["name"]] = ["second path to %s (same %s)" % first]
            continue
        if disk["wwn_key"] is not None:
            by_wwn[disk["wwn_key"]] = disk
        if disk["serial_key"] is not None:
            by_serial.setdefault((disk["serial_key"], disk["size"]), []).append(disk)
        if disk["path"].startswith("/dev/disk/by-id/"):
            by_link.setdefault(disk["path"], []).append(disk)
    return found


def first_path_of(disk, by_wwn, by_serial, by_link):
    """``(name of the disk seen before that is this disk, what they share)``, or None.

    The same WWN; else, unless both WWNs are known (and so differ: NVMe namespaces share a serial), the same
    serial and size; else, unless both serials are known too, the same by-id link.
    """
    first = by_wwn.get(disk["wwn_key"])
    if first is not None:
        return first["name"], "WWN %s" % first["wwn"]
    for first in by_serial.get((disk["serial_key"], disk["size"]), []):
        if not known_on_both(first, disk, "wwn_key"):
            return first["name"], "serial %s and size %s" % (first["serial"], human_size(disk["size"]))
    for first in by_link.get(disk["path"], []):
        if not known_on_both(first, disk, "wwn_key") and not known_on_both(first, disk, "serial_key"):
            return first["name"], "by-id link %s" % disk["path"]
    return None


def known_on_both(first, disk, key):
    return first[key] is not None and disk[key] is not None


def disk_identity(disk):
    """What names the disk in any boot: ``wwn:...``, else ``serial:...``, else ``by-id:...``; None when only
    the kernel name is known (a placeholder WWN or serial, all zeros, is no identity)."""
    if disk["wwn_key"] is not None:
        return "wwn:" + disk["wwn"]
    if disk["serial_key"] is not None:
        return "serial:" + disk["serial"]
    if disk["path"].startswith("/dev/disk/by-id/"):
        return "by-id:" + disk["path"]
    return None
