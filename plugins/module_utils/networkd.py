# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd-networkd files for ``lan``, the lease as ``ip -j`` and ``networkctl`` show it, and ``/etc/issue``.

Pure functions over strings and dicts: no command, no file.
"""

from __future__ import annotations

import ipaddress
import json
import re

from ansible_collections.prenixos.baseline.plugins.module_utils import issue

MANAGED_BY = "# Managed by prenixos.baseline.lan; changes are overwritten."

# /etc/issue lines this collection owns: the rest of the file (the distro's banner) is kept.
ISSUE_PREFIXES = ("pre-nixos: ssh ", "pre-nixos: host key ", "pre-nixos: lan ", "pre-nixos: network")


def link_file_name(name):
    return "10-%s.link" % name


def network_file_name(name):
    return "10-%s.network" % name


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


def render_network(name):
    """The ``.network`` file: DHCPv4 on ``name``, client identified by its MAC (what a DHCP reservation uses)."""
    return "\n".join(
        [
            MANAGED_BY,
            "[Match]",
            "Name=%s" % name,
            "",
            "[Network]",
            "DHCP=ipv4",
            "",
            "[DHCPv4]",
            "ClientIdentifier=mac",
            "",
        ]
    )


def _json(text, what):
    try:
        return json.loads(text or "null")
    except ValueError:
        raise ValueError("%s printed something that is not JSON: %r" % (what, (text or "")[:200])) from None


def parse_ipv4_address(text):
    """``ip -j -4 addr show dev X`` → the first global IPv4 address as an ``IPv4Interface``, or ``None``.

    A DHCP (dynamic) address wins over a static one.
    """
    found = []
    for link in _json(text, "ip -j -4 addr show") or []:
        for info in link.get("addr_info", []) if isinstance(link, dict) else []:
            if info.get("family") != "inet" or info.get("scope", "global") != "global" or info.get("tentative"):
                continue
            try:
                found.append(
                    (
                        not info.get("dynamic", False),
                        ipaddress.ip_interface("%s/%s" % (info["local"], info["prefixlen"])),
                    )
                )
            except (KeyError, ValueError):
                continue
    return min(found, key=lambda item: item[0])[1] if found else None


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


def lease_facts(interface, gateway, dns):
    """What the module returns about the lease, from an ``IPv4Interface``."""
    if interface is None:
        return {"address": None, "prefix": None, "network": None, "gateway": gateway, "dns": dns}
    return {
        "address": str(interface.ip),
        "prefix": interface.network.prefixlen,
        "network": str(interface.network),
        "gateway": gateway,
        "dns": dns,
    }


def render_issue(existing, lines):
    """``/etc/issue`` with the LAN's ``lines``; the lines starting with one of ``ISSUE_PREFIXES`` are replaced."""
    return issue.render(existing, lines, ISSUE_PREFIXES)


def success_lines(lease, name, nic, host_key=None):
    """The operator's lines for a configured ``lan``, with ``host_key`` (``SHA256:... (ED25519)``) to check at first
    contact right after the ssh line."""
    details = "%s/%s" % (lease["address"], lease["prefix"])
    if lease.get("gateway"):
        details += " gateway %s" % lease["gateway"]
    if lease.get("dns"):
        details += " dns %s" % ",".join(lease["dns"])
    details += " on %s (%s%s)" % (name, nic["mac"], ", was %s" % nic["name"] if nic["name"] != name else "")
    lines = ["pre-nixos: ssh root@%s" % lease["address"], "pre-nixos: lan %s" % details]
    if host_key:
        lines.insert(1, "pre-nixos: host key %s" % host_key)
    return lines


def failure_lines(message, hint=""):
    """The operator's lines when the network is not configured."""
    lines = ["pre-nixos: network not configured: %s" % message]
    if hint:
        lines.append("pre-nixos: network: %s" % hint)
    return lines
