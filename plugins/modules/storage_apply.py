#!/usr/bin/python
# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: storage_apply
short_description: Build a storage plan on the disks - GPT, ESPs, mdadm RAID, LVM, filesystems, mounts
version_added: "0.1.0"
description:
  - Converges the disks to a plan made by M(prenixos.baseline.storage_plan), consumed as it is -
    GPT tables with typed, named partitions, vfat ESPs, mdadm arrays under C(/dev/md/NAME), LVM
    physical volumes, volume groups and logical volumes of the plan's absolute sizes, ext4 and
    swap with their labels, mounts under O(root) (C(/) first, then by depth) and swap enabled.
  - Reads the current state first and runs only what differs; a second run changes nothing and
    reports C(changed=false).
  - Safe by default. Anything on a planned disk that this plan did not make (partition tables,
    partitions, signatures, arrays, volume groups, mounts) makes the module fail, naming each disk
    and what is on it, unless O(wipe=true); then those stacks are torn down leaf to root and the
    teardown is verified before anything is built.
  - A planned disk that blkid calls blank is read at its edges, its first and last MiB, read-only.
    When they are not all zero, or the disk ends in a backup GPT header (a GPT whose primary copy
    was zeroed), it holds unknown data (plain dm-crypt, raw data) and counts as content like any
    other; a disk that cannot be read counts so too. A teardown ends by zeroing the first and the
    last MiB of every wiped disk (C(dd)).
  - With O(wipe=true) the whole teardown is planned and checked before its first command. A holder
    the module cannot remove (dm-crypt, multipath, bcache, a device-mapper table, a loop device on
    a planned disk) fails the module, naming it and what to do, and nothing is changed.
  - Whatever the options, the disk the running system lives on (found from the live mounts, not
    from the plan) and disks outside the plan are never touched; a plan naming the boot disk is
    refused.
  - Interrupted at any point, a new run finishes the job. The order of the steps and how each one
    resumes are described in C(plugins/module_utils/storage_apply.py).
  - Content is this plan's only when it carries this build's identity, which is derived from the
    plan's shape and written on the disks by the first command that touches each device (the GPT
    disk GUID, the md array UUID, an LVM tag C(prenixos_build_<id>)); the last step tags every
    volume group C(prenixos_finished). A layout from another plan (a disk added or removed since
    it was built) is foreign. An array of this build is created again (after a kill inside
    C(mdadm --create)) only while the build has no volume group yet.
  - Commands run as argument lists with C(LC_ALL=C); a failing command fails the task with the
    command, its exit code and its stderr.
