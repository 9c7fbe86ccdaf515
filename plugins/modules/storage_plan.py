#!/usr/bin/python
# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: storage_plan
short_description: Plan GPT, ESP, mdadm RAID, LVM and filesystems for the disks of a machine
version_added: "0.1.0"
description:
  - Turns the disks that M(prenixos.baseline.disk_facts) reports into a storage plan that
    M(prenixos.baseline.storage_apply) consumes as it is.
  - Planning is pure; it runs no command and touches no disk. The only side effect is writing
    the plan to O(dest) when asked. The plan is data only; its readable tree and its NixOS module
    are returned beside it (RV(summary), RV(nixos)).
  - The planner decides which disks are eligible and lists the others, with their reasons,
    under C(excluded). When no disk is eligible the module fails with a message naming every
    disk and why it was excluded.
  - Two paths to one disk (the same WWN, else the same serial and size) are planned once, the first
    in kernel name order; the other is excluded as C(second path to sdc (same WWN ...)). The paths of
    a dm-multipath device are both excluded; multipath devices themselves are not planned.
  - Malformed disk facts fail the module before any planning, naming the disk and the field (a name
    that is not a kernel disk name, a C(dev) other than C(/dev/NAME), a C(path) other than C(/dev/NAME)
    or a C(/dev/disk/by-id/) link, a size that is not a whole number of bytes).
  - The rules (grouping, RAID levels, volume groups C(main), C(swap), C(large), logical volumes)
    are documented in C(plugins/module_utils/planner.py).
