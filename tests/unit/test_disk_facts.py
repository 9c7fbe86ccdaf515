"""Disk discovery against fake lsblk output and fake /sys, /dev and /proc trees (see fixtures/disks/README.md)."""
from __future__ import annotations

import functools
import inspect
import json
import random
from pathlib import Path

import pytest
from ansible.module_utils.basic import AnsibleModule
from module_harness import run_module
from runners import RecordingRunner

from ansible_collections.prenixos.baseline.plugins.module_utils import disks as discovery
from ansible_collections.prenixos.baseline.plugins.module_utils.block_devices import (
    DiskFactsError,
    natural_key,
    parse_lsblk,
    parse_mountinfo,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.disks import gather_disks
from ansible_collections.prenixos.baseline.plugins.modules import disk_facts

FIXTURES = Path(__file__).parent / "fixtures" / "disks"


class Machine:
    """A fake machine in tmp_path: sysfs, /dev and /proc trees plus a runner answering lsblk."""

    def __init__(self, tmp_path, fixture, lsblk_text=None):
        source = FIXTURES / fixture
        self.sysfs_root = tmp_path / "sys"
        self.dev_root = tmp_path / "dev"
        self.proc_root = tmp_path / "proc"
        for device, attributes in json.loads((source / "sysfs.json").read_text()).items():
            for attribute, content in attributes.items():
                self.write_sysfs(device, attribute, content)
        self.dev_root.mkdir()
        for link, target in json.loads((source / "by-id.json").read_text()).items():
            self.add_link("disk/by-id/" + link, target)
        fs_links = source / "sysfs-fs.json"
        for relative, target in (json.loads(fs_links.read_text()) if fs_links.exists() else {}).items():
            self.add_sysfs_fs(relative, target)
        (self.proc_root / "self").mkdir(parents=True)
        (self.proc_root / "self" / "mountinfo").write_text((source / "mountinfo").read_text())
        self.lsblk_text = lsblk_text if lsblk_text is not None else (source / "lsblk.json").read_text()
        self.runner = RecordingRunner({("lsblk",): (0, self.lsblk_text, "")})

    def write_sysfs(self, device, attribute, content):
        path = self.sysfs_root / "block" / device / attribute
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content + "\n")

    def add_sysfs_fs(self, relative, target):
        """``sys/fs/RELATIVE``: a symlink to ``target`` (a btrfs member), or an empty file when it is None."""
        path = self.sysfs_root / "fs" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if target is None:
            path.write_text("")
        else:
            path.symlink_to(target)

    def add_link(self, relative, target):
        link = self.dev_root / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)

    def roots(self):
        return {"sysfs_root": str(self.sysfs_root), "dev_root": str(self.dev_root), "proc_root": str(self.proc_root)}

    def gather(self):
        return gather_disks(self.runner, **self.roots())


def by_name(disks):
    return {disk["name"]: disk for disk in disks}


def boot_media(disks):
    return [disk["name"] for disk in disks if disk["boot_medium"]]


def lsblk_with(devices):
    return json.dumps({"blockdevices": devices})


def root_in_ram(machine):
    """/ on a tmpfs: the mounts name no device, for tests that give the machine an lsblk of their own."""
    (machine.proc_root / "self" / "mountinfo").write_text("27 1 0:30 / / rw,relatime - tmpfs tmpfs rw\n")


@pytest.fixture
def server(tmp_path):
    return Machine(tmp_path, "server_live_optical")


# ---------------------------------------------------------------- one disk of each kind


def test_nvme_ssd_has_its_model_serial_id_as_path_and_is_free(server):
    assert by_name(server.gather())["nvme0n1"] == {
        "name": "nvme0n1",
        "type": "disk",
        "path": "/dev/disk/by-id/nvme-Samsung_SSD_970_EVO_Plus_1TB_S4EWNX0R123456A",
        "dev": "/dev/nvme0n1",
        "size": 1000204886016,
        "rotational": False,
        "removable": False,
        "read_only": False,
        "transport": "nvme",
        "model": "Samsung SSD 970 EVO Plus 1TB",
        "serial": "S4EWNX0R123456A",
        "wwn": "eui.0025385b01234567",
        "boot_medium": False,
        "in_use": False,
        "in_use_reasons": [],
        "children": [],
    }


