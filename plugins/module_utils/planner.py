# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage planner: every disk ``disk_facts`` saw in, a versioned storage plan out.

Pure: no command, no file, no I/O. The same disks in any input order give an identical
plan (disks are sorted by kernel name before anything else happens).

Usage::

    plan = plan_storage(disks, ram_bytes, options={"redundant_main": True})

``disks`` are dicts shaped as in ``docs/contracts.md`` (``name``, ``size`` and ``rotational``
are required, the other keys default to "not set"). ``PlanError`` is raised when no disk is
eligible (its message lists every disk and why it was excluded), when the input is malformed
(refused at the door, ``plan_input``, naming the disk and the field), or when ``main`` cannot hold ``/``.

Eligibility
    Excluded, with every reason that applies: the operator's choice first (options ``include`` and ``exclude``,
    lists of disk selectors, ``disk_selectors``): ``not in the operator's include list`` when ``include`` is
    not empty and no selector of it matches, ``excluded by the operator (exclude: S3Z1NB0K123)``; a selector
    that matches no disk at all is a PlanError listing the disks. Then: names ``loop*``, ``ram*``, ``zram*``,
    ``nbd*``, ``fd*``, ``sr*``, ``md*``, ``dm-*``; ``type`` other than ``disk``; removable; transport
    ``usb``; read-only; the boot medium; size 0 or below ``min_disk_size``; a path of a multipath
    (dm-mpath) device (multipath devices themselves are not planned); a second path to a disk before
    it in kernel order, ``second path to sdc (same WWN ...)``: the same WWN, else the same serial and
    size, else the same by-id link (the first path is kept; a second path to the boot medium is excluded
    too). A disk that is ``in_use`` is still planned (the applier refuses it unless wiping is allowed).
    Class: ``ssd`` when not rotational, ``hdd`` when rotational, never from transport.

Grouping
    Within a class, disks sorted by ``(size, name)`` are grouped greedily: a disk joins the
    current group while ``size - smallest <= smallest * size_tolerance`` (inclusive, exact
    decimal arithmetic), where ``smallest`` is the group's first (smallest) disk.

RAID levels
    HDD groups, ``main`` on HDD and SSD groups with ``redundant_main``: 1 disk ``none``,
    2 ``raid1``, 3-4 ``raid5``, 5+ ``raid6``. SSD groups otherwise: 1 disk ``none``, 2+ ``raid0``.
    Nominal usable capacity (used for ranking) = smallest disk size x data disks
    (none 1, raid0 n, raid1 1, raid5 n-1, raid6 n-2).

Roles
    1. ``main``: the best-ranked SSD group; further SSD groups become ``main_1``, ``main_2``...
       With no SSD, ``main`` takes the best-ranked HDD group before any other HDD role is given.
    2. ``swap``: among the remaining HDD groups of exactly two disks, the smallest pair (RAID1).
    3. ``large`` tier: every other HDD group (other pairs RAID1, 3-4 RAID5, 5+ RAID6,
       single disks plain); the best-ranked becomes ``large``, the others ``large_1``...
    Tie-break order for "best-ranked": larger nominal usable capacity, then more disks, then
    larger smallest disk, then the disks' sorted stable keys (alphabetically first wins).
    "Smallest pair": smaller smallest disk, then the disks' sorted stable keys.
    A disk's stable key (``stable_key``) is its ``/dev/disk/by-id`` path (its kernel name when it has
    none): the disks of a group are ordered, and so numbered, by it, so a disk keeps its partitions'
    names (``main-esp1``...) when kernel names change between boots.
    (Groups of one class never share a smallest disk size, since such disks would be one group;
    the last keys only keep the order total.)

Capacity estimate (conservative, so the applier never asks for more than exists)
    member partition = smallest disk - GPT_OVERHEAD (2 MiB) - ESP (``esp_size``, main only);
    RAID member data = member partition - MDADM_RESERVE (136 MiB), rounded down to 4 MiB;
    PV = member partition (no RAID) or member data x data disks;
    VG size = PV - LVM_METADATA (4 MiB), rounded down to the 4 MiB extent.

