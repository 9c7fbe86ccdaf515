"""The QEMU launcher's machine descriptions and command lines (nothing is started)."""
from __future__ import annotations

import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "vm"))
import qemu  # noqa: E402


def test_a_nic_whose_link_comes_later_carries_the_forwarded_ssh_port(tmp_path):
    machine = qemu.normalise({"name": "late", "disks": [{"kind": "hdd", "size": "4G"}],
                              "nics": [{"link": False}, {"link": False, "link_up": {"after": "lan +running"}}]})
    args = qemu.qemu_args(machine, "/x.iso", str(tmp_path), "tcg", 2222)
    netdevs = [args[i + 1] for i, arg in enumerate(args) if arg == "-netdev"]
    user = "user,id=net%d,restrict=on,ipv6-prefix=fd00:5052::,ipv6-prefixlen=64"
    assert netdevs == [user % 0, user % 1 + ",hostfwd=tcp:127.0.0.1:2222-:22"]
    assert all("127.0.0.1" in netdev for netdev in netdevs if "hostfwd" in netdev)


def test_ssh_can_be_forwarded_to_a_static_guest_address(tmp_path):
    machine = qemu.normalise({"name": "static", "nics": [{"link": True, "ssh_address": "10.0.2.50"}]})
    args = qemu.qemu_args(machine, "/x.iso", str(tmp_path), "tcg", 2222)
    assert args[args.index("-netdev") + 1].endswith(",hostfwd=tcp:127.0.0.1:2222-10.0.2.50:22")
    with pytest.raises(ValueError, match="ssh_address must be an address of QEMU's user network"):
        qemu.normalise({"name": "bad", "nics": [{"link": True, "ssh_address": "192.0.2.10"}]})


def test_a_udp_nic_is_a_wire_to_another_guest_with_its_own_mac_and_never_carries_ssh(tmp_path):
    machine = qemu.normalise({"name": "router", "nics": [
        {"link": True}, {"udp": {"local": 47101, "remote": 47102}, "mac": "52:54:00:01:00:11"}]})
    args = qemu.qemu_args(machine, "/x.iso", str(tmp_path), "tcg", 2222)
    netdevs = [args[i + 1] for i, arg in enumerate(args) if arg == "-netdev"]
    devices = [args[i + 1] for i, arg in enumerate(args) if arg == "-device" and "virtio-net" in args[i + 1]]
    assert netdevs[0].startswith("user,id=net0,") and netdevs[0].endswith(",hostfwd=tcp:127.0.0.1:2222-:22")
    assert netdevs[1] == "socket,id=net1,udp=127.0.0.1:47102,localaddr=127.0.0.1:47101"
    assert [device.split("mac=")[1].split(",")[0] for device in devices] == ["52:54:00:00:00:10", "52:54:00:01:00:11"]
    with pytest.raises(ValueError, match="at least one NIC needs a link"):
        qemu.normalise({"name": "wired", "nics": [{"udp": {"local": 47101, "remote": 47102}}]})


@pytest.mark.parametrize(("nic", "message"), [
    ({"udp": {"local": 47101}}, "udp needs {local: PORT, remote: PORT}"),
    ({"udp": {"local": 80, "remote": 47102}}, "udp needs"),
    ({"link": True, "mac": "02:00:00:00:00:01"}, "mac must be 52:54:00:xx:xx:xx"),
    ({"link": True, "mac": "52:54:00:AB:00:01"}, "mac must be 52:54:00:xx:xx:xx"),
])
def test_bad_wires_and_macs_are_refused(nic, message):
    with pytest.raises(ValueError, match=message):
        qemu.normalise({"name": "bad", "nics": [{"link": True}, nic]})


@pytest.mark.parametrize(("nics", "message"), [
    ([{"link": False}], "at least one NIC needs a link"),
    ([{"link": True, "link_up": {"after": "x"}}], "link_up needs link: false"),
    ([{"link": False, "link_up": {"delay": 5}}], "link_up needs link: false"),
])
def test_machines_whose_ssh_could_never_come_up_are_refused(nics, message):
    with pytest.raises(ValueError, match=message):
        qemu.normalise({"name": "bad", "nics": nics})