def test_sata_ssd_prefers_the_ata_id_and_lsblks_untruncated_model(server):
    assert by_name(server.gather())["sda"] == {
        "name": "sda",
        "type": "disk",
        "path": "/dev/disk/by-id/ata-Samsung_SSD_870_EVO_500GB_S62ANJ0R654321B",
        "dev": "/dev/sda",
        "size": 500107862016,
        "rotational": False,
        "removable": False,
        "read_only": False,
        "transport": "sata",
        "model": "Samsung SSD 870 EVO 500GB",
        "serial": "S62ANJ0R654321B",
        "wwn": "0x5002538f4321abcd",
        "boot_medium": False,
        "in_use": False,
        "in_use_reasons": [],
        "children": [],
    }


def test_sas_hdd_is_rotational_and_prefers_the_readable_scsi_id_over_naa_and_wwn(server):
    assert by_name(server.gather())["sdb"] == {
        "name": "sdb",
        "type": "disk",
        "path": "/dev/disk/by-id/scsi-SSEAGATE_ST4000NM0023_Z1Z2ABCD",
        "dev": "/dev/sdb",
        "size": 4000787030016,
        "rotational": True,
        "removable": False,
        "read_only": False,
        "transport": "sas",
        "model": "ST4000NM0023",
        "serial": "Z1Z2ABCD",
        "wwn": "0x5000c500a1b2c3d4",
        "boot_medium": False,
        "in_use": False,
        "in_use_reasons": [],
        "children": [],
    }


def test_usb_stick_is_removable_usb_and_in_use_by_its_partition(server):
    assert by_name(server.gather())["sdd"] == {
        "name": "sdd",
        "type": "disk",
        "path": "/dev/disk/by-id/usb-SanDisk_Cruzer_Blade_4C530001230101115311-0:0",
        "dev": "/dev/sdd",
        "size": 15631122432,
        "rotational": True,
        "removable": True,
        "read_only": False,
        "transport": "usb",
        "model": "Cruzer Blade",
        "serial": "4C530001230101115311",
        "wwn": None,
        "boot_medium": False,
        "in_use": True,
        "in_use_reasons": ["partition table (dos)", "partitions: sdd1", "signature vfat on sdd1"],
        "children": [
            {"name": "sdd1", "type": "part", "fstype": "vfat", "label": "STICK", "partlabel": None, "mountpoints": []}
        ],
    }


def test_virtio_disk_gets_virtio_transport_and_its_serial_from_sysfs(server):
    assert by_name(server.gather())["vda"] == {
        "name": "vda",
        "type": "disk",
        "path": "/dev/disk/by-id/virtio-data-1",
        "dev": "/dev/vda",
        "size": 21474836480,
        "rotational": True,
        "removable": False,
        "read_only": False,
        "transport": "virtio",
        "model": None,
        "serial": "data-1",
        "wwn": None,
        "boot_medium": False,
        "in_use": False,
        "in_use_reasons": [],
        "children": [],
    }


def test_virtio_scsi_disk_has_no_transport_and_uses_the_scsi_0_id(server):
    assert by_name(server.gather())["sde"] == {
        "name": "sde",
        "type": "disk",
        "path": "/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_drive-scsi0-0-0-1",
        "dev": "/dev/sde",
        "size": 34359738368,
        "rotational": False,
        "removable": False,
        "read_only": False,
        "transport": None,
        "model": "QEMU HARDDISK",
        "serial": "drive-scsi0-0-0-1",
        "wwn": None,
        "boot_medium": False,
        "in_use": False,
        "in_use_reasons": [],
        "children": [],
    }


