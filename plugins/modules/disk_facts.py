#!/usr/bin/python
# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: disk_facts
short_description: Report every block device of the machine, with its stable path, class and what it holds
version_added: "0.1.0"
description:
  - Reads C(lsblk -J -b -O) (run with C(LC_ALL=C)), C(/sys/block), C(/dev/disk/by-id) and
    C(/proc/self/mountinfo), and returns one entry per top-level block device (disks, optical
    drives, loop, zram, ...) in C(ansible_facts.prenixos_disks), sorted by kernel name in kernel
    order (C(sda) < C(sdb) < C(sdaa), C(nvme0n1) < C(nvme1n1)).
  - Reads only; it never changes anything, so check mode behaves like a normal run.
  - C(boot_medium) marks the devices the running system lives on, resolved from the mounts of
    C(/), C(/usr), C(/boot), C(/boot/efi) and the live-medium mountpoints through partitions,
    device-mapper and md slaves, loop backing files and overlay layers, every device of a btrfs
    (C(/sys/fs/btrfs/FSID/devices) and the UUID they share) and every C(zfs_member) of a ZFS
    dataset's pool. Mounts under C(/mnt) (the target of this collection) are not a starting point.
  - When one of those mounts cannot be followed to its disks (a pool no device shows, a device
    lsblk does not list, a file system of an unknown kind), the module fails and names it, so
    that nothing is planned or built on a guess; tmpfs, network and other diskless roots are
    followed to nothing, which is not a doubt.
  - It does not decide which disks may be used; M(prenixos.baseline.storage_plan) does.
  - The shape of each entry is the contract in C(docs/contracts.md).
author: pre-nixos baseline engineers (@prenixos)
extends_documentation_fragment:
  - prenixos.baseline.attributes
  - prenixos.baseline.attributes.no_diff
  - prenixos.baseline.attributes.facts
requirements:
  - lsblk from util-linux 2.33 or later (JSON output)
notes:
  - Filesystem and partition-table signatures come from lsblk, which reads them from the udev
    database; where udev has not probed a device (some containers) they are missing.
"""

EXAMPLES = r"""
- name: Gather the disks
  prenixos.baseline.disk_facts:

- name: Show the disks the running system lives on
  ansible.builtin.debug:
    msg: "{{ ansible_facts.prenixos_disks | selectattr('boot_medium') | map(attribute='name') | list }}"

- name: Plan storage on them
  prenixos.baseline.storage_plan:
    disks: "{{ ansible_facts.prenixos_disks }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    prenixos_disks:
      description: Every top-level block device, sorted by kernel name in kernel order.
      returned: always
      type: list
      elements: dict
      contains:
        name:
          description: Kernel name.
          type: str
          sample: nvme0n1
        type:
          description: lsblk TYPE (C(disk), C(rom), C(loop), C(raid1), C(lvm), ...).
          type: str
          sample: disk
        path:
          description:
            - Stable path, C(/dev/disk/by-id/...) when one exists, else C(/dev/NAME).
            - Readable ids are preferred in this order, hex ids last; the shortest wins within one kind.
              C(nvme-<model>_<serial>), C(ata-), C(scsi-0), C(scsi-1), C(scsi-S), other C(scsi-), C(virtio-),
              C(usb-), C(mmc-), C(wwn-), C(nvme-eui.), C(nvme-nvme.), C(nvme-uuid.).
          type: str
          sample: /dev/disk/by-id/nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0R123456A
        dev:
          description: Device node, C(/dev/NAME).
          type: str
          sample: /dev/nvme0n1
        size:
          description: Size in bytes.
          type: int
          sample: 1000204886016
        rotational:
          description: The kernel's rotational flag; the disk class is C(hdd) when true, C(ssd) when false.
          type: bool
          sample: false
        removable:
          description: The kernel's removable flag.
          type: bool
          sample: false
        read_only:
          description: The kernel's read-only flag.
          type: bool
          sample: false
        transport:
          description:
            - lsblk TRAN (C(nvme), C(sata), C(sas), C(usb), ...); C(nvme) and C(virtio) from the kernel name
              when lsblk has none; null when unknown (virtio-scsi reports none).
          type: str
          sample: nvme
        model:
          description: Model, or null.
          type: str
          sample: Samsung SSD 970 EVO Plus 1TB
        serial:
          description: Serial number, or null.
          type: str
          sample: S4EWNX0R123456A
        wwn:
          description: World wide name (lsblk WWN, else the sysfs C(wwid)), or null.
          type: str
          sample: eui.0025385b01234567
        boot_medium:
          description: The running system (installed root or live medium) lives on this device.
          type: bool
          sample: false
        in_use:
          description: The device holds partitions, signatures, arrays, volumes or mounts.
          type: bool
          sample: true
        in_use_reasons:
          description: Why the device is in use, in words a person reads.
          type: list
          elements: str
          sample: ["partition table (gpt)", "partitions: sdc1", "member of md127", "mounted: /mnt/data"]
        children:
          description:
            - Every device below this one (partitions, arrays, volumes), depth first, each once,
              as C({name, type, fstype, label, partlabel, mountpoints}). C(name) is the lsblk NAME
              (the mapper name for device-mapper volumes).
          type: list
          elements: dict
          sample:
            - {name: sdc1, type: part, fstype: linux_raid_member, label: "old:0", partlabel: null, mountpoints: []}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prenixos.baseline.plugins.module_utils.block_devices import DiskFactsError
from ansible_collections.prenixos.baseline.plugins.module_utils.disks import gather_disks
from ansible_collections.prenixos.baseline.plugins.module_utils.runner import CommandError, Runner


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    lsblk = module.get_bin_path("lsblk", required=True)
    try:
        disks = gather_disks(Runner(module), lsblk=lsblk)
    except CommandError as err:
        module.fail_json(**err.as_fail_kwargs())
    except DiskFactsError as err:
        module.fail_json(msg="disk discovery failed: %s" % err)
    module.exit_json(changed=False, ansible_facts={"prenixos_disks": disks})


if __name__ == "__main__":
    main()