Logical volumes
    ``main``: ``slash`` (``slash_size``, at ``/``), then ``home`` (min(``home_size``, a quarter
    of what is left after ``/``), at ``/home``). The swap LV (``swap_size``, default the RAM size up to 32 GiB)
    goes into VG ``swap``, else ``large``, else ``main`` when ``main`` is on HDD or
    ``swap_on_ssd`` is set. ``large``: ``data``, the rest, at ``/data`` (``inode_ratio`` 2048
    with ``backups``). Every request is rounded down to 4 MiB and clipped to what the VG has
    left; an LV that would be smaller than 256 MiB is left out and a note says so (except
    ``slash``: then PlanError). ``main_N`` and ``large_N`` get no LV.

The plan (all sizes in bytes; ``size: null`` = rest of the disk)::

    version: 2
    options: the effective options (every default filled in, swap_size resolved, sizes in bytes;
        include and exclude: the operator's disk selectors, as given)
    disks: [{name, path, dev, size, wwn, serial, identity, class, vg}]   # planned disks only
        # identity: what names the disk in any boot (disk_identity): "wwn:...", "serial:...", "by-id:..."
        # or null; a plan made in one boot is bound to the kernel names of another by it (plan_check)
        # (whether a disk is in use, and with what, is disk_facts' business; it stays out of the plan,
        # so that building the plan does not change it: storage_apply decides on what it finds)
    excluded: [{disk, reason}]
    partitions: [{disk, number, device, type_code, size, partlabel, filesystem, label, mountpoint}]
        # main disks: 1 = ESP (EF00, vfat, label EFI, EFI2, ...; the first at /boot);
        # then one partition for the rest: FD00 under RAID (partlabel <vg>-raid<k>),
        # 8E00 directly under LVM (partlabel <vg>-pv<k>); ESP partlabels are <vg>-esp<k>.
    arrays: [{name, device, level, devices, metadata}]     # name = VG name, device /dev/md/<name>
    volume_groups: [{name, raid_level, disks, class, pvs, size}]
    logical_volumes: [{vg, name, device, size, filesystem, label, mountpoint, inode_ratio}]
    notes: [str]

The plan is data only. What people and NixOS read is rendered from it at the edges, by the module that
returns it (``storage_plan``): the tree by ``plan_render.render_summary``, the NixOS module by
``nixos.render_storage``.

Lists are ordered: disks and partitions by disk name; arrays, volume groups and logical
volumes in role order (main, main_N, swap, large, large_N).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from ansible_collections.prenixos.baseline.plugins.module_utils.disk_selectors import operator_reasons
from ansible_collections.prenixos.baseline.plugins.module_utils.plan_input import (
    MIN_LV_SIZE,
    MiB,
    PlanError,
    disk_identity,
    effective_options,
    normalise_disks,
    second_paths,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_contract import (
    ESP_TYPE,
    LVM_TYPE,
    MD_METADATA,
    PLAN_VERSION,
    RAID_TYPE,
    human_size,
    partition_device,
)

GPT_OVERHEAD = 2 * MiB  # 1 MiB alignment before the first partition, backup GPT at the end
MDADM_RESERVE = 136 * MiB  # metadata 1.2 data offset (up to 128 MiB) plus headroom
LVM_METADATA = 4 * MiB  # PV label, metadata area and first-extent alignment
EXTENT = 4 * MiB
BACKUP_INODE_RATIO = 2048

NEVER_ELIGIBLE_PREFIXES = (
    ("loop", "loop device"),
    ("zram", "compressed RAM device"),
    ("ram", "RAM disk"),
    ("nbd", "network block device"),
    ("fd", "floppy drive"),
    ("sr", "optical drive"),
    ("md", "software RAID device"),
    ("dm-", "device-mapper device"),
)
NEVER_ELIGIBLE_NAMES = tuple(prefix for prefix, _kind in NEVER_ELIGIBLE_PREFIXES)


@dataclass(frozen=True)
class DiskGroup:
    """Disks of one class and about the same size, ordered by name."""

    disk_class: str
    disks: tuple

    @property
    def names(self):
        return tuple(disk["name"] for disk in self.disks)

    @property
    def keys(self):
        return tuple(stable_key(disk) for disk in self.disks)

    @property
    def smallest_size(self):
        return min(disk["size"] for disk in self.disks)

    def __len__(self):
        return len(self.disks)


@dataclass(frozen=True)
class VolumeGroupRole:
    """A group given its VG name, RAID level and kind.

    Kinds: ``main`` (carries the ESPs), ``swap``, ``large``, ``spare`` (``main_N``, ``large_N``: no LV).
    """

    name: str
    group: DiskGroup
    raid_level: str
    kind: str

    @property
    def is_main(self):
        return self.kind == "main"


def plan_storage(disks, ram_bytes, options=None):
    """Return the storage plan (see the module docstring) for ``disks`` on a host with ``ram_bytes`` of RAM."""
    options = effective_options(options, ram_bytes)
    disks = normalise_disks(disks)

    chosen = operator_reasons(disks, options["include"], options["exclude"])
    eligible, excluded = split_eligible(disks, options["min_disk_size"], chosen)
    if not eligible:
        raise PlanError(no_eligible_disk_message(excluded))

    roles = assign_roles(eligible, options)
    notes = [note for role in roles for note in role_notes(role)]

    partitions = []
    arrays = []
    volume_groups = []
    vg_of_disk = {}
    for role in roles:
        role_partitions = partitions_for(role, options)
        partitions += role_partitions
        member_devices = sorted(p["device"] for p in role_partitions if p["type_code"] != ESP_TYPE)
        if role.raid_level != "none":
            arrays.append(array_for(role, member_devices))
        volume_groups.append(volume_group_for(role, member_devices, options))
        vg_of_disk.update((name, role.name) for name in role.group.names)
    partitions.sort(key=lambda p: (p["disk"], p["number"]))

    logical_volumes, lv_notes = logical_volumes_for(roles, volume_groups, options)
    plan = {
        "version": PLAN_VERSION,
        "options": options,
        "disks": [planned_disk(disk, vg_of_disk[disk["name"]]) for disk in eligible],
        "excluded": excluded,
        "partitions": partitions,
        "arrays": arrays,
        "volume_groups": volume_groups,
        "logical_volumes": logical_volumes,
        "notes": notes + lv_notes,
    }
    return plan


# Eligibility

def split_eligible(disks, min_disk_size, chosen=None):
    """``(eligible disks with their class, [{disk, reason}])``, both in name order; ``chosen`` gives the
    operator's reasons (``disk_selectors.operator_reasons``), listed first."""
    eligible, excluded = [], []
    second_path = second_paths(disks)
    for disk in disks:
        reasons = list((chosen or {}).get(disk["name"], []))
        reasons += exclusion_reasons(disk, min_disk_size)
        reasons += second_path.get(disk["name"], [])
        if reasons:
            excluded.append({"disk": disk["name"], "reason": "; ".join(reasons)})
        else:
            eligible.append(dict(disk, disk_class="hdd" if disk["rotational"] else "ssd"))
    return eligible, excluded


def exclusion_reasons(disk, min_disk_size):
    """Every reason the disk cannot be planned (empty when it can)."""
    kinds = []
    if disk["name"].startswith(NEVER_ELIGIBLE_NAMES):
        kinds = [kind for prefix, kind in NEVER_ELIGIBLE_PREFIXES if disk["name"].startswith(prefix)][:1]
    if not kinds and disk["type"] != "disk":
        kinds = ["type %s, not a whole disk" % disk["type"]]
    reasons = list(kinds)
    if disk["removable"]:
        reasons.append("removable")
    if disk["transport"] == "usb":
        reasons.append("on USB")
    if disk["read_only"]:
        reasons.append("read-only")
    if disk["boot_medium"]:
        reasons.append("boot medium (the running system lives on it)")
    if disk["size"] == 0:
        reasons.append("size 0 (no medium)")
    elif disk["size"] < min_disk_size:
        reasons.append("%s, smaller than the %s minimum" % (human_size(disk["size"]), human_size(min_disk_size)))
    reasons += ["path of multipath device %s (multipath devices are not planned)" % name for name in disk["multipath"]]
    return reasons


def no_eligible_disk_message(excluded):
    if not excluded:
        return "No disk to plan storage on: no disk was reported at all."
    lines = ["No disk is eligible for the storage plan:"]
    lines += ["  - %s: %s" % (entry["disk"], entry["reason"]) for entry in excluded]
    return "\n".join(lines)


def planned_disk(disk, vg_name):
    keys = ("name", "path", "dev", "size")
    planned = {key: disk[key] for key in keys}
    planned.update({"wwn": disk["wwn"], "serial": disk["serial"], "identity": disk_identity(disk),
                    "class": disk["disk_class"], "vg": vg_name})
    return planned


# Grouping and roles

def group_by_size(disks, disk_class, tolerance):
    """Disks of one class grouped greedily by size; inclusive tolerance against the group's smallest disk."""
    tolerance = Fraction(str(tolerance))
    numerator, denominator = tolerance.numerator, tolerance.denominator
    groups, current = [], []
    for disk in sorted(disks, key=lambda d: (d["size"], stable_key(d))):
        # size - smallest > smallest * tolerance, in whole numbers
        if current and (disk["size"] - current[0]["size"]) * denominator > current[0]["size"] * numerator:
            groups.append(current)
            current = []
        current.append(disk)
    if current:
        groups.append(current)
    return [DiskGroup(disk_class, tuple(sorted(group, key=stable_key))) for group in groups]


def stable_key(disk):
    """How disks of a group are ordered (and so numbered: ``main-esp1``, ``main-raid2``): by their stable
    ``/dev/disk/by-id`` path, which stays with the disk when kernel names change between boots; by kernel
    name only for a disk without one."""
    path = disk.get("path") or ""
    return (0, path) if path.startswith("/dev/disk/by-id/") else (1, disk["name"])


def hdd_raid_level(disk_count):
    """HDD rule, also used by ``main`` on HDD and by redundant SSD groups."""
    if disk_count == 1:
        return "none"
    if disk_count == 2:
        return "raid1"
    if disk_count <= 4:
        return "raid5"
    return "raid6"


def ssd_raid_level(disk_count, redundant):
    if disk_count == 1:
        return "none"
    return hdd_raid_level(disk_count) if redundant else "raid0"


def data_disk_count(raid_level, disk_count):
    """How many members' worth of data an array of ``raid_level`` over ``disk_count`` members holds (0 when unknown)."""
    return {"none": 1, "raid0": disk_count, "raid1": 1, "raid10": disk_count // 2, "raid4": disk_count - 1,
            "raid5": disk_count - 1, "raid6": disk_count - 2}.get(raid_level, 0)


def nominal_usable(group, raid_level):
    """Capacity after RAID, before any overhead: what the spec ranks groups by."""
    return group.smallest_size * data_disk_count(raid_level, len(group))


def ranked(groups, raid_level_of):
    """Best first: larger usable, more disks, larger smallest disk, then alphabetical names."""
    def rank_key(group):
        return (-nominal_usable(group, raid_level_of(group)), -len(group), -group.smallest_size, group.keys)

    return sorted(groups, key=rank_key)


def assign_roles(eligible, options):
    """Give every group its VG name and RAID level, in role order (main, main_N, swap, large, large_N)."""
    tolerance = options["size_tolerance"]
    ssd_groups = group_by_size([d for d in eligible if d["disk_class"] == "ssd"], "ssd", tolerance)
    hdd_groups = group_by_size([d for d in eligible if d["disk_class"] == "hdd"], "hdd", tolerance)

    def ssd_level(group):
        return ssd_raid_level(len(group), options["redundant_main"])

    def hdd_level(group):
        return hdd_raid_level(len(group))

    roles = []
    if ssd_groups:
        main_group, *other_ssd_groups = ranked(ssd_groups, ssd_level)
        roles.append(VolumeGroupRole(options["main_vg"], main_group, ssd_level(main_group), "main"))
        roles += numbered_roles(options["main_vg"], other_ssd_groups, ssd_level)
    else:
        main_group, *hdd_groups = ranked(hdd_groups, hdd_level)
        roles.append(VolumeGroupRole(options["main_vg"], main_group, hdd_level(main_group), "main"))

    pairs = [group for group in hdd_groups if len(group) == 2]
    swap_group = min(pairs, key=lambda group: (group.smallest_size, group.keys)) if pairs else None
    if swap_group is not None:
        roles.append(VolumeGroupRole(options["swap_vg"], swap_group, "raid1", "swap"))

    large_tier = ranked([group for group in hdd_groups if group is not swap_group], hdd_level)
    if large_tier:
        large_group, *other_large_groups = large_tier
        roles.append(VolumeGroupRole(options["large_vg"], large_group, hdd_level(large_group), "large"))
        roles += numbered_roles(options["large_vg"], other_large_groups, hdd_level)
    return roles


def numbered_roles(base_name, groups, raid_level_of):
    """Spare VGs ``<base>_1``, ``<base>_2``... in rank order."""
    return [
        VolumeGroupRole("%s_%d" % (base_name, number), group, raid_level_of(group), "spare")
        for number, group in enumerate(groups, start=1)
    ]


def role_notes(role):
    if role.is_main and role.group.disk_class == "hdd":
        return ["no SSD is eligible: VG %s is on HDDs (%s)" % (role.name, role.raid_level)]
    if role.kind == "spare":
        what = "%s, %s" % (role.group.disk_class, role.raid_level)
        return ["VG %s (%s) gets no logical volume and is not mounted" % (role.name, what)]
    return []


# Partitions, arrays, volume groups

def partitions_for(role, options):
    """GPT entries for every disk of the role: the ESP on main disks, then one partition for the rest."""
    partitions = []
    for index, disk_name in enumerate(role.group.names, start=1):
        number = 1
        if role.is_main:
            partitions.append(
                {
                    "disk": disk_name,
                    "number": number,
                    "device": partition_device(disk_name, number),
                    "type_code": ESP_TYPE,
                    "size": options["esp_size"],
                    "partlabel": "%s-esp%d" % (role.name, index),
                    "filesystem": "vfat",
                    "label": "EFI" if index == 1 else "EFI%d" % index,
                    "mountpoint": "/boot" if index == 1 else None,
                }
            )
            number += 1
        under_raid = role.raid_level != "none"
        partitions.append(
            {
                "disk": disk_name,
                "number": number,
                "device": partition_device(disk_name, number),
                "type_code": RAID_TYPE if under_raid else LVM_TYPE,
                "size": None,
                "partlabel": "%s-%s%d" % (role.name, "raid" if under_raid else "pv", index),
                "filesystem": None,
                "label": None,
                "mountpoint": None,
            }
        )
    return partitions


def array_for(role, member_devices):
    return {
        "name": role.name,
        "device": "/dev/md/%s" % role.name,
        "level": role.raid_level,
        "devices": member_devices,
        "metadata": MD_METADATA,
    }


def volume_group_for(role, member_devices, options):
    pvs = member_devices if role.raid_level == "none" else ["/dev/md/%s" % role.name]
    return {
        "name": role.name,
        "raid_level": role.raid_level,
        "disks": list(role.group.names),
        "class": role.group.disk_class,
        "pvs": pvs,
        "size": estimated_vg_size(role, options["esp_size"]),
    }


def round_down(size, unit=EXTENT):
    return max(0, size - size % unit)


def estimated_vg_size(role, esp_size):
    """Usable bytes in the VG, estimated low: see "Capacity estimate" in the module docstring."""
    member_partition = role.group.smallest_size - GPT_OVERHEAD - (esp_size if role.is_main else 0)
    if role.raid_level == "none":
        pv_size = member_partition
    else:
        member_data = round_down(member_partition - MDADM_RESERVE)
        pv_size = member_data * data_disk_count(role.raid_level, len(role.group))
    return round_down(pv_size - LVM_METADATA)


# Logical volumes

class VolumeGroupSpace:
    """What is left in one VG while its LVs are carved out in order."""

    def __init__(self, volume_group):
        self.volume_group = volume_group
        self.free = volume_group["size"]
        self.volumes = []
        self.notes = []

    def carve(self, name, requested, filesystem="ext4", mountpoint=None, inode_ratio=None):
        """Add an LV of ``requested`` bytes clipped to what is left; leave it out below MIN_LV_SIZE."""
        vg_name = self.volume_group["name"]
        size = min(round_down(requested), self.free)
        if size < MIN_LV_SIZE:
            self.notes.append(
                "%s/%s left out: only %s available (%s requested, the minimum is %s)"
                % (vg_name, name, human_size(size), human_size(requested), human_size(MIN_LV_SIZE))
            )
            return None
        if size < round_down(requested):
            self.notes.append(
                "%s/%s clipped to %s (%s requested)" % (vg_name, name, human_size(size), human_size(requested))
            )
        self.free -= size
        self.volumes.append(
            {
                "vg": vg_name,
                "name": name,
                "device": "/dev/%s/%s" % (vg_name, name),
                "size": size,
                "filesystem": filesystem,
                "label": name,
                "mountpoint": mountpoint,
                "inode_ratio": inode_ratio,
            }
        )
        return size


def swap_vg_name(roles, options):
    """VG ``swap``, else ``large``, else ``main`` when on HDD or ``swap_on_ssd``; None when nowhere."""
    by_kind = {role.kind: role for role in roles if role.kind != "spare"}
    for kind in ("swap", "large"):
        if kind in by_kind:
            return by_kind[kind].name
    main = by_kind["main"]
    if main.group.disk_class == "hdd" or options["swap_on_ssd"]:
        return main.name
    return None


def logical_volumes_for(roles, volume_groups, options):
    """``(logical volumes in VG order, notes)``."""
    spaces = {vg["name"]: VolumeGroupSpace(vg) for vg in volume_groups}
    main = spaces[options["main_vg"]]
    if main.carve("slash", options["slash_size"], mountpoint="/") is None:
        raise PlanError(
            "VG %s (%s) is too small to hold / (at least %s needed)"
            % (main.volume_group["name"], human_size(main.volume_group["size"]), human_size(MIN_LV_SIZE))
        )
    main.carve("home", min(options["home_size"], main.free // 4), mountpoint="/home")

    notes = []
    swap_vg = swap_vg_name(roles, options)
    if swap_vg is None:
        notes.append("no swap volume: there is no HDD volume group and swap_on_ssd is false")
    elif options["swap_size"] == 0:
        notes.append("no swap volume: swap_size is 0")
    else:
        spaces[swap_vg].carve("swap", options["swap_size"], filesystem="swap")

    large = spaces.get(options["large_vg"])
    if large is not None:
        inode_ratio = BACKUP_INODE_RATIO if options["backups"] else None
        large.carve("data", large.free, mountpoint="/data", inode_ratio=inode_ratio)

    logical_volumes = []
    for vg in volume_groups:
        logical_volumes += spaces[vg["name"]].volumes
        notes += spaces[vg["name"]].notes
    return logical_volumes, notes