def test_a_descriptive_attribute_the_driver_refuses_to_read_costs_only_that_description(server):
    # virtio-scsi disks answer EINVAL for device/wwid on newer kernels; a directory there fails the read too.
    wwid = server.sysfs_root / "block" / "sde" / "device" / "wwid"
    wwid.parent.mkdir(parents=True, exist_ok=True)
    wwid.mkdir()
    sde = by_name(server.gather())["sde"]
    described = (sde["wwn"], sde["serial"], sde["size"], sde["rotational"])
    assert described == (None, "drive-scsi0-0-0-1", 34359738368, False)


def test_old_raid_member_with_lvm_on_top_is_in_use_with_every_layer_named(server):
    sdc = by_name(server.gather())["sdc"]
    assert sdc["path"] == "/dev/disk/by-id/scsi-SSEAGATE_ST4000NM0023_Z1Z2EFGH"
    assert (sdc["in_use"], sdc["boot_medium"]) == (True, False)
    assert sdc["in_use_reasons"] == [
        "partition table (gpt)",
        "partitions: sdc1",
        "signature linux_raid_member on sdc1",
        "member of md127",
        "signature LVM2_member on md127",
        "logical volume vg0-data",
        "signature ext4 on vg0-data",
    ]
    assert sdc["children"] == [
        {"name": "sdc1", "type": "part", "fstype": "linux_raid_member", "label": "oldhost:0", "partlabel": "raid",
         "mountpoints": []},
        {"name": "md127", "type": "raid1", "fstype": "LVM2_member", "label": None, "partlabel": None,
         "mountpoints": []},
        {"name": "vg0-data", "type": "lvm", "fstype": "ext4", "label": "data", "partlabel": None, "mountpoints": []},
    ]


def test_disk_mounted_under_mnt_is_in_use_but_not_a_boot_medium(server):
    sdf = by_name(server.gather())["sdf"]
    assert (sdf["boot_medium"], sdf["in_use"]) == (False, True)
    assert sdf["in_use_reasons"] == [
        "partition table (gpt)",
        "partitions: sdf1",
        "signature ext4 on sdf1",
        "mounted: /mnt/data",
    ]
    assert sdf["children"] == [
        {"name": "sdf1", "type": "part", "fstype": "ext4", "label": "data", "partlabel": "data",
         "mountpoints": ["/mnt/data"]}
    ]


# ---------------------------------------------------------------- boot medium


def test_optical_live_medium_and_its_squashfs_loop_are_the_only_boot_media(server):
    disks = server.gather()
    assert boot_media(disks) == ["loop0", "sr0"]
    sr0 = by_name(disks)["sr0"]
    assert sr0 == {
        "name": "sr0",
        "type": "rom",
        "path": "/dev/disk/by-id/ata-HL-DT-ST_DVDRAM_GUD1N_KZ8G4HB5621",
        "dev": "/dev/sr0",
        "size": 1406140416,
        "rotational": True,
        "removable": True,
        "read_only": False,
        "transport": "sata",
        "model": "HL-DT-ST DVDRAM GUD1N",
        "serial": "KZ8G4HB5621",
        "wwn": None,
        "boot_medium": True,
        "in_use": True,
        "in_use_reasons": ["signature iso9660 on sr0", "mounted: /run/live/medium"],
        "children": [],
    }


def test_live_medium_is_found_through_the_overlay_root_when_its_mount_is_not_a_known_one(tmp_path):
    machine = Machine(tmp_path, "server_live_optical")
    # move the medium somewhere this product does not know: only overlay -> loop -> backing file lead there
    mountinfo = machine.proc_root / "self" / "mountinfo"
    mountinfo.write_text(mountinfo.read_text().replace("/run/live/medium", "/run/somewhere/medium"))
    machine.write_sysfs("loop0", "loop/backing_file", "/run/somewhere/medium/live/filesystem.squashfs")
    assert boot_media(machine.gather()) == ["loop0", "sr0"]


