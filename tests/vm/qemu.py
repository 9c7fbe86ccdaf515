# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that knows how to emulate a pre-nixos test machine in QEMU.

Used by ``iso/demo.sh`` and by the Molecule scenarios (``molecule/shared/create.yml`` and
``destroy.yml``). A machine is data, in a JSON file or under ``tests/vm/machines/<name>.json``
(``default`` is the demo machine)::

    {"name": "default",
     "memory": 2048, "cpus": 2,
     "disks": [{"kind": "nvme", "size": "64G"}, {"kind": "ssd", "size": "32G"},
               {"kind": "hdd", "size": "16G"}, {"kind": "usb", "size": "4G"}],
     "nics": [{"link": false}, {"link": true}],
                                      # {"link": true, "ssh_address": "10.0.2.50"}: SSH is forwarded
                                      # to that guest address (a static one) instead of the DHCP one;
                                      # {"udp": {"local": 47101, "remote": 47102}, "mac": "52:54:00:01:00:11"}:
                                      # a wire to another guest (QEMU's UDP socket network on 127.0.0.1,
                                      # no DHCP, no SSH); "mac" sets any NIC's MAC
                                      # {"link": false, "link_up": {"after": "REGEX", "delay": 20}}:
                                      # down at start, up DELAY s after REGEX shows on the serial console
                                      # "model": "e1000e" or "e1000" (Intel) instead of virtio-net
     "firmware": "uefi",              # or "uefi-secureboot" (OVMF with Microsoft's keys enrolled,
                                      # Secure Boot on), or "bios" (SeaBIOS, legacy boot)
     "boot": "cdrom",                 # the ISO on a CD drive (read-only); "usb": as a USB stick,
                                      # "sata" or "nvme": as a disk (BMC virtual media that shows up as
                                      # one); those three are a writable copy (medium.img in the workdir)
     "grub_entry": 0,                 # the GRUB menu entry to boot (Ctrl-N that many times on the serial
                                      # console); "grub_append": a string typed at the end of its kernel line
     "grub_append": None,             # (see type_at_grub_menu), as an operator adds a switch
                                      # (both not with kernel_args: a direct kernel boot has no menu)
     "console": "ttyS0",              # or "ttyS1": the machine has two serial ports and serial.log (and
                                      # serial.sock, where GRUB is typed at) is ttyS1; ttyS0 goes to serial-ttyS0.log
     "kernel_args": None,             # a string: boot the ISO's kernel and system directly
                                      # (still UEFI, medium attached) with the boot menu's
                                      # arguments plus these, e.g. "prenixos.storage=plan"
     "serial": True,                  # False: no serial port at all
     "md_sync_kbps": None}            # a number: once SSH logs in, every md array's background
                                      # sync is held to that many KiB/s (dev.raid.speed_limit_max)

A disk with ``"gone": true`` is there only in the ``--prepare`` boot: taken out before the real
boot (its file is kept; the other disks keep their serials). ``qemu.py add-disk`` plugs a new blank
disk into the running machine (QMP ``blockdev-add`` + ``device_add``), as an operator adding a disk.

Disk kinds: ``ssd`` is ``scsi-hd,rotation_rate=1``, ``hdd`` is ``scsi-hd,rotation_rate=7200`` (both
on virtio-scsi, or with ``"bus": "ahci"`` SATA disks on the machine's AHCI controller, or with ``"bus":
"megasas"`` on an LSI MegaRAID SAS controller, ``megasas-gen2``), ``nvme`` is ``nvme``, ``usb`` is a removable
``usb-storage``. Disk files are sparse
raw files. NICs are ``virtio-net-pci`` on user-mode networking restricted to the guest (DHCP, IPv6
router advertisements of fd00:5052::/64 and the forwarded SSH port only); the first NIC with a link
(or a ``link_up``) carries SSH, forwarded from a free port on 127.0.0.1. A NIC with ``link: false``
is set down over QMP before the guest runs; with ``link_up`` a helper process (``qemu.py link-up``,
its PID in the workdir) sets it up once the guest's serial console has shown the given text, so a
test can plug the cable in at a known moment of first boot.

Command line::

    qemu.py start MACHINE --iso build/pre-nixos.iso --workdir build/vm/NAME   # file or name
    qemu.py start MACHINE ... --prepare SCRIPT   # first give the disks a past (SCRIPT runs in a boot
                                                 # with prenixos.firstboot=0), then boot on them
    qemu.py wait-ssh --workdir build/vm/NAME --key build/id_ed25519
    qemu.py console --workdir build/vm/NAME      # stream the serial console (Ctrl-C stops)
    qemu.py stop --workdir build/vm/NAME         # the QEMU and the link-up helpers of that workdir
    qemu.py add-disk --workdir build/vm/NAME --kind hdd --size 3G   # plug a blank disk in
    qemu.py unplug|plug --workdir build/vm/NAME --index N   # pull disk N out of the running machine, put it back
    qemu.py power-cut --workdir build/vm/NAME    # SIGKILL the QEMU: the guest's unwritten data is lost
    qemu.py restart --workdir build/vm/NAME [--kernel-args ARGS]   # boot again on the same disks
    qemu.py accel                                # kvm or tcg, as the probe finds

Only the QEMU process recorded in the workdir's pidfile is ever signalled.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, "build")
QEMU = "qemu-system-x86_64"
# Firmware: (code, variables) for OVMF; SeaBIOS (QEMU's default) for "bios".
OVMF = {"uefi": ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
        "uefi-secureboot": ("/usr/share/OVMF/OVMF_CODE_4M.ms.fd", "/usr/share/OVMF/OVMF_VARS_4M.ms.fd")}
FIRMWARES = tuple(OVMF) + ("bios",)
MEDIA = ("cdrom", "usb", "sata", "nvme")
KINDS = ("ssd", "hdd", "nvme", "usb")
# Controllers an ssd or hdd can hang off; NIC models.
BUSES = ("virtio-scsi", "ahci", "megasas")
NIC_MODELS = {"virtio": "virtio-net-pci", "e1000e": "e1000e", "e1000": "e1000"}
# AHCI ports of q35 (ide.0 is the CD or the image as a SATA disk).
AHCI_PORTS = 5
ROTATION = {"ssd": 1, "hdd": 7200}
# Kernel arguments are the image's business; the launcher only decides hardware.

