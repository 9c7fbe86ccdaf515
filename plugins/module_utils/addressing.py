# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The operator's network settings for ``lan``, read and checked with ``netaddr``.

Pure functions: text in, normalised values out, :class:`AddressError` with the reason for anything
that cannot be used. Both the live network (module ``lan``) and the installed system's
configuration (module ``nixos_config``) take their settings through here, so the two agree.

Settings (:func:`lan_settings`)::

    {"addresses": ["192.0.2.10/24", "2001:db8::10/64"],   # empty: DHCP (and IPv6 router advertisements)
     "gateways": ["192.0.2.1"], "dns": ["192.0.2.53"], "vlan": 42}
"""

from __future__ import annotations

import traceback

try:
    from netaddr import EUI, AddrFormatError, IPAddress, IPNetwork, mac_unix_expanded
except ImportError:
    # The image and the controller's venv carry netaddr; a module that needs it says so (require_netaddr).
    NETADDR_IMPORT_ERROR = traceback.format_exc()
    AddrFormatError = ValueError
else:
    NETADDR_IMPORT_ERROR = None

# IEEE 802.1Q: 0 and 4095 are reserved.
VLAN_IDS = (1, 4094)
# With a VLAN, the tagged interface is what the operator knows as ``lan``; the NIC it rides on (the one with
# the link) is named ``lan-port``.
PORT_SUFFIX = "-port"


class AddressError(ValueError):
    """A MAC, address, gateway, DNS server or VLAN that cannot be used; the message says why."""


def require_netaddr(module):
    """Fail the module with Ansible's usual message when the Python that runs it has no netaddr."""
    if NETADDR_IMPORT_ERROR:
        from ansible.module_utils.basic import missing_required_lib  # pylint: disable=import-outside-toplevel

        module.fail_json(msg=missing_required_lib("netaddr"), exception=NETADDR_IMPORT_ERROR)


def mac(text):
    """A MAC in any common notation (``52:54:00:AB:CD:EF``, ``52-54-00-ab-cd-ef``, ``5254.00ab.cdef``,
    ``525400abcdef``) as ``52:54:00:ab:cd:ef``; :class:`AddressError` for anything else."""
    if isinstance(text, str) and text.strip():
        try:
            found = EUI(text.strip(), version=48, dialect=mac_unix_expanded)
        except (AddrFormatError, TypeError, ValueError):
            found = None
        if found is not None:
            return str(found)
    raise AddressError(
        "%r is not a MAC address (six hex pairs, like 52:54:00:12:34:56, 52-54-00-12-34-56 or 5254.0012.3456)"
        % (text,)
    )


def mac_or_none(text):
    """:func:`mac`, or ``None`` where the text is no MAC (sysfs and ``ip`` report odd things for odd links)."""
    try:
        return mac(text)
    except AddressError:
        return None


def _address(text, what):
    if isinstance(text, str) and "/" not in text:
        try:
            return IPAddress(text.strip())
        except (AddrFormatError, TypeError, ValueError):
            pass
    raise AddressError("the %s %r is not an IPv4 or IPv6 address" % (what, text))


def host_address(text):
    """``ADDR/PREFIX`` for a host: the prefix is required, and the network's own address (and, for IPv4, its
    broadcast address) is refused. Returns the ``netaddr.IPNetwork`` (its ``ip`` is the host's address)."""
    text = str(text if text is not None else "").strip()
    if "/" not in text:
        raise AddressError(
            "the address %r has no prefix length: give it as ADDR/PREFIX, like 192.0.2.10/24 or 2001:db8::10/64"
            % text
        )
    try:
        interface = IPNetwork(text)
        IPAddress(text.split("/", 1)[0])
    except (AddrFormatError, TypeError, ValueError):
        raise AddressError(
            "the address %r is not an address with a prefix length (like 192.0.2.10/24 or 2001:db8::10/64)" % text
        ) from None
    # Point-to-point prefixes (/31 and /32, RFC 3021; /127 and /128, RFC 6164) have no network or broadcast
    # address to keep clear of.
    if interface.prefixlen < (31 if interface.version == 4 else 127):
        if interface.ip == interface.network:
            raise AddressError(
                "the address %s is the network's own address (%s): give a host address in it" % (text, interface.cidr)
            )
        if interface.version == 4 and interface.ip == interface.broadcast:
            raise AddressError(
                "the address %s is the broadcast address of %s: give a host address in it" % (text, interface.cidr)
            )
    return interface