def test_usb_stick_live_medium_with_partitions_is_the_boot_medium(tmp_path):
    disks = Machine(tmp_path, "usb_live_stick").gather()
    assert boot_media(disks) == ["loop0", "sdb"]
    assert by_name(disks)["sdb"] == {
        "name": "sdb",
        "type": "disk",
        "path": "/dev/disk/by-id/usb-Kingston_DataTraveler_3.0_E0D55EA573F1E5B0A9C1B234-0:0",
        "dev": "/dev/sdb",
        "size": 31004295168,
        "rotational": True,
        "removable": True,
        "read_only": False,
        "transport": "usb",
        "model": "DataTraveler 3.0",
        "serial": "E0D55EA573F1E5B0A9C1B234",
        "wwn": None,
        "boot_medium": True,
        "in_use": True,
        "in_use_reasons": [
            "partition table (dos)",
            "partitions: sdb1, sdb2",
            "signature iso9660 on sdb",
            "signature iso9660 on sdb1",
            "mounted: /run/live/medium",
            "signature vfat on sdb2",
        ],
        "children": [
            {"name": "sdb1", "type": "part", "fstype": "iso9660", "label": "d-live 12.5.0 st amd64",
             "partlabel": None, "mountpoints": ["/run/live/medium"]},
            {"name": "sdb2", "type": "part", "fstype": "vfat", "label": "d-live 12.5.0 st amd64",
             "partlabel": None, "mountpoints": []},
        ],
    }
    assert by_name(disks)["sda"]["boot_medium"] is False


def test_iso_file_on_a_usb_partition_is_followed_through_both_loops_to_the_stick(tmp_path):
    disks = Machine(tmp_path, "usb_findiso").gather()
    assert boot_media(disks) == ["loop0", "loop1", "sda"]
    nvme = by_name(disks)["nvme0n1"]
    assert (nvme["boot_medium"], nvme["in_use"], nvme["path"]) == (
        False,
        False,
        "/dev/disk/by-id/nvme-WDC_PC_SN730_SDBQNTY-512G-1001_19430F800123",
    )


def test_installed_root_on_lvm_on_raid1_marks_both_mirror_disks(tmp_path):
    disks = Machine(tmp_path, "installed_root_on_raid").gather()
    assert boot_media(disks) == ["sda", "sdb"]
    sda = by_name(disks)["sda"]
    assert sda["in_use_reasons"] == [
        "partition table (gpt)",
        "partitions: sda1, sda2",
        "signature vfat on sda1",
        "mounted: /boot/efi",
        "signature linux_raid_member on sda2",
        "member of md127",
        "signature LVM2_member on md127",
        "logical volume main-home",
        "signature ext4 on main-home",
        "mounted: /home",
        "logical volume main-slash",
        "signature ext4 on main-slash",
        "mounted: /",
    ]
    assert [child["name"] for child in sda["children"]] == ["sda1", "sda2", "md127", "main-home", "main-slash"]
    sdc = by_name(disks)["sdc"]
    assert (sdc["boot_medium"], sdc["in_use"]) == (False, False)
    assert sdc["path"] == "/dev/disk/by-id/ata-ST8000NM000A-2KE101_WKD3ABCD"


def test_root_found_through_md_slaves_even_when_lsblk_does_not_nest_it(tmp_path):
    machine = Machine(tmp_path, "installed_root_on_raid")
    devices = json.loads(machine.lsblk_text)["blockdevices"]
    for disk in devices:
        for partition in disk.get("children", []):
            partition.pop("children", None)
    # an lsblk that lists the array on its own: only /sys/block/*/slaves leads from / to the disks
    devices.append({"name": "md127", "kname": "md127", "maj:min": "9:127", "type": "raid1", "size": 958986977280,
                    "rota": False, "rm": False, "ro": False, "fstype": "LVM2_member", "mountpoints": [None],
                    "children": [{"name": "main-slash", "kname": "dm-0", "maj:min": "253:0", "type": "lvm",
                                  "fstype": "ext4", "label": "slash", "mountpoints": ["/"]}]})
    machine.runner = RecordingRunner({("lsblk",): (0, lsblk_with(devices), "")})
    assert boot_media(machine.gather()) == ["md127", "sda", "sdb"]


