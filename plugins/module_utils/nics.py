# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Physical NICs from sysfs, and the choice of the one that becomes ``lan``.

A NIC (``ansible_facts.prenixos_nics[]``)::

    {"name": "ens3", "mac": "52:54:00:12:34:56", "permanent_mac": "52:54:00:12:34:56",
     "driver": "e1000", "bus_path": "0000:00:03.0", "device_path": "devices/pci0000:00/0000:00:03.0",
     "usb": false, "up": false, "operstate": "down", "carrier": null, "speed": null}

Physical means "has a ``device`` link in ``/sys/class/net/<name>``" (so ``lo``, bridges,
bonds, veths and tunnels are left out). Every sysfs read takes the sysfs root, so tests
point it at a fake tree. ``carrier`` and ``speed`` of a down link fail with EINVAL in
the kernel: that, and a missing file, reads as ``None`` (unknown).

Everything here is pure except :func:`read_file` (the one sysfs reader, replaceable in
tests) and :func:`gather_nics`, which walks the tree. MACs are read with netaddr
(:mod:`addressing`), so every module that uses this file needs it.
"""

from __future__ import annotations

import errno
import json
import os
import re

from ansible_collections.prenixos.baseline.plugins.module_utils import addressing

# Reading these errors means "the kernel cannot tell now", not "something is broken".
UNKNOWN_ERRNOS = (errno.ENOENT, errno.EINVAL, errno.ENODEV, errno.EOPNOTSUPP, errno.ENOTSUP)
# PCI addresses and root buses are fixed-width hex: compared as text they sort in bus order.
PCI_ADDRESS = re.compile(r"^([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]|pci[0-9a-f]{4}:[0-9a-f]{2})$")
IFF_UP = 0x1
ADDR_ASSIGN_PERMANENT = 0


class NicFactsError(Exception):
    """sysfs or ``ip`` gave something that cannot be understood."""


def read_file(path):
    """The raw content of a sysfs file. Tests replace this to make a read fail with EINVAL."""
    with open(path) as handle:
        return handle.read()


def read_attr(path):
    """A sysfs attribute, stripped; ``None`` when missing or when the kernel cannot tell (EINVAL...)."""
    try:
        return read_file(path).strip()
    except OSError as err:
        if err.errno in UNKNOWN_ERRNOS:
            return None
        raise NicFactsError("cannot read %s: %s" % (path, err.strerror)) from err


def parse_ip_link(text):
    """``ip -j link show`` → ``{ifname: {"address": ..., "permaddr": ...}}``.

    iproute2 prints ``permaddr`` only when it differs from the current address.
    """
    try:
        links = json.loads(text or "[]")
    except ValueError as err:
        raise NicFactsError("ip -j link show printed something that is not JSON: %s" % err) from err
    if not isinstance(links, list):
        raise NicFactsError("ip -j link show printed %s, expected a list" % type(links).__name__)
    result = {}
    for link in links:
        if not isinstance(link, dict) or not link.get("ifname"):
            continue
        if not isinstance(link["ifname"], str):
            raise NicFactsError("ip -j link show printed an ifname that is not a string: %r" % (link["ifname"],))
        result[link["ifname"]] = {
            "address": addressing.mac_or_none(link.get("address")),
            "permaddr": addressing.mac_or_none(link.get("permaddr")),
        }
    return result


def _natural(text):
    return tuple(int(part) if part.isdecimal() else part for part in re.split(r"(\d+)", text))


def bus_key(device_path):
    """Sort key following the device tree: PCI addresses compare as (fixed-width hex) text, the rest naturally."""
    return tuple(
        (0, part, ()) if PCI_ADDRESS.match(part) else (1, "", _natural(part)) for part in device_path.split("/")
    )


def _int_or_none(value):
    try:
        return int(value, 0)
    except (TypeError, ValueError):
        return None


def _carrier(value):
    return {"1": True, "0": False}.get(value)


def _speed(value):
    speed = _int_or_none(value)
    return speed if speed is not None and speed > 0 else None


def read_nic(sysfs_root, name, ip_links=None):
    """One NIC from ``<sysfs_root>/class/net/<name>``, or ``None`` when it has no ``device`` link."""
    net = os.path.join(sysfs_root, "class", "net", name)
    device_link = os.path.join(net, "device")
    if not os.path.islink(device_link) and not os.path.isdir(device_link):
        return None
    device = os.path.realpath(device_link)
    device_path = os.path.relpath(device, os.path.realpath(sysfs_root))
    driver_link = os.path.join(device_link, "driver")
    driver = os.path.basename(os.path.realpath(driver_link)) if os.path.exists(driver_link) else None
    mac = addressing.mac_or_none(read_attr(os.path.join(net, "address")))
    link = (ip_links or {}).get(name, {})
    permanent_mac = link.get("permaddr")
    if permanent_mac is None and _int_or_none(read_attr(os.path.join(net, "addr_assign_type"))) in (
        ADDR_ASSIGN_PERMANENT,
        None,
    ):
        # The kernel sets the permanent address from the first one when the driver read it from the hardware.
        permanent_mac = mac
    flags = _int_or_none(read_attr(os.path.join(net, "flags")))
    return {
        "name": name,
        "mac": mac,
        "permanent_mac": permanent_mac,
        "driver": driver,
        "bus_path": os.path.basename(device),
        "device_path": device_path,
        "usb": "/usb" in "/" + device_path,
        "up": bool(flags & IFF_UP) if flags is not None else False,
        "operstate": read_attr(os.path.join(net, "operstate")) or "unknown",
        "carrier": _carrier(read_attr(os.path.join(net, "carrier"))),
        "speed": _speed(read_attr(os.path.join(net, "speed"))),
    }


def gather_nics(sysfs_root="/sys", ip_links=None):
    """Every physical NIC, in bus order (device tree), then by name."""
    net_dir = os.path.join(sysfs_root, "class", "net")
    try:
        names = os.listdir(net_dir)
    except FileNotFoundError:
        return []
    except OSError as err:
        raise NicFactsError("cannot list %s: %s" % (net_dir, err.strerror)) from err
    nics = [nic for nic in (read_nic(sysfs_root, name, ip_links) for name in names) if nic is not None]
    return sorted(nics, key=lambda nic: (bus_key(nic["device_path"]), _natural(nic["name"])))


def has_link(nic):
    """Carrier when the kernel tells it, else operstate ``up``."""
    if nic["carrier"] is not None:
        return nic["carrier"]
    return nic["operstate"] == "up"


def describe(nic):
    """``ens3 (52:54:00:12:34:56, operstate down, carrier unknown)`` for messages."""
    carrier = {True: "1", False: "0", None: "unknown"}[nic["carrier"]]
    return "%s (%s, operstate %s, carrier %s)" % (nic["name"], nic["mac"], nic["operstate"], carrier)


def matches_mac(nic, mac):
    mac = addressing.mac_or_none(mac)
    return mac is not None and mac in (nic["mac"], nic["permanent_mac"])


def candidates(nics, mac=None):
    """The NICs that may become ``lan``: the one with the operator's MAC, else all of them."""
    if mac is None:
        return list(nics)
    return [nic for nic in nics if matches_mac(nic, mac)]


def pick_nic(nics, name="lan"):
    """Of the NICs with a link: the one already called ``name``, else the fastest, else the first on the bus.

    USB NICs (a BMC's virtual NIC, a dongle) come after every other: an onboard or PCIe port
    is what a rack cable goes into. ``nics`` must be in bus order (as :func:`gather_nics` gives).
    """
    linked = [(position, nic) for position, nic in enumerate(nics) if has_link(nic)]
    if not linked:
        return None
    for _position, nic in linked:
        if nic["name"] == name:
            return nic
    return min(linked, key=lambda item: (item[1]["usb"], -(item[1]["speed"] or 0), item[0]))[1]
