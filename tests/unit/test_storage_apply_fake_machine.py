"""A fake machine for the storage_apply tests, and the tests that keep it honest.

``FakeMachine`` is a small in-memory model of disks, GPT tables, signatures, md arrays, LVM,
mounts and swap. It is the runner the engine talks to: it answers ``lsblk``, ``blkid -p``
(alone, or each of the engine's probe shell), ``partx --pairs``, ``mdadm --detail/--examine``,
``pvs/vgs/lvs`` from the model, in the tools' real output formats, and applies the mutating
commands (``sgdisk``, ``mdadm --create``, ``lvcreate``, ``mkfs.*``, ``mount``, ``wipefs`` ...)
to the model, refusing what the real tool would refuse (a busy device, a missing node, an
existing filesystem under mkfs.ext4). After every command it rewrites ``/proc`` and ``/dev``
under ``tmp_path``, so re-reads and waits for device nodes see the effects.

For the safety tests, every mutating command is recorded with the disks it reaches, resolved by
the fake itself at the moment it ran (independently of the engine). ``kill_when`` simulates a
power cut before a command; ``tear_create`` one inside ``mdadm --create``; ``reboot()`` what
the kernel and udev do at the next boot (mounts and swap gone, arrays assembled incrementally,
VGs autoactivated).
"""
from __future__ import annotations

import json
import os

import pytest

from ansible_collections.prenixos.baseline.plugins.module_utils.runner import CommandError
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_state import (
    DETAIL_OPTIONS,
    EACH_RC,
    EXAMINE_OPTIONS,
    PARTX_ARGS,
    PROBE_OPTIONS,
    each_script,
)

KiB, MiB, GiB = 1024, 1024 ** 2, 1024 ** 3
SECTOR = 512
ALIGN = 2048  # sectors
EXTENT = 4 * MiB
MD_DATA_OFFSET = 128 * MiB

# Independent copy of the GPT type codes (the fake must not borrow the engine's table).
TYPE_GUIDS = {
    "EF00": "c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
    "FD00": "a19d880f-05fc-4d3b-a006-743f0f84911e",
    "8E00": "e6d6d379-f507-44c2-a23c-238f2a3df928",
    "8300": "0fc63daf-8483-4772-8e79-3d69d8477de4",
}
READ_ONLY = {"lsblk", "blkid", "pvs", "vgs", "lvs", "udevadm"}
# What real partx takes as its one mode: two at once is an error (util-linux: "mutually exclusive arguments").
PARTX_MODES = {"--pairs", "--add", "--delete", "--list", "--raw", "--show", "--update", "-P", "-a", "-d", "-l", "-r",
               "-s", "-u"}


EACH_SCRIPTS = {each_script(options): options
                for options in (PROBE_OPTIONS, EXAMINE_OPTIONS, DETAIL_OPTIONS, PARTX_ARGS)}


def md_uuid(text):
    """``mdadm --uuid`` as ``--examine`` and ``--detail`` print it: four groups of 8 hex digits."""
    digits = text.replace("-", "").replace(":", "").lower()
    return ":".join(digits[i:i + 8] for i in range(0, 32, 8))


class Killed(BaseException):
    """The run was killed before this command (a power cut, ``systemctl kill``)."""


class Refused(Exception):
    """What a real tool would answer with a non-zero exit code."""

    def __init__(self, rc, stderr):
        super().__init__(stderr)
        self.rc = rc
        self.stderr = stderr


def part_name(disk, number):
    return "%s%s%d" % (disk, "p" if disk[-1].isdigit() else "", number)