def test_whole_disk_root_like_this_hosts_vda_is_the_boot_medium(tmp_path):
    disks = Machine(tmp_path, "host_vda").gather()
    assert disks == [
        {
            "name": "vda",
            "type": "disk",
            "path": "/dev/vda",
            "dev": "/dev/vda",
            "size": 274877906944,
            "rotational": True,
            "removable": False,
            "read_only": False,
            "transport": "virtio",
            "model": None,
            "serial": "overlayblk",
            "wwn": None,
            "boot_medium": True,
            "in_use": True,
            "in_use_reasons": ["mounted: /"],
            "children": [],
        },
        {
            "name": "zram0",
            "type": "disk",
            "path": "/dev/zram0",
            "dev": "/dev/zram0",
            "size": 0,
            "rotational": False,
            "removable": False,
            "read_only": False,
            "transport": None,
            "model": None,
            "serial": None,
            "wwn": None,
            "boot_medium": False,
            "in_use": False,
            "in_use_reasons": [],
            "children": [],
        },
    ]


def test_mount_source_given_as_a_dev_symlink_is_resolved(tmp_path):
    machine = Machine(tmp_path, "usb_live_stick")
    # a btrfs-style mount: anonymous device number, source through /dev/disk/by-uuid
    machine.add_link("disk/by-uuid/0f1e2d3c", "../../sda")
    machine.add_sysfs_fs("btrfs/0f1e2d3c/devices/sda", "../../../../devices/virtual/block/sda")  # as the kernel has it
    (machine.proc_root / "self" / "mountinfo").write_text(
        "28 1 0:31 / / rw,relatime shared:1 - btrfs /dev/disk/by-uuid/0f1e2d3c rw,ssd,subvol=/\n"
    )
    assert boot_media(machine.gather()) == ["sda"]


# ---------------------------------------------------------------- order


def test_server_disks_come_in_kernel_name_order(server):
    assert [disk["name"] for disk in server.gather()] == [
        "loop0", "nvme0n1", "sda", "sdb", "sdc", "sdd", "sde", "sdf", "sr0", "vda",
    ]


@pytest.mark.parametrize("seed", range(5))
def test_facts_do_not_depend_on_the_order_lsblk_lists_devices_in(tmp_path, seed):
    reference = Machine(tmp_path / "reference", "server_live_optical").gather()
    shuffled = Machine(tmp_path / "shuffled", "server_live_optical")
    devices = json.loads(shuffled.lsblk_text)["blockdevices"]
    shuffler = random.Random(seed)
    shuffler.shuffle(devices)
    for device in devices:
        shuffler.shuffle(device.get("children", []))
    shuffled.runner = RecordingRunner({("lsblk",): (0, lsblk_with(devices), "")})
    result = shuffled.gather()
    assert json.dumps(result).replace(str(tmp_path / "shuffled"), "") == json.dumps(reference).replace(
        str(tmp_path / "reference"), ""
    )


def test_natural_order_puts_sdaa_after_sdz_and_nvme10_after_nvme2():
    names = ["sdaa", "nvme10n1", "sdb", "sda", "nvme2n1", "sdz", "nvme0n1", "vdb", "sr0", "loop10", "loop2"]
    assert sorted(names, key=natural_key) == [
        "loop2", "loop10", "nvme0n1", "nvme2n1", "nvme10n1", "sda", "sdb", "sdz", "sdaa", "sr0", "vdb",
    ]
    assert sorted(["sda10", "sda2", "sda1"], key=natural_key) == ["sda1", "sda2", "sda10"]
    # the planner keeps the first of two paths to a disk in this order too
    names = ["sdaa", "nvme10n1", "sdb", "vda", "sdz", "nvme2n1", "sda", "nvme0n1", "xvda", "mmcblk0"]
    assert sorted(names, key=natural_key) == [
        "mmcblk0", "nvme0n1", "nvme2n1", "nvme10n1", "sda", "sdb", "sdz", "sdaa", "vda", "xvda",
    ]


# ---------------------------------------------------------------- stable path