def test_disks_are_emulated_as_their_kind_with_serials_tests_can_map_back(tmp_path):
    machine = qemu.normalise({"name": "kinds", "disks": [{"kind": k, "size": "1G"} for k in qemu.KINDS]})
    devices = [arg for arg in qemu.qemu_args(machine, "/x.iso", str(tmp_path), "tcg", 2222) if "serial=pn-" in arg]
    assert devices == ["scsi-hd,bus=scsi0.0,drive=disk0,serial=pn-ssd1,rotation_rate=1,id=dev-disk0",
                       "scsi-hd,bus=scsi0.0,drive=disk1,serial=pn-hdd1,rotation_rate=7200,id=dev-disk1",
                       "nvme,drive=disk2,serial=pn-nvme1,id=dev-disk2",
                       "usb-storage,bus=xhci.0,drive=disk3,removable=on,serial=pn-usb1,id=dev-disk3"]


def test_a_gone_disk_is_left_out_and_the_others_keep_their_serials_and_files(tmp_path):
    machine = qemu.normalise({"name": "gone", "disks": [{"kind": "hdd", "size": "1G"},
                                                        {"kind": "hdd", "size": "1G", "gone": True},
                                                        {"kind": "hdd", "size": "1G"}]})
    args = qemu.qemu_args(machine, "/x.iso", str(tmp_path), "tcg", 2222)
    assert [arg for arg in args if "serial=pn-" in arg] == [
        "scsi-hd,bus=scsi0.0,drive=disk0,serial=pn-hdd1,rotation_rate=7200,id=dev-disk0",
        "scsi-hd,bus=scsi0.0,drive=disk2,serial=pn-hdd3,rotation_rate=7200,id=dev-disk2"]
    assert not [arg for arg in args if "disk1.img" in arg]


@pytest.mark.parametrize(("kbps", "expected"), [
    (None, None),
    (0, None),
    (1000, "modprobe md_mod && echo 100 > /proc/sys/dev/raid/speed_limit_min && "
           "echo 1000 > /proc/sys/dev/raid/speed_limit_max"),
    (50, "modprobe md_mod && echo 50 > /proc/sys/dev/raid/speed_limit_min && "
         "echo 50 > /proc/sys/dev/raid/speed_limit_max"),
])
def test_a_machine_with_md_sync_kbps_has_its_md_syncs_held_once_ssh_logs_in(monkeypatch, kbps, expected):
    sent = []

    def run(argv, **_kwargs):
        sent.append(argv[-1])
        return qemu.subprocess.CompletedProcess(argv, 0, b"", b"")

    monkeypatch.setattr(qemu.subprocess, "run", run)
    state = {"name": "m", "ssh_port": 2222, "machine": qemu.normalise({"name": "m", "md_sync_kbps": kbps})}
    qemu.limit_md_sync(state, "/key")
    assert sent == ([expected] if expected else [])


def test_md_syncs_that_cannot_be_held_stop_the_launcher_with_the_reason(monkeypatch):
    monkeypatch.setattr(qemu.subprocess, "run",
                        lambda argv, **_kw: qemu.subprocess.CompletedProcess(argv, 1, b"", b"no md_mod"))
    state = {"name": "m", "ssh_port": 2222, "machine": qemu.normalise({"name": "m", "md_sync_kbps": 1000})}
    with pytest.raises(SystemExit, match="could not hold the md syncs of m to 1000 KiB/s: no md_mod"):
        qemu.limit_md_sync(state, "/key")


