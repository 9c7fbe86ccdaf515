# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The storage convergence engine: a plan and the current state in, an ordered list of steps out.

Usage (what the ``storage_apply`` module does)::

    applier = Applier(plan, Runner(module), tools=paths, root="/mnt", wipe=False, check_mode=False)
    result = applier.run()   # {changed, commands, layout, before, after, notes, wiped}

``ApplyError`` carries a message for the operator (and, for a failed command, its argv, rc and
stderr); nothing else escapes ``run()`` apart from the runner's own exceptions.

How a run goes
    1. Read the state (``storage_state.read_state``).
    2. Refuse, whatever the options: a planned disk the running system lives on (re-derived from
       the live mounts, never from the plan's flags), a planned disk that is missing, that changed
       identity (its by-id link now points elsewhere) or size, a plan that is malformed, a stack on
       a planned disk that reaches a disk outside the plan (it cannot be torn down without touching
       that disk), a name (array, VG) the plan needs that is taken by something outside the plan.
    3. Take the inventory: everything on each planned disk is "ours" (what this plan builds, at the
       planned place, under the planned name) or "foreign". Foreign content without ``wipe`` →
       refuse, naming each disk and what is on it; nothing has run.
    4. With ``wipe``: tear down, leaf to root, every stack on the disks with foreign content (and on
       planned disks those stacks share), re-read, and verify that nothing is left there.
    5. Build: the steps below, each emitted only when the state differs from the plan.
    6. Re-read and check that building again would do nothing; else fail with what is missing.

Check mode computes the same step list (after a wipe, from the state with the wiped disks blank)
and runs none of it; ``commands`` is that list. Every step passes a guard first (``Guard``): a
command naming a /dev path, a VG or a mount target that the plan (or the teardown of a planned
disk) does not account for is never run.

The build steps, in order, and why each one is safe to re-run after a kill between any two commands:

``sgdisk`` (one call per disk)
    Creates only the planned partitions missing from the table *on the disk* (``partx --pairs``);
    a blank disk gets a fresh GPT (``--clear``). sgdisk writes the table once, at the end, so a
    kill leaves the old table or the new one. Right before, the disk is probed again.
``partx -u`` / ``udevadm settle`` (then wait for the nodes)
    Run whenever the kernel does not list a planned partition, so a kill between ``sgdisk`` and
    the kernel's re-read is finished by the next run.
``mkfs.vfat -F 32 -n LABEL`` (ESPs)
    Only when ``blkid -p`` finds nothing on the partition, checked again right before.
``mdadm``
    A running array of the plan's name is kept (planned members it lacks are added when blank).
    Inactive arrays holding our members (what a kill inside ``mdadm --create`` or a reboot
    leaves) are stopped; members carrying our superblock are assembled when enough of them
    agree on one UUID; otherwise (a half-created array) our superblocks are zeroed and the array is
    created again: they are ours and carry nothing yet (an array is assembled, never recreated,
    as soon as enough members exist to start it). Right before ``--create`` every member is
    probed again and must be blank. After it: settle, wait for ``/dev/md/NAME``.
    ``--homehost=any`` stores the name as ``any:NAME``, which every host treats as its own: the
    array is ``/dev/md/NAME`` on the live system and on the installed system, whatever their host
    names. ``--assume-clean`` is deliberately not used: on RAID5/6 it leaves parity that does not
    match the data, so a later disk failure can rebuild garbage for stripes updated by
    read-modify-write, and every scrub reports mismatches; on RAID1 it would only save background
    I/O. The array is usable at once; its initial sync is held (``--action=frozen``) until the
    build is done, then runs in the background (``--action=idle``, the last step; see
    ``Builder.release_syncs``), so it does not compete with the build for the disks and the CPU.
``pvcreate`` / ``vgcreate`` / ``vgextend``
    LVM commits its metadata atomically; an existing PV (orphan or in the planned VG) or VG is
    kept, so a re-run only does what is missing.
``lvcreate -L <bytes>b -n NAME VG --yes``
    Only for missing LVs, with the plan's absolute size clipped at run time to the VG's real free
    space (never ``%FREE``); an existing LV of another size is left alone and reported. An
    inactive LV is activated (``lvchange -ay``).
``mkfs.ext4 -L LABEL [-i RATIO]`` / ``mkswap -L LABEL``
    Only when ``blkid -p`` finds nothing, checked again right before: a filesystem with the
    planned type and label is kept, anything else stops the run. mke2fs writes its superblock
    last, so a killed mkfs leaves a device blkid still sees as blank.
``udevadm settle`` / ``mkdir -p`` / ``mount`` (``/`` first, then by depth) / ``swapon``
    Checked against mountinfo and /proc/swaps; mounts by label when the label is unique on the
    machine, else by device (and a note says so: a live stick's ESP is often labelled EFI too).
    The settle after new filesystems lets udev publish their labels first.

A real run builds in three stages (partitions; ESPs and arrays; LVM, filesystems, mounts) and
re-reads the state after each, planning the next stage again with the same code: an array it
assembled may bring back volumes no plan made up front could see.

Teardown (``wipe: true``), leaf to root: ``umount`` (never lazy; busy → fail with a hint),
``swapoff``, ``vgchange -an``, ``vgremove -ff -y``, ``pvremove -ff -y``, ``wipefs -a`` on each
running array, ``mdadm --stop``, ``mdadm --zero-superblock`` on every member, ``wipefs -a`` on the
partitions then the disk, ``sgdisk --zap-all``, settle. A killed teardown leaves less foreign
content than before; the next run (with ``wipe``) tears down the rest.
"""
from __future__ import annotations

import os
import time

from ansible_collections.prenixos.baseline.plugins.module_utils.plan_render import human_size
from ansible_collections.prenixos.baseline.plugins.module_utils.runner import CommandError
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_contract import (
    DISK_NAME_PATTERN,
    GPT_TYPE_GUIDS,
    LABEL_PATTERN,
    NAME_PATTERN,
    PLAN_VERSION,
    RAID_LEVELS,
    partition_device,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_state import (
    LVM_REPORT_ARGS,
    MD_TYPES,
    VGS_FIELDS,
    StateError,
    parse_vgs,
    partition_number,
    probe_device,
    read_state,
)

KiB = 1024
MiB = 1024 ** 2

GUID_CODES = {guid: code for code, guid in GPT_TYPE_GUIDS.items()}

# Every tool a run may use; the module resolves each with get_bin_path.
TOOLS = (
    "sh", "blkid", "lsblk", "partx", "udevadm", "sgdisk", "wipefs", "mdadm",
    "pvs", "vgs", "lvs", "pvcreate", "vgcreate", "vgextend", "lvcreate", "lvchange",
    "vgchange", "vgremove", "pvremove", "mkfs.vfat", "mkfs.ext4", "mkswap",
    "mkdir", "mount", "umount", "swapon", "swapoff",
)


class ApplyError(Exception):
    """The run stops; ``msg`` tells the operator why and what to do. ``details`` go into the result."""

    def __init__(self, message, **details):
        super().__init__(message)
        self.msg = message
        self.details = details


class SafetyError(ApplyError):
    """A command would have named a device, VG or path the plan does not account for."""


class Step:
    """One command of the run.

    ``wait_for``: /dev paths that must exist after it (polled up to the settle timeout).
    ``precheck(runner)``: run right before (real runs only); returns False to skip the step, raises
    ApplyError to stop. ``resolve(runner)``: returns the argv to run, for values known only then.
    ``hint``: added to the error message when the command fails.
    ``stage``: build stages (1 partitions, 2 arrays, 3 the rest); a real run re-reads the state
    after each stage, so that what an assembled array brings back is seen before LVM is touched.
    """

    def __init__(self, argv, why, phase, wait_for=(), precheck=None, resolve=None, hint=None, stage=0):
        self.argv = [str(arg) for arg in argv]
        self.why = why
        self.phase = phase
        self.stage = stage
        self.wait_for = tuple(wait_for)
        self.precheck = precheck
        self.resolve = resolve
        self.hint = hint

    def __repr__(self):
        return "Step(%r)" % (self.argv,)


# ---------------------------------------------------------------- the plan


def is_clean_abspath(path):
    return (isinstance(path, str) and path.startswith("/") and os.path.normpath(path) == path
            and ".." not in path.split("/") and "\n" not in path)


class PlanView:
    """The plan, checked and indexed. Every device path a step may name is derived here.

    A plan that does not hold together (a partition device that is not on its disk, an array
    member that is not a planned partition, a mountpoint with ``..``) is refused before any read.
    """

    def __init__(self, plan):
        self.errors = []
        if not isinstance(plan, dict):
            raise ApplyError("plan must be the dict storage_plan returns, got %s" % type(plan).__name__)
        if plan.get("version") != PLAN_VERSION:
            raise ApplyError("plan version %r is not supported (this module reads version %d)"
                             % (plan.get("version"), PLAN_VERSION))
        self.plan = plan
        self.disks = {}
        for disk in self.entries("disks"):
            name = disk.get("name")
            if not isinstance(name, str) or not DISK_NAME_PATTERN.match(name):
                self.errors.append("disk name %r is not a kernel disk name" % (name,))
                continue
            if disk.get("dev", "/dev/" + name) != "/dev/" + name:
                self.errors.append("disk %s: dev %r is not /dev/%s" % (name, disk.get("dev"), name))
            self.disks[name] = disk
        self.partitions = []
        self.partition_by_device = {}
        for part in self.entries("partitions"):
            self.add_partition(part)
        self.arrays = {}
        self.array_of_member = {}
        for array in self.entries("arrays"):
            self.add_array(array)
        self.vgs = {}
        self.vg_of_pv = {}
        for vg in self.entries("volume_groups"):
            self.add_vg(vg)
        self.lvs = []
        for lv in self.entries("logical_volumes"):
            self.add_lv(lv)
        self.check_mountpoints()
        if self.errors:
            raise ApplyError("the plan is not consistent: " + "; ".join(self.errors))

    def entries(self, key):
        value = self.plan.get(key, [])
        if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
            self.errors.append("%s must be a list of dicts" % key)
            return []
        return value

    def add_partition(self, part):
        disk, number = part.get("disk"), part.get("number")
        where = "partition %s of %s" % (number, disk)
        if disk not in self.disks or not isinstance(number, int) or isinstance(number, bool) or number < 1:
            self.errors.append("%s: not a numbered partition of a planned disk" % where)
            return
        device = partition_device(disk, number)
        if part.get("device") != device:
            self.errors.append("%s: device %r should be %s" % (where, part.get("device"), device))
            return
        if part.get("type_code") not in GPT_TYPE_GUIDS:
            self.errors.append("%s: type code %r is not one of %s"
                               % (where, part.get("type_code"), ", ".join(sorted(GPT_TYPE_GUIDS))))
        label = part.get("partlabel")
        if not isinstance(label, str) or not NAME_PATTERN.match(label):
            self.errors.append("%s: partlabel %r is not a plain name" % (where, label))
        size = part.get("size")
        if size is not None and (not isinstance(size, int) or size <= 0 or size % KiB):
            self.errors.append("%s: size %r is not a positive whole number of KiB" % (where, size))
        if part.get("filesystem") not in (None, "vfat"):
            self.errors.append("%s: filesystem %r is not supported on a partition" % (where, part.get("filesystem")))
        if part.get("filesystem") == "vfat" and not LABEL_PATTERN.match(str(part.get("label") or "")):
            self.errors.append("%s: vfat label %r is not a plain name of 1-16 characters" % (where, part.get("label")))
        if device in self.partition_by_device:
            self.errors.append("%s is planned twice" % device)
        self.partitions.append(part)
        self.partition_by_device[device] = part

    def add_array(self, array):
        name = array.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            self.errors.append("array name %r is not a plain name" % (name,))
            return
        if array.get("device") != "/dev/md/" + name:
            self.errors.append("array %s: device %r should be /dev/md/%s" % (name, array.get("device"), name))
        if array.get("level") not in RAID_LEVELS:
            self.errors.append("array %s: level %r is not one of %s"
                               % (name, array.get("level"), ", ".join(RAID_LEVELS)))
        members = array.get("devices")
        if not isinstance(members, list) or not members:
            self.errors.append("array %s has no devices" % name)
            return
        for member in members:
            part = self.partition_by_device.get(member)
            if part is None or part.get("filesystem"):
                self.errors.append("array %s: member %r is not a planned partition without a filesystem"
                                   % (name, member))
            elif member in self.array_of_member:
                self.errors.append("%s is a member of two arrays" % member)
            else:
                self.array_of_member[member] = array
        self.arrays[name] = array

    def add_vg(self, vg):
        name = vg.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            self.errors.append("volume group name %r is not a plain name" % (name,))
            return
        pvs = vg.get("pvs")
        if not isinstance(pvs, list) or not pvs:
            self.errors.append("volume group %s has no pvs" % name)
            return
        for pv in pvs:
            array = next((a for a in self.arrays.values() if a.get("device") == pv), None)
            part = self.partition_by_device.get(pv)
            if array is None and (part is None or part.get("filesystem") or pv in self.array_of_member):
                self.errors.append("volume group %s: PV %r is neither a planned array nor a planned partition"
                                   % (name, pv))
            elif pv in self.vg_of_pv:
                self.errors.append("%s is a PV of two volume groups" % pv)
            else:
                self.vg_of_pv[pv] = vg
        self.vgs[name] = vg

    def add_lv(self, lv):
        vg_name, name = lv.get("vg"), lv.get("name")
        where = "logical volume %s/%s" % (vg_name, name)
        if vg_name not in self.vgs or not isinstance(name, str) or not NAME_PATTERN.match(name):
            self.errors.append("%s: not a named volume of a planned VG" % where)
            return
        if lv.get("device") != "/dev/%s/%s" % (vg_name, name):
            self.errors.append("%s: device %r should be /dev/%s/%s" % (where, lv.get("device"), vg_name, name))
        size = lv.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            self.errors.append("%s: size %r is not a positive number of bytes" % (where, size))
        if lv.get("filesystem") not in ("ext4", "swap"):
            self.errors.append("%s: filesystem %r is not ext4 or swap" % (where, lv.get("filesystem")))
        if not LABEL_PATTERN.match(str(lv.get("label") or "")):
            self.errors.append("%s: label %r is not a plain name of 1-16 characters" % (where, lv.get("label")))
        ratio = lv.get("inode_ratio")
        if ratio is not None and (not isinstance(ratio, int) or isinstance(ratio, bool) or ratio < 1024):
            self.errors.append("%s: inode_ratio %r is not a number of bytes (1024 or more)" % (where, ratio))
        if any(other["vg"] == vg_name and other["name"] == name for other in self.lvs):
            self.errors.append("%s is planned twice" % where)
        self.lvs.append(lv)

    def check_mountpoints(self):
        seen = set()
        for entry in self.partitions + self.lvs:
            mountpoint = entry.get("mountpoint")
            if mountpoint is None:
                continue
            if not is_clean_abspath(mountpoint):
                self.errors.append("mountpoint %r is not a clean absolute path" % (mountpoint,))
            elif mountpoint in seen:
                self.errors.append("mountpoint %s is planned twice" % mountpoint)
            seen.add(mountpoint)

    # -- queries

    def partitions_on(self, disk):
        return sorted((p for p in self.partitions if p["disk"] == disk), key=lambda p: p["number"])

    def partition(self, disk, number):
        return next((p for p in self.partitions if p["disk"] == disk and p["number"] == number), None)

    def esps(self):
        return [p for p in self.partitions if p.get("filesystem") == "vfat"]

    def array_named(self, name):
        return self.arrays.get(name)

    def lv(self, vg_name, name):
        return next((lv for lv in self.lvs if lv["vg"] == vg_name and lv["name"] == name), None)

    def filesystem_for(self, device):
        """``(type, label)`` the plan puts directly on ``device`` (a partition or an LV path)."""
        part = self.partition_by_device.get(device)
        if part is not None and part.get("filesystem"):
            return part["filesystem"], part.get("label")
        lv = next((lv for lv in self.lvs if lv["device"] == device), None)
        if lv is not None:
            return lv["filesystem"], lv.get("label")
        return None

    def mounts(self, root):
        """``[(target, device, fstype, label)]``: ``/`` first, then by depth, then by path."""
        found = []
        for entry in self.esps() + [lv for lv in self.lvs if lv["filesystem"] == "ext4"]:
            mountpoint = entry.get("mountpoint")
            if mountpoint:
                found.append((mountpoint, entry["device"], entry["filesystem"], entry.get("label")))
        found.sort(key=lambda item: (item[0] != "/", item[0].count("/") if item[0] != "/" else 0, item[0]))
        return [(target_under(root, mountpoint), device, fstype, label) for mountpoint, device, fstype, label in found]

    def swap_volumes(self):
        return [lv for lv in self.lvs if lv["filesystem"] == "swap"]


def target_under(root, mountpoint):
    return root if mountpoint == "/" else root.rstrip("/") + mountpoint


def size_argument(size):
    """sgdisk's end for ``-n N:0:END``: ``0`` (rest of the disk) or ``+<n>M`` / ``+<n>K`` (binary units)."""
    if size is None:
        return "0"
    if size % MiB == 0:
        return "+%dM" % (size // MiB)
    return "+%dK" % (size // KiB)


# ---------------------------------------------------------------- safety: disks and inventory


def check_disks(view, state):
    """Refuse planned disks that are the boot disk, missing, or not the disk the plan saw."""
    problems = []
    for name, disk in view.disks.items():
        if name in state.boot_disks:
            where = ", ".join(sorted(m["mountpoint"] for m in state.mounts
                                     if m["kname"] and name in state.tops.get(m["kname"], ())))
            problems.append("%s is in the plan, but the running system lives on it%s; it is never touched"
                            % (name, " (mounted at %s)" % where if where else ""))
            continue
        if not state.present(name):
            problems.append("%s is in the plan but not present" % name)
            continue
        path = disk.get("path") or ""
        if path.startswith("/dev/disk/by-id/"):
            now = state.kname_of(path)
            if now != name:
                problems.append("%s: the plan knew it as %s, which now points at %s; the disks changed since planning"
                                % (name, path, now or "nothing"))
        size = state.node_size(name)
        if isinstance(disk.get("size"), int) and size is not None and size != disk["size"]:
            problems.append("%s: planned for %d bytes, now %d bytes; the disks changed since planning"
                            % (name, disk["size"], size))
    if problems:
        raise ApplyError("refusing to apply the plan: " + "; ".join(problems), refused=problems)


class Inventory:
    """What is on the planned disks: ``foreign`` {disk: [what]}, ``conflicts`` [why], ``ours`` knames."""

    def __init__(self):
        self.foreign = {}
        self.conflicts = []
        self.ours = set()

    def add(self, disk, what):
        found = self.foreign.setdefault(disk, [])
        if what not in found:
            found.append(what)


def describe_probe(probe):
    if probe.get("AMBIVALENT"):
        return "several signatures"
    kind = probe.get("TYPE") or ("%s partition table" % probe["PTTYPE"] if probe.get("PTTYPE") else "data")
    label = probe.get("LABEL")
    return '%s "%s"' % (kind, label) if label else kind


def describe_partition(entry):
    code = GUID_CODES.get(entry.get("type") or "", entry.get("type") or "no type")
    name = ' "%s"' % entry["name"] if entry.get("name") else ""
    return "partition %d%s (%s, %s)" % (entry["number"], name, code, human_size(entry.get("size") or 0))


def partition_matches(entry, planned):
    return (entry.get("name") == planned["partlabel"]
            and entry.get("type") == GPT_TYPE_GUIDS[planned["type_code"]]
            and (planned.get("size") is None or entry.get("size") == planned["size"]))


def take_inventory(view, state, root):
    """Sort everything on the planned disks into ours and foreign (see the module docstring)."""
    inventory = Inventory()
    for disk in view.disks:
        Classifier(view, state, root, disk, inventory).run()
    find_conflicts(view, state, inventory)
    return inventory


class Classifier:
    """Classifies one planned disk and everything stacked on it."""

    def __init__(self, view, state, root, disk, inventory):
        self.view, self.state, self.root, self.disk, self.inventory = view, state, root, disk, inventory
        self.ours_partitions = {}

    def foreign(self, what):
        self.inventory.add(self.disk, what)

    def run(self):
        state = self.state
        probe = state.probe(self.disk)
        if probe.get("AMBIVALENT") or probe.get("TYPE"):
            self.foreign("%s on the whole disk" % describe_probe(probe))
        pttype = probe.get("PTTYPE")
        if pttype and pttype != "gpt":
            self.foreign("%s partition table" % pttype)
        table = state.tables.get(self.disk) or []
        if pttype == "gpt":
            for entry in table:
                planned = self.view.partition(self.disk, entry["number"])
                if planned is not None and partition_matches(entry, planned):
                    self.ours_partitions[entry["number"]] = planned
                else:
                    self.foreign(describe_partition(entry))
        on_disk = {entry["number"] for entry in table} if pttype else set()
        for number, kname in sorted(state.kernel_partitions(self.disk).items()):
            if number not in on_disk:
                self.foreign("%s (the kernel lists it; the table on the disk does not)" % kname)
        for kname in state.descendants(self.disk):
            self.classify(kname)
        self.classify_volume_groups()

    def classify(self, kname):
        state = self.state
        kind = state.node_type(kname)
        if kind == "part":
            number = partition_number(self.disk, kname, state.nodes.get(kname))
            planned = self.ours_partitions.get(number)
            if planned is None:
                self.foreign_content(kname)
            elif self.content_is_ours(kname, planned["device"]):
                self.inventory.ours.add(kname)
            return
        if kind in MD_TYPES:
            self.classify_array(kname)
            return
        if kind == "lvm":
            volume = state.lv_of_kname(kname)
            planned = self.view.lv(volume["vg"], volume["name"]) if volume else None
            if planned is None:
                self.foreign("logical volume %s%s" % (
                    "%s/%s" % (volume["vg"], volume["name"]) if volume else kname, self.usage(kname)))
            elif self.content_is_ours(kname, planned["device"]):
                self.inventory.ours.add(kname)
            return
        self.foreign("%s device %s%s" % (kind or "unknown", kname, self.usage(kname)))

    def classify_array(self, kname):
        state = self.state
        name = state.md_name(kname)
        planned = self.view.array_named(name) if name else None
        members = ["/dev/" + member for member in state.md_members(kname)]
        level = state.md_level(kname)
        ours = (
            planned is not None
            and all(member in planned["devices"] for member in members)
            and all(state.kname_of(member) in self.inventory.ours or member_is_ours(self.view, state, member)
                    for member in members)
            and (level is None or level == planned["level"])
        )
        if not ours:
            self.foreign("array /dev/%s (%s%s, %s)%s" % (
                kname, "name %s, " % name if name else "", level or "inactive",
                " ".join(m[len("/dev/"):] for m in members) or "no members", self.usage(kname)))
            return
        if self.content_is_ours(kname, planned["device"]):
            self.inventory.ours.add(kname)

    def content_is_ours(self, kname, planned_device):
        """True when what blkid sees on ``kname`` is what the plan puts on ``planned_device`` (or nothing)."""
        state, view = self.state, self.view
        probe = state.probe(kname)
        if not probe:
            return True
        kind = probe.get("TYPE")
        expected = view.filesystem_for(planned_device)
        if expected is not None:
            if kind == expected[0] and probe.get("LABEL") == expected[1]:
                return True
        elif planned_device in view.array_of_member:
            superblock = state.superblocks.get(kname)
            array = view.array_of_member[planned_device]
            if (kind == "linux_raid_member" and superblock and superblock["short_name"] == array["name"]
                    and superblock["level"] == array["level"]):
                return True
        elif planned_device in view.vg_of_pv:
            pv = state.pv_on(kname)
            vg_name = view.vg_of_pv[planned_device]["name"]
            if kind == "LVM2_member" and pv is not None and pv["vg_name"] in ("", vg_name):
                return True
        self.foreign_content(kname)
        return False

    def foreign_content(self, kname):
        """Report what is on a foreign (or wrongly filled) device; an empty one adds nothing to its entry."""
        probe = self.state.probe(kname)
        what = describe_probe(probe) if probe else None
        superblock = self.state.superblocks.get(kname)
        if superblock:
            what = "RAID member of %s (%s)" % (superblock.get("name") or superblock["uuid"], superblock.get("level"))
        pv = self.state.pv_on(kname)
        if pv is not None:
            what = "LVM physical volume%s" % (" of VG %s" % pv["vg_name"] if pv["vg_name"] else "")
        usage = self.usage(kname)
        if what or usage:
            self.foreign("%s: %s%s" % (kname, what or "in use", usage))

    def usage(self, kname):
        state = self.state
        uses = ["mounted at %s" % mount["mountpoint"] for mount in state.mounts_of(kname)]
        if state.swap_active(kname):
            uses.append("active swap")
        return ", " + ", ".join(uses) if uses else ""

    def classify_volume_groups(self):
        """LVs (active or not) of VGs on this disk that the plan does not have; VGs it does not have."""
        state = self.state
        for vg_name in sorted({pv["vg_name"] for pv in state.pvs if pv["vg_name"]}):
            if self.disk not in state.vg_tops(vg_name):
                continue
            if vg_name not in self.view.vgs:
                self.foreign("volume group %s" % vg_name)
                continue
            for volume in sorted(state.lvs.values(), key=lambda v: v["name"]):
                if volume["vg"] == vg_name and self.view.lv(vg_name, volume["name"]) is None:
                    self.foreign("logical volume %s/%s (not in the plan)" % (vg_name, volume["name"]))


def member_is_ours(view, state, member):
    """A member of an array is ours when it is a planned partition holding our superblock or nothing."""
    kname = state.kname_of(member)
    array = view.array_of_member.get(member)
    if kname is None or array is None:
        return False
    superblock = state.superblocks.get(kname)
    return not state.probe(kname) or bool(superblock and superblock["short_name"] == array["name"])


def find_conflicts(view, state, inventory):
    """Names the plan needs that something outside the planned disks already has."""
    allowed = set(view.disks) - state.boot_disks
    for name in view.arrays:
        for kname in state.md_arrays():
            if state.md_name(kname) == name and not state.md_tops(kname) <= allowed:
                inventory.conflicts.append(
                    "an array named %s (/dev/%s) already exists on %s, outside the plan; stop or rename it first"
                    % (name, kname, ", ".join(sorted(state.md_tops(kname) - allowed))))
    for name in view.vgs:
        if name in state.vgs and not state.vg_tops(name) <= allowed:
            inventory.conflicts.append(
                "a volume group named %s already exists on %s, outside the plan; rename it (vgrename) first"
                % (name, ", ".join(sorted(state.vg_tops(name) - allowed)) or "missing PVs"))


def stack_reach(state, kname):
    """Top-level disks a device stack involves (lsblk tree, md members, VG PVs)."""
    reach = set(state.tops.get(kname, ()))
    if state.node_type(kname) in MD_TYPES or kname in state.mdstat:
        reach |= state.md_tops(kname)
    volume = state.lv_of_kname(kname)
    if volume is not None:
        reach |= state.vg_tops(volume["vg"])
    pv = state.pv_on(kname)
    if pv is not None and pv["vg_name"]:
        reach |= state.vg_tops(pv["vg_name"])
    return reach


def wipe_closure(view, state, seed):
    """``(disks to wipe, conflicts)``: the seed plus the planned disks its stacks share.

    A stack that reaches a disk outside the plan (or the boot disk) is a conflict: it cannot be
    torn down without touching that disk.
    """
    allowed = set(view.disks) - state.boot_disks
    disks, conflicts = set(seed), []
    pending = sorted(disks)
    while pending:
        disk = pending.pop(0)
        involved = [(kname, stack_reach(state, kname)) for kname in state.descendants(disk)]
        involved += [("/dev/" + md, state.md_tops(md)) for md in state.mdstat
                     if disk in state.md_tops(md) and md not in state.nodes]
        involved += [("volume group " + vg, state.vg_tops(vg)) for vg in {pv["vg_name"] for pv in state.pvs}
                     if vg and disk in state.vg_tops(vg)]
        for what, reach in involved:
            outside = reach - allowed
            if outside:
                message = ("%s on %s also uses %s, which %s; it cannot be torn down without touching %s"
                           % (what, disk, ", ".join(sorted(outside)),
                              "is the boot disk" if outside & state.boot_disks else "is not in the plan",
                              "it" if len(outside) == 1 else "them"))
                if message not in conflicts:
                    conflicts.append(message)
            for other in sorted((reach & allowed) - disks):
                disks.add(other)
                pending.append(other)
    return sorted(disks), conflicts


def foreign_message(inventory):
    lines = ["Refusing to change disks that hold data this plan did not make (nothing was changed; "
             "set wipe: true to destroy it):"]
    for disk in sorted(inventory.foreign):
        lines.append("  - %s: %s" % (disk, "; ".join(inventory.foreign[disk])))
    return "\n".join(lines)


# ---------------------------------------------------------------- teardown


class Tools:
    """Tool name → path (get_bin_path's answer); a bare name when not given."""

    def __init__(self, paths=None):
        self.paths = dict(paths or {})

    def __call__(self, name):
        return self.paths.get(name, name)


def teardown_steps(state, disks, tools, settle_timeout):
    """Leaf-to-root teardown of everything on ``disks`` (see the module docstring)."""
    scope = set(disks)
    for disk in disks:
        scope.update(state.descendants(disk))
    arrays = [md for md in state.md_arrays() if md in scope or set(state.md_members(md)) & scope]
    scope.update(arrays)
    steps = []
    mounts = sorted((m for m in state.mounts if m["kname"] in scope),
                    key=lambda m: (-m["mountpoint"].rstrip("/").count("/"), m["mountpoint"]), reverse=False)
    for mount in mounts:
        steps.append(Step([tools("umount"), mount["mountpoint"]], "unmount %s" % mount["mountpoint"], "teardown",
                          hint="%s is busy: stop what uses it (fuser -vm %s) and run again; a lazy unmount is "
                               "never used" % (mount["mountpoint"], mount["mountpoint"])))
    for kname in state.swaps:
        if kname in scope:
            steps.append(Step([tools("swapoff"), state.node_path(kname)], "stop swap on %s" % kname, "teardown"))
    pvs = [pv for pv in state.pvs if state.pv_kname(pv) in scope]
    for vg_name in sorted({pv["vg_name"] for pv in pvs if pv["vg_name"]}):
        steps.append(Step([tools("vgchange"), "-an", vg_name], "deactivate VG %s" % vg_name, "teardown"))
        if not state.vgs.get(vg_name, {}).get("partial"):
            steps.append(Step([tools("vgremove"), "-ff", "-y", vg_name], "remove VG %s" % vg_name, "teardown"))
    for pv in pvs:
        path = state.node_path(state.pv_kname(pv))
        steps.append(Step([tools("pvremove"), "-ff", "-y", path], "remove PV %s" % path, "teardown"))
    depth = {name: index for index, name in enumerate(ordered_scope(state, disks))}
    for md in sorted(arrays, key=lambda name: -depth.get(name, 0)):
        if state.md_active(md):
            steps.append(Step([tools("wipefs"), "-a", "/dev/" + md], "wipe signatures on /dev/%s" % md, "teardown"))
        steps.append(Step([tools("mdadm"), "--stop", "/dev/" + md], "stop array /dev/%s" % md, "teardown"))
    for kname in ordered_scope(state, disks):
        if kname in state.superblocks or state.probe(kname).get("TYPE") == "linux_raid_member":
            steps.append(Step([tools("mdadm"), "--zero-superblock", state.node_path(kname)],
                              "zero the RAID superblock on %s" % kname, "teardown"))
    for disk in disks:
        kernel = state.kernel_partitions(disk)
        on_disk = {entry["number"] for entry in state.tables.get(disk) or []}
        unseen = sorted(on_disk - set(kernel))
        if unseen:
            nodes = [partition_device(disk, number) for number in unseen]
            steps.append(Step([tools("partx"), "-u", "/dev/" + disk], "let the kernel see every partition of %s" % disk,
                              "teardown"))
            steps.append(Step([tools("udevadm"), "settle", "-t", str(settle_timeout)], "wait for udev", "teardown",
                              wait_for=nodes))
        for number in sorted(set(kernel) | on_disk):
            device = partition_device(disk, number)
            steps.append(Step([tools("wipefs"), "-a", device], "wipe signatures on %s" % device, "teardown"))
        steps.append(Step([tools("wipefs"), "-a", "/dev/" + disk], "wipe signatures on /dev/%s" % disk, "teardown"))
        steps.append(Step([tools("sgdisk"), "--zap-all", "/dev/" + disk], "destroy the partition tables of %s" % disk,
                          "teardown"))
    steps.append(Step([tools("udevadm"), "settle", "-t", str(settle_timeout)], "wait for udev", "teardown"))
    return steps


def ordered_scope(state, disks):
    order = []
    for disk in disks:
        for name in [disk] + state.descendants(disk):
            if name not in order:
                order.append(name)
    return order


def leftovers(state, disks):
    """What is still reachable from ``disks`` after a teardown (empty when they are blank)."""
    found = []
    for disk in disks:
        probe = state.probe(disk)
        if probe:
            found.append("%s: %s" % (disk, describe_probe(probe)))
        if state.tables.get(disk):
            found.append("%s: partition table with %d partition(s)" % (disk, len(state.tables[disk])))
        for kname in state.descendants(disk):
            found.append("%s: %s %s is still there" % (disk, state.node_type(kname) or "device", kname))
        for pv in state.pvs:
            if disk in state.tops.get(state.pv_kname(pv), ()):
                found.append("%s: LVM physical volume %s" % (disk, pv["pv_name"]))
        for md in state.mdstat:
            if disk in state.md_tops(md):
                found.append("%s: array /dev/%s" % (disk, md))
    return found


# ---------------------------------------------------------------- building


def syncs(level):
    """Whether an md array of ``level`` has a sync to hold (raid0 and linear have no redundancy to sync)."""
    return str(level).replace("raid", "") not in ("0", "linear")


class Builder:
    """The build steps for ``view`` from ``state`` (see the module docstring for the order).

    ``fresh`` holds the device paths earlier steps of this run create: they start out blank, so
    later layers are built on them without looking at the (stale) state.
    """

    def __init__(self, view, state, tools, root, settle_timeout, notes):
        self.view, self.state, self.tools, self.root = view, state, tools, root
        self.settle_timeout = settle_timeout
        self.notes = notes
        self.steps = []
        self.fresh = set()
        self.array_paths = {}
        self.unknown = set()  # devices whose content cannot be read yet (not in the kernel, LV inactive)
        self.in_stage_three = False

    def build(self):
        self.partitions()
        self.esps()
        self.arrays()
        self.volume_groups()
        self.logical_volumes()
        self.filesystems()
        self.mounts()
        self.swaps()
        self.release_syncs()
        return self.steps

    STAGES = {"partition": 1, "settle": None, "filesystem": None, "array": 2, "lvm": 3, "mount": 3, "swap": 3,
              "sync": 3}

    def add(self, argv, why, phase, **kwargs):
        stage = self.STAGES[phase] or (self.steps[-1].stage if self.steps else 1)
        if phase == "filesystem" and not self.in_stage_three:
            stage = 2  # the ESPs, made between partitioning and the arrays
        self.steps.append(Step(argv, why, phase, stage=stage, **kwargs))

    def settle(self, why, nodes):
        self.add([self.tools("udevadm"), "settle", "-t", str(self.settle_timeout)], why, "settle", wait_for=nodes)

    def kname(self, path):
        return None if path in self.fresh else self.state.kname_of(path)

    def content(self, path):
        """blkid's view of ``path`` (``{}`` for blank or newly made); None when unknown."""
        if path in self.fresh:
            return {}
        if path in self.unknown:
            return None
        kname = self.state.kname_of(path)
        return None if kname is None else self.state.probe(kname)

    # -- partitions

    def partitions(self):
        nodes = []
        for disk in self.view.disks:
            planned = self.view.partitions_on(disk)
            table = self.state.tables.get(disk) or []
            existing = {entry["number"] for entry in table}
            missing = [p for p in planned if p["number"] not in existing]
            device = "/dev/" + disk
            if missing:
                argv = [self.tools("sgdisk")]
                if not table:
                    argv.append("--clear")
                for p in missing:
                    number = p["number"]
                    argv += ["-n", "%d:0:%s" % (number, size_argument(p.get("size"))),
                             "-t", "%d:%s" % (number, p["type_code"]), "-c", "%d:%s" % (number, p["partlabel"])]
                argv.append(device)
                self.add(argv, "partition %s" % device, "partition", precheck=self.disk_unchanged(disk))
                self.fresh.update(p["device"] for p in missing)
            kernel = self.state.kernel_partitions(disk)
            unseen = [p for p in planned if p["number"] not in kernel]
            if unseen:
                self.add([self.tools("partx"), "-u", device], "let the kernel see the partitions of %s" % device,
                         "partition")
                nodes += [p["device"] for p in unseen]
                self.unknown.update(p["device"] for p in unseen if p["device"] not in self.fresh)
        if nodes:
            self.settle("wait for the partition device nodes", nodes)

    def disk_unchanged(self, disk):
        """Right before sgdisk: the disk must still carry what the decision was made on (no table, or a GPT)."""
        tools = self.tools
        expected = self.state.probe(disk).get("PTTYPE")

        def precheck(runner):
            probe = probe_device(runner, tools.paths, "/dev/" + disk)
            if probe.get("TYPE") or probe.get("AMBIVALENT") or probe.get("PTTYPE") != expected:
                raise ApplyError("refusing to partition /dev/%s: it held %s when the state was read, now blkid finds %s"
                                 % (disk, "a %s table" % expected if expected else "nothing",
                                    describe_probe(probe) if probe else "nothing"))
            return True

        return precheck

    # -- filesystems on partitions

    def esps(self):
        for part in self.view.esps():
            self.make_filesystem(part["device"], "vfat", part["label"], None)

    def make_filesystem(self, device, fstype, label, inode_ratio):
        content = self.content(device)
        if content is not None and content.get("TYPE") == fstype and content.get("LABEL") == label:
            return
        if fstype == "vfat":
            argv = [self.tools("mkfs.vfat"), "-F", "32", "-n", label, device]
        elif fstype == "swap":
            argv = [self.tools("mkswap"), "-L", label, device]
        else:
            argv = [self.tools("mkfs.ext4"), "-L", label] + (["-i", str(inode_ratio)] if inode_ratio else []) + [device]
        self.add(argv, "make a %s filesystem labelled %s on %s" % (fstype, label, device), "filesystem",
                 precheck=self.blank_or_ours(device, fstype, label))

    def blank_or_ours(self, device, fstype, label):
        """Right before mkfs: blank → run; the planned filesystem already there → skip; else stop."""
        tools = self.tools

        def precheck(runner):
            probe = probe_device(runner, tools.paths, device)
            if not probe:
                return True
            if probe.get("TYPE") == fstype and probe.get("LABEL") == label:
                return False
            raise ApplyError("refusing to make a filesystem on %s: blkid finds %s there"
                             % (device, describe_probe(probe)))

        return precheck

    # -- arrays

    def arrays(self):
        for array in self.view.arrays.values():
            self.array(array)

    def running_array(self, array):
        for kname in self.state.md_arrays():
            if self.state.md_active(kname) and self.state.md_name(kname) == array["name"]:
                return kname
        return None

    def array(self, array):
        tools, state, name = self.tools, self.state, array["name"]
        members = array["devices"]
        running = self.running_array(array)
        if running is not None:
            path = array["device"] if state.kname_of(array["device"]) == running else "/dev/" + running
            self.array_paths[name] = path
            present = {"/dev/" + member for member in state.md_members(running)}
            for member in members:
                if member not in present:
                    self.add_member(array, path, member)
            return
        self.array_paths[name] = array["device"]
        member_knames = {self.kname(m) for m in members} - {None}
        for kname in state.md_arrays():
            if not state.md_active(kname) and set(state.md_members(kname)) & member_knames:
                self.add([tools("mdadm"), "--stop", "/dev/" + kname], "stop the inactive array /dev/%s" % kname,
                         "array")
        ours = {}
        for member in members:
            kname = self.kname(member)
            superblock = state.superblocks.get(kname) if kname else None
            if superblock and superblock["short_name"] == name:
                ours[member] = superblock
        by_uuid = {}
        for member, superblock in ours.items():
            by_uuid.setdefault(superblock["uuid"], []).append(member)
        best = max(by_uuid.values(), key=lambda group: (len(group), group), default=[])
        if best and can_start(array["level"], len(members), len(best)) and all(
                ours[m]["raid_devices"] in (None, len(members)) for m in best):
            argv = [tools("mdadm"), "--assemble", array["device"]]
            if len(best) < len(members):
                argv.append("--run")
            self.add(argv + sorted(best), "assemble array %s from its members" % name, "array")
            self.settle("wait for %s" % array["device"], [array["device"]])
            for member in members:
                if member not in best:
                    self.add_member(array, array["device"], member, zero=member in ours)
            return
        for member in sorted(ours):
            self.add([tools("mdadm"), "--zero-superblock", member],
                     "zero our superblock on %s (array %s was half-created)" % (member, name), "array")
        self.add([tools("mdadm"), "--create", array["device"], "--name=" + name, "--homehost=any",
                  "--level=" + array["level"], "--raid-devices=%d" % len(members),
                  "--metadata=" + str(array.get("metadata") or "1.2"), "--run"] + list(members),
                 "create array %s" % name, "array", precheck=self.members_blank(members))
        self.fresh.add(array["device"])
        self.settle("wait for %s" % array["device"], [array["device"]])
        if syncs(array["level"]):
            self.add([tools("mdadm"), "--misc", "--action=frozen", array["device"]],
                     "hold the initial sync of array %s while the rest is built" % name, "array")

    def release_syncs(self):
        """Last: let the arrays this build created (or a killed build left held) sync in the background.

        A new array's initial sync would otherwise compete with every later command for the disks and
        the CPU; held while the build runs (``--action=frozen``, which the kernel forgets at reboot),
        it resumes from where it stood. Writes stay safe meanwhile: md computes full parity for
        stripes not synced yet.
        """
        for array in self.view.arrays.values():
            path = self.array_paths.get(array["name"], array["device"])
            kname = self.kname(path)
            if (path in self.fresh and syncs(array["level"])) or (kname is not None and self.state.md_frozen(kname)):
                self.add([self.tools("mdadm"), "--misc", "--action=idle", path],
                         "let array %s sync in the background" % array["name"], "sync")

    def add_member(self, array, array_path, member, zero=None):
        if zero is None:
            kname = self.kname(member)
            zero = bool(kname and kname in self.state.superblocks)
        if zero:
            self.add([self.tools("mdadm"), "--zero-superblock", member],
                     "zero the stale superblock on %s" % member, "array")
        self.add([self.tools("mdadm"), "--manage", array_path, "--add", member],
                 "add %s to array %s" % (member, array["name"]), "array", precheck=self.members_blank([member]))

    def members_blank(self, members):
        """Right before --create/--add: every member must be blank (mdadm --run would not ask)."""
        tools = self.tools

        def precheck(runner):
            for member in members:
                probe = probe_device(runner, tools.paths, member)
                if probe:
                    raise ApplyError("refusing to put %s into an array: blkid finds %s there"
                                     % (member, describe_probe(probe)))
            return True

        return precheck

    # -- LVM

    def volume_groups(self):
        tools, state = self.tools, self.state
        self.in_stage_three = True
        for vg in self.view.vgs.values():
            paths = [self.array_paths.get(pv[len("/dev/md/"):], pv) if pv.startswith("/dev/md/") else pv
                     for pv in vg["pvs"]]
            for path in paths:
                kname = self.kname(path)
                if kname is not None and state.pv_on(kname) is not None:
                    continue
                self.add([tools("pvcreate"), path], "make %s an LVM physical volume" % path, "lvm",
                         precheck=self.members_blank_for_pv(path))
                self.fresh.add(path)
            if vg["name"] not in state.vgs:
                self.add([tools("vgcreate"), vg["name"]] + paths, "create VG %s" % vg["name"], "lvm")
                self.fresh.add("vg:" + vg["name"])
                continue
            for path in paths:
                kname = self.kname(path)
                pv = state.pv_on(kname) if kname else None
                if path in self.fresh or (pv is not None and pv["vg_name"] == ""):
                    self.add([tools("vgextend"), vg["name"], path], "add %s to VG %s" % (path, vg["name"]), "lvm")

    def members_blank_for_pv(self, path):
        tools = self.tools

        def precheck(runner):
            probe = probe_device(runner, tools.paths, path)
            if probe.get("TYPE") == "LVM2_member":
                return False
            if probe:
                raise ApplyError("refusing to make %s a physical volume: blkid finds %s there"
                                 % (path, describe_probe(probe)))
            return True

        return precheck

    def logical_volumes(self):
        tools, state = self.tools, self.state
        for lv in self.view.lvs:
            vg_fresh = "vg:" + lv["vg"] in self.fresh
            current = None if vg_fresh else state.lv(lv["vg"], lv["name"])
            if current is None:
                argv = [tools("lvcreate"), "-L", "%db" % lv["size"], "-n", lv["name"], lv["vg"], "--yes"]
                self.add(argv, "create LV %s/%s" % (lv["vg"], lv["name"]), "lvm",
                         resolve=self.clipped_to_free_space(argv, lv), wait_for=[lv["device"]])
                self.fresh.add(lv["device"])
                continue
            if current["size"] != lv["size"]:
                self.notes.append("LV %s/%s is %s, the plan says %s: left alone (never resized)"
                                  % (lv["vg"], lv["name"], human_size(current["size"]), human_size(lv["size"])))
            if not current["active"]:
                self.add([tools("lvchange"), "-ay", "%s/%s" % (lv["vg"], lv["name"])],
                         "activate LV %s/%s" % (lv["vg"], lv["name"]), "lvm", wait_for=[lv["device"]])
                self.unknown.add(lv["device"])

    def clipped_to_free_space(self, argv, lv):
        """At run time: the planned size, or the VG's free space (whole extents) when that is smaller."""
        tools, notes = self.tools, self.notes

        def resolve(runner):
            command = [tools("vgs")] + list(LVM_REPORT_ARGS) + [VGS_FIELDS, lv["vg"]]
            vg = parse_vgs(runner.run(command)[1]).get(lv["vg"])
            if vg is None:
                raise ApplyError("VG %s is gone before LV %s could be created in it" % (lv["vg"], lv["name"]))
            extent = vg["extent_size"] or 4 * MiB
            free = vg["free"] - vg["free"] % extent
            if lv["size"] <= free:
                return argv
            if free <= 0:
                raise ApplyError("VG %s has no free space left for LV %s (%s planned)"
                                 % (lv["vg"], lv["name"], human_size(lv["size"])))
            notes.append("LV %s/%s clipped to the VG's free space: %s instead of %s"
                         % (lv["vg"], lv["name"], human_size(free), human_size(lv["size"])))
            return [arg if arg != "%db" % lv["size"] else "%db" % free for arg in argv]

        return resolve

    def filesystems(self):
        count = len(self.steps)
        for lv in self.view.lvs:
            self.make_filesystem(lv["device"], lv["filesystem"], lv["label"], lv.get("inode_ratio"))
        if len(self.steps) > count:  # mounts and swapon by label go through udev's by-label links
            self.settle("let udev see the new filesystem labels", [])

    # -- mounts and swap

    def label_is_unique(self, label, device):
        kname = self.kname(device)
        carriers = self.state.labels().get(label, set()) - ({kname} if kname else set())
        return not carriers

    def mounts(self):
        tools, state = self.tools, self.state
        for target, device, fstype, label in self.view.mounts(self.root):
            kname = self.kname(device)
            current = state.mount_at(target)
            if current is not None and kname is not None and current["kname"] == kname:
                continue
            if current is not None:
                raise ApplyError("%s is already a mount point of %s, not of %s; unmount it first"
                                 % (target, current["source"], device))
            self.add([tools("mkdir"), "-p", target], "create the mount point %s" % target, "mount")
            source = ["-L", label] if self.label_is_unique(label, device) else [device]
            if source == [device]:
                self.notes.append("label %s is carried by another device too: %s is mounted by device, not by label"
                                  % (label, target))
            self.add([tools("mount"), "-t", fstype] + source + [target], "mount %s at %s" % (device, target), "mount")

    def swaps(self):
        for lv in self.view.swap_volumes():
            kname = self.kname(lv["device"])
            if kname is not None and self.state.swap_active(kname):
                continue
            source = ["-L", lv["label"]] if self.label_is_unique(lv["label"], lv["device"]) else [lv["device"]]
            self.add([self.tools("swapon")] + source, "enable swap on %s" % lv["device"], "swap")


def can_start(level, total, present):
    """Enough members with one UUID to start the array (degraded if need be)."""
    minimum = {"raid0": total, "raid1": 1, "raid4": total - 1, "raid5": total - 1, "raid6": total - 2}
    return present >= minimum.get(level, total)


# ---------------------------------------------------------------- the guard


class Guard:
    """The last check before any command: every /dev path, VG and mount target must be accounted for.

    Accounted for: the planned disks (minus the boot disks), their planned partitions, the planned
    arrays, VGs and LV paths; the running planned arrays by kernel name; and, for a teardown, the
    devices, VGs and mounts found on the disks being wiped. An existing device a path resolves to
    must sit only on planned, non-boot disks.
    """

    LVM_VG_FIRST = ("vgcreate", "vgextend", "vgremove")

    def __init__(self, view, state, root, wiped_disks=()):
        self.state = state
        self.root = root
        self.allowed_disks = set(view.disks) - state.boot_disks
        paths = {"/dev/" + disk for disk in self.allowed_disks}
        paths.update(p["device"] for p in view.partitions if p["disk"] in self.allowed_disks)
        paths.update(a["device"] for a in view.arrays.values())
        paths.update(lv["device"] for lv in view.lvs)
        for kname in state.md_arrays():
            if state.md_name(kname) in view.arrays and state.md_tops(kname) <= self.allowed_disks:
                paths.add("/dev/" + kname)
        self.vg_names = set(view.vgs)
        self.targets = {mount[0] for mount in view.mounts(root)}
        for disk in wiped_disks:
            if disk not in self.allowed_disks:
                continue
            for kname in [disk] + state.descendants(disk):
                paths.update({"/dev/" + kname, state.node_path(kname)})
                self.targets.update(m["mountpoint"] for m in state.mounts_of(kname))
            for md in state.mdstat:
                if disk in state.md_tops(md):
                    paths.add("/dev/" + md)
            on_disk = state.tables.get(disk) or []
            paths.update(partition_device(disk, entry["number"]) for entry in on_disk)
            for pv in state.pvs:
                if disk in state.tops.get(state.pv_kname(pv), ()):
                    paths.update({pv["pv_name"], state.node_path(state.pv_kname(pv))})
                    if pv["vg_name"]:
                        self.vg_names.add(pv["vg_name"])
        self.paths = paths
        self.lv_names = {"%s/%s" % (lv["vg"], lv["name"]) for lv in view.lvs}

    def refuse(self, argv, why):
        raise SafetyError("refusing to run %s: %s" % (" ".join(argv), why), cmd=list(argv))

    def check(self, argv):
        command = os.path.basename(argv[0])
        for arg in argv[1:]:
            if arg.startswith("/dev/"):
                self.check_path(argv, arg)
        if command in self.LVM_VG_FIRST or command in ("vgchange",):
            names = [arg for arg in argv[1:] if not arg.startswith("-") and not arg.startswith("/dev/")]
            for name in names:
                if name not in self.vg_names:
                    self.refuse(argv, "volume group %s is not in the plan nor on a disk being wiped" % name)
        if command == "lvcreate":
            positional = [arg for index, arg in enumerate(argv[1:], start=1)
                          if not arg.startswith("-") and argv[index - 1] not in ("-L", "-n")]
            for name in positional:
                if name not in self.vg_names:
                    self.refuse(argv, "volume group %s is not in the plan" % name)
        if command == "lvchange":
            for arg in argv[1:]:
                if not arg.startswith("-") and arg not in self.lv_names:
                    self.refuse(argv, "logical volume %s is not in the plan" % arg)
        if command in ("mkdir", "mount", "umount"):
            target = argv[-1]
            if target not in self.targets:
                self.refuse(argv, "%s is not a planned mount point under %s nor a mount being torn down"
                            % (target, self.root))

    def check_path(self, argv, path):
        if path not in self.paths:
            self.refuse(argv, "%s is not a planned device nor on a disk being wiped" % path)
        kname = self.state.kname_of(path)
        if kname is None:
            return
        reach = stack_reach(self.state, kname) or {kname}
        if not reach <= self.allowed_disks:
            self.refuse(argv, "%s sits on %s, outside the planned disks or on the boot disk"
                        % (path, ", ".join(sorted(reach - self.allowed_disks))))


# ---------------------------------------------------------------- layout


def device_label(state, kname):
    """How a device is named in the layout: LV path, /dev/md/NAME, or /dev/KNAME."""
    volume = state.lv_of_kname(kname)
    if volume is not None:
        return volume["path"]
    if state.node_type(kname) in MD_TYPES and state.md_name(kname):
        return "/dev/md/" + state.md_name(kname)
    return "/dev/" + kname


def describe_table_entry(entry):
    code = GUID_CODES.get(entry.get("type") or "", entry.get("type") or "-")
    return "%d %s %s %s" % (entry["number"], entry.get("name") or "-", code, human_size(entry.get("size") or 0))


def layout_of(view, state, root):
    """A compact description of what is on the planned disks now."""
    layout = {"disks": {}, "filesystems": {}, "arrays": {}, "volume_groups": {}, "logical_volumes": {},
              "mounts": {}, "swaps": []}
    involved = set()
    for disk in view.disks:
        if not state.present(disk):
            layout["disks"][disk] = "absent"
            continue
        probe = state.probe(disk)
        table = state.tables.get(disk)
        if probe.get("PTTYPE"):
            entries = ", ".join(describe_table_entry(entry) for entry in table or [])
            layout["disks"][disk] = "%s: %s" % (probe["PTTYPE"], entries or "no partitions")
        elif probe:
            layout["disks"][disk] = describe_probe(probe)
        else:
            layout["disks"][disk] = "blank"
        involved.update(state.descendants(disk))
    for kname in sorted(involved):
        probe = state.probe(kname)
        if probe.get("TYPE") or probe.get("AMBIVALENT"):
            layout["filesystems"][device_label(state, kname)] = describe_probe(probe)
    for md in state.md_arrays():
        if md in involved or set(state.md_members(md)) & involved:
            name = state.md_name(md) or md
            layout["arrays"][name] = "%s %s: %s" % (
                state.md_level(md) or "unknown level", "active" if state.md_active(md) else "inactive",
                " ".join("/dev/" + m for m in state.md_members(md)))
    vg_names = {pv["vg_name"] for pv in state.pvs if pv["vg_name"] and state.pv_kname(pv) in involved}
    for name in sorted(vg_names):
        vg = state.vgs.get(name, {})
        pvs = " ".join(device_label(state, state.pv_kname(pv)) for pv in state.vg_pvs(name))
        layout["volume_groups"][name] = "%s, %s, %s free" % (
            pvs, human_size(vg.get("size") or 0), human_size(vg.get("free") or 0))
    for key, volume in sorted(state.lvs.items()):
        if volume["vg"] in vg_names:
            layout["logical_volumes"][key] = human_size(volume["size"]) + ("" if volume["active"] else ", inactive")
    for mount in state.mounts:
        if mount["kname"] in involved:
            layout["mounts"][mount["mountpoint"]] = device_label(state, mount["kname"])
    layout["swaps"] = sorted(device_label(state, kname) for kname in state.swaps if kname in involved)
    return layout


def planned_layout(view, root, before):
    """The layout once the plan is built (check mode's "after"): sizes the plan cannot know are estimates."""
    layout = {"disks": {}, "filesystems": {}, "arrays": {}, "volume_groups": {}, "logical_volumes": {},
              "mounts": {}, "swaps": []}
    for disk in view.disks:
        entries = []
        for part in view.partitions_on(disk):
            size = human_size(part["size"]) if part.get("size") else "rest of disk"
            entries.append("%d %s %s %s" % (part["number"], part["partlabel"], part["type_code"], size))
        planned = "gpt: %s" % ", ".join(entries)
        current = before["disks"].get(disk, "")
        same_shape = current.startswith("gpt: ") and [e.split()[:3] for e in current[5:].split(", ")] == [
            e.split()[:3] for e in entries]
        layout["disks"][disk] = current if same_shape else planned
    for part in view.esps():
        layout["filesystems"][part["device"]] = 'vfat "%s"' % part["label"]
    for array in view.arrays.values():
        for member in array["devices"]:
            layout["filesystems"][member] = 'linux_raid_member "any:%s"' % array["name"]
        layout["arrays"][array["name"]] = "%s active: %s" % (array["level"], " ".join(array["devices"]))
    for vg in view.vgs.values():
        for pv in vg["pvs"]:
            layout["filesystems"][pv] = "LVM2_member"
        estimate = "%s, about %s" % (" ".join(vg["pvs"]), human_size(vg.get("size") or 0))
        layout["volume_groups"][vg["name"]] = before["volume_groups"].get(vg["name"], estimate)
    for lv in view.lvs:
        layout["filesystems"][lv["device"]] = '%s "%s"' % (lv["filesystem"], lv["label"])
        key = "%s/%s" % (lv["vg"], lv["name"])
        layout["logical_volumes"][key] = before["logical_volumes"].get(key, human_size(lv["size"])).replace(
            ", inactive", "")
    for mount in view.mounts(root):
        layout["mounts"][mount[0]] = mount[1]
    layout["swaps"] = sorted(lv["device"] for lv in view.swap_volumes())
    for key in ("filesystems",):
        for device, value in before[key].items():
            if device in layout[key] and value.split()[0] == layout[key][device].split()[0]:
                layout[key][device] = value
    return layout


# ---------------------------------------------------------------- the run


class Applier:
    """One run of storage_apply: read, refuse or tear down, build, verify (see the module docstring)."""

    def __init__(self, plan, runner, tools=None, root="/mnt", wipe=False, check_mode=False, settle_timeout=30,
                 sysfs_root="/sys", proc_root="/proc", dev_root="/dev", sleep=time.sleep, clock=time.monotonic):
        self.view = PlanView(plan)
        if not is_clean_abspath(root) or root == "/":
            raise ApplyError("root must be a clean absolute path other than /, got %r" % (root,))
        self.runner = runner
        self.tools = tools if isinstance(tools, Tools) else Tools(tools)
        self.root = root
        self.wipe = wipe
        self.check_mode = check_mode
        self.settle_timeout = settle_timeout
        self.roots = {"sysfs_root": sysfs_root, "proc_root": proc_root, "dev_root": dev_root}
        self.dev_root = dev_root
        self.sleep, self.clock = sleep, clock
        self.executed = []
        self.notes = []

    def read(self):
        try:
            return read_state(self.runner, list(self.view.disks), self.tools.paths, settle_timeout=self.settle_timeout,
                              **self.roots)
        except StateError as err:
            raise ApplyError("cannot read the storage state: %s" % err) from None
        except CommandError as err:
            raise ApplyError("cannot read the storage state: %s" % err, **command_details(err)) from None

    def run(self):
        state = self.read()
        before = layout_of(self.view, state, self.root)
        check_disks(self.view, state)
        inventory = take_inventory(self.view, state, self.root)
        wiped = []
        if inventory.foreign:
            wiped, conflicts = wipe_closure(self.view, state, inventory.foreign)
            inventory.conflicts += conflicts
        if inventory.conflicts:
            raise ApplyError("refusing to apply the plan: " + "; ".join(inventory.conflicts),
                             conflicts=inventory.conflicts, foreign=inventory.foreign)
        if inventory.foreign and not self.wipe:
            raise ApplyError(foreign_message(inventory), foreign=inventory.foreign)

        planned = []
        if wiped:
            teardown = teardown_steps(state, wiped, self.tools, self.settle_timeout)
            self.guard(teardown, Guard(self.view, state, self.root, wiped))
            planned += teardown
            if self.check_mode:
                state = state.without_disks(wiped)
            else:
                self.execute(teardown, Guard(self.view, state, self.root, wiped))
                state = self.read()
                left = leftovers(state, wiped)
                if left:
                    raise ApplyError("the teardown did not leave %s blank: %s" % (", ".join(wiped), "; ".join(left)),
                                     leftovers=left)
                check_disks(self.view, state)
                again = take_inventory(self.view, state, self.root)
                if again.foreign or again.conflicts:
                    raise ApplyError("after the teardown the disks still hold foreign content: %s"
                                     % foreign_message(again))

        build = Builder(self.view, state, self.tools, self.root, self.settle_timeout, self.notes).build()
        self.guard(build, Guard(self.view, state, self.root))
        if self.check_mode:
            planned += build
            after = planned_layout(self.view, self.root, before) if planned else before
            return self.result(bool(planned), [step.argv for step in planned], before, after, wiped)

        try:
            final = self.build_in_stages(state, build)
        except ApplyError:
            self.release_held()
            raise
        self.refuse_faulty_members(final)
        return self.result(bool(self.executed), list(self.executed), before, layout_of(self.view, final, self.root),
                           wiped)

    def build_in_stages(self, state, build):
        """Run the first stage of ``build``, re-read, plan again; until planning finds nothing to do.

        The plan of each stage comes from the same Builder that check mode uses; re-reading between
        stages lets a real run see what it could not predict (the volumes on an array it assembled).
        """
        previous = None
        for _attempt in range(8):
            if not build:
                return state
            stage = min(step.stage for step in build)
            steps = [step for step in build if step.stage == stage]
            if previous is not None and [s.argv for s in steps] == previous:
                break
            self.execute(steps, Guard(self.view, state, self.root))
            previous = [s.argv for s in steps]
            state = self.read()
            check_disks(self.view, state)
            build = Builder(self.view, state, self.tools, self.root, self.settle_timeout, self.notes).build()
            self.guard(build, Guard(self.view, state, self.root))
        raise ApplyError("the disks did not converge to the plan; still to do: %s"
                         % "; ".join(step.why for step in build), commands=list(self.executed))

    def release_held(self):
        """After a failed build: let the arrays this run held sync again (best effort; a reboot does too)."""
        for argv in self.executed:
            if "--action=frozen" in argv:
                self.runner.run(argv[:-2] + ["--action=idle", argv[-1]], check=False)

    def refuse_faulty_members(self, state):
        """A planned array that lost a member (the kernel marked it faulty) fails the run, layout kept."""
        problems = []
        for array in self.view.arrays.values():
            kname = state.kname_of(array["device"])
            faulty = state.md_faulty(kname) if kname else []
            if faulty:
                disks = sorted({disk for member in faulty for disk in state.tops.get(member, {member})})
                problems.append("array %s (%s) runs degraded: %s failed (disk %s)"
                                % (array["name"], array["device"], ", ".join(sorted(faulty)), ", ".join(disks)))
        if problems:
            raise ApplyError("%s; the layout is built and kept, replace the disk and run again to rebuild the array"
                             % "; ".join(problems), faulty=problems, commands=list(self.executed),
                             layout=layout_of(self.view, state, self.root))

    def disks_gone(self):
        """Planned disks whose device node has gone since the run started (a disk pulled or dropped)."""
        return [disk for disk in self.view.disks if not os.path.exists(os.path.join(self.dev_root, disk))]

    def result(self, changed, commands, before, after, wiped):
        return {
            "changed": changed,
            "commands": commands,
            "layout": after if not self.check_mode else before,
            "before": before,
            "after": after,
            "notes": list(dict.fromkeys(self.notes)),  # each stage plans again: say each thing once
            "wiped": list(wiped),
        }

    def guard(self, steps, guard):
        for step in steps:
            guard.check(step.argv)

    def execute(self, steps, guard):
        for step in steps:
            guard.check(step.argv)
            if step.precheck is not None and not step.precheck(self.runner):
                continue
            argv = step.resolve(self.runner) if step.resolve is not None else step.argv
            guard.check(argv)
            try:
                self.runner.run(argv)
            except CommandError as err:
                message = "%s failed: %s" % (step.why, err)
                if step.hint:
                    message += " (%s)" % step.hint
                gone = self.disks_gone()
                if gone:
                    message = ("planned disk %s disappeared during the build (%s); nothing more was done, what is "
                               "built is kept: run again once the disk is back, or plan again without it"
                               % (", ".join(gone), message))
                raise ApplyError(message, commands=self.executed + [argv], **command_details(err)) from None
            self.executed.append(list(argv))
            if step.wait_for:
                self.wait_for_nodes(step.wait_for, step.why)

    def wait_for_nodes(self, paths, why):
        deadline = self.clock() + self.settle_timeout
        while True:
            missing = [path for path in paths if not os.path.exists(os.path.join(self.dev_root, path[len("/dev/"):]))]
            if not missing:
                return
            if self.clock() >= deadline:
                raise ApplyError("%s did not appear within %d s (after: %s)"
                                 % (", ".join(missing), self.settle_timeout, why), commands=list(self.executed))
            self.sleep(0.2)


def command_details(err):
    details = err.as_fail_kwargs()
    details.pop("msg", None)
    return details