@pytest.mark.parametrize(
    ("links", "expected"),
    [
        (["nvme-eui.0025385b01234567", "nvme-Samsung_SSD_980_1TB_S64ANS0T1_1", "nvme-Samsung_SSD_980_1TB_S64ANS0T1"],
         "nvme-Samsung_SSD_980_1TB_S64ANS0T1"),
        (["nvme-nvme.144d-5336", "nvme-eui.0025385b01234567"], "nvme-eui.0025385b01234567"),
        (["wwn-0x5002538f4321abcd", "ata-Samsung_SSD_870_EVO_500GB_S62A"], "ata-Samsung_SSD_870_EVO_500GB_S62A"),
        (["scsi-35000c500a1b2c3d4", "scsi-1ATA_ST4000", "scsi-SATA_ST4000"], "scsi-1ATA_ST4000"),
        (["scsi-35000c500a1b2c3d4", "wwn-0x5000c500a1b2c3d4"], "scsi-35000c500a1b2c3d4"),
        (["wwn-0x5000c500a1b2c3d4", "usb-Generic_Flash_Disk-0:0"], "usb-Generic_Flash_Disk-0:0"),
        (["virtio-data-1", "usb-Generic_Flash_Disk-0:0"], "virtio-data-1"),
    ],
)
def test_by_id_links_are_chosen_in_the_documented_order(tmp_path, links, expected):
    by_id = tmp_path / "disk" / "by-id"
    by_id.mkdir(parents=True)
    for link in links:
        (by_id / link).symlink_to("../../sdx")
    assert discovery.stable_path("sdx", discovery.read_by_id(str(tmp_path))) == "/dev/disk/by-id/" + expected


def test_content_ids_and_partition_links_never_become_a_disks_path(tmp_path):
    by_id = tmp_path / "disk" / "by-id"
    by_id.mkdir(parents=True)
    for link in ("lvm-pv-uuid-Xq3Lr8", "md-uuid-0a1b2c3d", "dm-name-vg0-data", "ata-Foo_123-part1"):
        (by_id / link).symlink_to("../../sdx")
    assert discovery.stable_path("sdx", discovery.read_by_id(str(tmp_path))) == "/dev/sdx"


# ---------------------------------------------------------------- parsing details


def test_older_lsblk_strings_for_flags_and_sizes_are_understood(tmp_path):
    machine = Machine(tmp_path, "host_vda")
    machine.runner = RecordingRunner({("lsblk",): (0, lsblk_with([
        {"name": "sda", "kname": "sda", "maj:min": "8:0", "type": "disk", "size": "1000204886016", "rota": "0",
         "rm": "0", "ro": "0", "tran": "sata", "model": "CT1000MX500SSD1  ", "serial": "2040E4D1A2B3",
         "mountpoint": None},
    ]), "")})
    root_in_ram(machine)  # host_vda's root, /dev/vda, is not in this lsblk
    sda = machine.gather()[0]
    assert (sda["size"], sda["rotational"], sda["removable"]) == (1000204886016, False, False)
    assert sda["model"] == "CT1000MX500SSD1"


def test_lsblk_columns_fill_in_when_sysfs_has_nothing(tmp_path):
    machine = Machine(tmp_path, "server_live_optical")
    machine.sysfs_root = tmp_path / "empty-sys"
    disks = by_name(machine.gather())
    assert (disks["sdb"]["size"], disks["sdb"]["rotational"], disks["sdd"]["removable"], disks["vda"]["serial"]) == (
        4000787030016, True, True, None,
    )


def test_active_swap_and_escaped_mountpoints_read_as_people_write_them(tmp_path):
    machine = Machine(tmp_path, "host_vda")
    machine.runner = RecordingRunner({("lsblk",): (0, lsblk_with([
        {"name": "sdb", "maj:min": "8:16", "type": "disk", "size": 1024**4, "rota": True, "rm": False, "ro": False,
         "mountpoints": [None], "children": [
             {"name": "sdb1", "maj:min": "8:17", "type": "part", "fstype": "swap", "mountpoints": ["[SWAP]"]},
             {"name": "sdb2", "maj:min": "8:18", "type": "part", "fstype": "ext4", "mountpoints": [None]}]},
    ]), "")})
    (machine.proc_root / "self" / "mountinfo").write_text(
        "27 1 0:30 / / rw,relatime - tmpfs tmpfs rw\n"
        "40 27 8:18 / /mnt/old\\040data rw,relatime shared:20 - ext4 /dev/sdb2 rw\n"
    )
    sdb = machine.gather()[0]
    assert sdb["in_use_reasons"] == [
        "partitions: sdb1, sdb2",
        "signature swap on sdb1",
        "active swap on sdb1",
        "signature ext4 on sdb2",
        "mounted: /mnt/old data",
    ]
    assert sdb["boot_medium"] is False


