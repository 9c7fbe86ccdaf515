# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The partition room of the storage engine: the planned disks, their GPT and their partitions.

Here, for the plan's ``disks`` and ``partitions``: how they are checked (``PartitionPlan``), how
a disk's table and its partitions are told ours or foreign (``PartitionInventory``), how a disk's
tables are destroyed (``teardown_tables``), how the missing partitions are made
(``PartitionBuild``), which paths a command may name (``PartitionGuard``), and how a disk is
described in the layout. The filesystem on an ESP belongs to ``storage_kind_fs``.

The build steps, stage 1, and why each one is safe to re-run after a kill between any two commands:

``sgdisk`` (one call per disk)
    Creates only the planned partitions missing from the table *on the disk* (``partx --pairs``);
    a blank disk gets a fresh GPT (``--clear``). Every call sets the disk GUID to this build's
    (``storage_identity``): a table with partitions and another GUID is foreign. sgdisk writes the
    table once, at the end, so a kill leaves the old table or the new one. Right before, the disk
    is probed again.
``partx -u`` / ``udevadm settle`` (then wait for the nodes)
    Run whenever the kernel does not list a planned partition, so a kill between ``sgdisk`` and
    the kernel's re-read is finished by the next run.

Unknown data: a disk blkid calls blank whose first or last MiB is not all zero, or that ends in a
backup GPT header (``storage_state`` reads the edges), holds data no signature names (plain dm-crypt,
raw data, a GPT whose primary copy was zeroed): it is foreign.

Teardown, the last of the kinds: ``wipefs -a`` on the partitions then the disk, ``sgdisk
--zap-all``, then ``dd`` zeroing the disk's first and last MiB (what is left of a filesystem or a
table beyond the magic wipefs erases), so that the check after the teardown finds the disk blank.