class FakeMachine:
    def __init__(self, tmp_path):
        self.base = tmp_path
        # what the engine reads the machine through: its roots, and the edges of its disks (``read_edges``)
        self.roots = {"sysfs_root": str(tmp_path / "sys"), "proc_root": str(tmp_path / "proc"),
                      "dev_root": str(tmp_path / "dev"), "read_edges": self.read_edges}
        self.disks = {}  # name -> {size, rotational, transport, removable, by_id, table, parts, kernel}
        self.sigs = {}  # kname -> {"TYPE", "LABEL", "UUID", ...}
        self.superblocks = {}  # kname -> {name, uuid, level, devices, events}
        self.arrays = {}  # kname -> {name, uuid, level, devices, members, active}
        self.pvs = {}  # kname -> vg name ("" for an orphan)
        self.vgs = {}  # name -> {"uuid"}
        self.lvs = {}  # (vg, name) -> {size, active, dm}
        self.mounts = []  # {kname, source, target, fstype}
        self.swaps = []
        self.dirs = set()
        self.loops = {}  # loop kname -> backing file (or /dev/KNAME: a loop on a block device)
        self.mappings = {}  # dm kname -> {name, type (crypt, mpath, dm), parents, listed (lsblk shows it)}
        self.edge_reads = []  # the disks whose first and last MiB the engine read, in order
        self.busy_targets = set()
        self.hidden_nodes = set()
        self.numbers = {}
        self.counters = {"md": 127, "dm": 0, "uuid": 0, "minor": 0, "mount": 30}
        self.calls = []
        self.commands = self.calls
        self.mutations = []  # (argv, disks reached)
        self.kill_when = None  # argv -> True: killed before that mutating command
        self.tear_create = None  # k: the next mdadm --create is killed after writing k superblocks
        self.defer_reread = False  # sgdisk's re-read of the table does not reach the kernel
        self.on_command = None  # argv -> None: runs before every command (the world changing)
        self.fail_when = None  # argv -> (rc, stderr) or None: that command fails
        self.mounts.extend([
            {"kname": None, "source": "sysfs", "target": "/sys", "fstype": "sysfs"},
            {"kname": None, "source": "proc", "target": "/proc", "fstype": "proc"},
            {"kname": None, "source": "udev", "target": "/dev", "fstype": "devtmpfs"},
        ])
        self.sync()

    # ------------------------------------------------------------ building the machine

    def add_disk(self, name, size, rotational=False, transport="sata", removable=False):
        self.disks[name] = {"size": size, "rotational": rotational, "transport": transport, "removable": removable,
                            "by_id": "%s-FAKE_%s" % ("nvme" if name.startswith("nvme") else "ata", name),
                            "table": None, "guid": None, "parts": {}, "kernel": set(),
                            "edges": {"head": False, "tail": False, "backup_gpt": False}, "edges_error": None}
        self.sync()
        return self

    def add_partition(self, disk, number, size, name=None, type_code="8300", guid=None, table="gpt"):
        entry = self.disks[disk]
        entry["table"] = entry["table"] or table
        start = self.next_start(disk)
        if size is None:
            size = (self.last_usable(disk) - start + 1) * SECTOR
        entry["parts"][number] = {"start": start, "size": size, "name": name,
                                  "type": guid or (TYPE_GUIDS[type_code] if table == "gpt" else "0x83")}
        entry["kernel"].add(number)
        self.sync()
        return part_name(disk, number)

    def put(self, kname, fstype, label=None, **extra):
        self.sigs[kname] = dict({"TYPE": fstype, "UUID": self.uuid()}, **({"LABEL": label} if label else {}), **extra)
        self.sync()

    def add_mount(self, kname, target, fstype=None, source=None):
        self.mounts.append({"kname": kname, "source": source or self.node_path(kname), "target": target,
                            "fstype": fstype or (self.sigs.get(kname, {}).get("TYPE") if kname else "tmpfs")})
        self.sync()

    def add_array(self, name, level, members, active=True, short=None):
        uuid = self.uuid()
        for member in members:
            self.write_superblock(member, name, uuid, level, len(members))
        if active:
            return self.start_array(name, uuid, level, len(members), members)
        return None

    def add_vg(self, name, pv_knames, lvs=()):
        for kname in pv_knames:
            self.pvs[kname] = name
            self.sigs[kname] = {"TYPE": "LVM2_member", "UUID": self.uuid()}
        self.vgs[name] = {"uuid": self.uuid()}
        for lv_name, size in lvs:
            self.lvs[(name, lv_name)] = {"size": size, "active": True, "dm": self.new_dm()}
        self.sync()

    def add_mapping(self, parents, name, kind="crypt", listed=True, kname=None):
        """A holder no kind of the engine makes: dm-crypt (``kind`` crypt), multipath (mpath), a bare dm table
        (dm), or with ``kname`` a device of its own (bcache0) over ``parents``; ``listed=False``: lsblk does not
        show it, only sysfs holders do."""
        dm = kname or self.new_dm()
        self.mappings[dm] = {"name": name, "type": kind, "parents": list(parents), "listed": listed}
        if kind == "crypt":
            for parent in parents:
                self.sigs.setdefault(parent, {"TYPE": "crypto_LUKS", "UUID": self.uuid()})
        self.sync()
        return dm

    def attach_loop(self, backing):
        """``losetup --find`` on a block device: the loop holds it open, and lsblk shows the loop on its own."""
        kname = "loop%d" % len(self.loops)
        while kname in self.loops:
            kname += "0"
        self.loops[kname] = backing
        self.sync()
        return kname

    def pull_disk(self, name):
        """The disk drops out (pulled, or its controller gave up): its nodes go; arrays mark its members faulty."""
        entry = self.disks.pop(name)
        gone = {name} | {part_name(name, number) for number in entry["kernel"]}
        for array in self.arrays.values():
            array.setdefault("faulty", set()).update(set(array["members"]) & gone)
        for kname in gone:
            self.sigs.pop(kname, None)
            self.superblocks.pop(kname, None)
        self.sync()

    def fail_member(self, array_kname, member):
        """The kernel marks ``member`` of a running array faulty (an I/O error on its disk)."""
        self.arrays[array_kname].setdefault("faulty", set()).add(member)
        self.sync()

    def boot_from_root_partition(self, disk="vda", size=32 * GiB):
        """An installed system: / on the first partition of ``disk``."""
        self.add_disk(disk, size, transport="virtio")
        kname = self.add_partition(disk, 1, None, name="root")
        self.put(kname, "ext4", "rootfs")
        self.add_mount(kname, "/")
        return disk

    def boot_from_live_usb(self, disk="sdz", size=8 * GiB):
        """A live ISO on a USB stick: medium at /run/live/medium, squashfs on a loop device, overlay /."""
        self.add_disk(disk, size, transport="usb", removable=True)
        medium = self.add_partition(disk, 1, 2 * GiB, table="dos")
        self.put(medium, "iso9660", "d-live")
        esp = self.add_partition(disk, 2, 16 * MiB, table="dos")
        self.put(esp, "vfat", "EFI")  # the stick's own ESP: a label our plan uses too
        self.add_mount(medium, "/run/live/medium")
        self.loops["loop0"] = "/run/live/medium/live/filesystem.squashfs"
        self.sigs["loop0"] = {"TYPE": "squashfs"}
        self.add_mount("loop0", "/run/live/rootfs/filesystem.squashfs", "squashfs")
        self.add_mount(None, "/", "overlay", source="overlay")
        return disk

    def boot_from_root_on_raid(self, disks=("sdx", "sdy")):
        """An installed system with / on LVM on an md RAID1 over two disks."""
        members = []
        for disk in disks:
            self.add_disk(disk, 16 * GiB)
            members.append(self.add_partition(disk, 1, None, name="sys", type_code="FD00"))
        md = self.add_array("sys", "raid1", members)
        self.add_vg("sys", [md], [("root", 4 * GiB)])
        dm = self.lvs[("sys", "root")]["dm"]
        self.put(dm, "ext4", "sysroot")
        self.add_mount(dm, "/")
        return list(disks)

    def disk_facts(self, claim_boot=None):
        """The disks as disk_facts would report them (``boot_medium`` from ``claim_boot``, default: none)."""
        facts = []
        for name, disk in sorted(self.disks.items()):
            facts.append({
                "name": name, "type": "disk", "path": "/dev/disk/by-id/" + disk["by_id"], "dev": "/dev/" + name,
                "size": disk["size"], "rotational": disk["rotational"], "removable": disk["removable"],
                "read_only": False, "transport": disk["transport"],
                "boot_medium": name in (claim_boot or ()), "in_use": bool(self.disk_stack(name) - {name}),
                "in_use_reasons": [],
            })
        return facts

    # ------------------------------------------------------------ the model's geometry

    def uuid(self):
        self.counters["uuid"] += 1
        return "%08x-0000-4000-8000-%012x" % (self.counters["uuid"], self.counters["uuid"])

    def new_dm(self):
        name = "dm-%d" % self.counters["dm"]
        self.counters["dm"] += 1
        return name

    def next_start(self, disk):
        parts = self.disks[disk]["parts"].values()
        end = max((p["start"] + p["size"] // SECTOR for p in parts), default=ALIGN)
        return -(-end // ALIGN) * ALIGN

    def last_usable(self, disk):
        return self.disks[disk]["size"] // SECTOR - 34

    def md_size(self, array):
        data = min(self.size_of(m) for m in array["members"]) - MD_DATA_OFFSET
        data -= data % MiB
        copies = {"raid0": array["devices"], "raid1": 1, "raid5": array["devices"] - 1,
                  "raid6": array["devices"] - 2}[array["level"]]
        return data * copies if array["active"] else 0

    def size_of(self, kname):
        if kname in self.disks:
            return self.disks[kname]["size"]
        located = self.partition_of(kname)
        if located:
            return self.disks[located[0]]["parts"][located[1]]["size"]
        if kname in self.arrays:
            return self.md_size(self.arrays[kname])
        for lv in self.lvs.values():
            if lv["dm"] == kname:
                return lv["size"]
        if kname in self.mappings:
            return min(self.size_of(parent) for parent in self.mappings[kname]["parents"])
        if kname in self.loops:
            backing = self.resolve(self.loops[kname])
            return self.size_of(backing) if backing else GiB
        raise KeyError(kname)

    def partition_of(self, kname):
        for disk, entry in self.disks.items():
            for number in entry["kernel"]:
                if part_name(disk, number) == kname:
                    return disk, number
        return None

    def vg_size(self, vg):
        total = 0
        for kname, owner in self.pvs.items():
            if owner == vg and self.readable(kname):
                usable = self.size_of(kname) - MiB
                total += usable - usable % EXTENT
        return total

    def vg_free(self, vg):
        return self.vg_size(vg) - sum(lv["size"] for (owner, _lv_name), lv in self.lvs.items() if owner == vg)

    # ------------------------------------------------------------ devices and stacks

    def knames(self):
        """Every device the kernel has now."""
        names = list(self.disks) + list(self.loops)
        for disk, entry in self.disks.items():
            names += [part_name(disk, n) for n in sorted(entry["kernel"])]
        names += list(self.arrays)
        names += [lv["dm"] for lv in self.lvs.values() if lv["active"]]
        return names + list(self.mappings)

    def exists(self, kname):
        return kname in self.knames()

    def readable(self, kname):
        """Exists and has content to read (an inactive array has none)."""
        return self.exists(kname) and not (kname in self.arrays and not self.arrays[kname]["active"])

    def node_path(self, kname):
        if kname in self.mappings and kname.startswith("dm-"):
            return "/dev/mapper/" + self.mappings[kname]["name"]
        for (vg, name), lv in self.lvs.items():
            if lv["dm"] == kname:
                return "/dev/mapper/%s-%s" % (vg.replace("-", "--"), name.replace("-", "--"))
        return "/dev/" + kname

    def resolve(self, path):
        """kname of a /dev path, or None."""
        if not path.startswith("/dev/"):
            return None
        rest = path[len("/dev/"):]
        if rest.startswith("md/"):
            wanted = rest[3:]
            for kname, array in self.arrays.items():
                if array["active"] and array["name"].split(":")[-1] == wanted:
                    return kname
            return None
        if rest.startswith("disk/by-id/"):
            return next((name for name, d in self.disks.items() if d["by_id"] == rest[len("disk/by-id/"):]), None)
        for (vg, name), lv in self.lvs.items():
            if lv["active"] and rest in ("%s/%s" % (vg, name), "mapper/%s-%s" % (vg.replace("-", "--"),
                                                                                 name.replace("-", "--"))):
                return lv["dm"]
        for dm, mapping in self.mappings.items():
            if rest == "mapper/" + mapping["name"]:
                return dm
        return rest if self.exists(rest) else None

    def parents(self, kname):
        located = self.partition_of(kname)
        if located:
            return [located[0]]
        if kname in self.arrays:
            return list(self.arrays[kname]["members"])
        if kname in self.mappings:
            return list(self.mappings[kname]["parents"])
        for (vg, _lv_name), lv in self.lvs.items():
            if lv["dm"] == kname:
                return [pv for pv, owner in self.pvs.items() if owner == vg]
        return []

    def disks_under(self, kname):
        """Top-level disks a device sits on."""
        if kname in self.disks or kname in self.loops:
            return {kname}
        found = set()
        for parent in self.parents(kname):
            found |= self.disks_under(parent)
        return found

    def holders(self, kname):
        """Devices stacked directly on ``kname``."""
        found = [md for md, array in self.arrays.items() if kname in array["members"]]
        vg = self.pvs.get(kname)
        if vg:
            found += [lv["dm"] for (owner, _lv_name), lv in sorted(self.lvs.items()) if owner == vg and lv["active"]]
        return found + [dm for dm, mapping in sorted(self.mappings.items()) if kname in mapping["parents"]]

    def children(self, kname):
        """What lsblk lists under ``kname``: its partitions and holders (a loop on it is not one)."""
        kids = []
        if kname in self.disks:
            kids += [part_name(kname, n) for n in sorted(self.disks[kname]["kernel"])]
        return kids + [h for h in self.holders(kname) if self.mappings.get(h, {}).get("listed", True)]

    def disk_stack(self, disk):
        seen, queue = set(), [disk]
        while queue:
            name = queue.pop()
            if name not in seen:
                seen.add(name)
                queue += self.children(name) + self.holders(name)
        return seen

    def in_use(self, kname):
        """Mounted, active swap, or held by an array or an active LV."""
        if any(m["kname"] == kname for m in self.mounts) or kname in self.swaps:
            return True
        if any(kname in mapping["parents"] for mapping in self.mappings.values()):
            return True
        if "/dev/" + kname in self.loops.values():
            return True
        if kname in self.pvs and any(lv["active"] for (vg, _lv_name), lv in self.lvs.items() if vg == self.pvs[kname]):
            return True
        return any(kname in array["members"] for array in self.arrays.values())

    def open_anywhere(self, kname):
        return any(self.in_use(name) for name in self.disk_stack(kname))

    def labelled(self, label):
        return sorted(k for k in self.knames() if self.sigs.get(k, {}).get("LABEL") == label)

    # ------------------------------------------------------------ md helpers

    def write_superblock(self, kname, name, uuid, level, devices):
        self.superblocks[kname] = {"name": name, "uuid": uuid, "level": level, "devices": devices, "events": 20}
        self.sigs[kname] = {"TYPE": "linux_raid_member", "LABEL": name, "UUID": uuid}

    def start_array(self, name, uuid, level, devices, members, active=True):
        """An array appears; what lives on it (signatures, PV label) follows its UUID, not its name."""
        history = self.__dict__.setdefault("md_history", {})
        kname = history.get(uuid)
        if kname is None or kname in self.arrays:
            kname = "md%d" % self.counters["md"]
            self.counters["md"] -= 1
            old = history.get(uuid)
            if old is not None:
                for table in (self.sigs, self.pvs):
                    if old in table:
                        table[kname] = table.pop(old)
        history[uuid] = kname
        self.arrays[kname] = {"name": name, "uuid": uuid, "level": level, "devices": devices,
                              "members": list(members), "active": active}
        self.sync()
        return kname

    # ------------------------------------------------------------ the runner interface

    @property
    def seconds(self):
        """What each call took, as the real runner says (the fake takes no time)."""
        return [0.0] * len(self.calls)

    def run(self, argv, check=True, data=None):
        argv = [str(arg) for arg in argv]
        self.calls.append(argv)
        command = os.path.basename(argv[0])
        mutating = self.is_mutating(command, argv)
        if self.on_command is not None:
            self.on_command(argv)
        if mutating and self.kill_when is not None and self.kill_when(argv):
            raise Killed(" ".join(argv))
        try:
            if mutating:
                self.mutations.append((argv, self.reach(command, argv)))
            failure = self.fail_when(argv) if self.fail_when is not None else None
            if failure:
                raise Refused(*failure)
            out = self.dispatch(command, argv)
            rc, err = 0, ""
            if isinstance(out, tuple):  # the shell: its stdout and the stderr of what it ran
                out, err = out
        except Refused as refused:
            out, rc, err = "", refused.rc, refused.stderr
        if mutating:
            self.sync()
        if check and rc != 0:
            raise CommandError(argv, rc, out, err)
        return rc, out, err

    def is_mutating(self, command, argv):
        if command in READ_ONLY:
            return False
        if command == "sh":
            return argv[2] not in EACH_SCRIPTS
        if command == "partx":
            return "--pairs" not in argv
        if command == "mdadm":
            return not ("--detail" in argv or "--examine" in argv)
        return True

    def reach(self, command, argv):
        """The disks a command reaches, resolved now, from the model (independent of the engine)."""
        reached = set()
        for arg in argv[1:]:
            if command == "dd" and "=" in arg:  # of=/dev/sdc (if=/dev/zero reaches no disk)
                arg = "" if arg == "if=/dev/zero" else arg.split("=", 1)[1]
            if arg.startswith("/dev/"):
                kname = self.resolve(arg)
                if kname is not None:
                    reached |= self.disks_under(kname)
                elif arg.startswith("/dev/md/") or arg[len("/dev/"):].split("/")[0] in self.vgs:
                    pass  # a name being created
                else:
                    located = self.partition_path(arg)
                    reached |= {located} if located else {"<unknown %s>" % arg}
        vg_args = {"vgcreate": 1, "vgextend": 1, "vgchange": -1, "vgremove": -1, "lvcreate": None}
        if command in vg_args:
            names = [a for a in argv[1:] if a in self.vgs]
            for name in names:
                reached |= {d for pv, owner in self.pvs.items() if owner == name for d in self.disks_under(pv)}
        if command == "lvchange":
            for arg in argv[1:]:
                if "/" in arg and not arg.startswith("/"):
                    vg = arg.split("/")[0]
                    reached |= {d for pv, owner in self.pvs.items() if owner == vg for d in self.disks_under(pv)}
        if command in ("mount", "swapon") and "-L" in argv:
            for kname in self.labelled(argv[argv.index("-L") + 1]):
                reached |= self.disks_under(kname)
        if command == "umount":
            for mount in self.mounts:
                if mount["target"] == argv[-1] and mount["kname"]:
                    reached |= self.disks_under(mount["kname"])
        return reached

    def partition_path(self, path):
        """The disk of a partition path the kernel does not list yet (``/dev/sda1`` before partx)."""
        rest = path[len("/dev/"):]
        for disk in self.disks:
            for number in range(1, 129):
                if part_name(disk, number) == rest:
                    return disk
        return None

    def dispatch(self, command, argv):
        handler = getattr(self, "do_" + command.replace(".", "_").replace("-", "_"), None)
        if handler is None:
            raise AssertionError("the fake machine does not know %s" % " ".join(argv))
        return handler(argv) or ""

    def node(self, path, must_exist=True):
        kname = self.resolve(path)
        if kname is None and must_exist:
            raise Refused(1, "%s: cannot open %s: No such file or directory" % (path, path))
        return kname

    # ------------------------------------------------------------ read-only tools

    def do_udevadm(self, argv):
        return ""

    def do_lsblk(self, argv):
        assert argv[1:] == ["-J", "-b", "-O"], argv
        return json.dumps({"blockdevices": [self.lsblk_node(name, None) for name in sorted(self.disks)]
                           + [self.lsblk_node(name, None) for name in sorted(self.loops)]}, indent=2)

    def number(self, kname):
        if kname not in self.numbers:
            if kname.startswith("md"):
                self.numbers[kname] = "9:%s" % kname[2:]
            elif kname.startswith("dm-"):
                self.numbers[kname] = "253:%s" % kname[3:]
            elif kname.startswith("loop"):
                self.numbers[kname] = "7:%s" % kname[4:]
            else:
                self.counters["minor"] += 1
                self.numbers[kname] = "259:%d" % self.counters["minor"]
        return self.numbers[kname]

    def lsblk_node(self, kname, parent):
        sig = self.sigs.get(kname, {})
        located = self.partition_of(kname)
        disk = self.disks.get(kname)
        node = {
            "name": self.node_path(kname)[len("/dev/mapper/"):] if self.node_path(kname).startswith("/dev/mapper/")
            else kname,
            "kname": kname, "path": self.node_path(kname), "maj:min": self.number(kname),
            "fstype": sig.get("TYPE"), "label": sig.get("LABEL"), "uuid": sig.get("UUID"),
            "size": self.size_of(kname), "pkname": parent,
            "mountpoints": [m["target"] for m in self.mounts if m["kname"] == kname] + (
                ["[SWAP]"] if kname in self.swaps else []) or [None],
            "partlabel": None, "parttype": None, "pttype": None, "start": None,
            "rota": False, "rm": False, "ro": False, "tran": None, "model": None, "serial": None,
        }
        if disk is not None:
            node.update(type="disk", pttype=disk["table"], rota=disk["rotational"], rm=disk["removable"],
                        tran=None if disk["transport"] == "virtio" else disk["transport"], model="FAKE DISK")
        elif located is not None:
            entry = self.disks[located[0]]["parts"][located[1]]
            node.update(type="part", partlabel=entry["name"], parttype=entry["type"],
                        pttype=self.disks[located[0]]["table"], start=entry["start"])
        elif kname in self.arrays:
            array = self.arrays[kname]
            node.update(type=array["level"] if array["active"] else "md")
        elif kname in self.mappings:
            node.update(type=self.mappings[kname]["type"])
        elif kname in self.loops:
            node.update(type="loop")
        else:
            node.update(type="lvm")
        children = [self.lsblk_node(child, kname) for child in self.children(kname)]
        if children:
            node["children"] = children
        return node

    def do_blkid(self, argv):
        assert argv[1:4] == ["-p", "-o", "export"], argv
        path = argv[4]
        kname = self.resolve(path)
        if kname is None or not self.readable(kname):
            raise Refused(2, "blkid: error: %s: No such file or directory" % path)
        lines = ["DEVNAME=%s" % path]
        disk = self.disks.get(kname)
        if disk is not None and disk["table"]:
            if disk["guid"] is None:
                disk["guid"] = self.uuid() if disk["table"] == "gpt" else self.uuid()[:8]
            lines += ["PTUUID=%s" % disk["guid"], "PTTYPE=%s" % disk["table"]]
        sig = self.sigs.get(kname, {})
        if sig.get("AMBIVALENT"):
            raise Refused(8, "")
        lines += ["%s=%s" % (key, str(value).replace(" ", "\\ ")) for key, value in sorted(sig.items())]
        located = self.partition_of(kname)
        if located is not None:
            entry = self.disks[located[0]]["parts"][located[1]]
            lines += ["PART_ENTRY_SCHEME=%s" % self.disks[located[0]]["table"],
                      "PART_ENTRY_NAME=%s" % (entry["name"] or ""), "PART_ENTRY_TYPE=%s" % entry["type"],
                      "PART_ENTRY_NUMBER=%d" % located[1]]
        elif len(lines) == 1:
            raise Refused(2, "")
        return "\n".join(lines) + "\n"

    def do_sh(self, argv):
        """The one shell the engine runs: a read tool on each device, each output followed by its exit code."""
        assert argv[1] == "-c" and argv[2] in EACH_SCRIPTS, argv
        out, err = [], []
        for device in argv[5:]:
            call = [argv[4]] + list(EACH_SCRIPTS[argv[2]]) + [device]
            self.calls.append(call)
            if self.on_command is not None:
                self.on_command(call)
            try:
                text, rc = self.dispatch(os.path.basename(argv[4]), call), 0
            except Refused as refused:
                text, rc = "", refused.rc
                err.append(refused.stderr + "\n")
            out.append("%s%s%s%d\n" % (text, "" if not text or text.endswith("\n") else "\n", EACH_RC, rc))
        return "".join(out), "".join(err)

    def do_partx(self, argv):
        disk = argv[-1][len("/dev/"):]
        entry = self.disks.get(disk)
        modes = [arg for arg in argv if arg in PARTX_MODES]
        if len(modes) != 1:
            raise Refused(1, "partx: mutually exclusive arguments: --pairs --add --delete --list --raw --show --update")
        if "--pairs" in argv:
            if entry is None or not entry["table"]:
                raise Refused(1, "partx: %s: failed to read partition table" % argv[-1])
            return "".join(
                'NR="%d" START="%d" SIZE="%d" NAME="%s" TYPE="%s" SCHEME="%s"\n'
                % (n, p["start"], p["size"], p["name"] or "", p["type"], entry["table"])
                for n, p in sorted(entry["parts"].items()))
        assert argv[1] == "-u", argv
        if entry is None or not entry["table"]:
            raise Refused(1, "partx: %s: failed to read partition table" % argv[-1])
        entry["kernel"] = set(entry["parts"])
        return ""

    def do_mdadm(self, argv):
        if "--detail" in argv:
            kname = self.node(argv[-1])
            array = self.arrays.get(kname)
            if array is None or not array["active"]:
                raise Refused(1, "mdadm: cannot open %s: No such device" % argv[-1])
            lines = ["MD_LEVEL=%s" % array["level"], "MD_DEVICES=%d" % array["devices"], "MD_METADATA=1.2",
                     "MD_UUID=%s" % array["uuid"], "MD_DEVNAME=%s" % array["name"].split(":")[-1],
                     "MD_NAME=%s" % array["name"]]
            for role, member in enumerate(array["members"]):
                state = "faulty" if member in array.get("faulty", ()) else role
                lines += ["MD_DEVICE_dev_%s_ROLE=%s" % (member, state),
                          "MD_DEVICE_dev_%s_DEV=/dev/%s" % (member, member)]
            return "\n".join(lines) + "\n"
        if "--examine" in argv:
            kname = self.node(argv[-1])
            block = self.superblocks.get(kname)
            if block is None:
                raise Refused(1, "mdadm: No md superblock detected on %s." % argv[-1])
            return ("MD_LEVEL=%s\nMD_DEVICES=%d\nMD_NAME=%s\nMD_UUID=%s\nMD_UPDATE_TIME=1700000000\n"
                    "MD_DEV_UUID=%s\nMD_EVENTS=%d\n" % (block["level"], block["devices"], block["name"], block["uuid"],
                                                        self.uuid(), block["events"]))
        if "--create" in argv:
            return self.md_create(argv)
        if "--assemble" in argv:
            return self.md_assemble(argv)
        if "--stop" in argv:
            kname = self.node(argv[-1])
            if kname not in self.arrays:
                raise Refused(1, "mdadm: %s does not appear to be an md device" % argv[-1])
            if any(self.in_use(holder) for holder in [kname] + self.holders(kname)) or self.pvs.get(kname) and any(
                    lv["active"] for (vg, _lv_name), lv in self.lvs.items() if vg == self.pvs[kname]):
                raise Refused(1, "mdadm: Cannot get exclusive access to %s:Perhaps a running process, mounted "
                                 "filesystem or active volume group?" % argv[-1])
            del self.arrays[kname]
            return ""
        if "--zero-superblock" in argv:
            kname = self.node(argv[-1])
            if any(kname in a["members"] for a in self.arrays.values()) or self.in_use(kname):
                raise Refused(1, "mdadm: Couldn't open %s for write - not zeroing" % argv[-1])
            if kname not in self.superblocks:
                raise Refused(1, "mdadm: Unrecognised md component device - %s" % argv[-1])
            del self.superblocks[kname]
            self.sigs.pop(kname, None)
            return ""
        if "--manage" in argv and "--add" in argv:
            array_kname = self.node(argv[argv.index("--manage") + 1])
            member = self.node(argv[-1])
            array = self.arrays[array_kname]
            self.check_free(member, argv[-1])
            self.write_superblock(member, array["name"], array["uuid"], array["level"], array["devices"])
            array["members"].append(member)
            return ""
        actions = [a.split("=", 1)[1] for a in argv if a.startswith("--action=")]
        if "--misc" in argv and actions:
            kname = self.node(argv[-1])
            array = self.arrays.get(kname)
            if array is None or not array["active"]:
                raise Refused(1, "mdadm: Cannot open %s" % argv[-1])
            if array["level"] in ("raid0", "linear"):
                raise Refused(1, "mdadm: could not set action for %s to %s: Invalid argument" % (argv[-1], actions[0]))
            array["sync"] = {"frozen": "frozen", "idle": "resync" if array.get("sync") == "frozen" else "idle"}[
                actions[0]]
            return ""
        raise AssertionError("the fake mdadm does not know %s" % argv)

    def check_free(self, kname, path):
        if self.in_use(kname) or self.holders(kname):
            raise Refused(1, "mdadm: cannot open %s: Device or resource busy" % path)

    def md_create(self, argv):
        device = argv[argv.index("--create") + 1]
        options = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in argv if a.startswith("--") and "=" in a}
        members = [a for a in argv[argv.index("--create") + 2:] if a.startswith("/dev/")]
        if self.resolve(device) is not None:
            raise Refused(1, "mdadm: %s is already in use." % device)
        knames = [self.node(m) for m in members]
        for kname, path in zip(knames, members, strict=True):
            self.check_free(kname, path)
            if self.sigs.get(kname) and "--run" not in argv:
                raise Refused(1, "mdadm: %s appears to contain a filesystem. Continue creating array? mdadm: "
                                 "create aborted." % path)
        assert int(options["--raid-devices"]) == len(members), argv
        name = ("%s:%s" % (options["--homehost"], options["--name"])) if "--homehost" in options else options["--name"]
        uuid = md_uuid(options["--uuid"]) if "--uuid" in options else self.uuid()
        level = options["--level"]
        if self.tear_create is not None:
            written = knames[:self.tear_create]
            for kname in written:
                self.write_superblock(kname, name, uuid, level, len(members))
            self.start_array(name, uuid, level, len(members), written, active=False)
            self.tear_create = None
            self.sync()
            raise Killed("inside " + " ".join(argv))
        for kname in knames:
            self.write_superblock(kname, name, uuid, level, len(members))
        array = self.start_array(name, uuid, level, len(members), knames)
        if level not in ("raid0", "linear"):
            self.arrays[array]["sync"] = "resync"  # the initial sync starts at once
        return ""

    def md_assemble(self, argv):
        device = argv[argv.index("--assemble") + 1]
        members = [a for a in argv[argv.index("--assemble") + 2:] if a.startswith("/dev/")]
        knames = [self.node(m) for m in members]
        blocks = [self.superblocks.get(k) for k in knames]
        if not all(blocks) or len({b["uuid"] for b in blocks}) != 1:
            raise Refused(1, "mdadm: superblocks do not match, cannot assemble %s" % device)
        for kname, path in zip(knames, members, strict=True):
            self.check_free(kname, path)
        block = blocks[0]
        if len(knames) < block["devices"] and "--run" not in argv:
            raise Refused(1, "mdadm: %s assembled from %d drives - not enough to start the array."
                          % (device, len(knames)))
        self.start_array(block["name"], block["uuid"], block["level"], block["devices"], knames)
        return ""

    def lvm_report(self, kind, rows):
        return json.dumps({"report": [{kind: rows}]}, indent=2)

    def do_pvs(self, argv):
        rows = [{"pv_name": "/dev/" + kname, "vg_name": vg, "pv_size": str(self.size_of(kname)),
                 "pv_uuid": self.sigs.get(kname, {}).get("UUID", "")}
                for kname, vg in sorted(self.pvs.items()) if self.readable(kname)]
        return self.lvm_report("pv", rows)

    def do_vgs(self, argv):
        wanted = [a for a in argv[1:] if a in self.vgs]
        rows = []
        for name in sorted(self.vgs):
            if (wanted and name not in wanted) or not self.vg_visible(name):
                continue
            pv_count = sum(1 for owner in self.pvs.values() if owner == name)
            lv_count = sum(1 for (owner, _lv_name) in self.lvs if owner == name)
            rows.append({"vg_name": name, "vg_size": str(self.vg_size(name)), "vg_free": str(self.vg_free(name)),
                         "vg_extent_size": str(EXTENT), "vg_attr": "wz--n-", "pv_count": str(pv_count),
                         "lv_count": str(lv_count), "vg_tags": ",".join(self.vgs[name].get("tags", ()))})
        return self.lvm_report("vg", rows)

    def vg_visible(self, vg):
        """LVM sees a VG when one of its PVs can be read."""
        return any(owner == vg and self.readable(kname) for kname, owner in self.pvs.items())

    def vg_complete(self, vg):
        return all(self.readable(kname) for kname, owner in self.pvs.items() if owner == vg)

    def do_lvs(self, argv):
        rows = []
        for (vg, name), lv in sorted(self.lvs.items()):
            if not self.vg_visible(vg):
                continue
            rows.append({"lv_name": name, "vg_name": vg, "lv_size": str(lv["size"]),
                         "lv_path": "/dev/%s/%s" % (vg, name),
                         "lv_dm_path": "/dev/mapper/%s-%s" % (vg.replace("-", "--"), name.replace("-", "--")),
                         "lv_active": "active" if lv["active"] else "", "lv_attr": "-wi-a-----" if lv["active"]
                         else "-wi-------"})
        return self.lvm_report("lv", rows)

    # ------------------------------------------------------------ partition tables and signatures

    def do_sgdisk(self, argv):
        disk = argv[-1][len("/dev/"):]
        entry = self.disks.get(disk)
        if entry is None:
            raise Refused(2, "Problem opening %s for reading!" % argv[-1])
        if "--zap-all" in argv:
            entry["table"] = None
            entry["guid"] = None
            entry["parts"] = {}
            self.reread(disk)
            return ""
        if "--clear" in argv:
            entry["table"] = "gpt"
            entry["guid"] = self.uuid()
            entry["parts"] = {}
        elif entry["table"] != "gpt":
            raise Refused(3, "Problem: this fake refuses to convert a %s table" % entry["table"])
        for arg in argv:
            if arg.startswith("--disk-guid="):
                entry["guid"] = arg.split("=", 1)[1]
        options = [arg for arg in argv[1:-1] if not arg.startswith("--disk-guid=")]
        for flag, value in zip(options, options[1:], strict=False):
            if flag == "-n":
                number, start, end = value.split(":")
                number = int(number)
                if number in entry["parts"]:
                    raise Refused(4, "Could not create partition %d from 0 to %s" % (number, end))
                first = self.next_start(disk)
                if end == "0":
                    size = (self.last_usable(disk) - first + 1) * SECTOR
                else:
                    amount, unit = int(end[1:-1]), end[-1]
                    size = amount * {"K": KiB, "M": MiB, "G": GiB}[unit]
                assert start == "0", argv
                entry["parts"][number] = {"start": first, "size": size, "name": None, "type": TYPE_GUIDS["8300"]}
            elif flag == "-t":
                number, code = value.split(":")
                entry["parts"][int(number)]["type"] = TYPE_GUIDS[code]
            elif flag == "-c":
                number, name = value.split(":", 1)
                entry["parts"][int(number)]["name"] = name
        self.reread(disk)
        return "The operation has completed successfully.\n"

    def reread(self, disk):
        """BLKRRPART: the kernel re-reads the table unless a partition is in use."""
        if self.defer_reread:
            return
        entry = self.disks[disk]
        busy = [n for n in entry["kernel"] if self.open_anywhere(part_name(disk, n))]
        if not busy:
            for number in entry["kernel"] - set(entry["parts"]):
                self.sigs.pop(part_name(disk, number), None)
            entry["kernel"] = set(entry["parts"])

    def do_wipefs(self, argv):
        assert argv[1] == "-a", argv
        kname = self.node(argv[-1])
        if self.open_anywhere(kname) and kname not in self.arrays:
            raise Refused(1, "wipefs: error: %s: probing initialization failed: Device or resource busy" % argv[-1])
        if kname in self.arrays and (self.in_use(kname) or self.holders(kname)):
            raise Refused(1, "wipefs: error: %s: probing initialization failed: Device or resource busy" % argv[-1])
        had = self.sigs.pop(kname, None)
        self.superblocks.pop(kname, None)
        if kname in self.pvs:
            vg = self.pvs.pop(kname)
            self.drop_vg_if_empty(vg)
        if kname in self.disks:
            entry = self.disks[kname]
            # wipefs erases magic strings only: the rest of a table or a filesystem stays in the first MiB
            # (a GPT's entries at both ends)
            entry["edges"]["head"] = entry["edges"]["head"] or bool(entry["table"] or had)
            entry["edges"]["tail"] = entry["edges"]["tail"] or entry["table"] == "gpt"
            entry["table"] = None
            entry["guid"] = None
            entry["parts"] = {}
            self.reread(kname)
        return ""

    def drop_vg_if_empty(self, vg):
        if vg and not any(owner == vg for owner in self.pvs.values()):
            self.vgs.pop(vg, None)
            for key in [k for k in self.lvs if k[0] == vg]:
                del self.lvs[key]

    def do_dd(self, argv):
        """``dd if=/dev/zero of=/dev/DISK bs=B count=N [seek=S] conv=fsync oflag=direct``: zeroes what it covers."""
        options = dict(arg.split("=", 1) for arg in argv[1:])
        assert set(options) <= {"if", "of", "bs", "count", "seek", "conv", "oflag"}, argv
        assert options["if"] == "/dev/zero" and options["conv"] == "fsync" and options["oflag"] == "direct", argv
        kname = self.node(options["of"])
        if kname not in self.disks:
            raise AssertionError("the fake zeroes whole disks only: %s" % argv)
        block = MiB if options["bs"] == "1M" else int(options["bs"])
        assert block % SECTOR == 0 or block == self.disks[kname]["size"], "O_DIRECT needs whole sectors: %s" % argv
        start = int(options.get("seek", 0)) * block
        end = start + int(options["count"]) * block
        entry = self.disks[kname]
        size = entry["size"]
        if end > size:
            raise Refused(1, "dd: error writing '%s': No space left on device" % options["of"])
        edge = min(size, MiB)
        if start == 0 and end >= edge:
            entry["edges"]["head"] = False
            self.sigs.pop(kname, None)
            if entry["table"] == "gpt":  # the primary GPT is gone, the backup at the end is not
                entry["edges"].update(tail=True, backup_gpt=True)
            entry["table"], entry["guid"], entry["parts"] = None, None, {}
            self.reread(kname)  # udev's watch on the closed disk makes the kernel read its (now empty) table
        if start <= size - edge and end == size:
            entry["edges"].update(tail=False, backup_gpt=False)
        return ""

    def read_edges(self, path, size):
        """What the engine's edge reader answers for ``path`` (a node under dev/), from the model."""
        kname = os.path.relpath(path, self.roots["dev_root"])
        entry = self.disks.get(kname)
        if entry is None or not os.path.exists(path):
            raise FileNotFoundError(2, "No such file or directory", path)
        assert size == entry["size"], (path, size)
        self.edge_reads.append(kname)
        if entry["edges_error"]:
            raise OSError(*entry["edges_error"])
        return dict(entry["edges"])

    def make_fs(self, argv, fstype, label):
        path = argv[-1]
        kname = self.node(path)
        if self.in_use(kname) or self.holders(kname):
            raise Refused(1, "%s is apparently in use by the system; will not make a filesystem here!" % path)
        if fstype == "ext4" and self.sigs.get(kname):
            raise Refused(1, "%s contains a %s file system\nProceed anyway? (y,N) " % (path, self.sigs[kname]["TYPE"]))
        extra = {}
        if "-i" in argv:
            extra["INODE_RATIO"] = argv[argv.index("-i") + 1]
        self.sigs[kname] = dict({"TYPE": fstype, "LABEL": label, "UUID": self.uuid()}, **extra)
        return ""

    def do_mkfs_vfat(self, argv):
        assert argv[1:3] == ["-F", "32"] and argv[3] == "-n", argv
        return self.make_fs(argv, "vfat", argv[4])

    def do_mkfs_ext4(self, argv):
        assert argv[1] == "-L", argv
        return self.make_fs(argv, "ext4", argv[2])

    def do_mkswap(self, argv):
        assert argv[1] == "-L", argv
        return self.make_fs(argv, "swap", argv[2])

    # ------------------------------------------------------------ LVM

    def do_pvcreate(self, argv):
        kname = self.node(argv[-1])
        if self.sigs.get(kname):
            raise Refused(5, "WARNING: %s signature detected on %s. Wipe it? [y/n]: [n]\n  Aborted wiping of %s."
                          % (self.sigs[kname].get("TYPE"), argv[-1], self.sigs[kname].get("TYPE")))
        if self.in_use(kname) or self.holders(kname):
            raise Refused(5, "Can't open %s exclusively.  Mounted filesystem?" % argv[-1])
        self.pvs[kname] = ""
        self.sigs[kname] = {"TYPE": "LVM2_member", "UUID": self.uuid()}
        return ""

    def do_vgcreate(self, argv):
        tags = [argv[index + 1] for index, arg in enumerate(argv) if arg == "--addtag"]
        argv = [arg for index, arg in enumerate(argv) if arg != "--addtag" and argv[index - 1] != "--addtag"]
        name, paths = argv[1], argv[2:]
        if name in self.vgs and self.vg_visible(name):
            raise Refused(5, "A volume group called %s already exists." % name)
        if name in self.vgs:  # its PVs can no longer be read (their array is gone): LVM has forgotten it
            for kname in [k for k, owner in self.pvs.items() if owner == name]:
                del self.pvs[kname]
            self.drop_vg_if_empty(name)
        knames = [self.node(p) for p in paths]
        for kname, path in zip(knames, paths, strict=True):
            if self.pvs.get(kname) != "":
                raise Refused(5, "Physical volume %s is not an orphan PV" % path)
        for kname in knames:
            self.pvs[kname] = name
        self.vgs[name] = {"uuid": self.uuid(), "tags": tags}
        return ""

    def do_vgextend(self, argv):
        name, path = argv[1], argv[2]
        kname = self.node(path)
        if name not in self.vgs or self.pvs.get(kname) != "":
            raise Refused(5, "cannot extend %s with %s" % (name, path))
        self.pvs[kname] = name
        return ""

    def do_lvcreate(self, argv):
        size = int(argv[argv.index("-L") + 1].rstrip("b"))
        name = argv[argv.index("-n") + 1]
        vg = next(a for i, a in enumerate(argv[1:], 1) if not a.startswith("-") and argv[i - 1] not in ("-L", "-n"))
        assert "--yes" in argv and "%FREE" not in " ".join(argv), argv
        if vg not in self.vgs:
            raise Refused(5, "Volume group \"%s\" not found" % vg)
        if (vg, name) in self.lvs:
            raise Refused(5, "Logical Volume \"%s\" already exists in volume group \"%s\"" % (name, vg))
        size = -(-size // EXTENT) * EXTENT
        if size > self.vg_free(vg):
            raise Refused(5, "Volume group \"%s\" has insufficient free space (%d extents): %d required."
                          % (vg, self.vg_free(vg) // EXTENT, size // EXTENT))
        dm = self.new_dm()
        self.lvs[(vg, name)] = {"size": size, "active": True, "dm": dm}
        self.sigs.pop(dm, None)  # lvcreate wipes signatures at the start of a new LV
        return ""

    def do_lvchange(self, argv):
        assert argv[1] == "-ay", argv
        vg, name = argv[2].split("/")
        lv = self.lvs[(vg, name)]
        lv["active"] = True
        return ""

    def do_vgchange(self, argv):
        if argv[1] == "--addtag":
            tag, vg = argv[2], argv[3]
            if vg not in self.vgs or not self.vg_visible(vg):
                raise Refused(5, "Volume group \"%s\" not found" % vg)
            tags = self.vgs[vg].setdefault("tags", [])
            if tag not in tags:
                tags.append(tag)
            return ""
        assert argv[1] == "-an", argv
        vg = argv[2]
        for (owner, name), lv in self.lvs.items():
            if owner == vg and lv["active"] and (self.in_use(lv["dm"]) or self.holders(lv["dm"])):
                raise Refused(5, "Logical volume %s/%s in use." % (vg, name))
        for (owner, _lv_name), lv in self.lvs.items():
            if owner == vg:
                lv["active"] = False
        return ""

    def do_vgremove(self, argv):
        vg = argv[-1]
        if vg not in self.vgs:
            raise Refused(5, "Volume group \"%s\" not found" % vg)
        for (owner, name), lv in self.lvs.items():
            if owner == vg and lv["active"] and self.in_use(lv["dm"]):
                raise Refused(5, "Logical volume %s/%s in use." % (vg, name))
        for key in [k for k in self.lvs if k[0] == vg]:
            self.sigs.pop(self.lvs[key]["dm"], None)
            del self.lvs[key]
        del self.vgs[vg]
        for kname, owner in self.pvs.items():
            if owner == vg:
                self.pvs[kname] = ""
        return ""

    def do_pvremove(self, argv):
        kname = self.node(argv[-1])
        if kname not in self.pvs:
            raise Refused(5, "No PV found on device %s." % argv[-1])
        vg = self.pvs.pop(kname)
        self.sigs.pop(kname, None)
        self.drop_vg_if_empty(vg)
        return ""

    # ------------------------------------------------------------ mounts and swap

    def do_mkdir(self, argv):
        assert argv[1] == "-p", argv
        path = argv[2]
        while path and path != "/":
            self.dirs.add(path)
            path = os.path.dirname(path)
        return ""

    def by_label_or_path(self, argv):
        if "-L" in argv:
            label = argv[argv.index("-L") + 1]
            found = self.labelled(label)
            if not found:
                raise Refused(32, "mount: can't find LABEL=%s" % label)
            return found[0]
        device = [a for a in argv[1:] if a.startswith("/dev/")][0]
        return self.node(device)

    def do_mount(self, argv):
        target = argv[-1]
        kname = self.by_label_or_path(argv)
        fstype = argv[argv.index("-t") + 1] if "-t" in argv else self.sigs.get(kname, {}).get("TYPE")
        if target not in self.dirs:
            raise Refused(32, "mount: %s: mount point does not exist." % target)
        if self.sigs.get(kname, {}).get("TYPE") != fstype:
            raise Refused(32, "mount: %s: wrong fs type, bad option, bad superblock on %s" % (target, kname))
        self.mounts.append({"kname": kname, "source": self.node_path(kname), "target": target, "fstype": fstype})
        return ""

    def do_umount(self, argv):
        target = argv[-1]
        assert "-l" not in argv and "--lazy" not in argv, "lazy unmount: %s" % argv
        if target in self.busy_targets or any(m["target"].startswith(target.rstrip("/") + "/") for m in self.mounts):
            raise Refused(32, "umount: %s: target is busy." % target)
        for index in range(len(self.mounts) - 1, -1, -1):
            if self.mounts[index]["target"] == target:
                del self.mounts[index]
                return ""
        raise Refused(32, "umount: %s: not mounted." % target)

    def do_swapon(self, argv):
        kname = self.by_label_or_path(argv)
        if self.sigs.get(kname, {}).get("TYPE") != "swap" or kname in self.swaps:
            raise Refused(255, "swapon: %s: read swap header failed" % kname)
        self.swaps.append(kname)
        return ""

    def do_swapoff(self, argv):
        kname = self.node(argv[-1])
        if kname not in self.swaps:
            raise Refused(255, "swapoff: %s: swapoff failed: Invalid argument" % argv[-1])
        self.swaps.remove(kname)
        return ""

    # ------------------------------------------------------------ the next boot

    def reboot(self):
        """What the next boot shows: no target mounts or swap, arrays assembled by udev, VGs active."""
        self.mounts = [m for m in self.mounts if m["kname"] is None or m["target"] in (
            "/", "/run/live/medium", "/run/live/rootfs/filesystem.squashfs")]
        self.swaps = []
        for disk in self.disks.values():
            disk["kernel"] = set(disk["parts"]) if disk["table"] else set()
        boot_arrays = {k: a for k, a in self.arrays.items() if any(
            m["kname"] and k in self.disks_under_stack(m["kname"]) for m in self.mounts)}
        self.arrays = dict(boot_arrays)
        by_uuid = {}
        for kname, block in sorted(self.superblocks.items()):
            if self.exists(kname) and not any(kname in a["members"] for a in self.arrays.values()):
                by_uuid.setdefault(block["uuid"], []).append(kname)
        for uuid, members in sorted(by_uuid.items()):
            block = self.superblocks[members[0]]
            self.start_array(block["name"], uuid, block["level"], block["devices"], members,
                             active=len(members) == block["devices"])
        for (vg, _lv_name), lv in self.lvs.items():
            lv["active"] = self.vg_complete(vg)  # event-based autoactivation once every PV is there
        self.sync()

    def disks_under_stack(self, kname):
        names, queue = set(), [kname]
        while queue:
            name = queue.pop()
            if name not in names:
                names.add(name)
                queue += self.parents(name)
        return names

    # ------------------------------------------------------------ /proc, /dev and /sys under tmp_path

    def sync(self):
        """Write /proc, /dev and /sys under tmp_path from the model (only what changed since the last call)."""
        wanted = {}
        lines = []
        for index, mount in enumerate(self.mounts, start=20):
            number = self.number(mount["kname"]) if mount["kname"] else "0:%d" % index
            lines.append("%d 1 %s / %s rw,relatime shared:1 - %s %s rw"
                         % (index, number, mount["target"], mount["fstype"], mount["source"]))
        wanted["proc/self/mountinfo"] = ("file", "\n".join(lines) + "\n")
        md = ["Personalities : [raid0] [raid1] [raid6] [raid5] [raid4]"]
        for kname, array in sorted(self.arrays.items()):
            members = " ".join("%s[%d]%s" % (m, i, "(F)" if m in array.get("faulty", ()) else
                                             "" if array["active"] else "(S)")
                               for i, m in enumerate(array["members"]))
            md.append("%s : %s %s" % (kname, "active " + array["level"] if array["active"] else "inactive", members))
            md.append("      %d blocks super 1.2" % (self.md_size(array) // KiB))
            md.append("")
        md.append("unused devices: <none>")
        wanted["proc/mdstat"] = ("file", "\n".join(md) + "\n")
        swaps = ["Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority"]
        swaps += ["%s\tpartition\t%d\t0\t-2" % ("/dev/" + k, self.size_of(k) // KiB) for k in self.swaps]
        wanted["proc/swaps"] = ("file", "\n".join(swaps) + "\n")

        for kname in self.knames():
            if "/dev/" + kname not in self.hidden_nodes:
                wanted["dev/" + kname] = ("file", "")
        for kname, array in self.arrays.items():
            short = array["name"].split(":")[-1]
            if array["active"] and "/dev/md/" + short not in self.hidden_nodes:
                wanted["dev/md/" + short] = ("link", "../" + kname)
        for (vg, name), lv in self.lvs.items():
            if lv["active"] and "/dev/%s/%s" % (vg, name) not in self.hidden_nodes:
                wanted["dev/%s/%s" % (vg, name)] = ("link", "../" + lv["dm"])
                mapper = "dev/mapper/%s-%s" % (vg.replace("-", "--"), name.replace("-", "--"))
                wanted[mapper] = ("link", "../" + lv["dm"])
        for name, disk in self.disks.items():
            wanted["dev/disk/by-id/" + disk["by_id"]] = ("link", "../../" + name)

        for kname in self.knames():
            wanted["sys/block/%s/dev" % kname] = ("file", self.number(kname) + "\n")
            if kname in self.arrays or kname.startswith("dm-"):
                for slave in self.parents(kname):
                    wanted["sys/block/%s/slaves/%s" % (kname, slave)] = ("file", "")
            for holder in self.holders(kname):
                wanted["sys/class/block/%s/holders/%s" % (kname, holder)] = ("file", "")
            if kname in self.loops:
                wanted["sys/block/%s/loop/backing_file" % kname] = ("file", self.loops[kname] + "\n")
            if self.arrays.get(kname, {}).get("active"):
                wanted["sys/block/%s/md/sync_action" % kname] = ("file", self.arrays[kname].get("sync", "idle") + "\n")

        written = getattr(self, "written", {})
        for relative in set(written) - set(wanted):
            (self.base / relative).unlink()
        for relative, (kind, content) in wanted.items():
            if written.get(relative) == (kind, content):
                continue
            path = self.base / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink() or path.exists():
                path.unlink()
            if kind == "link":
                path.symlink_to(content)
            else:
                path.write_text(content)
        self.written = wanted
        (self.base / "dev" / "disk" / "by-id").mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------ what the tests look at

    def mutating_commands(self):
        return [argv for argv, _outcome in self.mutations]

    def summary(self):
        """The built layout in one comparable value."""
        return {
            "tables": {name: [(n, p["name"], p["type"], p["size"]) for n, p in sorted(d["parts"].items())]
                       for name, d in sorted(self.disks.items()) if d["table"] == "gpt"},
            "filesystems": {self.node_path(k) if not k.startswith("dm-") else self.lv_path(k):
                            (s.get("TYPE"), s.get("LABEL"), s.get("INODE_RATIO"))
                            for k, s in sorted(self.sigs.items()) if s.get("TYPE") not in ("linux_raid_member",
                                                                                           "LVM2_member", None)
                            and self.exists(k)},
            "arrays": {a["name"]: (a["level"], a["active"], sorted(a["members"])) for a in self.arrays.values()},
            "vgs": {name: sorted(k for k, owner in self.pvs.items() if owner == name) for name in self.vgs},
            "lvs": {"%s/%s" % key: (lv["size"], lv["active"]) for key, lv in sorted(self.lvs.items())},
            "mounts": {m["target"]: self.lv_path(m["kname"]) if m["kname"] and m["kname"].startswith("dm-")
                       else m["source"] for m in self.mounts if m["kname"]},
            "swaps": [self.lv_path(k) for k in self.swaps],
        }

    def lv_path(self, kname):
        for (vg, name), lv in self.lvs.items():
            if lv["dm"] == kname:
                return "/dev/%s/%s" % (vg, name)
        return "/dev/" + kname


# ---------------------------------------------------------------- the fake's own tests


@pytest.fixture
def machine(tmp_path):
    return FakeMachine(tmp_path)


def test_the_fake_lists_a_raid1_member_partition_and_its_array_like_lsblk(machine):
    machine.add_disk("sdc", 16 * GiB, rotational=True)
    machine.add_disk("sdd", 16 * GiB, rotational=True)
    members = [machine.add_partition(d, 1, None, name="old", type_code="FD00") for d in ("sdc", "sdd")]
    md = machine.add_array("old", "raid1", members)
    tree = json.loads(machine.run(["lsblk", "-J", "-b", "-O"])[1])["blockdevices"]
    sdc = tree[0]
    assert (sdc["name"], sdc["pttype"], sdc["children"][0]["name"]) == ("sdc", "gpt", "sdc1")
    assert sdc["children"][0]["children"][0]["name"] == md
    assert sdc["children"][0]["children"][0]["type"] == "raid1"
    assert "md127 : active raid1 sdc1[0] sdd1[1]" in (machine.base / "proc" / "mdstat").read_text()
    assert os.readlink(machine.base / "dev" / "md" / "old") == "../" + md


def test_the_fake_refuses_what_the_real_tools_refuse(machine):
    machine.add_disk("sdc", 16 * GiB)
    kname = machine.add_partition("sdc", 1, None)
    machine.put(kname, "ext4", "old")
    machine.add_mount(kname, "/srv")
    machine.dirs.add("/srv")
    assert machine.run(["mkfs.ext4", "-L", "x", "/dev/sdc1"], check=False)[0] == 1
    assert machine.run(["wipefs", "-a", "/dev/sdc"], check=False)[0] == 1
    machine.busy_targets.add("/srv")
    assert machine.run(["umount", "/srv"], check=False)[0] == 32


def test_the_fake_records_the_disks_each_mutating_command_reaches(machine):
    machine.add_disk("sda", 16 * GiB)
    machine.run(["sgdisk", "--clear", "-n", "1:0:0", "-t", "1:FD00", "-c", "1:main-raid1", "/dev/sda"])
    machine.run(["blkid", "-p", "-o", "export", "/dev/sda"], check=False)
    assert machine.mutations == [(["sgdisk", "--clear", "-n", "1:0:0", "-t", "1:FD00", "-c", "1:main-raid1",
                                   "/dev/sda"], {"sda"})]
