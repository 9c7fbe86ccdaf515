# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd-networkd files for ``lan``, its addresses as ``ip -j`` and ``networkctl`` show them, and ``/etc/issue``.

Pure functions over strings and dicts: no command, no file. ``settings`` are the operator's, as
:func:`addressing.lan_settings` checked them; without a VLAN the NIC itself is ``lan``, with one the NIC is
``lan-port`` and ``lan`` the tagged interface on it (files ``10-lan-port.link``, ``10-lan-port.network``,
``10-lan.netdev``, ``10-lan.network``).
"""

from __future__ import annotations

import ipaddress
import json
import re

from ansible_collections.prenixos.baseline.plugins.module_utils import addressing, issue

MANAGED_BY = "# Managed by prenixos.baseline.lan; changes are overwritten."

# /etc/issue lines this collection owns: the rest of the file (the distro's banner) is kept.
ISSUE_PREFIXES = ("pre-nixos: ssh ", "pre-nixos: host key ", "pre-nixos: lan ", "pre-nixos: network")
# The flags of ``ip -j addr show`` that say whether an address can be used yet (or still).
ADDRESS_FLAGS = ("dynamic", "tentative", "deprecated", "temporary")


def link_file_name(name):
    return "10-%s.link" % name


def network_file_name(name):
    return "10-%s.network" % name


def netdev_file_name(name):
    return "10-%s.netdev" % name


def is_managed(text):
    """Whether a file's text is one this module wrote (so it may replace or remove it)."""
    return (text or "").startswith(MANAGED_BY + "\n")


def link_match(nic):
    """The ``[Match]`` line for the NIC: its permanent MAC, else (the driver made one up) its current MAC."""
    if nic.get("permanent_mac"):
        return "PermanentMACAddress=%s" % nic["permanent_mac"]
    return "MACAddress=%s" % nic["mac"]


def render_link(nic, name, original_name):
    """The ``.link`` file that names the NIC ``name`` at every boot (udev applies it when the device appears).

    The comment keeps the kernel name the NIC had before the rename: later runs read it back.
    """
    return "\n".join(
        [
            MANAGED_BY,
            "# First boot found the link on %s (driver %s, bus %s)."
            % (original_name, nic.get("driver") or "unknown", nic.get("bus_path") or "unknown"),
            "[Match]",
            link_match(nic),
            "",
            "[Link]",
            "Name=%s" % name,
            "",
        ]
    )


def recorded_original_name(link_text, nic):
    """The kernel name a ``.link`` file written by :func:`render_link` for this NIC recorded, else ``None``."""
    lines = (link_text or "").splitlines()
    if link_match(nic) not in lines:
        return None
    for line in lines:
        found = re.match(r"^# First boot found the link on (\S+) \(", line)
        if found:
            return found.group(1)
    return None


def render_network(name, settings=None):
    """The ``.network`` file of ``name``, the interface that carries the addresses.

    DHCP (no static address): DHCPv4 with the MAC as client identifier (what a DHCP reservation uses), IPv6
    router advertisements (networkd starts DHCPv6 when they ask for it), and the operator's DNS servers beside
    the server's. Static: the addresses, gateways and DNS servers as given; router advertisements are ignored
    when a static IPv6 address is given, so the machine has the one IPv6 address the operator named.
    """
    settings = settings or {}
    lines = [MANAGED_BY, "[Match]", "Name=%s" % name, "", "[Network]"]
    if addressing.is_static(settings):
        lines.append("DHCP=no")
        lines.extend("Address=%s" % address for address in settings["addresses"])
        lines.extend("Gateway=%s" % gateway for gateway in settings.get("gateways", []))
        lines.extend("DNS=%s" % server for server in settings.get("dns", []))
        static_ipv6 = 6 in addressing.static_ip_versions(settings)
        lines.extend(["IPv6AcceptRA=%s" % ("no" if static_ipv6 else "yes"), ""])
        return "\n".join(lines)
    lines.extend(["DHCP=yes", "IPv6AcceptRA=yes"])
    lines.extend("DNS=%s" % server for server in settings.get("dns", []))
    lines.extend(["", "[DHCPv4]", "ClientIdentifier=mac", ""])
    return "\n".join(lines)