author: pre-nixos baseline engineers (@prenixos)
options:
  disks:
    description:
      - Every disk M(prenixos.baseline.disk_facts) saw, as in C(ansible_facts.prenixos_disks).
      - Each needs at least C(name), C(size) (bytes) and C(rotational).
    type: list
    elements: dict
    required: true
  ram_bytes:
    description:
      - RAM size in bytes; the swap volume is this big unless O(swap_size) is set.
      - When not set, C(MemTotal) from C(/proc/meminfo) of the target.
    type: int
  size_tolerance:
    description:
      - Disks of one class whose sizes differ by at most this fraction of the smaller one form a group.
    type: float
    default: 0.01
  redundant_main:
    description:
      - Build the SSD C(main) group with redundancy (RAID1 for a pair, RAID5 for 3-4 disks,
        RAID6 for 5 or more) instead of RAID0.
    type: bool
    default: false
  swap_on_ssd:
    description:
      - Allow the swap volume in C(main) on SSDs when there is no HDD volume group for it.
    type: bool
    default: false
  backups:
    description:
      - The C(large/data) filesystem is meant for hard-link backups and gets one inode per 2 KiB.
    type: bool
    default: false
  swap_size:
    description:
      - Size of the swap volume; defaults to the RAM size (up to 32 GiB). Clipped to what its volume group holds;
        C(0) plans no swap volume.
      - Bytes, or a number with a binary unit K, M, G, T or P (C(8G), C(8GiB) and C(8GB) are all 8 x 2^30 bytes,
        C(512M), C(1.5T)), as in every size option.
    type: raw
  slash_size:
    description:
      - Size of C(main/slash), mounted at C(/); defaults to 50 GiB. Clipped to what C(main) holds.
      - Bytes or a number with a binary unit, as O(swap_size).
    type: raw
  home_size:
    description:
      - Largest size of C(main/home), mounted at C(/home); defaults to 16 GiB.
      - It never takes more than a quarter of what C(main) has left after C(/).
      - Bytes or a number with a binary unit, as O(swap_size).
    type: raw
  esp_size:
    description:
      - Size of the EFI system partition on each disk of C(main); defaults to 1 GiB, at least 32 MiB.
      - Bytes or a number with a binary unit, as O(swap_size).
    type: raw
  min_disk_size:
    description:
      - Disks smaller than this are excluded; defaults to 2 GiB.
      - Bytes or a number with a binary unit, as O(swap_size).
    type: raw
  include:
    description:
      - Disk selectors; when not empty, only the disks one of them matches are planned (the other rules still
        exclude what they exclude), the others are excluded as C(not in the operator's include list).
      - "A selector is a kernel name (C(sda), C(/dev/sda), C(name:sda)), a serial (C(serial:S3Z1NB0K123)),
        a WWN in any spelling (C(wwn:0x5002538e40a1b2c3), C(wwn:naa.5002538E40A1B2C3)), a C(/dev/disk/by-id/)
        link (the whole path or C(by-id:ata-...)), a model glob (C(model:Samsung*); blanks in a model count as
        C(_)), or a bare word that matches any of these (C(S3Z1NB0K123), C(Samsung*)). C(*), C(?) and C([)
        make any value a glob. Serials, WWNs, links and models are compared ignoring case."
      - A selector that matches no disk fails the module, listing every disk with its name, serial, model and WWN.
      - A string is read as selectors separated by commas.
    type: list
    elements: str
    default: []
  exclude:
    description:
      - "Disk selectors, as in O(include); the disks they match are never planned and are excluded as
        C(excluded by the operator (exclude: S3Z1NB0K123))."
      - A selector that matches no disk fails the module, listing every disk with its name, serial, model and WWN.
    type: list
    elements: str
    default: []
  plan:
    description:
      - A plan to review instead of planning - the plan itself (a dict) or the path of a JSON plan file, such as
        one O(dest) wrote and an operator edited.
      - It is bound to the disks present by their identity (WWN, serial, by-id link), so that it follows the disks
        to this boot's kernel names, and returned as RV(plan). Any problem fails the module with every problem
        listed in C(problems); nothing is planned then.
      - The planner options are not used with it.
    type: raw
  dest:
    description:
      - File to write the plan to, as JSON. Written atomically and only when its content differs;
        its directory is created when missing.
    type: path
extends_documentation_fragment:
  - prenixos.baseline.attributes
  - prenixos.baseline.attributes.no_diff
"""

EXAMPLES = r"""
- name: Gather the disks
  prenixos.baseline.disk_facts:

- name: Plan the storage and keep the plan for the applier
  prenixos.baseline.storage_plan:
    disks: "{{ ansible_facts.prenixos_disks }}"
    redundant_main: true
    dest: /run/pre-nixos/storage-plan.json
  register: storage_plan

- name: Show the plan
  ansible.builtin.debug:
    msg: "{{ storage_plan.summary }}"

- name: Plan two SSDs by hand, with 32 GiB of swap
  prenixos.baseline.storage_plan:
    disks:
      - {name: sda, size: 500107862016, rotational: false}
      - {name: sdb, size: 500107862016, rotational: false}
    ram_bytes: 34359738368
    swap_on_ssd: true

- name: Plan all but one disk and the Samsung SSDs, with a 20 GiB root and 8 GiB of swap
  prenixos.baseline.storage_plan:
    disks: "{{ ansible_facts.prenixos_disks }}"
    exclude: [serial:S3Z1NB0K123, model:Samsung*]
    slash_size: 20G
    swap_size: 8GiB
"""

RETURN = r"""
plan:
  description:
    - The storage plan, version 2. Sizes are bytes; a partition C(size) of null means the rest of the disk.
    - The authoritative description of every key is the docstring of C(plugins/module_utils/planner.py).
  returned: success
  type: dict
  contains:
    version:
      description: Plan format version.
      type: int
      sample: 2
    options:
      description: The effective planner options, every default filled in.
      type: dict
    disks:
      description:
        - The planned disks (C(name), C(path), C(dev), C(size), C(wwn), C(serial), C(identity), C(class), C(vg)).
        - C(identity) names the disk in any boot (C(wwn:...), else C(serial:...), else C(by-id:...), else null); a
          plan given back as O(plan) in another boot is bound to the disks by it.
        - Whether a disk is in use is in the disk facts, not in the plan, so building the plan does not change it.
      type: list
      elements: dict
    excluded:
      description: Every disk not planned, as C({disk, reason}).
      type: list
      elements: dict
      sample: [{disk: sr0, reason: "optical drive; removable; size 0 (no medium)"}]
    partitions:
      description: >-
        GPT entries C({disk, number, device, type_code, size, partlabel, filesystem, label, mountpoint}).
      type: list
      elements: dict
    arrays:
      description: mdadm arrays C({name, device, level, devices, metadata}).
      type: list
      elements: dict
    volume_groups:
      description: C({name, raid_level, disks, class, pvs, size}); C(size) is a conservative estimate of usable bytes.
      type: list
      elements: dict
    logical_volumes:
      description: C({vg, name, device, size, filesystem, label, mountpoint, inode_ratio}).
      type: list
      elements: dict
    notes:
      description: What a person should know about the plan (disks in use, volumes clipped or left out).
      type: list
      elements: str
  sample:
    version: 2
    volume_groups:
      - {name: main, raid_level: none, disks: [nvme0n1], class: ssd, pvs: [/dev/nvme0n1p2], size: 998898941952}
    logical_volumes:
      - {vg: main, name: slash, device: /dev/main/slash, size: 53687091200, filesystem: ext4, label: slash,
         mountpoint: /, inode_ratio: null}
summary:
  description: The plan as a readable tree disk -> partition -> array -> VG -> LV -> filesystem -> mount.
  returned: success
  type: str
nixos:
  description:
    - The plan as a NixOS module mounting everything by label, with mdadm and LVM in the initrd; the same
      settings as the storage part of the C(pre-nixos.nix) that M(prenixos.baseline.nixos_config) writes.
  returned: success
  type: str
review_notes:
  description: What binding a given O(plan) to the disks present assumed (a disk found by kernel name only).
  returned: when O(plan) is set
  type: list
  elements: str
dest:
  description: Where the plan was (or in check mode would be) written.
  returned: when O(dest) is set
  type: str
  sample: /run/pre-nixos/storage-plan.json
"""

import json

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prenixos.baseline.plugins.module_utils.files import read_text, write_text
from ansible_collections.prenixos.baseline.plugins.module_utils.nixos import render_storage
from ansible_collections.prenixos.baseline.plugins.module_utils.plan_check import review_plan
from ansible_collections.prenixos.baseline.plugins.module_utils.plan_render import render_summary
from ansible_collections.prenixos.baseline.plugins.module_utils.planner import PlanError, plan_storage

PLANNER_OPTIONS = ("size_tolerance", "redundant_main", "swap_on_ssd", "backups", "swap_size", "slash_size", "home_size",
                   "esp_size", "min_disk_size", "include", "exclude")


def ram_bytes_from_meminfo(path="/proc/meminfo"):
    """MemTotal in bytes, or None when it cannot be read."""
    try:
        with open(path) as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def given_plan(value):
    """The plan the operator gave: a dict, or the path of a JSON file holding one."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        raise PlanError("plan must be a plan (a dict) or the path of a plan file, got %r" % (value,))
    try:
        with open(value) as handle:
            return json.load(handle)
    except OSError as error:
        raise PlanError("cannot read the plan file %s: %s" % (value, error.strerror)) from None
    except ValueError as error:
        raise PlanError("the plan file %s is not JSON: %s" % (value, error)) from None


def plan_as_json(plan):
    return json.dumps(plan, indent=2, sort_keys=True) + "\n"


def main():
    module = AnsibleModule(
        argument_spec={
            "disks": {"type": "list", "elements": "dict", "required": True},
            "ram_bytes": {"type": "int"},
            "size_tolerance": {"type": "float", "default": 0.01},
            "redundant_main": {"type": "bool", "default": False},
            "swap_on_ssd": {"type": "bool", "default": False},
            "backups": {"type": "bool", "default": False},
            "swap_size": {"type": "raw"},
            "slash_size": {"type": "raw"},
            "home_size": {"type": "raw"},
            "esp_size": {"type": "raw"},
            "min_disk_size": {"type": "raw"},
            "include": {"type": "list", "elements": "str", "default": []},
            "exclude": {"type": "list", "elements": "str", "default": []},
            "plan": {"type": "raw"},
            "dest": {"type": "path"},
        },
        supports_check_mode=True,
    )
    params = module.params
    ram_bytes = params["ram_bytes"] if params["ram_bytes"] is not None else ram_bytes_from_meminfo()
    if ram_bytes is None and params["swap_size"] is None:
        module.fail_json(msg="cannot read MemTotal from /proc/meminfo; set ram_bytes or swap_size")
    options = {key: params[key] for key in PLANNER_OPTIONS if params[key] is not None}

    review_notes = None
    try:
        if params["plan"] is not None:
            plan, review_notes = review_plan(given_plan(params["plan"]), params["disks"])
        else:
            plan = plan_storage(params["disks"], ram_bytes, options)
    except PlanError as error:
        module.fail_json(msg=str(error), changed=False, problems=getattr(error, "problems", [str(error)]))

    result = {"changed": False, "plan": plan, "summary": render_summary(plan), "nixos": render_storage(plan)}
    if review_notes is not None:
        result["review_notes"] = review_notes
    dest = params["dest"]
    if dest:
        result["dest"] = dest
        content = plan_as_json(plan)
        try:
            result["changed"] = read_text(dest) != content
            if result["changed"] and not module.check_mode:
                write_text(module, dest, content)
        except OSError as error:
            # the write is atomic: a failed one leaves dest as it was
            result["changed"] = False
            module.fail_json(msg="the plan was made but %s" % error, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