def _split(value):
    """A list, or one string of values separated by commas (as the kernel switches give them)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(part).strip() for part in value if str(part).strip()]


def vlan_id(value):
    """A VLAN ID (1-4094) as an int, ``None`` for none (``None``, ``""``, ``0``)."""
    if value in (None, "", 0, "0"):
        return None
    try:
        number = int(str(value).strip(), 10)
    except ValueError:
        number = None
    if number is None or not VLAN_IDS[0] <= number <= VLAN_IDS[1]:
        raise AddressError("the VLAN ID %r is not a number from %d to %d" % (value, VLAN_IDS[0], VLAN_IDS[1]))
    return number


def lan_settings(addresses=None, gateways=None, dns=None, vlan=None):
    """The operator's settings checked together (see the module's docstring); raises :class:`AddressError`.

    Every gateway must lie inside the network of a static address of its IP version, so a gateway
    needs an address; DNS servers may be given with DHCP too (they are used beside the server's).
    """
    interfaces = [host_address(text) for text in _split(addresses)]
    versions = [interface.version for interface in interfaces]
    for version in set(versions):
        if versions.count(version) > 1:
            raise AddressError(
                "more than one IPv%d address given (%s): give one per IP version"
                % (version, ", ".join(str(i) for i in interfaces if i.version == version))
            )
    checked_gateways = []
    for text in _split(gateways):
        gateway = _address(text, "gateway")
        same_version = [interface for interface in interfaces if interface.version == gateway.version]
        if not same_version:
            raise AddressError(
                "the gateway %s needs a static IPv%d address on lan to be reached through"
                % (gateway, gateway.version)
            )
        network = same_version[0].cidr
        if gateway not in network and not gateway.is_link_local():
            raise AddressError(
                "the gateway %s is outside the network %s of the address %s" % (gateway, network, same_version[0])
            )
        if gateway == same_version[0].ip:
            raise AddressError("the gateway %s is the machine's own address" % gateway)
        if gateway.version in [g.version for g in checked_gateways]:
            raise AddressError("more than one IPv%d gateway given: give one per IP version" % gateway.version)
        checked_gateways.append(gateway)
    servers = [str(_address(text, "DNS server")) for text in _split(dns)]
    return {
        "addresses": [str(interface) for interface in interfaces],
        "gateways": [str(gateway) for gateway in checked_gateways],
        "dns": servers,
        "vlan": vlan_id(vlan),
    }


def port_name(name):
    """The name of the NIC that carries the VLAN ``name`` (``lan`` → ``lan-port``)."""
    return name + PORT_SUFFIX


def static_ip_versions(settings):
    """The IP versions (4, 6) of the static addresses in checked ``settings``."""
    return {IPNetwork(address).version for address in (settings or {}).get("addresses", [])}


def is_static(settings):
    return bool(settings and settings.get("addresses"))


def describe(settings):
    """One line for the operator: ``static 192.0.2.10/24 via 192.0.2.1, DNS 192.0.2.53, VLAN 42`` or ``DHCP``."""
    parts = []
    if is_static(settings):
        text = "static %s" % ", ".join(settings["addresses"])
        if settings.get("gateways"):
            text += " via %s" % ", ".join(settings["gateways"])
        parts.append(text)
    else:
        parts.append("DHCP")
    if settings and settings.get("dns"):
        parts.append("DNS %s" % ", ".join(settings["dns"]))
    if settings and settings.get("vlan"):
        parts.append("VLAN %d" % settings["vlan"])
    return ", ".join(parts)
