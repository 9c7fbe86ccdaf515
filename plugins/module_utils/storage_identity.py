# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The identity of a build, and the marks it leaves on the disks.

A build is one plan being made real. Its identity is derived from the plan's shape (the planned
disks, by their stable ``/dev/disk/by-id`` paths, and sizes; partitions, arrays and volume groups),
so the same plan on the same disks has the same identity in every boot, whatever kernel names the
disks get: a build a power cut interrupted is recognised when first boot plans again, and a layout
built from another plan (a disk added, removed or replaced since, another machine's disks) is not.

The build writes its identity on the disks with the first command that touches each device, so
it survives a power cut at any point:

``GPT disk GUID``     ``sgdisk --disk-guid`` when the table is written (stage 1)
``md array UUID``     ``mdadm --create --uuid`` (stage 2)
``LVM tag``           ``vgcreate --addtag prenixos_build_<id>`` (stage 3)

and, when the last step is done, marks itself finished: ``vgchange --addtag prenixos_finished`` on
every planned volume group. Content is "ours, resume it" only when it carries this build's marks;
anything else on a planned disk is foreign, and foreign content is never destroyed without
``wipe``. A build that reached its volume groups never re-creates an array (its arrays were all
made before the first volume group); a finished build that matches the plan changes nothing.

Pure functions; nothing here reads the machine. May import nothing of the collection.
"""
from __future__ import annotations

import hashlib
import json
import uuid

BUILD_TAG_PREFIX = "prenixos_build_"
FINISHED_TAG = "prenixos_finished"


def stable_paths(plan):
    """Each planned disk's kernel name → its stable path (its ``/dev/disk/by-id`` link; ``/dev/NAME`` for a
    disk without one)."""
    return {d.get("name"): d.get("path") or "/dev/%s" % d.get("name")
            for d in plan.get("disks") or [] if isinstance(d, dict)}


def shape(plan, stable):
    """The part of ``plan`` its identity is derived from, every disk named by its stable path (``stable``, as
    ``stable_paths`` gives it), so that kernel names that change between boots do not change the build."""
    disks = [d for d in plan.get("disks") or [] if isinstance(d, dict)]
    partitions = [p for p in plan.get("partitions") or [] if isinstance(p, dict)]
    place = {p.get("device"): "%s#%s" % (stable.get(p.get("disk")), p.get("number")) for p in partitions}
    return {
        "disks": ordered([stable[d.get("name")], d.get("size")] for d in disks),
        "partitions": ordered([place[p.get("device")], p.get("type_code"), p.get("size"), p.get("partlabel")]
                              for p in partitions),
        "arrays": ordered([a.get("name"), a.get("level"), ordered(place.get(m, m) for m in a.get("devices") or []),
                           a.get("metadata")] for a in plan.get("arrays") or [] if isinstance(a, dict)),
        "volume_groups": ordered([v.get("name"), ordered(place.get(pv, pv) for pv in v.get("pvs") or [])]
                                 for v in plan.get("volume_groups") or [] if isinstance(v, dict)),
    }


def ordered(items):
    """``items`` in one order whatever their types (a plan is checked after its identity is taken)."""
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


def normal_uuid(value):
    """A UUID in any of the spellings the tools print (dashes, colons, upper case) as 32 hex digits."""
    return "".join(ch for ch in str(value or "").lower() if ch in "0123456789abcdef")


class BuildIdentity:
    """This build's identity (``id``, 16 hex digits) and the marks derived from it."""

    def __init__(self, plan):
        self.stable = stable_paths(plan)
        text = json.dumps(shape(plan, self.stable), sort_keys=True, separators=(",", ":"))
        self.id = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        self.tag = BUILD_TAG_PREFIX + self.id

    def derived(self, what):
        digest = hashlib.sha256(("%s:%s" % (self.id, what)).encode("utf-8")).hexdigest()[:32]
        return str(uuid.UUID(hex=digest, version=4))

    def disk_guid(self, disk):
        """The GPT disk GUID this build gives ``disk`` (a kernel name; the GUID follows its stable path)."""
        return self.derived("disk:" + self.stable.get(disk, "/dev/" + disk))

    def array_uuid(self, name):
        """The md UUID this build gives array ``name``."""
        return self.derived("array:" + name)

    def marks_disk(self, ptuuid, disk):
        return normal_uuid(ptuuid) == normal_uuid(self.disk_guid(disk))

    def marks_array(self, md_uuid, name):
        return normal_uuid(md_uuid) == normal_uuid(self.array_uuid(name))

    def marks_vg(self, tags):
        return self.tag in (tags or ())