@pytest.mark.parametrize("firmware, expected, unexpected", [
    ("uefi", ["OVMF_CODE_4M.fd", "q35"], ["smm=on", "property=secure"]),
    ("uefi-secureboot", ["OVMF_CODE_4M.ms.fd", "q35,smm=on", "driver=cfi.pflash01,property=secure,value=on"],
     ["OVMF_CODE_4M.fd"]),
    ("bios", ["q35"], ["if=pflash", "smm=on"]),
])
def test_each_firmware_has_its_flash_or_none(tmp_path, firmware, expected, unexpected):
    machine = qemu.normalise({"name": "m", "firmware": firmware})
    line = " ".join(qemu.qemu_args(machine, "/x.iso", str(tmp_path), "tcg", 2222))
    assert all(part in line for part in expected), line
    assert not any(part in line for part in unexpected), line


@pytest.mark.parametrize("boot, device", [
    ("usb", "usb-storage,bus=xhci.0,drive=medium,removable=on,serial=pn-medium,bootindex=0"),
    ("sata", "ide-hd,bus=ide.0,drive=medium,serial=pn-medium,bootindex=0"),
    ("nvme", "nvme,drive=medium,serial=pn-medium,bootindex=0"),
])
def test_the_image_as_a_stick_or_a_disk_is_a_writable_copy_that_boots_first(tmp_path, boot, device):
    machine = qemu.normalise({"name": "m", "boot": boot})
    args = qemu.qemu_args(machine, "/x.iso", str(tmp_path), "tcg", 2222)
    drive = args[args.index("-device", args.index(device) - 1) - 1]
    assert drive == "file=%s,format=raw,if=none,id=medium" % tmp_path.joinpath("medium.img"), args
    assert "/x.iso" not in " ".join(args)


def test_a_cd_is_the_iso_itself_read_only(tmp_path):
    args = qemu.qemu_args(qemu.normalise({"name": "m"}), "/x.iso", str(tmp_path), "tcg", 2222)
    assert "file=/x.iso,format=raw,if=none,id=medium,readonly=on,media=cdrom" in args
    assert "ide-cd,bus=ide.0,drive=medium,bootindex=0" in args


