# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the scenarios' testinfra tests."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "vm"))
from qemu import file_sha256, load_machine, nic_mac  # noqa: E402

# tests/vm/qemu.py gives every emulated disk the serial pn-<kind><n> (pn-nvme1, pn-ssd2, pn-usb1).
SERIAL = re.compile(r"^pn-(nvme|ssd|hdd|usb)\d+$")


def scenario_platform(name=None):
    """The scenario's platform entry from molecule.yml (the first one unless ``name`` is given)."""
    directory = os.environ.get("MOLECULE_SCENARIO_DIRECTORY") or os.path.join(
        os.path.dirname(__file__), "..", "default")
    with open(os.path.join(directory, "molecule.yml")) as handle:
        platforms = yaml.safe_load(handle)["platforms"]
    return next(p for p in platforms if name in (None, p["name"]))


def scenario_machine(name=None):
    """The machine the scenario's platform boots: named (tests/vm/machines/) or given inline."""
    machine = scenario_platform(name).get("machine", {})
    return load_machine(machine) if isinstance(machine, str) else machine


def expected_disks(name=None):
    """The disks the scenario's machine emulates (``{kind, size}`` each)."""
    return scenario_machine(name).get("disks", [])


def guest_disks(host):
    """Kernel name -> emulated kind, for every disk of the guest that the launcher made."""
    disks = {}
    for line in host.check_output("lsblk --nodeps --noheadings --output NAME,SERIAL").splitlines():
        fields = line.split()
        if len(fields) == 2 and SERIAL.match(fields[1]):
            disks[fields[0]] = SERIAL.match(fields[1]).group(1)
    return disks


def disks_by_serial(host):
    """Serial -> kernel name, for every disk of the guest that reports a serial."""
    return {line.split()[1]: line.split()[0]
            for line in host.check_output("lsblk --nodeps --noheadings --output NAME,SERIAL").splitlines()
            if len(line.split()) == 2}


def converge_rounds(host):
    """What the scenario's converge wrote down for verify: /var/log/pre-nixos/<scenario>-rounds.json."""
    scenario = os.environ.get("MOLECULE_SCENARIO_NAME", "default")
    return json.loads(host.file("/var/log/pre-nixos/%s-rounds.json" % scenario).content_string)


def unit_properties(host, unit, *names):
    """``systemctl show`` properties of ``unit`` as a dict."""
    output = host.check_output("systemctl show %s %s" % (unit, " ".join("--property=%s" % n for n in names)))
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def workdir(name=None):
    """The launcher's directory of the scenario's machine on this host (serial log, disk files, vm.json)."""
    root = os.environ.get("MOLECULE_PROJECT_DIRECTORY") or os.path.join(os.path.dirname(__file__), "..", "..")
    scenario = os.environ.get("MOLECULE_SCENARIO_NAME", "default")
    return os.path.join(root, "build", "molecule", scenario, scenario_platform(name)["name"])


def serial_log(name=None):
    """What the guest printed on its serial console so far (the launcher's log on this host)."""
    with open(os.path.join(workdir(name), "serial.log"), "rb") as handle:
        return handle.read().decode(errors="replace")


# What the console a machine boots on must show, in the order an operator sees it (issue: the console is asserted,
# not only recorded): (what, regular expression).
CONSOLE_LANDMARKS = [
    ("GRUB's menu", r"GNU GRUB +version"),
    ("the menu's title", r"pre-nixos baseline \d+\.\d+\.\d+"),
    ("the kernel's first lines", r"Linux version \S+-amd64"),
    ("first boot's phase lines", r"pre-nixos: storage_apply +done"),
    ("where to SSH", r"ssh root@10\.0\.2\.\d+"),
    ("a getty, root logged in", r"login: root \(automatic login\)"),
]


SECURE_BOOT_VARIABLE = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"


def firmware(host):
    """How the guest booted, as it sees it: ``bios``, ``uefi`` or ``uefi-secureboot`` (its SecureBoot variable)."""
    if not host.file("/sys/firmware/efi").exists:
        return "bios"
    value = host.run("od -An -tu1 %s" % SECURE_BOOT_VARIABLE).stdout.split()
    return "uefi-secureboot" if value[-1:] == ["1"] else "uefi"


def boot_medium(host, name=None):
    """The image as a stick or a disk (serial pn-medium): its kernel name in the guest, why the plan left it
    out, and whether its file on this host is still, byte for byte, what the launcher copied from the ISO."""
    kernel_name = disks_by_serial(host).get("pn-medium")
    excluded = {item["disk"]: item["reason"] for item in plan(host).get("excluded", [])}
    with open(os.path.join(workdir(name), "medium.sha256")) as handle:
        copied = handle.read().strip()
    return {"name": kernel_name, "excluded": excluded.get(kernel_name),
            "unchanged": file_sha256(os.path.join(workdir(name), "medium.img")) == copied}


def first_boot_status(host):
    """The guest's /run/pre-nixos/status.json."""
    return json.loads(host.file("/run/pre-nixos/status.json").content_string)


def plan(host):
    """The storage plan first boot wrote."""
    return json.loads(host.file("/var/log/pre-nixos/plan.json").content_string)


def nixos_configuration(host, directory):
    """The guest's /mnt/etc/nixos/pre-nixos.nix as text, after checking that it parses (nix-instantiate on the
    host, the file copied into ``directory``)."""
    nix = host.file("/mnt/etc/nixos/pre-nixos.nix")
    assert nix.exists, "expected /mnt/etc/nixos/pre-nixos.nix"
    text = nix.content_string
    copy = os.path.join(str(directory), "pre-nixos.nix")
    with open(copy, "w", encoding="utf-8") as handle:
        handle.write(text)
    parsed = subprocess.run(["nix-instantiate", "--parse", copy], capture_output=True, text=True, check=False)
    assert parsed.returncode == 0, "expected pre-nixos.nix to parse, nix-instantiate says:\n%s" % parsed.stderr
    return text


def guest_json(host, command):
    """A command's JSON output (lsblk -J, ip -j, vgs --reportformat json, ...)."""
    return json.loads(host.check_output(command))


def planned_mounts(plan_data, root="/mnt"):
    """Mount point under ``root`` -> filesystem label, for every filesystem the plan mounts."""
    mounts = {}
    for volume in plan_data["logical_volumes"] + plan_data["partitions"]:
        if volume.get("mountpoint") and volume.get("filesystem") != "swap":
            mounts[os.path.normpath(root + volume["mountpoint"])] = volume["label"]
    return mounts


def nic_macs(name=None):
    """The MAC the launcher gives each NIC of the scenario's machine, in order (52:54:00:00:00:10, ...)."""
    nics = scenario_machine(name).get("nics", [{}])
    return [nic_mac(nic, index) for index, nic in enumerate(nics)]


def links_by_mac(host):
    """MAC -> interface name, for every link of the guest."""
    return {link.get("address"): link["ifname"] for link in guest_json(host, "ip -j link show")}
