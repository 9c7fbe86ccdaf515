"""The operator's network settings: every MAC notation, every validation rule (module_utils/addressing)."""
from __future__ import annotations

import pytest

from ansible_collections.prenixos.baseline.plugins.module_utils import addressing
from ansible_collections.prenixos.baseline.plugins.module_utils.addressing import AddressError


@pytest.mark.parametrize(
    "given",
    [
        "52:54:00:ab:cd:ef",
        "52:54:00:AB:CD:EF",
        "52-54-00-ab-cd-ef",
        "52-54-00-AB-CD-EF",
        "5254.00ab.cdef",
        "5254.00AB.CDEF",
        "525400abcdef",
        "525400ABCDEF",
        "52:54:0:ab:cd:ef",
        " 52:54:00:ab:cd:ef\n",
    ],
)
def test_every_common_mac_notation_reads_as_one(given):
    assert addressing.mac(given) == "52:54:00:ab:cd:ef"


@pytest.mark.parametrize(
    "given", ["", "   ", None, 42, "zz", "52:54:00:ab:cd", "52:54:00:ab:cd:ef:01:02", "52:54:00:ab:cd:eg", "lan"]
)
def test_what_is_no_mac_is_refused_with_the_notations_it_takes(given):
    with pytest.raises(AddressError, match="is not a MAC address .*52-54-00-12-34-56 or 5254.0012.3456"):
        addressing.mac(given)
    assert addressing.mac_or_none(given) is None


@pytest.mark.parametrize(
    "given, normal",
    [
        ("192.0.2.10/24", "192.0.2.10/24"),
        ("2001:db8::10/64", "2001:db8::10/64"),
        ("2001:DB8:0:0::10/64", "2001:db8::10/64"),
        ("192.0.2.0/31", "192.0.2.0/31"),
        ("192.0.2.1/31", "192.0.2.1/31"),
        ("192.0.2.7/32", "192.0.2.7/32"),
        ("2001:db8::/127", "2001:db8::/127"),
    ],
)
def test_host_addresses_with_a_prefix_are_taken(given, normal):
    assert str(addressing.host_address(given)) == normal


@pytest.mark.parametrize(
    "given, reason",
    [
        ("192.0.2.10", "has no prefix length: give it as ADDR/PREFIX"),
        ("2001:db8::10", "has no prefix length"),
        ("", "has no prefix length"),
        ("192.0.2.300/24", "is not an address with a prefix length"),
        ("192.0.2.10/33", "is not an address with a prefix length"),
        ("2001:db8::10/129", "is not an address with a prefix length"),
        ("10.1/8", "is not an address with a prefix length"),
        ("010.0.0.1/8", "is not an address with a prefix length"),
        ("lan/24", "is not an address with a prefix length"),
        ("192.0.2.0/24", r"is the network's own address \(192.0.2.0/24\)"),
        ("2001:db8::/64", r"is the network's own address \(2001:db8::/64\)"),
        ("192.0.2.255/24", r"is the broadcast address of 192.0.2.0/24"),
        ("10.0.3.255/22", r"is the broadcast address of 10.0.0.0/22"),
    ],
)
def test_addresses_a_host_cannot_have_are_refused_with_the_reason(given, reason):
    with pytest.raises(AddressError, match=reason):
        addressing.host_address(given)


def test_an_ipv6_network_has_no_broadcast_to_refuse():
    assert str(addressing.host_address("2001:db8::ffff:ffff:ffff:ffff/64")) == "2001:db8::ffff:ffff:ffff:ffff/64"


