# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading what the disks hold now, for ``storage_apply``.

Two halves:

* pure parsers, text in and dicts out, one per tool (``parse_*``); malformed output raises
  :class:`StateError` with the tool's name and the start of what it printed;
* :func:`read_state`, which runs the read-only tools through the runner, reads ``/proc`` under
  ``proc_root`` and returns a ``storage_state_model.StorageState`` that answers questions about
  devices (the model lives in its own file: it runs and parses nothing).

Sources, and why each one:

``lsblk -J -b -O``
    the device tree the kernel sees (partitions, md and dm holders), sizes, mountpoints.
``blkid -p -o export DEV`` (every device on a planned disk, all from one ``sh -c``)
    what is *on* each device, probed from the device itself rather than udev's cache: the
    decision to run ``mkfs`` or to call content foreign rests on it.
``partx --pairs`` (every planned disk with a partition table)
    the partition table *on the disk*: a run killed between ``sgdisk`` and the kernel's re-read
    leaves partitions the kernel does not list yet; classification must see them.
``/proc/mdstat``, ``mdadm --detail --export``, ``mdadm --examine --export``
    running and inactive arrays, and the superblocks on members of arrays that are not running.
``pvs``/``vgs``/``lvs --reportformat json --units b --nosuffix``
    LVM, including volume groups whose LVs are not active.
``/proc/self/mountinfo``, ``/proc/swaps``
    mounts and active swap.
``/sys/class/block/KNAME/holders``, ``/sys/block/LOOP/loop/backing_file`` (devices on a planned disk)
    what holds a device that lsblk does not list under it: a holder only sysfs shows, a loop device
    on the device itself. The teardown cannot remove them; a wipe must stop before it starts.
the first and the last MiB of a planned disk blkid calls blank (``read_disk_edges``, read-only)
    data no signature names (plain dm-crypt, raw data, a backup GPT whose primary was zeroed): not
    all zero, or a GPT header in the last sector, is unknown data. Read with Python, not a command,
    and only for those disks: a blank disk costs 2 MiB of reading.