author: pre-nixos baseline engineers (@prenixos)
options:
  plan:
    description:
      - The plan exactly as M(prenixos.baseline.storage_plan) returns it (its C(plan) key), version 2
        (version 1 is still read).
    type: dict
    required: true
  wipe:
    description:
      - Destroy what is on the planned disks when it was not made by this plan.
      - Never extends to the boot disk or to disks outside the plan.
    type: bool
    default: false
  root:
    description:
      - Where the planned filesystems are mounted (the plan's C(/) is mounted here).
    type: path
    default: /mnt
  settle_timeout:
    description:
      - Seconds to wait for udev and for each new device node (partitions, arrays, volumes).
    type: int
    default: 30
extends_documentation_fragment:
  - prenixos.baseline.attributes
  - prenixos.baseline.attributes.diff
attributes:
  check_mode:
    details: Returns in RV(commands) the commands a real run would run, computed by the same code.
notes:
  - Needs sgdisk (gdisk), mdadm, lvm2, e2fsprogs, dosfstools, util-linux and coreutils on the target.
"""

EXAMPLES = r"""
- name: Plan the storage
  prenixos.baseline.storage_plan:
    disks: "{{ ansible_facts.prenixos_disks }}"
  register: storage_plan

- name: Build it on blank disks (fails, changing nothing, when a planned disk holds data)
  prenixos.baseline.storage_apply:
    plan: "{{ storage_plan.plan }}"

- name: Build it, destroying whatever the planned disks hold
  prenixos.baseline.storage_apply:
    plan: "{{ storage_plan.plan }}"
    wipe: true
    root: /mnt

- name: Show what would run
  prenixos.baseline.storage_apply:
    plan: "{{ storage_plan.plan }}"
  check_mode: true
  diff: true
  register: storage_preview
"""

RETURN = r"""
build:
  description:
    - Which build this plan is (C(id), derived from the plan's shape, the same in every boot) and
      whether it has run to its last step on these disks (C(finished); in check mode, before the run).
  returned: success
  type: dict
  sample: {id: "9ab2bf2af01523aa", finished: true}
commands:
  description:
    - The commands that changed (or in check mode would change) the machine, in order, as argument
      lists. Read-only commands are not listed. Empty when nothing needed doing.
  returned: always
  type: list
  elements: list
  sample: [["sgdisk", "--clear", "-n", "1:0:+1024M", "-t", "1:EF00", "-c", "1:main-esp1", "/dev/sda"]]
layout:
  description:
    - What the planned disks hold after the run (in check mode, before it), compactly - partition
      tables, filesystems and signatures, arrays, volume groups, logical volumes, mounts, swaps.
  returned: always
  type: dict
  sample:
    disks: {sda: "gpt: 1 main-esp1 EF00 1.0 GiB, 2 main-raid1 FD00 31.0 GiB"}
    filesystems: {/dev/sda1: 'vfat "EFI"', /dev/main/slash: 'ext4 "slash"'}
    arrays: {main: "raid0 active: /dev/sda2 /dev/sdb2"}
    volume_groups: {main: "/dev/md/main, 61.7 GiB, 8.8 GiB free"}
    logical_volumes: {main/slash: "50.0 GiB"}
    mounts: {/mnt: /dev/main/slash}
    swaps: [/dev/swap/swap]
notes:
  description: What an operator should know (volumes clipped or left at another size, mounts by device).
  returned: always
  type: list
  elements: str
timing:
  description:
    - Where the run's time went - every command run (reading ones too), their seconds in all, split
      into the commands that changed the machine and the rest, and the slowest commands.
  returned: success
  type: dict
  sample: {commands: 120, seconds: 151.2, changing_seconds: 80.4, reading_seconds: 70.8,
           slowest: ["21.3 s: mkfs.ext4 -L data /dev/large/data"]}
wiped:
  description: Disks whose old content was torn down (or in check mode would be).
  returned: always
  type: list
  elements: str
foreign:
  description: When the module refuses, what each planned disk holds that this plan did not make.
  returned: failure
  type: dict
  sample: {sdc: ["dos partition table", 'sdc1: ext4 "old", mounted at /srv']}
held:
  description:
    - When a wipe is refused before its first command, each holder the module cannot remove and the
      device it holds.
  returned: failure
  type: list
  elements: str
  sample: ["sdc2 is held by dm-crypt device luks-0a1b (crypt)"]
cmd:
  description: When a command failed, the command.
  returned: failure
  type: list
  elements: str
rc:
  description: When a command failed, its exit code.
  returned: failure
  type: int
stderr:
  description: When a command failed, its stderr.
  returned: failure
  type: str
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prenixos.baseline.plugins.module_utils.runner import Runner, timing
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_apply import TOOLS, Applier, ApplyError


def main():
    module = AnsibleModule(
        argument_spec={
            "plan": {"type": "dict", "required": True},
            "wipe": {"type": "bool", "default": False},
            "root": {"type": "path", "default": "/mnt"},
            "settle_timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    params = module.params
    if params["settle_timeout"] < 1:
        module.fail_json(msg="settle_timeout must be at least 1 second, got %d" % params["settle_timeout"])
    tools = {name: module.get_bin_path(name, required=True) for name in TOOLS}
    runner = Runner(module)
    try:
        applier = Applier(
            params["plan"],
            runner,
            tools=tools,
            root=params["root"],
            wipe=params["wipe"],
            check_mode=module.check_mode,
            settle_timeout=params["settle_timeout"],
            sleep=time.sleep,
            clock=time.monotonic,
        )
        outcome = applier.run()
    except ApplyError as err:
        details = dict(err.details)
        details.setdefault("commands", [])
        module.fail_json(msg=err.msg, changed=bool(details["commands"]), **details)

    result = {
        "changed": outcome["changed"],
        "commands": outcome["commands"],
        "layout": outcome["layout"],
        "notes": outcome["notes"],
        "wiped": outcome["wiped"],
        "timing": timing(runner.commands, runner.seconds, outcome["commands"] if not module.check_mode else []),
    }
    for note in outcome["notes"]:
        module.warn(note)
    if module._diff:
        result["diff"] = {"before": outcome["before"], "after": outcome["after"]}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