May import storage_step, storage_state(_model) and storage_contract; no other room.
"""
from __future__ import annotations

from ansible_collections.prenixos.baseline.plugins.module_utils.storage_contract import (
    DISK_NAME_PATTERN,
    GPT_TYPE_GUIDS,
    LABEL_PATTERN,
    NAME_PATTERN,
    human_size,
    partition_device,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_state_model import partition_number
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_step import (
    PARTITION_STAGE,
    ApplyError,
    KiB,
    MiB,
    Step,
    describe_probe,
    probed_before,
    settle_argv,
)

GUID_CODES = {guid: code for code, guid in GPT_TYPE_GUIDS.items()}


def size_argument(size):
    """sgdisk's end for ``-n N:0:END``: ``0`` (rest of the disk) or ``+<n>M`` / ``+<n>K`` (binary units)."""
    if size is None:
        return "0"
    if size % MiB == 0:
        return "+%dM" % (size // MiB)
    return "+%dK" % (size // KiB)


def partition_matches(entry, planned):
    return (entry.get("name") == planned["partlabel"]
            and entry.get("type") == GPT_TYPE_GUIDS[planned["type_code"]]
            and (planned.get("size") is None or entry.get("size") == planned["size"]))


def describe_partition(entry):
    code = GUID_CODES.get(entry.get("type") or "", entry.get("type") or "no type")
    name = ' "%s"' % entry["name"] if entry.get("name") else ""
    return "partition %d%s (%s, %s)" % (entry["number"], name, code, human_size(entry.get("size") or 0))


def describe_edges(edges):
    """``unknown data (first MiB not zero; ...)`` from what was read at a blank disk's edges; None when all zero."""
    if not edges:
        return None
    reasons = []
    if edges.get("error"):
        reasons.append("reading it failed: %s" % edges["error"])
    if edges.get("head"):
        reasons.append("first MiB not zero")
    if edges.get("backup_gpt"):
        reasons.append("backup GPT header at the end")
    elif edges.get("tail"):
        reasons.append("last MiB not zero")
    return "unknown data (%s)" % "; ".join(reasons) if reasons else None


def describe_table_entry(entry):
    code = GUID_CODES.get(entry.get("type") or "", entry.get("type") or "-")
    return "%d %s %s %s" % (entry["number"], entry.get("name") or "-", code, human_size(entry.get("size") or 0))


# ---------------------------------------------------------------- the plan


class PartitionPlan:
    """Part of ``PlanView``: the planned disks (``disks``) and partitions (``partitions``, ``partition_by_device``)."""

    def read_disks(self):
        self.disks = {}
        for disk in self.entries("disks"):
            name = disk.get("name")
            if not isinstance(name, str) or not DISK_NAME_PATTERN.match(name):
                self.errors.append("disk name %r is not a kernel disk name" % (name,))
                continue
            if disk.get("dev", "/dev/" + name) != "/dev/" + name:
                self.errors.append("disk %s: dev %r is not /dev/%s" % (name, disk.get("dev"), name))
            self.disks[name] = disk

    def read_partitions(self):
        self.partitions = []
        self.partition_by_device = {}
        for part in self.entries("partitions"):
            self.add_partition(part)

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

    def partitions_on(self, disk):
        return sorted((p for p in self.partitions if p["disk"] == disk), key=lambda p: p["number"])

    def partition(self, disk, number):
        return next((p for p in self.partitions if p["disk"] == disk and p["number"] == number), None)


# ---------------------------------------------------------------- recognising


class PartitionInventory:
    """Part of ``Classifier``: the disk itself, its table, and the partitions on it."""

    def classify_disk(self):
        state = self.state
        self.ours_partitions = {}  # number -> planned partition, for the table entries that match the plan
        probe = state.probe(self.disk)
        if probe.get("AMBIVALENT") or probe.get("TYPE"):
            self.foreign("%s on the whole disk" % describe_probe(probe))
        unknown = describe_edges(state.edges.get(self.disk))
        if unknown:
            self.foreign(unknown)
        pttype = probe.get("PTTYPE")
        if pttype and pttype != "gpt":
            self.foreign("%s partition table" % pttype)
        table = state.tables.get(self.disk) or []
        if pttype == "gpt" and table and not self.view.identity.marks_disk(probe.get("PTUUID"), self.disk):
            self.foreign("a GPT this build did not write (disk GUID %s)" % (probe.get("PTUUID") or "unknown"))
            for entry in table:
                self.foreign(describe_partition(entry))
        elif pttype == "gpt":
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

    def classify_partition(self, kname):
        number = partition_number(self.disk, kname, self.state.nodes.get(kname))
        planned = self.ours_partitions.get(number)
        if planned is None:
            self.foreign_content(kname)
        elif self.content_is_ours(kname, planned["device"]):
            self.inventory.ours.add(kname)


# ---------------------------------------------------------------- tearing down


def teardown_tables(state, disks, tools, settle_timeout):
    """Every partition of ``disks`` (the kernel's and the table's) wiped, then the disks and their tables."""
    steps = []
    for disk in disks:
        kernel = state.kernel_partitions(disk)
        on_disk = {entry["number"] for entry in state.tables.get(disk) or []}
        unseen = sorted(on_disk - set(kernel))
        if unseen:
            nodes = [partition_device(disk, number) for number in unseen]
            steps.append(Step([tools("partx"), "-u", "/dev/" + disk],
                              "let the kernel see every partition of %s" % disk))
            steps.append(Step(settle_argv(tools, settle_timeout), "wait for udev", wait_for=nodes))
        for number in sorted(set(kernel) | on_disk):
            device = partition_device(disk, number)
            steps.append(Step([tools("wipefs"), "-a", device], "wipe signatures on %s" % device))
        steps.append(Step([tools("wipefs"), "-a", "/dev/" + disk], "wipe signatures on /dev/%s" % disk))
        steps.append(Step([tools("sgdisk"), "--zap-all", "/dev/" + disk], "destroy the partition tables of %s" % disk))
        steps += zero_edges(tools, disk, state.node_size(disk) or 0)
    return steps


def zero_edges(tools, disk, size):
    """``dd`` zeroing the first and the last MiB of ``disk`` (on a disk under 2 MiB they overlap; under 1 MiB, one).

    Writes go around the page cache (``oflag=direct``) in blocks that divide both the offset and the
    length, so the last MiB of a disk whose size is no whole number of MiB is covered exactly.
    """
    length = min(size, MiB)
    offsets = [0] + ([size - length] if size > length else [])
    steps = []
    for offset in offsets if length else []:
        block = next(b for b in (MiB, 4 * KiB, 512, 1) if offset % b == 0 and length % b == 0)
        argv = [tools("dd"), "if=/dev/zero", "of=/dev/" + disk, "bs=%s" % ("1M" if block == MiB else block),
                "count=%d" % (length // block)]
        if offset:
            argv.append("seek=%d" % (offset // block))
        argv += ["conv=fsync", "oflag=direct"]
        steps.append(Step(argv, "zero the %s MiB of %s" % ("last" if offset else "first", disk)))
    return steps


# ---------------------------------------------------------------- building


class PartitionBuild:
    """Part of ``Builder``: the missing partitions of every planned disk, and the kernel seeing them (stage 1)."""

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
                argv.append("--disk-guid=" + self.view.identity.disk_guid(disk))
                for p in missing:
                    number = p["number"]
                    argv += ["-n", "%d:0:%s" % (number, size_argument(p.get("size"))),
                             "-t", "%d:%s" % (number, p["type_code"]), "-c", "%d:%s" % (number, p["partlabel"])]
                argv.append(device)
                self.add(argv, "partition %s" % device, PARTITION_STAGE,
                         precheck=probed_before(self.tools, [device], table_unchanged(self.state.probe(disk))))
                self.fresh.update(p["device"] for p in missing)
            kernel = self.state.kernel_partitions(disk)
            unseen = [p for p in planned if p["number"] not in kernel]
            if unseen:
                self.add([self.tools("partx"), "-u", device], "let the kernel see the partitions of %s" % device,
                         PARTITION_STAGE)
                nodes += [p["device"] for p in unseen]
                self.unknown.update(p["device"] for p in unseen if p["device"] not in self.fresh)
        if nodes:
            self.settle("wait for the partition device nodes", nodes, PARTITION_STAGE)


def table_unchanged(read):
    """Right before sgdisk: the disk must still carry what the decision was made on (no table, or a GPT)."""
    expected = read.get("PTTYPE")

    def decide(device, probe):
        if probe.get("TYPE") or probe.get("AMBIVALENT") or probe.get("PTTYPE") != expected:
            raise ApplyError("refusing to partition %s: it held %s when the state was read, now blkid finds %s"
                             % (device, "a %s table" % expected if expected else "nothing",
                                describe_probe(probe) if probe else "nothing"))
        return True

    return decide


# ---------------------------------------------------------------- guarding


class PartitionGuard:
    """Part of ``Guard``: the planned disks that are not boot disks, their planned partitions, and the
    partitions in the table of a disk being wiped."""

    def account_disks(self, view):
        self.paths.update("/dev/" + disk for disk in self.allowed_disks)
        self.paths.update(p["device"] for p in view.partitions if p["disk"] in self.allowed_disks)

    def account_wiped_table(self, disk):
        self.paths.update(partition_device(disk, entry["number"]) for entry in self.state.tables.get(disk) or [])


# ---------------------------------------------------------------- the layout


def disk_layout(state, disk):
    """``absent``, ``gpt: <entries>``, what blkid sees on the whole disk, or ``blank``."""
    if not state.present(disk):
        return "absent"
    probe = state.probe(disk)
    table = state.tables.get(disk)
    if probe.get("PTTYPE"):
        entries = ", ".join(describe_table_entry(entry) for entry in table or [])
        return "%s: %s" % (probe["PTTYPE"], entries or "no partitions")
    if probe:
        return describe_probe(probe)
    return describe_edges(state.edges.get(disk)) or "blank"


def planned_disk_layout(view, disk, current):
    """The planned table of ``disk``; what is there now (``current``) when it has the planned shape already."""
    entries = []
    for part in view.partitions_on(disk):
        size = human_size(part["size"]) if part.get("size") else "rest of disk"
        entries.append("%d %s %s %s" % (part["number"], part["partlabel"], part["type_code"], size))
    planned = "gpt: %s" % ", ".join(entries)
    same_shape = current.startswith("gpt: ") and [e.split()[:3] for e in current[5:].split(", ")] == [
        e.split()[:3] for e in entries]
    return current if same_shape else planned