MACHINES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "machines")
# What a machine description leaves out.
DEFAULTS = {"memory": 2048, "cpus": 2, "disks": [], "nics": [{"link": True}], "firmware": "uefi", "boot": "cdrom",
            "grub_entry": 0, "grub_append": None, "console": "ttyS0", "kernel_args": None, "serial": True,
            "md_sync_kbps": None}


def load_machine(spec):
    """A machine from a JSON file, or by name from tests/vm/machines/ ("default" is the demo machine).

    The demo machine (machines/default.json) has a server's hardware (Intel NICs, SSDs on AHCI, HDDs behind a
    MegaRAID SAS controller) and every disk group has its own usable capacity, so
    each planner rule has one answer: main on the NVMe (64G) over the SSD pair (RAID0 2x20G = 40G,
    main_1); swap on the HDD pair (RAID1 4G); large on the three HDDs (RAID5 3x6G = 12G); the
    USB stick is never planned. The HDDs are small because their arrays resync in the background,
    and under software emulation that costs CPU the rest of the boot needs.
    """
    path = spec if os.path.isfile(spec) else os.path.join(MACHINES, "%s.json" % spec)
    with open(path) as handle:
        return json.load(handle)


def log(message):
    print("qemu.py: %s" % message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ acceleration
def probe_accel(kernel, timeout=15):
    """``kvm`` when a KVM guest runs this kernel to its (expected) panic, else ``tcg``.

    KVM can exist and still fail (nested virtualisation without the right MSRs, "emulation
    failure"): only a guest that gets somewhere counts. The answer is cached per host boot.
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg", "/dev/kvm missing or not accessible"
    cache = os.path.join(BUILD, "vm", "accel.json")
    with open("/proc/sys/kernel/random/boot_id") as handle:
        boot_id = handle.read().strip()
    try:
        with open(cache) as handle:
            cached = json.load(handle)
        if cached.get("boot_id") == boot_id:
            return cached["accel"], cached["why"] + " (cached for this host boot)"
    except (OSError, ValueError, KeyError):
        pass
    command = [QEMU, "-accel", "kvm", "-machine", "q35", "-cpu", "host", "-m", "256", "-display", "none",
               "-nodefaults", "-serial", "stdio", "-no-reboot", "-kernel", kernel,
               "-append", "console=ttyS0 panic=-1 init_on_alloc=0"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=timeout, check=False)
        output = result.stdout + result.stderr
    except subprocess.TimeoutExpired as error:
        output = error.stdout or ""
        if isinstance(output, bytes):
            output = output.decode(errors="replace")
        output += "\n(timed out after %d s)" % timeout
    if "Kernel panic" in output or "VFS:" in output:
        accel, why = "kvm", "a KVM probe guest booted its kernel"
    else:
        tail = " | ".join(line for line in output.strip().splitlines()[-2:])
        accel, why = "tcg", "the KVM probe guest failed: %s" % (tail or "no output")
    os.makedirs(os.path.dirname(cache), exist_ok=True)
    with open(cache, "w") as handle:
        json.dump({"boot_id": boot_id, "accel": accel, "why": why}, handle)
    return accel, why


def accel_args(accel):
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    return ["-accel", "tcg,thread=multi", "-cpu", "max"]


# ------------------------------------------------------------------ machine description
def size_bytes(size):
    match = re.fullmatch(r"(\d+)([KMGT]?)i?B?", str(size).strip(), re.IGNORECASE)
    if not match:
        raise ValueError("disk size %r: expected a number with an optional K/M/G/T suffix" % size)
    return int(match.group(1)) * 1024 ** "_KMGT".index(match.group(2).upper() or "_")


def normalise(machine):
    machine = dict(DEFAULTS, **machine)
    if machine["firmware"] not in FIRMWARES:
        raise ValueError("firmware %r: must be one of %s" % (machine["firmware"], ", ".join(FIRMWARES)))
    if machine["boot"] not in MEDIA:
        raise ValueError("boot %r: must be one of %s" % (machine["boot"], ", ".join(MEDIA)))
    if (machine["grub_append"] is not None or machine["grub_entry"]) and (
            machine["kernel_args"] is not None or not machine["serial"]):
        raise ValueError("grub_entry and grub_append are typed at the GRUB menu on the serial console: they need"
                         " serial: true and no kernel_args (a direct kernel boot has no menu)")
    if machine["console"] not in ("ttyS0", "ttyS1"):
        raise ValueError("console %r: must be ttyS0 or ttyS1" % machine["console"])
    for disk in machine["disks"]:
        if disk.get("kind") not in KINDS:
            raise ValueError("disk %r: kind must be one of %s" % (disk, ", ".join(KINDS)))
        if disk.get("bus", "virtio-scsi") not in BUSES or (disk.get("bus") and disk["kind"] not in ROTATION):
            raise ValueError("disk %r: bus is for an ssd or hdd, one of %s" % (disk, ", ".join(BUSES)))
        size_bytes(disk["size"])
    for nic in machine["nics"]:
        if nic.get("model", "virtio") not in NIC_MODELS:
            raise ValueError("NIC %r: model must be one of %s" % (nic, ", ".join(NIC_MODELS)))
        link_up = nic.get("link_up")
        if link_up is not None:
            if nic.get("link", True) or not isinstance(link_up, dict) or not link_up.get("after"):
                raise ValueError("NIC %r: link_up needs link: false and {after: REGEX, delay: SECONDS}" % nic)
            re.compile(link_up["after"])
        udp = nic.get("udp")
        if udp is not None and not (isinstance(udp, dict) and all(
                isinstance(udp.get(end), int) and 1024 <= udp[end] <= 65535 for end in ("local", "remote"))):
            raise ValueError("NIC %r: udp needs {local: PORT, remote: PORT} (1024-65535) on 127.0.0.1" % nic)
        if nic.get("mac") is not None and not re.match(r"^52:54:00(:[0-9a-f]{2}){3}$", str(nic["mac"])):
            raise ValueError("NIC %r: mac must be 52:54:00:xx:xx:xx (QEMU's prefix, lower case)" % nic)
        address = nic.get("ssh_address")
        if address is not None and not re.match(r"^10\.0\.2\.(\d{1,3})$", str(address)):
            raise ValueError("NIC %r: ssh_address must be an address of QEMU's user network 10.0.2.0/24" % nic)
    if sum(1 for disk in machine["disks"] if disk.get("bus") == "ahci") > AHCI_PORTS:
        raise ValueError("at most %d disks on AHCI (q35 has six ports; the first is the medium's)" % AHCI_PORTS)
    if not any(carries_ssh(nic) for nic in machine["nics"]):
        raise ValueError("at least one NIC needs a link (now or by link_up): SSH goes through the first one")
    return machine


def carries_ssh(nic):
    """Whether SSH can go through this NIC: on QEMU's user network, with a link now or later."""
    return nic.get("udp") is None and (nic.get("link", True) or nic.get("link_up") is not None)


IPV6_PREFIX = "fd00:5052::"


def nic_mac(nic, index):
    """The MAC of the machine's NIC number ``index``: its own ``mac``, else 52:54:00:00:00:10 and up."""
    return nic.get("mac") or "52:54:00:00:00:%02x" % (0x10 + index)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def qemu_args(machine, iso, workdir, accel, port):
    """The QEMU command line for ``machine`` (disk files must exist already)."""
    firmware = machine.get("firmware", "uefi")
    secure = firmware == "uefi-secureboot"
    args = [QEMU, "-name", machine["name"], "-machine", "q35,smm=on" if secure else "q35", *accel_args(accel),
            "-smp", str(machine["cpus"]), "-m", str(machine["memory"]),
            "-nodefaults", "-display", "none", "-vga", "std"]
    if secure:
        # Secure Boot's variables are writable only from SMM: the flash is locked to it.
        args += ["-global", "driver=cfi.pflash01,property=secure,value=on"]
    if firmware in OVMF:
        args += ["-drive", "if=pflash,format=raw,unit=0,readonly=on,file=%s" % OVMF[firmware][0],
                 "-drive", "if=pflash,format=raw,unit=1,file=%s" % os.path.join(workdir, "OVMF_VARS.fd")]
    args += ["-qmp", "unix:%s,server=on,wait=off" % os.path.join(workdir, "qmp.sock"),
             "-pidfile", os.path.join(workdir, "qemu.pid"),
             "-daemonize", "-S",
             "-device", "virtio-scsi-pci,id=scsi0",
             "-device", "qemu-xhci,id=xhci"]
    if machine.get("serial", True) and machine.get("console", "ttyS0") == "ttyS1":
        args += ["-chardev", "file,id=serial-ttyS0,path=%s" % os.path.join(workdir, "serial-ttyS0.log"),
                 "-serial", "chardev:serial-ttyS0"]
    if machine.get("serial", True):
        args += ["-chardev", "socket,id=serial0,path=%s,server=on,wait=off,logfile=%s" % (
                 os.path.join(workdir, "serial.sock"), os.path.join(workdir, "serial.log")),
                 "-serial", "chardev:serial0"]
    if machine.get("kernel_args") is not None:
        kernel, initrd, cmdline = direct_boot_files(iso, workdir)
        args += ["-kernel", kernel, "-initrd", initrd, "-append", " ".join([cmdline, machine["kernel_args"]]).strip()]
    # The boot medium comes first in the firmware's boot order.
    # (With a direct kernel boot, the kernel loader holds boot index 0.)
    index = 1 if machine.get("kernel_args") is not None else 0
    boot = machine.get("boot", "cdrom")
    if boot == "cdrom":
        args += ["-drive", "file=%s,format=raw,if=none,id=medium,readonly=on,media=cdrom" % iso,
                 "-device", "ide-cd,bus=ide.0,drive=medium,bootindex=%d" % index]
    else:
        args += ["-drive", "file=%s,format=raw,if=none,id=medium" % medium_path(workdir),
                 "-device", {"usb": "usb-storage,bus=xhci.0,drive=medium,removable=on,serial=pn-medium",
                             "sata": "ide-hd,bus=ide.0,drive=medium,serial=pn-medium",
                             "nvme": "nvme,drive=medium,serial=pn-medium"}[boot] + ",bootindex=%d" % index]
    counters = dict.fromkeys(KINDS, 0)
    ahci_port = 0
    if any(disk.get("bus") == "megasas" for disk in machine["disks"]):
        args += ["-device", "megasas-gen2,id=megasas0"]
    for index, disk in enumerate(machine["disks"]):
        kind = disk["kind"]
        counters[kind] += 1
        drive = "disk%d" % index
        serial = "pn-%s%d" % (kind, counters[kind])
        bus = disk.get("bus", "virtio-scsi")
        if bus == "ahci":
            ahci_port += 1  # a gone disk keeps its port, so the others keep theirs
        if disk.get("gone"):
            continue
        args += ["-drive", "file=%s,format=raw,if=none,id=%s,cache=unsafe,discard=unmap" % (
            os.path.join(workdir, "%s.img" % drive), drive)]
        args += ["-device", disk_device(kind, drive, serial, bus, ahci_port)]
    forwarded = False
    for index, nic in enumerate(machine["nics"]):
        # A ULA prefix in the router advertisements: the guest's SLAAC address is of global scope, as on a real
        # IPv6 network (QEMU's default fec0::/64 is site-local, which the lan module does not offer the operator).
        netdev = "user,id=net%d,restrict=on,ipv6-prefix=%s,ipv6-prefixlen=64" % (index, IPV6_PREFIX)
        if nic.get("udp"):
            # A wire between two guests: each sends to the other's port on 127.0.0.1, nothing else.
            netdev = "socket,id=net%d,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d" % (
                index, nic["udp"]["remote"], nic["udp"]["local"])
        elif carries_ssh(nic) and not forwarded:
            netdev += ",hostfwd=tcp:127.0.0.1:%d-%s:22" % (port, nic.get("ssh_address") or "")
            forwarded = True
        # romfile= : no iPXE option ROM, so the firmware never tries network boot.
        mac = nic_mac(nic, index)
        nic_device = "%s,netdev=net%d,id=nic%d,mac=%s,romfile=" % (
            NIC_MODELS[nic.get("model", "virtio")], index, index, mac)
        args += ["-netdev", netdev, "-device", nic_device]
    return args


def medium_path(workdir):
    """The image as a stick or a disk: a writable copy, so that a test can prove nothing wrote to it."""
    return os.path.join(workdir, "medium.img")


def file_sha256(path):
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_medium(iso, workdir):
    """Copy the image to ``medium.img`` and note its SHA-256 beside it (``medium.sha256``): what the copy must
    still be at the end, whatever happens to the ISO meanwhile."""
    shutil.copyfile(iso, medium_path(workdir))
    with open(os.path.join(workdir, "medium.sha256"), "w") as handle:
        handle.write(file_sha256(medium_path(workdir)) + "\n")


def disk_device(kind, drive, serial, bus="virtio-scsi", ahci_port=None):
    """The ``-device`` value of a disk of ``kind`` on ``drive`` (its id: ``dev-<drive>``); an ssd or hdd on ``bus``
    (the AHCI port ``ide.<ahci_port>`` for ``ahci``)."""
    if kind == "nvme":
        return "nvme,drive=%s,serial=%s,id=dev-%s" % (drive, serial, drive)
    if kind == "usb":
        return "usb-storage,bus=xhci.0,drive=%s,removable=on,serial=%s,id=dev-%s" % (drive, serial, drive)
    if bus == "ahci":
        return "ide-hd,bus=ide.%d,drive=%s,serial=%s,rotation_rate=%d,id=dev-%s" % (
            ahci_port, drive, serial, ROTATION[kind], drive)
    controller = {"virtio-scsi": "scsi0.0", "megasas": "megasas0.0"}[bus]
    return "scsi-hd,bus=%s,drive=%s,serial=%s,rotation_rate=%d,id=dev-%s" % (
        controller, drive, serial, ROTATION[kind], drive)


# ------------------------------------------------------------------ QMP
class QMP:
    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        self.reader = self.sock.makefile("r")
        self._read()  # greeting
        self.command("qmp_capabilities")

    def _read(self):
        while True:
            message = json.loads(self.reader.readline())
            if "event" not in message:
                return message

    def command(self, execute, **arguments):
        self.sock.sendall(json.dumps({"execute": execute, "arguments": arguments}).encode() + b"\n")
        reply = self._read()
        if "error" in reply:
            raise RuntimeError("QMP %s: %s" % (execute, reply["error"].get("desc")))
        return reply.get("return")

    def close(self):
        self.reader.close()
        self.sock.close()


# ------------------------------------------------------------------ life cycle
def state_path(workdir):
    return os.path.join(workdir, "vm.json")


def read_pid(workdir):
    """The PID in the workdir's pidfile, if that process is still our QEMU."""
    try:
        with open(os.path.join(workdir, "qemu.pid")) as handle:
            pid = int(handle.read().strip())
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            cmdline = handle.read().split(b"\0")
    except (OSError, ValueError):
        return None
    pidfile = os.path.join(workdir, "qemu.pid").encode()
    if not cmdline or b"qemu-system" not in os.path.basename(cmdline[0]) or pidfile not in cmdline:
        return None
    return pid


def start(machine, iso, workdir, accel=None, keep_disks=False, port=None):
    """Create the disks, start QEMU (daemonized, paused), drop the links, run. Returns the state.

    ``keep_disks`` boots on the disk files as an earlier boot (``prepare``, a power cut) left them;
    ``port``: forward SSH from this port (a restarted machine keeps its address), else a free one.
    """
    machine = normalise(machine)
    if not os.path.isfile(iso):
        raise SystemExit("no ISO at %s: build it first (iso/build.sh)" % iso)
    if read_pid(workdir):
        raise SystemExit("a VM is already running from %s; stop it first" % workdir)
    os.makedirs(workdir, exist_ok=True)
    for stale in ("serial.log", "serial.sock", "qmp.sock", "qemu.pid"):
        if os.path.lexists(os.path.join(workdir, stale)):
            os.unlink(os.path.join(workdir, stale))
    if machine["firmware"] in OVMF:
        shutil.copyfile(OVMF[machine["firmware"]][1], os.path.join(workdir, "OVMF_VARS.fd"))
    if machine["boot"] != "cdrom" and not (keep_disks and os.path.exists(medium_path(workdir))):
        copy_medium(iso, workdir)
    for index, disk in enumerate(machine["disks"]):
        path = os.path.join(workdir, "disk%d.img" % index)
        if keep_disks and os.path.exists(path):
            continue
        if os.path.exists(path):
            os.unlink(path)  # a fresh, empty disk for every boot
        with open(path, "wb") as handle:
            handle.truncate(size_bytes(disk["size"]))
    why = "requested"
    if accel is None:
        kernel = extract_kernel(iso, workdir)
        accel, why = probe_accel(kernel)
    log("acceleration: %s (%s)" % (accel, why))
    port = port or free_port()
    args = qemu_args(machine, iso, workdir, accel, port)
    with open(os.path.join(workdir, "qemu.cmdline"), "w") as handle:
        handle.write(" ".join(args) + "\n")
    started = time.time()
    subprocess.run(args, check=True)
    try:
        qmp = QMP(os.path.join(workdir, "qmp.sock"))
        for index, nic in enumerate(machine["nics"]):
            if not nic.get("link", True):
                qmp.command("set_link", name="nic%d" % index, up=False)
        typed = machine["grub_entry"] or machine["grub_append"]
        typist = serial_typist(workdir) if typed else None
        qmp.command("cont")
        qmp.close()
        if typist:
            type_at_grub_menu(typist, machine["grub_entry"], machine["grub_append"])
        for index, nic in enumerate(machine["nics"]):
            if nic.get("link_up"):
                start_link_up(workdir, index, nic["link_up"])
    except BaseException:
        stop(workdir)
        raise
    state = {"name": machine["name"], "pid": read_pid(workdir), "ssh_port": port, "accel": accel,
             "accel_why": why, "started": started, "workdir": workdir, "iso": iso, "machine": machine,
             "serial_log": os.path.join(workdir, "serial.log")}
    with open(state_path(workdir), "w") as handle:
        json.dump(state, handle, indent=2)
    log("started %s: pid %s, ssh on 127.0.0.1:%d, serial log %s" % (
        machine["name"], state["pid"], port, state["serial_log"]))
    return state


def serial_typist(workdir, timeout=10):
    """A connection to the serial console's socket, made before the guest runs so that nothing is missed."""
    sock = socket.socket(socket.AF_UNIX)
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock.connect(os.path.join(workdir, "serial.sock"))
            return sock
        except OSError:
            if time.monotonic() > deadline:
                sock.close()
                raise
            time.sleep(0.1)


# Lines above the linux line in GRUB's editor of an entry of the image's menu (setparams, blank, echo).
LINUX_LINE = 3


def type_at_grub_menu(sock, entry, text, timeout=300, pause=0.5):
    """Wait for GRUB's menu on the serial console, then boot menu entry ``entry``, ``text`` added to its kernel line.

    The keys an operator types: Ctrl-N ``entry`` times (down the menu; a key also stops the countdown), then
    with a text ``e`` (edit the entry: GRUB shows ``setparams 'TITLE'``, a blank line, then the image's
    ``echo``, ``linux`` and ``initrd`` lines), Ctrl-N three times (to the ``linux`` line), Ctrl-E (its end), the
    text and Ctrl-X (boot); without one, Enter. The connection stays open until GRUB says it is booting: QEMU
    drops what the guest has not read yet when it closes (GRUB under BIOS reads slowly while it draws).
    """
    keys = [b"\x0e"] * entry
    keys += [b"e", b"\x0e" * LINUX_LINE, b"\x05", b" " + text.encode(), b"\x18"] if text else [b"\r"]
    try:
        wait_for_console(sock, b"GNU GRUB", timeout)
        for key in keys:
            sock.sendall(key)
            time.sleep(pause)
        wait_for_console(sock, b"Booting", timeout)
    finally:
        sock.close()
    log("at the GRUB menu: entry %d%s" % (entry, ", kernel line + %r" % text if text else ""))


def wait_for_console(sock, landmark, timeout):
    """Read the serial console until ``landmark`` shows (what was read before is not looked at again)."""
    seen = b""
    deadline = time.monotonic() + timeout
    sock.settimeout(1)
    while landmark not in seen:
        if time.monotonic() > deadline:
            raise SystemExit("%r did not show on the serial console within %d s" % (landmark.decode(), timeout))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        if not data:
            raise SystemExit("the serial console closed before %r showed" % landmark.decode())
        seen = seen[-64:] + data


def hotplug(workdir, node, path, kind, serial, device_id):
    """Plug the disk file ``path`` into the running machine as a ``kind`` SCSI disk: QMP ``blockdev-add`` (block
    node ``node``) + ``device_add`` (device ``device_id``, serial ``serial``)."""
    qmp = QMP(os.path.join(workdir, "qmp.sock"))
    try:
        qmp.command("blockdev-add", driver="raw", **{"node-name": node},
                    file={"driver": "file", "filename": path, "cache": {"no-flush": True}}, discard="unmap")
        qmp.command("device_add", driver="scsi-hd", bus="scsi0.0", drive=node, serial=serial,
                    rotation_rate=ROTATION[kind], id=device_id)
    finally:
        qmp.close()


def add_disk(workdir, kind, size):
    """Plug a new blank ``kind`` disk of ``size`` into the running machine; returns its serial."""
    if kind not in ROTATION:
        raise SystemExit("add-disk: kind must be one of %s" % ", ".join(ROTATION))
    if not read_pid(workdir):
        raise SystemExit("add-disk: no VM runs from %s" % workdir)
    number = 1
    while os.path.exists(os.path.join(workdir, "added%d.img" % number)):
        number += 1
    drive = "added%d" % number
    path = os.path.join(workdir, drive + ".img")
    with open(path, "wb") as handle:
        handle.truncate(size_bytes(size))
    with open(state_path(workdir)) as handle:
        machine = json.load(handle)["machine"]
    # The next serial of its kind, after the machine's own disks (gone ones too) and those added before.
    serial = "pn-%s%d" % (kind, sum(1 for disk in machine["disks"] if disk["kind"] == kind) + number)
    hotplug(workdir, drive, path, kind, serial, "dev-" + drive)
    log("plugged in %s %s disk %s (%s)" % (size, kind, serial, path))
    return serial


def unplug_disk(workdir, index, timeout=30):
    """Pull the machine's disk ``index`` out of the running machine (QMP ``device_del``), as a dying disk
    or a hand would; its file is kept for ``plug_disk``."""
    with open(state_path(workdir)) as handle:
        state = json.load(handle)
    disk = state["machine"]["disks"][index]
    qmp = QMP(os.path.join(workdir, "qmp.sock"))
    try:
        qmp.command("device_del", id="dev-disk%d" % index)
        deadline = time.monotonic() + timeout
        while any(device.get("qdev") == "dev-disk%d" % index or device.get("device") == "disk%d" % index
                  for device in qmp.command("query-block")):
            if time.monotonic() > deadline:
                raise SystemExit("unplug: disk%d is still there %d s after device_del" % (index, timeout))
            time.sleep(0.2)
    finally:
        qmp.close()
    log("pulled out disk %d (%s %s)" % (index, disk["size"], disk["kind"]))


def plug_disk(workdir, index):
    """Put the machine's disk ``index`` back (its own file, its own serial) into the running machine."""
    with open(state_path(workdir)) as handle:
        state = json.load(handle)
    disks = state["machine"]["disks"]
    kind = disks[index]["kind"]
    if kind not in ROTATION or disks[index].get("bus", "virtio-scsi") != "virtio-scsi":
        raise SystemExit("plug: only ssd and hdd disks on virtio-scsi can be plugged back, disk %d is %s on %s" % (
            index, kind, disks[index].get("bus", "virtio-scsi")))
    serial = "pn-%s%d" % (kind, sum(1 for disk in disks[:index + 1] if disk["kind"] == kind))
    hotplug(workdir, "replug%d" % index, os.path.join(workdir, "disk%d.img" % index), kind, serial,
            "dev-disk%d" % index)
    log("put disk %d back (%s)" % (index, serial))


def prepare(machine, iso, workdir, key, script, accel=None, timeout=900):
    """Give the disks a past before the real boot: boot with ``prenixos.firstboot=0``, run ``script``
    (bash, as root) in the guest, power it off. The next ``start(..., keep_disks=True)`` finds the disks so."""
    quiet = dict(machine, kernel_args=" ".join(filter(None, [machine.get("kernel_args"), "prenixos.firstboot=0"])),
                 nics=[{"link": True}], disks=[dict(disk, gone=False) for disk in machine["disks"]], grub_append=None,
                 grub_entry=0)
    state = start(quiet, iso, workdir, accel)
    try:
        wait_ssh(workdir, key, timeout)
        with open(script, "rb") as handle:
            result = subprocess.run(ssh_command(state, key, "bash", "-s"), stdin=handle, capture_output=True,
                                    timeout=timeout, check=False)
        with open(os.path.join(workdir, "prepare.log"), "wb") as log_file:
            log_file.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise SystemExit("preparing the disks of %s failed (exit %d): %s" % (
                machine["name"], result.returncode, (result.stdout + result.stderr).decode(errors="replace")[-2000:]))
        log("prepared the disks of %s with %s" % (machine["name"], script))
    finally:
        stop(workdir)
    return state["accel"]


def start_link_up(workdir, index, link_up):
    """Start the helper that sets NIC ``index`` up later (its PID in link-up-INDEX.pid, its log beside it)."""
    command = [sys.executable, os.path.abspath(__file__), "link-up", "--workdir", workdir, "--nic", str(index),
               "--after", link_up["after"], "--delay", str(link_up.get("delay", 0))]
    with open(os.path.join(workdir, "link-up-%d.log" % index), "w") as out:
        helper = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    with open(os.path.join(workdir, "link-up-%d.pid" % index), "w") as handle:
        handle.write("%d\n" % helper.pid)
    log("nic%d: link goes up %s s after the serial console shows %r (helper pid %d)" % (
        index, link_up.get("delay", 0), link_up["after"], helper.pid))


def link_up_when(workdir, index, after, delay, timeout=1800):
    """Wait for ``after`` (a regex) on the serial console, then ``delay`` seconds, then set NIC ``index`` up."""
    pattern = re.compile(after)
    serial_log = os.path.join(workdir, "serial.log")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(serial_log, "rb") as handle:
                if pattern.search(handle.read().decode(errors="replace")):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or not read_pid(workdir):
            log("nic%d: %r never showed on the serial console; the link stays down" % (index, after))
            return 1
        time.sleep(0.5)
    log("nic%d: the serial console showed %r; link up in %s s" % (index, after, delay))
    time.sleep(delay)
    qmp = QMP(os.path.join(workdir, "qmp.sock"))
    qmp.command("set_link", name="nic%d" % index, up=True)
    qmp.close()
    log("nic%d: link up" % index)
    return 0


def stop_link_up_helpers(workdir):
    """End the link-up helpers this workdir started (each by its PID, checked to be that helper)."""
    for name in sorted(os.listdir(workdir)) if os.path.isdir(workdir) else []:
        if not re.fullmatch(r"link-up-\d+\.pid", name):
            continue
        path = os.path.join(workdir, name)
        try:
            with open(path) as handle:
                pid = int(handle.read().strip())
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                cmdline = handle.read().split(b"\0")
            if b"link-up" in cmdline and workdir.encode() in cmdline:
                os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            pass
        os.unlink(path)


def direct_boot_files(iso, workdir):
    """Kernel, initrd (both layers, concatenated as GRUB does) and the boot menu's command line."""
    extract = os.path.join(workdir, "direct")
    os.makedirs(extract, exist_ok=True)
    files = ("vmlinuz", "os.cpio.zst", "layer.cpio.zst", "grub/grub.cfg")
    command = ["xorriso", "-osirrox", "on", "-indev", iso]
    for name in files:
        command += ["-extract", "/boot/" + name, os.path.join(extract, os.path.basename(name))]
    subprocess.run(command, check=True, capture_output=True)
    initrd = os.path.join(extract, "initrd")
    with open(initrd, "wb") as out:
        for name in ("os.cpio.zst", "layer.cpio.zst"):
            with open(os.path.join(extract, name), "rb") as part:
                shutil.copyfileobj(part, out)
    with open(os.path.join(extract, "grub.cfg")) as handle:
        match = re.search(r'^set cmdline="([^"]*)"', handle.read(), re.MULTILINE)
    cmdline = match.group(1) if match else ""
    uuid = subprocess.run(["blkid", "-p", "-s", "UUID", "-o", "value", iso], capture_output=True, text=True,
                          check=False).stdout.strip()
    if uuid:
        cmdline += " prenixos.medium=%s" % uuid
    return os.path.join(extract, "vmlinuz"), initrd, cmdline.strip()


def extract_kernel(iso, workdir):
    """The ISO's kernel, for the acceleration probe."""
    kernel = os.path.join(workdir, "vmlinuz")
    subprocess.run(["xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/boot/vmlinuz", kernel],
                   check=True, capture_output=True)
    return kernel


def ssh_command(state, key, *remote):
    return ["ssh", "-i", key, "-p", str(state["ssh_port"]), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "ConnectTimeout=10", "root@127.0.0.1", *remote]


# Serial-console landmarks of a boot, in order: where the time goes.
LANDMARKS = (
    ("grub", "Loading the kernel"),
    ("kernel", "Linux version"),
    ("init", "Run /init as init process"),
    ("systemd", "Debian GNU/Linux"),
    ("login prompt", "login:"),
)


def watch_landmarks(serial_log, started, timeline, stop_event):
    """Note when each landmark first shows on the serial console (seconds since QEMU started)."""
    while not stop_event.is_set():
        try:
            with open(serial_log, "rb") as handle:
                serial = handle.read().decode(errors="replace")
        except OSError:
            serial = ""
        for name, text in LANDMARKS:
            if name not in timeline and text in serial:
                timeline[name] = round(time.time() - started, 1)
        stop_event.wait(0.2)


def wait_ssh(workdir, key, timeout=900):
    """Wait until the key logs in as root; returns the seconds since QEMU started.

    Also notes when each serial-console landmark appeared (``timeline`` in vm.json).
    """
    import threading

    with open(state_path(workdir)) as handle:
        state = json.load(handle)
    deadline = time.monotonic() + timeout
    timeline = {}
    done = threading.Event()
    watcher = threading.Thread(target=watch_landmarks, args=(state["serial_log"], state["started"], timeline, done),
                               daemon=True)
    watcher.start()
    try:
        while True:
            if not read_pid(workdir):
                raise SystemExit("QEMU of %s is gone; serial log: %s" % (state["name"], state["serial_log"]))
            result = subprocess.run(ssh_command(state, key, "true"), capture_output=True, timeout=60, check=False)
            if result.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise SystemExit("no SSH login on %s after %d s; serial log: %s; last ssh error: %s" % (
                    state["name"], timeout, state["serial_log"], result.stderr.decode(errors="replace").strip()))
            time.sleep(1)
    finally:
        done.set()
        watcher.join()
    elapsed = time.time() - state["started"]
    limit_md_sync(state, key)
    timeline["ssh"] = round(elapsed, 1)
    state["ssh_ready_after"] = round(elapsed, 1)
    state["timeline"] = timeline
    with open(state_path(workdir), "w") as handle:
        json.dump(state, handle, indent=2)
    log("%s: SSH ready %.0f s after QEMU started (%s); serial landmarks (s): %s" % (
        state["name"], elapsed, state["accel"], ", ".join("%s %s" % kv for kv in timeline.items())))
    return elapsed


def limit_md_sync(state, key):
    """Hold the machine's md syncs to its ``md_sync_kbps``, for this boot (the sysctl is the kernel's own).

    Under software emulation a new array's initial sync takes the CPU the rest of the run needs: a
    no-change run of the first-boot playbook took 77.5 s while the demo machine's arrays synced and
    38.4 s once they were in sync (make bench). A test that is not about the sync gains nothing from
    it running at full speed; what md does with the arrays is unchanged, only how fast it syncs.
    """
    kbps = state["machine"].get("md_sync_kbps")
    if not kbps:
        return
    command = ("modprobe md_mod && echo %d > /proc/sys/dev/raid/speed_limit_min && "
               "echo %d > /proc/sys/dev/raid/speed_limit_max" % (min(100, kbps), kbps))
    result = subprocess.run(ssh_command(state, key, command), capture_output=True, timeout=60, check=False)
    if result.returncode != 0:
        raise SystemExit("could not hold the md syncs of %s to %d KiB/s: %s" % (
            state["name"], kbps, result.stderr.decode(errors="replace").strip()))


def is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def power_cut(workdir, timeout=20):
    """Kill the QEMU of ``workdir`` at once (SIGKILL, by its pidfile): what the guest had not written is lost."""
    stop_link_up_helpers(workdir)
    pid = read_pid(workdir)
    if not pid:
        raise SystemExit("power-cut: no VM runs from %s" % workdir)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while os.path.exists("/proc/%d" % pid) and not is_zombie(pid):
        if time.monotonic() > deadline:
            raise SystemExit("power-cut: QEMU pid %d is still there after SIGKILL" % pid)
        time.sleep(0.1)
    log("power cut: killed QEMU pid %d (%s)" % (pid, workdir))


def restart(workdir, kernel_args=None):
    """Boot the machine of ``workdir`` again on its disks as they are, SSH on the same port.

    ``kernel_args``: replace the machine's boot arguments for this boot (e.g. first boot on again).
    """
    with open(state_path(workdir)) as handle:
        state = json.load(handle)
    machine = dict(state["machine"])
    boot = 1
    while os.path.exists(os.path.join(workdir, "serial-boot%d.log" % boot)):
        boot += 1
    if os.path.exists(state["serial_log"]):  # the console of the boot before, kept
        os.replace(state["serial_log"], os.path.join(workdir, "serial-boot%d.log" % boot))
    if kernel_args is not None:
        machine.update(kernel_args=kernel_args, grub_append=None, grub_entry=0)
    return start(machine, state["iso"], workdir, state["accel"], keep_disks=True, port=state["ssh_port"])


def stop(workdir, timeout=20):
    """Stop the QEMU of ``workdir`` (only that process, by its pidfile)."""
    stop_link_up_helpers(workdir)
    pid = read_pid(workdir)
    if not pid:
        return False
    try:
        qmp = QMP(os.path.join(workdir, "qmp.sock"), timeout=2)
        qmp.command("quit")
        qmp.close()
    except (OSError, RuntimeError, ValueError) as error:
        log("QMP quit failed (%s): SIGTERM to pid %d" % (error, pid))
        os.kill(pid, signal.SIGTERM)
    # QEMU removes its pidfile as it quits: from here on, follow the PID verified above.
    deadline = time.monotonic() + timeout
    while os.path.exists("/proc/%d" % pid) and not is_zombie(pid):
        if time.monotonic() > deadline:
            log("QEMU pid %d still there after %d s: SIGKILL" % (pid, timeout))
            os.kill(pid, signal.SIGKILL)
            deadline += timeout
        time.sleep(0.2)
    log("stopped QEMU pid %d (%s)" % (pid, workdir))
    return True


def announce_ssh(workdir, key, message):
    """Print ``message`` once the key logs in (run in a thread by ``console``)."""
    try:
        wait_ssh(workdir, key)
    except (SystemExit, OSError, subprocess.SubprocessError):
        return
    sys.stderr.write("\n\033[1m==> %s\033[0m\n" % message)
    sys.stderr.flush()


def console(workdir, key=None, ssh_message=None):
    """Print the serial console as it comes; lines typed here go to the guest. Ctrl-C returns.

    With ``key``, also prints ``ssh_message`` the moment SSH accepts that key.
    """
    import select
    import termios
    import threading

    if key:
        threading.Thread(target=announce_ssh, args=(workdir, key, ssh_message or "SSH is up"), daemon=True).start()

    path = os.path.join(workdir, "serial.sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(path)
    # What the guest printed before we connected.
    try:
        with open(os.path.join(workdir, "serial.log"), "rb") as handle:
            sys.stdout.buffer.write(handle.read())
            sys.stdout.flush()
    except OSError:
        pass
    interactive = sys.stdin.isatty()
    saved = None
    if interactive:
        # Line mode without local echo: the guest echoes; Ctrl-C still stops us.
        saved = termios.tcgetattr(sys.stdin)
        quiet = termios.tcgetattr(sys.stdin)
        quiet[3] &= ~termios.ECHO
        termios.tcsetattr(sys.stdin, termios.TCSANOW, quiet)
    try:
        sources = [sock] + ([sys.stdin] if interactive else [])
        while read_pid(workdir):
            ready = select.select(sources, [], [], 1.0)[0]
            if sock in ready:
                data = sock.recv(65536)
                if not data:
                    break
                sys.stdout.buffer.write(data)
                sys.stdout.flush()
            if interactive and sys.stdin in ready:
                line = sys.stdin.readline()
                if not line:
                    sources.remove(sys.stdin)
                else:
                    sock.sendall(line.replace("\n", "\r").encode())
    except KeyboardInterrupt:
        pass
    finally:
        if saved is not None:
            termios.tcsetattr(sys.stdin, termios.TCSANOW, saved)
        sock.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="start a machine (a JSON file, or a name from tests/vm/machines/)")
    p_start.add_argument("machine")
    p_start.add_argument("--iso", default=os.path.join(BUILD, "pre-nixos.iso"))
    p_start.add_argument("--workdir", required=True)
    p_start.add_argument("--accel", choices=("kvm", "tcg"))
    p_start.add_argument("--prepare", metavar="SCRIPT",
                         help="first boot the machine with prenixos.firstboot=0, run SCRIPT in it, power it off")
    p_start.add_argument("--key", default=os.path.join(BUILD, "id_ed25519"), help="the key --prepare logs in with")
    for name in ("wait-ssh", "stop", "console"):
        p = sub.add_parser(name)
        p.add_argument("--workdir", required=True)
        if name == "wait-ssh":
            p.add_argument("--key", default=os.path.join(BUILD, "id_ed25519"))
            p.add_argument("--timeout", type=int, default=900)
        if name == "console":
            p.add_argument("--announce-ssh-key", help="print --announce-message once this key logs in")
            p.add_argument("--announce-message")
    p_link = sub.add_parser("link-up", help="set a NIC up once the serial console shows a text (started by start)")
    p_link.add_argument("--workdir", required=True)
    p_link.add_argument("--nic", type=int, required=True)
    p_link.add_argument("--after", required=True)
    p_link.add_argument("--delay", type=float, default=0)
    p_cut = sub.add_parser("power-cut", help="kill the machine's QEMU at once (SIGKILL), keeping its disks")
    p_cut.add_argument("--workdir", required=True)
    p_restart = sub.add_parser("restart", help="boot the machine again on its disks, SSH on the same port")
    p_restart.add_argument("--workdir", required=True)
    p_restart.add_argument("--kernel-args", help="the boot arguments for this boot instead of the machine's")
    for name, text in (("unplug", "pull a disk of the machine out (QMP device_del)"),
                       ("plug", "put a pulled disk of the machine back")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--workdir", required=True)
        p.add_argument("--index", type=int, required=True, help="the disk's place in the machine's disks (from 0)")
    p_add = sub.add_parser("add-disk", help="plug a new blank disk into the running machine")
    p_add.add_argument("--workdir", required=True)
    p_add.add_argument("--kind", default="hdd", choices=sorted(ROTATION))
    p_add.add_argument("--size", required=True)
    sub.add_parser("accel", help="probe KVM and print kvm or tcg")
    args = parser.parse_args(argv)

    if args.command == "start":
        machine = load_machine(args.machine)
        iso, workdir, accel = os.path.abspath(args.iso), os.path.abspath(args.workdir), args.accel
        if args.prepare:
            accel = prepare(normalise(machine), iso, workdir, args.key, args.prepare, accel)
        state = start(machine, iso, workdir, accel, keep_disks=bool(args.prepare))
        print(json.dumps(state))
    elif args.command == "wait-ssh":
        wait_ssh(os.path.abspath(args.workdir), args.key, args.timeout)
    elif args.command == "stop":
        stop(os.path.abspath(args.workdir))
    elif args.command == "console":
        console(os.path.abspath(args.workdir), args.announce_ssh_key, args.announce_message)
    elif args.command == "power-cut":
        power_cut(os.path.abspath(args.workdir))
    elif args.command == "restart":
        print(json.dumps(restart(os.path.abspath(args.workdir), args.kernel_args)))
    elif args.command == "unplug":
        unplug_disk(os.path.abspath(args.workdir), args.index)
    elif args.command == "plug":
        plug_disk(os.path.abspath(args.workdir), args.index)
    elif args.command == "add-disk":
        print(add_disk(os.path.abspath(args.workdir), args.kind, args.size))
    elif args.command == "link-up":
        return link_up_when(os.path.abspath(args.workdir), args.nic, args.after, args.delay)
    elif args.command == "accel":
        workdir = os.path.join(BUILD, "vm", "probe")
        os.makedirs(workdir, exist_ok=True)
        accel, why = probe_accel(extract_kernel(os.path.join(BUILD, "pre-nixos.iso"), workdir))
        print("%s: %s" % (accel, why))
    return 0


if __name__ == "__main__":
    sys.exit(main())