def test_lsblk_is_asked_for_json_in_bytes_with_every_column(server):
    server.gather()
    assert server.runner.calls == [["lsblk", "-J", "-b", "-O"]]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "did not print valid JSON"),
        ("lsblk: unknown column\n", "did not print valid JSON"),
        ("[]", "without a 'blockdevices' list"),
        ('{"blockdevices": {}}', "without a 'blockdevices' list"),
        ('{"blockdevices": [{"type": "disk"}]}', "has no name"),
        ('{"blockdevices": [{"name": "sda"}]}', "has no type"),
        ('{"blockdevices": ["sda"]}', "is not an object"),
        ('{"blockdevices": [{"name": "sda", "type": "disk", "children": {}}]}', "'children' that is not a list"),
        ('{"blockdevices": [{"name": "sda", "type": "disk", "children": [{"name": "sda1"}]}]}',
         "under sda has no type"),
        ('{"blockdevices": [{"name": "sda", "kname": "\\u0000", "type": "disk"}]}',
         r"has kname='\\x00', which is no kernel name or path"),
        ('{"blockdevices": [{"name": "sda", "path": "/dev/sd\\u0000", "type": "disk"}]}',
         r"has path='/dev/sd\\x00', which is no kernel name or path"),
    ],
)
def test_malformed_lsblk_output_is_a_clear_error(text, message):
    with pytest.raises(DiskFactsError, match=message):
        parse_lsblk(text)


def test_an_impossible_lsblk_value_names_the_column_and_the_device(tmp_path):
    machine = Machine(tmp_path, "host_vda")
    machine.sysfs_root = tmp_path / "empty-sys"
    machine.runner = RecordingRunner({("lsblk",): (0, lsblk_with([
        {"name": "sda", "type": "disk", "size": 512, "rota": "maybe", "rm": False, "ro": False}]), "")})
    root_in_ram(machine)
    with pytest.raises(DiskFactsError, match=r"rota='maybe' for sda, expected a boolean"):
        machine.gather()


def test_a_missing_rotational_flag_everywhere_is_an_error_not_a_guess(tmp_path):
    machine = Machine(tmp_path, "host_vda")
    machine.sysfs_root = tmp_path / "empty-sys"
    machine.runner = RecordingRunner({("lsblk",): (0, lsblk_with([
        {"name": "sda", "type": "disk", "size": 512, "rm": False, "ro": False}]), "")})
    root_in_ram(machine)
    with pytest.raises(DiskFactsError, match="neither sysfs nor lsblk tell the rotational of sda"):
        machine.gather()


def test_an_unreadable_sysfs_value_is_a_clear_error(tmp_path):
    machine = Machine(tmp_path, "host_vda")
    rotational = machine.sysfs_root / "block" / "vda" / "queue" / "rotational"
    rotational.unlink()
    rotational.mkdir()
    with pytest.raises(DiskFactsError, match=r"cannot read .*/sys/block/vda/queue/rotational: Is a directory"):
        machine.gather()


def test_a_garbled_sysfs_value_is_a_clear_error(tmp_path):
    machine = Machine(tmp_path, "host_vda")
    machine.write_sysfs("vda", "removable", "yes")
    with pytest.raises(DiskFactsError, match=r"/sys/block/vda/removable holds 'yes', expected 0 or 1"):
        machine.gather()


def test_missing_mountinfo_is_an_error_because_the_boot_medium_would_be_unknown(tmp_path):
    machine = Machine(tmp_path, "host_vda")
    (machine.proc_root / "self" / "mountinfo").unlink()
    with pytest.raises(DiskFactsError, match=r"cannot read .*/proc/self/mountinfo"):
        machine.gather()


