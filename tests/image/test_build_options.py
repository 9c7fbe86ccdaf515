# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An image built with CONSOLE="ttyS1,57600" AUTOLOGIN=0 (make iso-options) has those settings, and only those."""
from __future__ import annotations

import re

from conftest import cpio_file


def test_the_kernel_and_grub_talk_on_ttys1_at_57600_and_the_menu_offers_ttys0(image):
    text = image["grub.cfg"]
    assert '\nset cmdline="console=tty0 console=ttyS1,57600n8"\n' in text
    assert re.findall(r"serial --unit=(\d) --speed=(\d+)", text) == [("1", "57600"), ("0", "115200")]
    assert "console on ttyS0 (115200)" in text and "console on ttyS1" not in text


def test_ttys1_has_a_getty_and_no_console_logs_root_in(image):
    assert "etc/systemd/system/getty.target.wants/serial-getty@ttyS1.service" in image["layer"]
    autologin = [member for member in image["layer"] + image["os"] if "autologin" in member]
    assert autologin == [], "expected no autologin drop-in in either layer: %s" % autologin


def test_root_has_no_password_so_only_the_key_gets_in(image):
    shadow = cpio_file(image["dir"] / "os.cpio.zst", "etc/shadow")
    root = next(line.split(":") for line in shadow.splitlines() if line.startswith("root:"))
    assert root[1] in ("*", "!", "!*"), "expected root's password locked or unset, found %r" % root[1]


def test_the_image_says_what_it_was_built_with(image):
    info = cpio_file(image["dir"] / "layer.cpio.zst", "etc/pre-nixos/build-info")
    assert "console: ttyS1,57600\n" in info and "autologin: 0\n" in info, info


# What a server may boot with: NICs (Intel, Broadcom, Mellanox, Realtek, virtio), storage controllers (AHCI, NVMe,
# LSI/Broadcom SAS and MegaRAID, HPE Smart Array, virtio), USB storage and the file systems the image reads.
SERVER_DRIVERS = ("e1000 e1000e igb ixgbe i40e ice bnxt_en tg3 mlx4_en mlx5_core r8169 virtio_net "
                  "ahci nvme mpt3sas megaraid_sas smartpqi hpsa virtio_scsi virtio_blk "
                  "usb-storage uas xhci-pci isofs vfat ext4 xfs btrfs raid0 raid1 raid456 dm-mod").split()


def test_the_image_keeps_the_drivers_of_server_nics_storage_controllers_usb_and_file_systems(image):
    kept = {member.rsplit("/", 1)[-1].split(".ko")[0] for member in image["os"] if ".ko" in member}
    missing = [driver for driver in SERVER_DRIVERS if driver not in kept]
    assert not missing, "expected these drivers in the image: %s" % missing