@pytest.mark.parametrize("machine, message", [
    ({"firmware": "coreboot"}, "firmware 'coreboot': must be one of uefi, uefi-secureboot, bios"),
    ({"boot": "floppy"}, "boot 'floppy': must be one of cdrom, usb, sata, nvme"),
    ({"grub_append": "prenixos.wipe=1", "kernel_args": ""}, "grub_entry and grub_append are typed at the GRUB menu"),
    ({"grub_entry": 2, "serial": False}, "grub_entry and grub_append are typed at the GRUB menu"),
    ({"console": "ttyS2"}, "console 'ttyS2': must be ttyS0 or ttyS1"),
])
def test_unknown_firmware_media_and_menu_typing_without_a_menu_are_refused(machine, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        qemu.normalise(dict(machine, name="m"))


def typed_at_menu(entry, text):
    """What the typist sends to a guest that shows GRUB's menu and, once the last key came, says it boots."""
    import socket as socket_module
    import threading
    ours, guest = socket_module.socketpair()
    typed = bytearray()

    def guest_side():
        guest.sendall(b"BdsDxe: starting\r\n\x1b[2;24HGNU GRUB  version 2.06\r\n")
        while not typed.endswith((b"\x18", b"\r")):
            typed.extend(guest.recv(1024))
        guest.sendall(b"Booting a command list\r\n")

    thread = threading.Thread(target=guest_side)
    thread.start()
    qemu.type_at_grub_menu(ours, entry, text, timeout=5, pause=0)
    thread.join()
    return bytes(typed)


@pytest.mark.parametrize("entry, text, keys", [
    (0, "prenixos.wipe=1", b"e\x0e\x0e\x0e\x05 prenixos.wipe=1\x18"),
    (3, "prenixos.backups=1", b"\x0e\x0e\x0ee\x0e\x0e\x0e\x05 prenixos.backups=1\x18"),
    (2, None, b"\x0e\x0e\r"),
])
def test_the_entry_is_chosen_and_the_switch_typed_once_grub_shows_its_menu(entry, text, keys):
    assert typed_at_menu(entry, text) == keys


def test_with_the_console_on_ttys1_ttys0_is_logged_beside_it(tmp_path):
    args = qemu.qemu_args(qemu.normalise({"name": "m", "console": "ttyS1"}), "/x.iso", str(tmp_path), "tcg", 2222)
    serials = [args[i + 1] for i, arg in enumerate(args) if arg == "-serial"]
    assert serials == ["chardev:serial-ttyS0", "chardev:serial0"]
    assert "file,id=serial-ttyS0,path=%s" % tmp_path.joinpath("serial-ttyS0.log") in args


def test_the_medium_copy_notes_the_checksum_it_must_keep(tmp_path):
    import hashlib
    iso = tmp_path / "x.iso"
    iso.write_bytes(b"image" * 100000)
    qemu.copy_medium(str(iso), str(tmp_path))
    assert (tmp_path / "medium.img").read_bytes() == iso.read_bytes()
    assert (tmp_path / "medium.sha256").read_text() == hashlib.sha256(iso.read_bytes()).hexdigest() + "\n"


def test_the_typist_holds_the_console_until_the_entry_loads_and_says_when_it_never_does():
    import socket as socket_module
    ours, guest = socket_module.socketpair()
    guest.sendall(b"GNU GRUB  version 2.06\r\n")
    with pytest.raises(SystemExit, match="'Booting' did not show on the serial console within 1 s"):
        qemu.type_at_grub_menu(ours, 0, None, timeout=1, pause=0)


def test_server_hardware_intel_nics_ssds_on_ahci_and_hdds_on_a_megaraid_controller(tmp_path):
    machine = qemu.normalise({"name": "m", "disks": [
        {"kind": "nvme", "size": "8G"}, {"kind": "ssd", "size": "4G", "bus": "ahci"},
        {"kind": "ssd", "size": "4G", "bus": "ahci", "gone": True}, {"kind": "ssd", "size": "4G", "bus": "ahci"},
        {"kind": "hdd", "size": "4G", "bus": "megasas"}, {"kind": "hdd", "size": "4G"}],
        "nics": [{"link": False, "model": "e1000"}, {"link": True, "model": "e1000e"}]})
    args = qemu.qemu_args(machine, "/x.iso", str(tmp_path), "tcg", 2222)
    devices = [args[i + 1] for i, arg in enumerate(args) if arg == "-device"]
    assert "megasas-gen2,id=megasas0" in devices
    assert "ide-hd,bus=ide.1,drive=disk1,serial=pn-ssd1,rotation_rate=1,id=dev-disk1" in devices
    assert "ide-hd,bus=ide.3,drive=disk3,serial=pn-ssd3,rotation_rate=1,id=dev-disk3" in devices
    assert "scsi-hd,bus=megasas0.0,drive=disk4,serial=pn-hdd1,rotation_rate=7200,id=dev-disk4" in devices
    assert "scsi-hd,bus=scsi0.0,drive=disk5,serial=pn-hdd2,rotation_rate=7200,id=dev-disk5" in devices
    assert [d.split(",")[0] for d in devices if ",netdev=" in d] == ["e1000", "e1000e"]


@pytest.mark.parametrize("machine, message", [
    ({"disks": [{"kind": "nvme", "size": "1G", "bus": "ahci"}]}, "bus is for an ssd or hdd"),
    ({"disks": [{"kind": "ssd", "size": "1G", "bus": "sas"}]}, "bus is for an ssd or hdd, one of virtio-scsi"),
    ({"disks": [{"kind": "ssd", "size": "1G", "bus": "ahci"}] * 6}, "at most 5 disks on AHCI"),
    ({"nics": [{"link": True, "model": "rtl8139"}]}, "model must be one of virtio, e1000e, e1000"),
])
def test_unknown_buses_models_and_too_many_sata_disks_are_refused(machine, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        qemu.normalise(dict(machine, name="m"))