def test_a_malformed_mountinfo_line_is_named():
    with pytest.raises(DiskFactsError, match=r"mountinfo line 2 is not a mountinfo line"):
        parse_mountinfo("27 1 254:0 / / rw - ext4 /dev/vda rw\n/dev/vda / ext4 rw 0 0\n")


# ---------------------------------------------------------------- the module


def fake_get_bin_path(self, name, required=False, opt_dirs=None):
    return "/usr/bin/" + name


def point_module_at(machine, monkeypatch, runner):
    """The module reads the machine's trees (it has no option for them) and runs ``runner``."""
    monkeypatch.setattr(disk_facts, "gather_disks", functools.partial(gather_disks, **machine.roots()))
    monkeypatch.setattr(disk_facts, "Runner", lambda module: runner)
    monkeypatch.setattr(AnsibleModule, "get_bin_path", fake_get_bin_path)


@pytest.fixture
def module_on(monkeypatch):
    """Run disk_facts.main() against a Machine, with its fake runner and a fake lsblk location."""

    def run(machine, capsys, check_mode=False):
        machine.runner = RecordingRunner({("/usr/bin/lsblk",): (0, machine.lsblk_text, "")})
        point_module_at(machine, monkeypatch, machine.runner)
        return run_module(disk_facts.main, {}, capsys, check_mode=check_mode)

    return run


def test_module_reads_the_real_sys_dev_and_proc_and_takes_no_option_for_them(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(disk_facts, "gather_disks", lambda runner, **kwargs: calls.append(kwargs) or [])
    monkeypatch.setattr(AnsibleModule, "get_bin_path", fake_get_bin_path)
    assert run_module(disk_facts.main, {}, capsys)["ansible_facts"] == {"prenixos_disks": []}
    assert calls == [{"lsblk": "/usr/bin/lsblk"}]
    defaults = {name: p.default for name, p in inspect.signature(gather_disks).parameters.items() if "root" in name}
    assert defaults == {"sysfs_root": "/sys", "dev_root": "/dev", "proc_root": "/proc"}
    refused = run_module(disk_facts.main, {"sysfs_root": "/tmp/sys"}, capsys)
    assert refused["failed"] is True and "sysfs_root" in refused["msg"]


def test_module_in_check_mode_returns_the_facts_and_changes_nothing(tmp_path, capsys, module_on):
    machine = Machine(tmp_path, "server_live_optical")
    expected = machine.gather()
    result = module_on(machine, capsys, check_mode=True)
    assert result["changed"] is False
    assert "failed" not in result
    assert result["ansible_facts"] == {"prenixos_disks": expected}
    assert machine.runner.calls == [["/usr/bin/lsblk", "-J", "-b", "-O"]]


def test_module_run_twice_reports_the_same_facts_and_no_change(tmp_path, capsys, module_on):
    machine = Machine(tmp_path, "installed_root_on_raid")
    first = module_on(machine, capsys)
    second = module_on(machine, capsys)
    assert first["changed"] is False and second["changed"] is False
    assert first["ansible_facts"] == second["ansible_facts"]
    assert boot_media(second["ansible_facts"]["prenixos_disks"]) == ["sda", "sdb"]


def test_module_fails_with_a_message_when_lsblk_output_is_malformed(tmp_path, capsys, module_on):
    machine = Machine(tmp_path, "host_vda", lsblk_text="not json")
    result = module_on(machine, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("disk discovery failed: lsblk -J -b -O did not print valid JSON")


def test_module_fails_with_the_command_and_stderr_when_lsblk_fails(tmp_path, capsys, monkeypatch):
    machine = Machine(tmp_path, "host_vda")
    failing = RecordingRunner({("/usr/bin/lsblk",): (32, "", "lsblk: failed to access sysfs directory")})
    point_module_at(machine, monkeypatch, failing)
    result = run_module(disk_facts.main, {}, capsys)
    assert result["failed"] is True
    assert (result["rc"], result["cmd"]) == (32, ["/usr/bin/lsblk", "-J", "-b", "-O"])
    assert "failed to access sysfs directory" in result["msg"]