The boot disk is resolved by ``block_devices.BootMediumResolver`` (the same code ``disk_facts`` uses),
from the live mounts: sources of ``/``, ``/usr``, ``/boot``, ``/boot/efi`` and the live-medium
mountpoints, followed through partitions, dm/md slaves and loop backing files.
"""
from __future__ import annotations

import errno
import json
import os
import re

from ansible_collections.prenixos.baseline.plugins.module_utils.block_devices import (
    LSBLK_ARGS,
    BootMediumResolver,
    DiskFactsError,
    loop_backing_file,
    parse_lsblk,
    parse_mountinfo,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_state_model import StorageState

# --pairs is partx's listing mode itself: it cannot be combined with --show (util-linux refuses both at once).
PARTX_ARGS = ("--pairs", "--bytes", "--noheadings", "--output", "NR,START,SIZE,NAME,TYPE,SCHEME")

LVM_REPORT_ARGS = ("--reportformat", "json", "--units", "b", "--nosuffix", "-o")
PVS_FIELDS = "pv_name,vg_name,pv_size,pv_uuid"
VGS_FIELDS = "vg_name,vg_size,vg_free,vg_extent_size,vg_attr,pv_count,lv_count,vg_tags"
LVS_FIELDS = "lv_name,vg_name,lv_size,lv_path,lv_dm_path,lv_active,lv_attr"

PROBE_OPTIONS = ("-p", "-o", "export")
EXAMINE_OPTIONS = ("--examine", "--export")
DETAIL_OPTIONS = ("--detail", "--export")
BLKID_NOTHING_FOUND = 2  # blkid -p: no signature on the device
BLKID_AMBIVALENT = 8  # blkid -p: several signatures, nothing decided

MDSTAT_ARRAY = re.compile(r"^(?P<name>md\S*) : (?P<state>active|inactive)(?P<rest>.*)$")
MDSTAT_MEMBER = re.compile(r"^(?P<name>[^\[\s]+)\[(?P<slot>\d+)\](?P<flags>(?:\([A-Z]\))*)$")
MDSTAT_LEVELS = ("linear", "multipath", "faulty", "raid0", "raid1", "raid4", "raid5", "raid6", "raid10")
PAIR = re.compile(r'(?P<key>[A-Z_%:]+)="(?P<value>(?:[^"\\]|\\.)*)"')
HEX_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")

EDGE = 1024 ** 2  # how much of each end of a blank disk is read
GPT_SIGNATURE = b"EFI PART"  # the first bytes of a GPT header
GPT_HEADER_SECTORS = (512, 4096)  # the backup header fills the last logical sector: 512 bytes, or 4096 on a 4Kn disk

# ``sh -c EACH_SCRIPT NAME TOOL DEVICE...`` runs ``TOOL OPTIONS DEVICE`` for every device given after the
# tool's path (blkid -p, partx --pairs, mdadm --detail/--examine), each output followed by its exit code on a
# line of its own. The reads of many devices go through one shell: under emulation every command the module
# starts costs it a fork of its own interpreter. The options are constants of this file, never data; the
# devices come as arguments.
EACH_RC = "PRENIXOS_RC="
EACH_SCRIPT = 'tool=$1; shift; for device do "$tool" %s "$device"; echo "' + EACH_RC + '$?"; done'


def each_script(options):
    """The shell that runs ``tool OPTIONS device`` for every device, each output followed by its exit code."""
    return EACH_SCRIPT % " ".join(options)


class StateError(Exception):
    """A tool printed something this module cannot understand, or a file could not be read."""


# ---------------------------------------------------------------- pure parsers


def excerpt(text):
    return repr((text or "")[:200])


def parse_export(text, origin):
    """``KEY=value`` lines (``blkid -o export``, ``mdadm --export``); backslash escapes undone."""
    values = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise StateError("%s printed a line that is not KEY=value: %r" % (origin, line[:200]))
        values[key] = re.sub(r"\\(.)", r"\1", value)
    return values


def parse_blkid(text, rc, device):
    """``blkid -p -o export`` → signature dict (empty when nothing was found).

    ``PART_ENTRY_*`` keys (the table's entry for a partition, printed even for an empty one) and
    ``DEVNAME`` are dropped: what remains is what is *on* the device (``TYPE``, ``LABEL``, ``PTTYPE``...).

    rc 2 means "nothing found"; rc 8 means several signatures, reported as
    ``{"TYPE": None, "AMBIVALENT": "1"}`` so that the caller treats the device as holding something.
    """
    if rc == BLKID_NOTHING_FOUND:
        return {}
    if rc == BLKID_AMBIVALENT:
        return {"AMBIVALENT": "1"}
    if rc != 0:
        raise StateError("blkid -p %s failed with exit code %s" % (device, rc))
    values = parse_export(text, "blkid -p %s" % device)
    # what the partition table says about the partition itself is not content
    content = {key: value for key, value in values.items()
               if key != "DEVNAME" and not key.startswith("PART_ENTRY_")}
    if "PTUUID" in content and "PTTYPE" not in content:
        del content["PTUUID"]
    return content


def md_short_name(md_name):
    """``any:main`` / ``host:main`` / ``main`` → ``main`` (mdadm prefixes the home host)."""
    if not md_name:
        return None
    return md_name.split(":", 1)[1] if ":" in md_name else md_name


def parse_mdadm_detail(text, device):
    """``mdadm --detail --export`` → ``{level, raid_devices, metadata, uuid, name, short_name, devname, members}``."""
    values = parse_export(text, "mdadm --detail --export %s" % device)
    if "MD_DEVICES" not in values and "MD_LEVEL" not in values:
        raise StateError("mdadm --detail --export %s printed neither MD_LEVEL nor MD_DEVICES: %s"
                         % (device, excerpt(text)))
    members = sorted(
        value for key, value in values.items() if key.startswith("MD_DEVICE_") and key.endswith("_DEV")
    )
    return {
        "level": values.get("MD_LEVEL"),
        "raid_devices": to_int(values.get("MD_DEVICES"), "MD_DEVICES", "mdadm --detail %s" % device),
        "metadata": values.get("MD_METADATA"),
        "uuid": values.get("MD_UUID"),
        "name": values.get("MD_NAME"),
        "short_name": md_short_name(values.get("MD_NAME")) or values.get("MD_DEVNAME"),
        "devname": values.get("MD_DEVNAME"),
        "members": members,
    }


def parse_mdadm_examine(text, device):
    """``mdadm --examine --export`` of a member → ``{level, raid_devices, name, short_name, uuid, events}``."""
    values = parse_export(text, "mdadm --examine --export %s" % device)
    if "MD_UUID" not in values:
        raise StateError("mdadm --examine --export %s printed no MD_UUID: %s" % (device, excerpt(text)))
    return {
        "level": values.get("MD_LEVEL"),
        "raid_devices": to_int(values.get("MD_DEVICES"), "MD_DEVICES", "mdadm --examine %s" % device),
        "name": values.get("MD_NAME"),
        "short_name": md_short_name(values.get("MD_NAME")),
        "uuid": values["MD_UUID"],
        "events": to_int(values.get("MD_EVENTS"), "MD_EVENTS", "mdadm --examine %s" % device),
    }


def parse_mdstat(text):
    """``/proc/mdstat`` → ``{kname: {active, read_only, level, members: [{name, slot, flags}]}}``."""
    arrays = {}
    for line in (text or "").splitlines():
        if not line.startswith("md"):
            continue
        match = MDSTAT_ARRAY.match(line.rstrip())
        if not match:
            raise StateError("/proc/mdstat has an array line this module cannot read: %r" % line[:200])
        tokens = match.group("rest").split()
        read_only = False
        while tokens and tokens[0].startswith("("):
            read_only = read_only or "read-only" in tokens[0]
            tokens.pop(0)
        level = tokens.pop(0) if tokens and tokens[0] in MDSTAT_LEVELS else None
        members = []
        for token in tokens:
            member = MDSTAT_MEMBER.match(token)
            if not member:
                raise StateError("/proc/mdstat lists a member this module cannot read: %r in %r" % (token, line))
            members.append(
                {
                    "name": member.group("name"),
                    "slot": int(member.group("slot")),
                    "flags": re.findall(r"\(([A-Z])\)", member.group("flags")),
                }
            )
        arrays[match.group("name")] = {
            "active": match.group("state") == "active",
            "read_only": read_only,
            "level": level,
            "members": members,
        }
    return arrays


def parse_swaps(text):
    """``/proc/swaps`` → list of swap file/device paths."""
    lines = (text or "").splitlines()
    if lines and not lines[0].startswith("Filename"):
        raise StateError("/proc/swaps does not start with its header line: %s" % excerpt(text))
    return [OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), line.split()[0]) for line in lines[1:] if line.strip()]


def parse_lvm_report(text, kind, command):
    """Rows of one ``pvs``/``vgs``/``lvs --reportformat json`` report (``kind``: pv, vg, lv)."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as err:
        raise StateError("%s did not print valid JSON (%s): %s" % (command, err, excerpt(text))) from None
    report = data.get("report") if isinstance(data, dict) else None
    if not isinstance(report, list):
        raise StateError("%s printed JSON without a 'report' list: %s" % (command, excerpt(text)))
    rows = []
    for entry in report:
        if not isinstance(entry, dict) or not isinstance(entry.get(kind, []), list):
            raise StateError("%s printed a report entry without a '%s' list: %s" % (command, kind, excerpt(text)))
        for row in entry.get(kind, []):
            if not isinstance(row, dict):
                raise StateError("%s printed a %s row that is not an object: %r" % (command, kind, row))
            rows.append(row)
    return rows


def to_int(value, field, origin):
    """A number LVM/mdadm printed (string or int); None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise StateError("%s: %s=%r is not a number" % (origin, field, value))
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("B") and text[:-1].isdecimal():  # --nosuffix ignored by an old LVM
        text = text[:-1]
    if not text.isdecimal():
        raise StateError("%s: %s=%r is not a number of bytes" % (origin, field, value))
    return int(text)


def require_field(row, field, command):
    if field not in row:
        raise StateError("%s printed a row without %s: %r" % (command, field, row))
    return row[field]


def parse_pvs(text):
    """``pvs`` report → ``[{pv_name, vg_name, size, uuid}]`` (``vg_name`` "" for an orphan PV)."""
    command = "pvs"
    return [
        {
            "pv_name": require_field(row, "pv_name", command),
            "vg_name": row.get("vg_name") or "",
            "size": to_int(row.get("pv_size"), "pv_size", command),
            "uuid": row.get("pv_uuid"),
        }
        for row in parse_lvm_report(text, "pv", command)
    ]


def parse_vgs(text):
    """``vgs`` report → ``{name: {size, free, extent_size, attr, partial, pv_count, lv_count, tags}}``."""
    command = "vgs"
    groups = {}
    for row in parse_lvm_report(text, "vg", command):
        name = require_field(row, "vg_name", command)
        attr = row.get("vg_attr") or ""
        groups[name] = {
            "size": to_int(require_field(row, "vg_size", command), "vg_size", command),
            "free": to_int(require_field(row, "vg_free", command), "vg_free", command),
            "extent_size": to_int(row.get("vg_extent_size"), "vg_extent_size", command),
            "attr": attr,
            "partial": len(attr) > 3 and attr[3] == "p",
            "pv_count": to_int(row.get("pv_count"), "pv_count", command),
            "lv_count": to_int(row.get("lv_count"), "lv_count", command),
            "tags": sorted(tag for tag in (row.get("vg_tags") or "").split(",") if tag),
        }
    return groups


def parse_lvs(text):
    """``lvs`` report → ``{"vg/lv": {vg, name, size, path, dm_path, active}}``."""
    command = "lvs"
    volumes = {}
    for row in parse_lvm_report(text, "lv", command):
        vg_name = require_field(row, "vg_name", command)
        name = require_field(row, "lv_name", command)
        attr = row.get("lv_attr") or ""
        volumes["%s/%s" % (vg_name, name)] = {
            "vg": vg_name,
            "name": name,
            "size": to_int(require_field(row, "lv_size", command), "lv_size", command),
            "path": row.get("lv_path") or "/dev/%s/%s" % (vg_name, name),
            "dm_path": row.get("lv_dm_path") or None,
            "active": row.get("lv_active") == "active" or (len(attr) > 4 and attr[4] == "a"),
        }
    return volumes


def unescape_pair_value(value):
    value = HEX_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), value)
    return re.sub(r"\\(.)", r"\1", value)


def parse_partx(text, device):
    """``partx --pairs --bytes`` → ``[{number, start, size, name, type, scheme}]`` in number order.

    ``start`` is in 512-byte sectors (libblkid's unit), ``size`` in bytes, ``type`` the GPT type GUID
    (lower case) or the MBR type (``0x83``).
    """
    partitions = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        pairs = {m.group("key"): unescape_pair_value(m.group("value")) for m in PAIR.finditer(line)}
        if "NR" not in pairs or not pairs["NR"].isdecimal():
            raise StateError("partx --pairs %s printed a line without a partition number: %r" % (device, line[:200]))
        origin = "partx --pairs %s" % device
        partitions.append(
            {
                "number": int(pairs["NR"]),
                "start": to_int(pairs.get("START"), "START", origin),
                "size": to_int(pairs.get("SIZE"), "SIZE", origin),
                "name": pairs.get("NAME") or None,
                "type": (pairs.get("TYPE") or "").lower() or None,
                "scheme": pairs.get("SCHEME") or None,
            }
        )
    return sorted(partitions, key=lambda p: p["number"])


# ---------------------------------------------------------------- reading


def read_text(path, missing_ok=False):
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except FileNotFoundError:
        if missing_ok:
            return ""
        raise StateError("cannot read %s: it does not exist" % path) from None
    except OSError as err:
        raise StateError("cannot read %s: %s" % (path, err.strerror or err)) from None


def tool(tools, name):
    return (tools or {}).get(name, name)


def read_exactly(handle, offset, length):
    handle.seek(offset)
    data = b""
    while len(data) < length:
        chunk = handle.read(length - len(data))
        if not chunk:
            raise OSError(errno.EIO, "read %d of %d bytes at offset %d" % (len(data), length, offset))
        data += chunk
    return data


def read_disk_edges(path, size):
    """``{head, tail, backup_gpt}`` of the disk at ``path`` (``size`` bytes, as lsblk says), opened read-only.

    ``head``/``tail``: a byte of the first/last MiB is not zero (on a disk under 2 MiB the two overlap,
    under 1 MiB each is the whole disk); ``backup_gpt``: a GPT header starts the last 512-byte sector or
    the last 4096-byte one. Raises OSError when a read fails or the device ends before ``size``.
    """
    length = min(size, EDGE)
    with open(path, "rb", buffering=0) as handle:
        head = read_exactly(handle, 0, length)
        tail = head if size <= EDGE else read_exactly(handle, size - length, length)
    return {
        "head": head.count(0) != len(head),
        "tail": tail.count(0) != len(tail),
        "backup_gpt": any(tail[-sector:].startswith(GPT_SIGNATURE) for sector in GPT_HEADER_SECTORS
                          if len(tail) >= sector),
    }


def read_holders(state, disks, sysfs_root):
    """Holders of the devices on ``disks`` that lsblk does not list under them: ``{kname: [holder knames]}``.

    From ``/sys/class/block/KNAME/holders`` and from the loop devices whose backing file is such a
    device (a loop holds its device open without being its holder in sysfs).
    """
    scope = [kname for disk in disks for kname in [disk] + state.descendants(disk)]
    holders = {}
    for kname in scope:
        path = os.path.join(sysfs_root, "class", "block", kname, "holders")
        try:
            names = sorted(os.listdir(path))
        except (FileNotFoundError, NotADirectoryError):
            names = []
        except OSError as err:
            raise StateError("cannot list %s: %s" % (path, err.strerror or err)) from None
        for name in names:
            if name not in state.children.get(kname, []) and name not in holders.get(kname, []):
                holders.setdefault(kname, []).append(name)
    for name in sorted(kname for kname, node in state.nodes.items() if node.get("type") == "loop"):
        try:
            backing = loop_backing_file(sysfs_root, name)
        except DiskFactsError as err:
            raise StateError(str(err)) from None
        target = state.kname_of(backing) if backing and backing.startswith("/dev/") else None
        if target in scope and name not in holders.get(target, []):
            holders.setdefault(target, []).append(name)
    return holders


def read_edges_of_blank_disks(state, disks, dev_root, read_edges):
    """``{disk: edges}`` for each of ``disks`` blkid calls blank; a failed read is ``{"error": why}``."""
    edges = {}
    for disk in disks:
        if state.probe(disk):
            continue
        size = state.node_size(disk)
        try:
            if size is None:
                raise OSError(errno.EINVAL, "lsblk gives no size")
            edges[disk] = read_edges(os.path.join(dev_root, disk), size)
        except OSError as err:
            edges[disk] = {"error": err.strerror or str(err)}
    return edges


def read_state(runner, disk_names, tools=None, sysfs_root="/sys", proc_root="/proc", dev_root="/dev",
               settle_timeout=30, read_edges=read_disk_edges):
    """Read everything ``storage_apply`` decides on. Only read-only commands are run.

    ``disk_names`` are the planned disks: their devices are probed with ``blkid -p``, their on-disk
    tables read with ``partx``, their holders read from sysfs, and the edges of those blkid calls
    blank read by ``read_edges(path under dev_root, size)`` (``read_disk_edges``; tests pass their
    machine's). Raises StateError or the runner's CommandError.
    """
    runner.run([tool(tools, "udevadm"), "settle", "-t", str(settle_timeout)], check=False)
    out = runner.run([tool(tools, "lsblk")] + list(LSBLK_ARGS))[1]
    try:
        top_level = parse_lsblk(out)
        mounts = parse_mountinfo(read_text(os.path.join(proc_root, "self", "mountinfo")),
                                 os.path.join(proc_root, "self", "mountinfo"))
    except DiskFactsError as err:
        raise StateError(str(err)) from None
    state = StorageState(top_level, mounts, dev_root)
    try:
        state.boot_disks = BootMediumResolver(state.blockdevices, mounts, sysfs_root, dev_root).resolve()
    except DiskFactsError as err:
        raise StateError("cannot tell which disk the running system lives on: %s" % err) from None

    state.mdstat = parse_mdstat(read_text(os.path.join(proc_root, "mdstat"), missing_ok=True))
    state.swaps = [state.kname_of(path) or path for path in parse_swaps(
        read_text(os.path.join(proc_root, "swaps"), missing_ok=True) or "Filename\n")]
    active = [kname for kname, entry in sorted(state.mdstat.items()) if entry["active"]]
    details, err = run_each(runner, tools, "mdadm", DETAIL_OPTIONS, ["/dev/" + kname for kname in active])
    for kname, (rc, out) in zip(active, details, strict=True):
        device = "/dev/" + kname
        if rc != 0:
            raise StateError("mdadm --detail %s failed (rc=%s): %s" % (device, rc, excerpt(err)))
        state.md_details[kname] = parse_mdadm_detail(out, device)
        action = read_text(os.path.join(sysfs_root, "block", kname, "md", "sync_action"), missing_ok=True)
        state.md_sync[kname] = action.strip() or None

    for kind, fields, parser, attribute in (
        ("pvs", PVS_FIELDS, parse_pvs, "pvs"),
        ("vgs", VGS_FIELDS, parse_vgs, "vgs"),
        ("lvs", LVS_FIELDS, parse_lvs, "lvs"),
    ):
        out = runner.run([tool(tools, kind)] + list(LVM_REPORT_ARGS) + [fields])[1]
        setattr(state, attribute, parser(out))

    to_probe = []
    for disk in disk_names:
        if state.present(disk):
            to_probe += [kname for kname in [disk] + state.descendants(disk)
                         if kname not in to_probe and state.node_size(kname) != 0]  # an inactive array: no content
    probes = probe_devices(runner, tools, [state.node_path(kname) for kname in to_probe])
    state.probes.update(zip(to_probe, probes, strict=True))
    present = [disk for disk in disk_names if state.present(disk)]
    state.tables.update((disk, None) for disk in present)
    tabled = [disk for disk in present if state.probe(disk).get("PTTYPE")]
    tables, err = run_each(runner, tools, "partx", PARTX_ARGS, ["/dev/" + disk for disk in tabled])
    for disk, (rc, out) in zip(tabled, tables, strict=True):
        device = "/dev/" + disk
        if rc != 0 and (out.strip() or "%s: failed to read partition table" % device not in err):
            raise StateError("partx --pairs %s failed (rc=%s): %s" % (device, rc, excerpt(err)))
        state.tables[disk] = parse_partx(out, device) if rc == 0 else []
    members = [kname for disk in present for kname in [disk] + state.descendants(disk)
               if state.probe(kname).get("TYPE") == "linux_raid_member"]
    paths = [state.node_path(kname) for kname in members]
    examined, _err = run_each(runner, tools, "mdadm", EXAMINE_OPTIONS, paths)
    for kname, path, (rc, out) in zip(members, paths, examined, strict=True):
        if rc == 0:
            state.superblocks[kname] = parse_mdadm_examine(out, path)
    state.holders = read_holders(state, present, sysfs_root)
    state.edges = read_edges_of_blank_disks(state, present, dev_root, read_edges)
    return state


def run_each(runner, tools, name, options, devices):
    """``name OPTIONS device`` for each of ``devices``, in order: ``([(rc, stdout), ...], stderr of all)``.

    One device runs the tool itself; more run through one shell (``each_script``).
    """
    if len(devices) < 2:
        results = [runner.run([tool(tools, name)] + list(options) + [device], check=False) for device in devices]
        return [(rc, out) for rc, out, _err in results], "".join(err for _rc, _out, err in results)
    _rc, out, err = runner.run([tool(tools, "sh"), "-c", each_script(options), name, tool(tools, name)]
                               + list(devices))
    results, lines = [], []
    for line in out.splitlines():
        if line.startswith(EACH_RC):
            results.append((to_int(line[len(EACH_RC):], "exit code", " ".join((name,) + tuple(options))),
                            "\n".join(lines)))
            lines = []
        else:
            lines.append(line)
    if len(results) != len(devices) or lines:
        raise StateError("%s %s of %d devices printed %d results: %s"
                         % (name, " ".join(options), len(devices), len(results), excerpt(out)))
    return results, err


def probe_devices(runner, tools, devices):
    """``blkid -p`` of each of ``devices``, parsed, in order (one ``blkid -p`` with several devices
    stops at the first blank one, so each device gets its own, all from one shell)."""
    results, _err = run_each(runner, tools, "blkid", PROBE_OPTIONS, devices)
    return [parse_blkid(text, rc, device) for device, (rc, text) in zip(devices, results, strict=True)]


def probe_device(runner, tools, device):
    """``blkid -p`` of one device, parsed (``{}`` when blank)."""
    return probe_devices(runner, tools, [device])[0]