def render_vlan_netdev(name, vlan):
    """The ``.netdev`` file that makes ``name`` a tagged (802.1Q) interface with the VLAN ID ``vlan``."""
    return "\n".join([MANAGED_BY, "[NetDev]", "Name=%s" % name, "Kind=vlan", "", "[VLAN]", "Id=%d" % vlan, ""])


def render_port_network(port, name):
    """The ``.network`` file of the NIC under a VLAN: it carries ``name`` and has no address of its own."""
    return "\n".join(
        [
            MANAGED_BY,
            "[Match]",
            "Name=%s" % port,
            "",
            "[Network]",
            "VLAN=%s" % name,
            "LinkLocalAddressing=no",
            "IPv6AcceptRA=no",
            "DHCP=no",
            "",
        ]
    )


def _json(text, what):
    try:
        return json.loads(text or "null")
    except ValueError:
        raise ValueError("%s printed something that is not JSON: %r" % (what, (text or "")[:200])) from None


def parse_addresses(text):
    """``ip -j -4 addr show dev X`` or ``ip -j -6 ...`` → each address with the flags that say whether it is
    usable: ``{"interface": IPv4Interface or IPv6Interface, "scope": "global", "dynamic": True, "tentative":
    False, "deprecated": False, "temporary": False}``."""
    found = []
    for link in _json(text, "ip -j addr show") or []:
        for info in link.get("addr_info", []) if isinstance(link, dict) else []:
            try:
                interface = ipaddress.ip_interface("%s/%s" % (info["local"], info["prefixlen"]))
            except (KeyError, TypeError, ValueError):
                continue
            address = {flag: bool(info.get(flag)) for flag in ADDRESS_FLAGS}
            address.update(interface=interface, scope=info.get("scope", "global"))
            found.append(address)
    return found


def _usable(address, version):
    """Global, done with duplicate address detection and not on its way out: an address to SSH to."""
    return (
        address["interface"].version == version
        and address["scope"] == "global"
        and not (address["tentative"] or address["deprecated"] or address["temporary"])
    )


def ipv4_address(addresses):
    """The first usable IPv4 address of :func:`parse_addresses`' list, a DHCP (dynamic) one before a static one."""
    found = [address for address in addresses if _usable(address, 4)]
    return min(found, key=lambda address: not address["dynamic"])["interface"] if found else None


def ipv6_address(addresses):
    """The first usable global IPv6 address (link-local, tentative, deprecated and temporary ones left out)."""
    return next((address["interface"] for address in addresses if _usable(address, 6)), None)


def parse_ipv4_address(text):
    """``ip -j -4 addr show dev X`` → the first global IPv4 address as an ``IPv4Interface``, or ``None``."""
    return ipv4_address(parse_addresses(text))


def parse_ipv6_address(text):
    """``ip -j -6 addr show dev X`` → the first usable global IPv6 address as an ``IPv6Interface``, or ``None``."""
    return ipv6_address(parse_addresses(text))


def missing_addresses(wanted, addresses):
    """The ``ADDR/PREFIX`` texts of ``wanted`` that are not on the link yet (a tentative one is not there yet)."""
    present = {address["interface"] for address in addresses if not address["tentative"]}
    return [text for text in wanted if ipaddress.ip_interface(text) not in present]


def parse_vlan_link(text):
    """``ip -j -d link show dev X`` → ``{"kind": "vlan", "id": 42, "parent": "lan-port"}``; kind and id are
    ``None`` for a link that is no VLAN (a NIC), and the whole is ``None`` when there is no such link."""
    for link in _json(text, "ip -j -d link show") or []:
        if not isinstance(link, dict) or not link.get("ifname"):
            continue
        info = link.get("linkinfo") if isinstance(link.get("linkinfo"), dict) else {}
        data = info.get("info_data") if isinstance(info.get("info_data"), dict) else {}
        kind = info.get("info_kind")
        return {"kind": kind, "id": data.get("id") if kind == "vlan" else None, "parent": link.get("link")}
    return None


