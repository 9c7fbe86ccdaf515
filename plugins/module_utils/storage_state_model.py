# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage state as the engine sees it: :class:`StorageState`, what ``storage_state.read_state``
read at one moment, indexed by kernel name, and the questions the engine's rooms ask of it
(what is stacked on a disk, which array a member belongs to, which VG reaches which disks...).

Plain data and queries: nothing here runs a command or parses a tool's output (``storage_state``
does both and fills a StorageState). Only ``kname_of`` looks at the file system, to resolve /dev
links under ``dev_root``.

May import ``block_devices`` (the lsblk tree and its helpers); imported by ``storage_state`` and the
storage_* rooms.
"""
from __future__ import annotations

import os

from ansible_collections.prenixos.baseline.plugins.module_utils.block_devices import (
    MD_TYPES,
    BlockDevices,
    kernel_name,
    text_or_none,
    walk,
)


class StorageState:
    """Everything read at one moment, indexed by kernel name (``sda2``, ``md127``, ``dm-0``).

    Attributes (all plain data, so tests can build one by hand):

    ``nodes``            kname → lsblk entry (first occurrence), ``children`` kname → child knames
    ``tops``             kname → top-level disk names it sits on
    ``probes``           kname → ``blkid -p`` dict (only devices on the planned disks)
    ``tables``           disk → on-disk partitions (``partx``), or None when there is no table
    ``mdstat``           kname → ``parse_mdstat`` entry; ``md_details`` kname → ``parse_mdadm_detail``
    ``superblocks``      kname → ``parse_mdadm_examine`` (members on the planned disks)
    ``pvs`` / ``vgs`` / ``lvs``  as parsed; ``pv_knames`` pv_name → kname
    ``mounts``           mountinfo entries with ``kname`` added; ``swaps`` knames (or paths)
    ``boot_disks``       top-level disks the running system lives on
    ``holders``          kname → holders lsblk does not list under it (sysfs, loops on the device)
    ``edges``            planned disk blkid calls blank → ``{head, tail, backup_gpt}`` (or ``{error}``)
    """

    def __init__(self, top_level, mounts, dev_root="/dev"):
        self.dev_root = dev_root
        self.blockdevices = BlockDevices(top_level)
        self.top_level = list(top_level)
        self.nodes = {}
        self.children = {}
        for top in self.top_level:
            for node in walk(top):
                name = kernel_name(node)
                self.nodes.setdefault(name, node)
                kids = self.children.setdefault(name, [])
                for child in node.get("children") or []:
                    if kernel_name(child) not in kids:
                        kids.append(kernel_name(child))
        self.tops = {name: set(tops) for name, tops in self.blockdevices.tops_of.items()}
        self.mounts = [dict(mount, kname=self.blockdevices.find(mount["number"], mount["source"], dev_root))
                       for mount in mounts]
        self.raw_mounts = mounts
        self.probes = {}
        self.tables = {}
        self.mdstat = {}
        self.md_details = {}
        self.md_sync = {}  # kname -> sysfs sync_action of an active array (idle, resync, recover, frozen, ...)
        self.superblocks = {}
        self.pvs = []
        self.vgs = {}
        self.lvs = {}
        self.swaps = []
        self.boot_disks = set()
        self.holders = {}
        self.edges = {}

    # -- devices

    def kname_of(self, path):
        """Kernel name of a /dev path (``/dev/md/main``, ``/dev/mapper/x``, ``/dev/main/slash``), or None."""
        if not path:
            return None
        if not path.startswith("/dev/"):
            return path if path in self.nodes else None
        found = self.blockdevices.by_path.get(path)
        if found:
            return found
        try:
            resolved = os.path.realpath(os.path.join(self.dev_root, path[len("/dev/"):]))
            relative = os.path.relpath(resolved, os.path.realpath(self.dev_root))
        except (OSError, ValueError):
            return None
        name = self.blockdevices.by_path.get("/dev/" + relative)
        if name:
            return name
        return relative if relative in self.nodes else None

    def node_path(self, kname):
        node = self.nodes.get(kname)
        return (node.get("path") if node else None) or "/dev/" + kname

    def node_type(self, kname):
        node = self.nodes.get(kname)
        return node.get("type") if node else None

    def node_size(self, kname):
        node = self.nodes.get(kname)
        value = node.get("size") if node else None
        return int(value) if isinstance(value, (int, str)) and str(value).isdecimal() else None

    def present(self, disk):
        return disk in self.blockdevices.top_names

    def descendants(self, kname):
        """Every device stacked on ``kname`` (partitions, arrays, volumes), parents before children."""
        seen, order, queue = set(), [], list(self.children.get(kname, []))
        while queue:
            name = queue.pop(0)
            if name in seen:
                continue
            seen.add(name)
            order.append(name)
            queue.extend(self.children.get(name, []))
        return order

    def kernel_partitions(self, disk):
        """Partitions of ``disk`` the kernel lists: ``{number: kname}``."""
        found = {}
        for child in self.children.get(disk, []):
            node = self.nodes.get(child, {})
            if node.get("type") == "part":
                number = partition_number(disk, child, node)
                if number is not None:
                    found[number] = child
        return found

    def probe(self, kname):
        return self.probes.get(kname, {})

    def mounts_of(self, kname):
        return [mount for mount in self.mounts if mount["kname"] == kname]

    def mount_at(self, target):
        """The topmost mount at ``target``, or None."""
        found = [mount for mount in self.mounts if mount["mountpoint"] == target]
        return found[-1] if found else None

    def swap_active(self, kname):
        return kname in self.swaps

    def labels(self):
        """``{label: set of knames}`` for every device that carries a filesystem label."""
        labels = {}
        for name, node in self.nodes.items():
            label = self.probes[name].get("LABEL") if name in self.probes else text_or_none(node.get("label"))
            if label:
                labels.setdefault(label, set()).add(name)
        return labels

    # -- md

    def md_arrays(self):
        """knames of every md array the kernel has (mdstat, plus lsblk md nodes)."""
        names = set(self.mdstat)
        names.update(name for name, node in self.nodes.items() if node.get("type") in MD_TYPES)
        return sorted(names)

    def md_members(self, kname):
        if kname in self.mdstat:
            return [member["name"] for member in self.mdstat[kname]["members"]]
        details = self.md_details.get(kname)
        if details:
            return [self.kname_of(path) or path for path in details["members"]]
        return []

    def md_faulty(self, kname):
        """Members the kernel marked faulty, ``(F)`` in /proc/mdstat (a spare being rebuilt is not one)."""
        entry = self.mdstat.get(kname) or {}
        return [member["name"] for member in entry.get("members", []) if "F" in member["flags"]]

    def md_name(self, kname):
        """Short name (``main``) of a running array, from ``--detail`` or the members' superblocks."""
        return self.md_value(kname, "short_name")

    def md_uuid(self, kname):
        """The array's UUID, from ``--detail`` or the members' superblocks (None when neither says)."""
        return self.md_value(kname, "uuid")

    def md_value(self, kname, key):
        details = self.md_details.get(kname) or {}
        if details.get(key):
            return details[key]
        for member in self.md_members(kname):
            if member in self.superblocks:
                return self.superblocks[member][key]
        return None

    def md_active(self, kname):
        entry = self.mdstat.get(kname)
        return bool(entry and entry["active"])

    def md_frozen(self, kname):
        """True when the array's resync or recovery is held (sysfs ``sync_action`` is ``frozen``)."""
        return self.md_sync.get(kname) == "frozen"

    def md_level(self, kname):
        entry = self.mdstat.get(kname) or {}
        return entry.get("level") or (self.md_details.get(kname) or {}).get("level")

    def md_tops(self, kname):
        tops = set(self.tops.get(kname, ()))
        for member in self.md_members(kname):
            tops |= self.tops.get(member, {member})
        return tops

    # -- LVM

    def pv_kname(self, pv):
        return self.kname_of(pv["pv_name"]) or pv["pv_name"]

    def pv_on(self, kname):
        for pv in self.pvs:
            if self.pv_kname(pv) == kname:
                return pv
        return None

    def vg_tags(self, vg_name):
        """The tags of a VG, or () when it has none or is not there."""
        return self.vgs.get(vg_name, {}).get("tags") or ()

    def vg_pvs(self, vg_name):
        return [pv for pv in self.pvs if pv["vg_name"] == vg_name]

    def vg_tops(self, vg_name):
        tops = set()
        for pv in self.vg_pvs(vg_name):
            kname = self.pv_kname(pv)
            tops |= self.tops.get(kname, {kname})
        return tops

    def lv(self, vg_name, lv_name):
        return self.lvs.get("%s/%s" % (vg_name, lv_name))

    def lv_kname(self, volume):
        """kname of an active LV (``dm-0``), or None."""
        if not volume or not volume["active"]:
            return None
        return self.kname_of(volume["dm_path"]) or self.kname_of(volume["path"])

    def lv_of_kname(self, kname):
        for volume in self.lvs.values():
            if self.lv_kname(volume) == kname:
                return volume
        return None

    # -- copies

    def without_disks(self, disks):
        """A copy in which ``disks`` are blank: what check mode assumes after a wipe."""
        disks = set(disks)
        gone = set()
        for disk in disks:
            gone.update(self.descendants(disk))
        kept_top = []
        for top in self.top_level:
            if kernel_name(top) in disks:
                kept_top.append({key: value for key, value in top.items()
                                 if key not in ("children", "pttype", "fstype")})
            else:
                kept_top.append(prune(top, gone))
        blank = StorageState(kept_top, self.raw_mounts, self.dev_root)
        blank.mounts = [mount for mount in self.mounts if mount["kname"] not in gone]
        blank.probes = {name: probe for name, probe in self.probes.items() if name not in gone and name not in disks}
        blank.tables = {name: table for name, table in self.tables.items() if name not in disks}
        blank.mdstat = {name: entry for name, entry in self.mdstat.items()
                        if name not in gone and not set(self.md_members(name)) & gone}
        blank.md_details = {name: entry for name, entry in self.md_details.items() if name in blank.mdstat}
        blank.md_sync = {name: action for name, action in self.md_sync.items() if name in blank.mdstat}
        blank.superblocks = {name: entry for name, entry in self.superblocks.items() if name not in gone}
        gone_vgs = {pv["vg_name"] for pv in self.pvs if self.pv_kname(pv) in gone and pv["vg_name"]}
        blank.pvs = [pv for pv in self.pvs if self.pv_kname(pv) not in gone]
        blank.vgs = {name: vg for name, vg in self.vgs.items() if name not in gone_vgs}
        blank.lvs = {key: lv for key, lv in self.lvs.items() if lv["vg"] not in gone_vgs}
        blank.swaps = [name for name in self.swaps if name not in gone]
        blank.boot_disks = set(self.boot_disks)
        blank.holders = {name: list(found) for name, found in self.holders.items()
                         if name not in gone and name not in disks}
        blank.edges = {name: edges for name, edges in self.edges.items() if name not in disks}
        return blank


def prune(node, gone):
    copy = dict(node)
    if node.get("children"):
        copy["children"] = [prune(child, gone) for child in node["children"] if kernel_name(child) not in gone]
    return copy


def partition_number(disk, kname, node=None):
    """The partition number of ``kname`` on ``disk`` (``sda2`` → 2, ``nvme0n1p2`` → 2)."""
    if node is not None and isinstance(node.get("partn"), int):
        return node["partn"]
    suffix = kname[len(disk):] if kname.startswith(disk) else ""
    if suffix.startswith("p") and disk[-1:].isdigit():
        suffix = suffix[1:]
    return int(suffix) if suffix.isdecimal() else None