def test_settings_read_lists_and_comma_separated_switch_values_alike():
    from_switches = addressing.lan_settings(
        addresses="192.0.2.10/24, 2001:db8::10/64", gateways="192.0.2.1,2001:db8::1", dns="192.0.2.53,2001:db8::53",
        vlan="42",
    )
    from_variables = addressing.lan_settings(
        addresses=["192.0.2.10/24", "2001:db8::10/64"], gateways=["192.0.2.1", "2001:db8::1"],
        dns=["192.0.2.53", "2001:db8::53"], vlan=42,
    )
    assert from_switches == from_variables == {
        "addresses": ["192.0.2.10/24", "2001:db8::10/64"],
        "gateways": ["192.0.2.1", "2001:db8::1"],
        "dns": ["192.0.2.53", "2001:db8::53"],
        "vlan": 42,
    }
    assert addressing.describe(from_switches) == (
        "static 192.0.2.10/24, 2001:db8::10/64 via 192.0.2.1, 2001:db8::1, DNS 192.0.2.53, 2001:db8::53, VLAN 42"
    )


def test_no_settings_mean_dhcp():
    settings = addressing.lan_settings()
    assert settings == {"addresses": [], "gateways": [], "dns": [], "vlan": None}
    assert not addressing.is_static(settings)
    assert addressing.describe(settings) == "DHCP"
    assert addressing.describe(addressing.lan_settings(dns=["192.0.2.53"], vlan="7")) == "DHCP, DNS 192.0.2.53, VLAN 7"


def test_an_ipv6_gateway_may_be_link_local():
    settings = addressing.lan_settings(addresses="2001:db8::10/64", gateways="fe80::1")
    assert settings["gateways"] == ["fe80::1"]


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        ({"addresses": "192.0.2.10/24", "gateways": "198.51.100.1"},
         "the gateway 198.51.100.1 is outside the network 192.0.2.0/24 of the address 192.0.2.10/24"),
        ({"addresses": "2001:db8::10/64", "gateways": "2001:db9::1"}, "outside the network 2001:db8::/64"),
        ({"gateways": "192.0.2.1"}, "the gateway 192.0.2.1 needs a static IPv4 address"),
        ({"addresses": "192.0.2.10/24", "gateways": "2001:db8::1"}, "needs a static IPv6 address"),
        ({"addresses": "192.0.2.10/24", "gateways": "192.0.2.10"}, "is the machine's own address"),
        ({"addresses": "192.0.2.10/24", "gateways": "192.0.2.1,192.0.2.2"}, "more than one IPv4 gateway"),
        ({"addresses": "192.0.2.10/24", "gateways": "192.0.2.1/24"}, "the gateway '192.0.2.1/24' is not an IPv4"),
        ({"addresses": "192.0.2.10/24", "gateways": "router"}, "the gateway 'router' is not an IPv4 or IPv6"),
        ({"addresses": "192.0.2.10/24,192.0.2.11/24"}, "more than one IPv4 address given"),
        ({"dns": "192.0.2.53,resolver"}, "the DNS server 'resolver' is not an IPv4 or IPv6 address"),
        ({"vlan": "0x2a"}, "the VLAN ID '0x2a' is not a number from 1 to 4094"),
        ({"vlan": "4095"}, "not a number from 1 to 4094"),
        ({"vlan": -1}, "not a number from 1 to 4094"),
    ],
)
def test_settings_that_cannot_work_are_refused_with_the_reason(kwargs, reason):
    with pytest.raises(AddressError, match=reason):
        addressing.lan_settings(**kwargs)


@pytest.mark.parametrize("none", [None, "", 0, "0"])
def test_no_vlan(none):
    assert addressing.vlan_id(none) is None


def test_the_nic_under_a_vlan_named_lan_is_lan_port():
    assert addressing.port_name("lan") == "lan-port"


def test_the_ip_versions_of_the_static_addresses():
    assert addressing.static_ip_versions(addressing.lan_settings(addresses="192.0.2.10/24,2001:db8::10/64")) == {4, 6}
    assert addressing.static_ip_versions(addressing.lan_settings(addresses=["2001:db8::10/64"])) == {6}
    assert addressing.static_ip_versions(addressing.lan_settings()) == set()