def parse_default_gateway(text):
    """``ip -j -4 route show default dev X`` → the gateway (str) of the first default route, or ``None``."""
    for route in _json(text, "ip -j -4 route show default") or []:
        if isinstance(route, dict) and route.get("gateway"):
            try:
                return str(ipaddress.ip_address(route["gateway"]))
            except ValueError:
                continue
    return None


def parse_networkctl_status(text):
    """``networkctl status --no-pager X`` (LC_ALL=C) → ``{"state": "routable (configured)", "dns": [...]}``.

    Text rather than ``--json``: systemd 252 (Debian 12) leaves DNS out of its JSON. A field's
    further values sit on the following lines, indented, without a label.
    """
    fields = {}
    label = None
    for line in (text or "").splitlines():
        found = re.match(r"^\s*([A-Z][A-Za-z0-9 /().-]*):\s(.*)$", line)
        if found:
            label = found.group(1).strip()
            fields.setdefault(label, []).append(found.group(2).strip())
        elif label and line.startswith(" ") and line.strip():
            fields[label].append(line.strip())
        else:
            label = None
    servers = []
    for value in fields.get("DNS", []):
        try:
            server = str(ipaddress.ip_address(value.split()[0]))
        except (IndexError, ValueError):
            continue
        if server not in servers:
            servers.append(server)
    state = fields.get("State", [""])[0]
    return {"state": state, "configured": "(configured)" in state, "dns": servers}


def lease_facts(interface, gateway, dns, interface6=None):
    """What the module returns about the addresses, from an ``IPv4Interface`` and an ``IPv6Interface``."""
    facts = {"address": None, "prefix": None, "network": None, "gateway": gateway, "dns": dns}
    if interface is not None:
        facts.update(address=str(interface.ip), prefix=interface.network.prefixlen, network=str(interface.network))
    facts.update(
        address6=str(interface6.ip) if interface6 is not None else None,
        prefix6=interface6.network.prefixlen if interface6 is not None else None,
    )
    return facts


def render_issue(existing, lines):
    """``/etc/issue`` with the LAN's ``lines``; the lines starting with one of ``ISSUE_PREFIXES`` are replaced."""
    return issue.render(existing, lines, ISSUE_PREFIXES)


def success_lines(lease, name, nic, host_key=None, settings=None):
    """The operator's lines for a configured ``lan``: where to SSH (IPv4, then IPv6), the ``host_key``
    (``SHA256:... (ED25519)``) to check at first contact, then how ``lan`` is configured."""
    lines = ["pre-nixos: ssh root@%s" % address for address in (lease["address"], lease.get("address6")) if address]
    if host_key:
        lines.append("pre-nixos: host key %s" % host_key)
    lines.append("pre-nixos: lan %s" % lan_details(lease, name, nic, settings or {}))
    return lines


def lan_details(lease, name, nic, settings):
    """``DHCP 10.0.2.15/24 2001:db8::10/64 gateway 10.0.2.2 dns 10.0.2.3 on lan (VLAN 42 over lan-port,
    52:54:00:12:34:56, was ens3)``: how it is configured, what it has, and which NIC it is."""
    static = addressing.is_static(settings)
    parts = ["static" if static else "DHCP"]
    if not lease["address"] and not static:
        parts.append("(no IPv4 lease)")
    if lease["address"]:
        parts.append("%s/%s" % (lease["address"], lease["prefix"]))
    if lease.get("address6"):
        parts.append("%s/%s" % (lease["address6"], lease["prefix6"]))
    if lease.get("gateway"):
        parts.append("gateway %s" % lease["gateway"])
    if lease.get("dns"):
        parts.append("dns %s" % ",".join(lease["dns"]))
    nic_parts = []
    if settings.get("vlan"):
        nic_parts.append("VLAN %d over %s" % (settings["vlan"], addressing.port_name(name)))
    nic_parts.append(nic["mac"])
    if nic["name"] != name:
        nic_parts.append("was %s" % nic["name"])
    parts.append("on %s (%s)" % (name, ", ".join(nic_parts)))
    return " ".join(parts)


def failure_lines(message, hint=""):
    """The operator's lines when the network is not configured."""
    lines = ["pre-nixos: network not configured: %s" % message]
    if hint:
        lines.append("pre-nixos: network: %s" % hint)
    return lines
