"""The installed system's network: pre-nixos.nix brings lan up as the lan module brings up the live network.

Each mode (DHCP, static IPv4, static IPv4 + IPv6, VLAN with DHCP, VLAN with static addresses) is written here
as the live systemd-networkd files hold it; the module's systemd.network, evaluated by Nix and turned into
unit-file lines the way NixOS does, must say exactly the same (plus RequiredForOnline, which the installed
system waits on).
"""
from __future__ import annotations

import pytest
from test_nixos_render import KEY, LAN, evaluate_module, needs_nix, plan_for

from ansible_collections.prenixos.baseline.plugins.module_utils import nixos

PERMANENT_MAC = "PermanentMACAddress=52:54:00:12:34:56"
V4 = "192.0.2.10/24"
V6 = "2001:db8::10/64"
DHCP_SETTINGS = {"addresses": [], "gateways": [], "dns": [], "vlan": None}

# The live files of each mode, section by section (what the lan module writes for these settings).
LIVE_LAN_LINK = {"Match": [PERMANENT_MAC], "Link": ["Name=lan"]}
LIVE_PORT_LINK = {"Match": [PERMANENT_MAC], "Link": ["Name=lan-port"]}
LIVE_VLAN_NETDEV = {"NetDev": ["Kind=vlan", "Name=lan"], "VLAN": ["Id=42"]}
LIVE_PORT_NETWORK = {"Match": ["Name=lan-port"],
                     "Network": ["DHCP=no", "IPv6AcceptRA=no", "LinkLocalAddressing=no", "VLAN=lan"]}
LIVE_DHCP_NETWORK = {"Match": ["Name=lan"], "Network": ["DHCP=yes", "IPv6AcceptRA=yes"],
                     "DHCPv4": ["ClientIdentifier=mac"]}

MODES = {
    "dhcp": (
        {},
        {"10-lan.link": LIVE_LAN_LINK, "10-lan.network": LIVE_DHCP_NETWORK},
    ),
    "static_ipv4": (
        {"addresses": [V4], "gateways": ["192.0.2.1"], "dns": ["192.0.2.53"]},
        {
            "10-lan.link": LIVE_LAN_LINK,
            "10-lan.network": {
                "Match": ["Name=lan"],
                "Network": ["Address=192.0.2.10/24", "DHCP=no", "DNS=192.0.2.53", "Gateway=192.0.2.1",
                            "IPv6AcceptRA=yes"],
            },
        },
    ),
    "static_ipv4_ipv6": (
        {"addresses": [V4, V6], "gateways": ["192.0.2.1", "2001:db8::1"], "dns": ["192.0.2.53", "2001:db8::53"]},
        {
            "10-lan.link": LIVE_LAN_LINK,
            "10-lan.network": {
                "Match": ["Name=lan"],
                "Network": ["Address=192.0.2.10/24", "Address=2001:db8::10/64", "DHCP=no", "DNS=192.0.2.53",
                            "DNS=2001:db8::53", "Gateway=192.0.2.1", "Gateway=2001:db8::1", "IPv6AcceptRA=no"],
            },
        },
    ),
    "vlan_dhcp": (
        {"dns": ["192.0.2.53"], "vlan": 42},
        {
            "10-lan-port.link": LIVE_PORT_LINK,
            "10-lan.netdev": LIVE_VLAN_NETDEV,
            "10-lan-port.network": LIVE_PORT_NETWORK,
            "10-lan.network": {"Match": ["Name=lan"], "Network": ["DHCP=yes", "DNS=192.0.2.53", "IPv6AcceptRA=yes"],
                               "DHCPv4": ["ClientIdentifier=mac"]},
        },
    ),
    "vlan_static": (
        {"addresses": [V4, V6], "gateways": ["192.0.2.1"], "vlan": 42},
        {
            "10-lan-port.link": LIVE_PORT_LINK,
            "10-lan.netdev": LIVE_VLAN_NETDEV,
            "10-lan-port.network": LIVE_PORT_NETWORK,
            "10-lan.network": {
                "Match": ["Name=lan"],
                "Network": ["Address=192.0.2.10/24", "Address=2001:db8::10/64", "DHCP=no", "Gateway=192.0.2.1",
                            "IPv6AcceptRA=no"],
            },
        },
    ),
}
COMMENTS = {
    "dhcp": [
        "# Network (systemd-networkd): the NIC with MAC 52:54:00:12:34:56 is named lan.",
        "# lan: DHCP for IPv4, router advertisements for IPv6 (it had 10.0.2.15/24 at install time).",
    ],
    "static_ipv4": [
        "# Network (systemd-networkd): the NIC with MAC 52:54:00:12:34:56 is named lan.",
        "# lan: static 192.0.2.10/24 via 192.0.2.1, IPv6 from router advertisements; DNS 192.0.2.53.",
    ],
    "static_ipv4_ipv6": [
        "# Network (systemd-networkd): the NIC with MAC 52:54:00:12:34:56 is named lan.",
        "# lan: static 192.0.2.10/24 and 2001:db8::10/64 via 192.0.2.1 and 2001:db8::1, no IPv6 router "
        "advertisements; DNS 192.0.2.53 and 2001:db8::53.",
    ],
    "vlan_dhcp": [
        "# Network (systemd-networkd): the NIC with MAC 52:54:00:12:34:56 is named lan-port and carries VLAN 42, "
        "tagged, as lan.",
        "# lan: DHCP for IPv4, router advertisements for IPv6; DNS 192.0.2.53 (it had 10.0.2.15/24 at install time).",
    ],
    "vlan_static": [
        "# Network (systemd-networkd): the NIC with MAC 52:54:00:12:34:56 is named lan-port and carries VLAN 42, "
        "tagged, as lan.",
        "# lan: static 192.0.2.10/24 and 2001:db8::10/64 via 192.0.2.1, no IPv6 router advertisements.",
    ],
}
# What the installed system waits for at boot (systemd-networkd-wait-online).
ONLINE = {"10-lan.network": "routable"}
ONLINE_VLAN = {"10-lan-port.network": "carrier", "10-lan.network": "routable"}

# NixOS writes each *Config attribute set as a section, and address/gateway/dns as [Network] lines.
SECTIONS = {"matchConfig": "Match", "linkConfig": "Link", "networkConfig": "Network", "dhcpV4Config": "DHCPv4",
            "netdevConfig": "NetDev", "vlanConfig": "VLAN"}
NETWORK_LISTS = {"address": "Address", "gateway": "Gateway", "dns": "DNS"}
UNIT_SUFFIXES = {"links": "link", "netdevs": "netdev", "networks": "network"}


def settings(**given):
    return dict(DHCP_SETTINGS, **given)


def facts_with(**given):
    """The LAN facts the lan module returns for a network with these settings."""
    return dict(LAN, settings=settings(**given))


def unit_value(value):
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def unit_files(network):
    """``{file name: {section: sorted lines}}`` of an evaluated ``systemd.network``, as NixOS writes them."""
    files = {}
    for kind, suffix in UNIT_SUFFIXES.items():
        for name, definition in network.get(kind, {}).items():
            sections = {}
            for attribute, value in definition.items():
                if attribute in SECTIONS:
                    section = SECTIONS[attribute]
                    lines = ["%s=%s" % (key, unit_value(item)) for key, values in value.items()
                             for item in (values if isinstance(values, list) else [values])]
                else:
                    section = "Network"
                    lines = ["%s=%s" % (NETWORK_LISTS[attribute], item) for item in value]
                sections.setdefault(section, []).extend(lines)
            files["%s.%s" % (name, suffix)] = {section: sorted(lines) for section, lines in sections.items()}
    return files


def split_online(files):
    """The RequiredForOnline lines of the .network files apart (the live files leave them out)."""
    online = {}
    for name, sections in files.items():
        for line in list(sections.get("Link", [])):
            if line.startswith("RequiredForOnline="):
                online[name] = line.split("=", 1)[1]
                sections["Link"].remove(line)
        if sections.get("Link") == []:
            del sections["Link"]
    return files, online


def render(**kwargs):
    return nixos.render_pre_nixos(plan_for("single_nvme"), [KEY], **kwargs)


def network_text(text):
    return text[text.index("  # Network"):text.index("  # SSH")]


@needs_nix
@pytest.mark.parametrize("mode", sorted(MODES))
def test_the_installed_system_comes_up_on_the_network_the_image_was_reached_on(tmp_path, mode):
    given, live = MODES[mode]
    module = evaluate_module(tmp_path, render(lan=facts_with(**given)))
    files, online = split_online(unit_files(module["systemd"]["network"]))
    assert files == live
    assert online == (ONLINE_VLAN if given.get("vlan") else ONLINE)
    assert module["networking"]["useNetworkd"] is True and module["networking"]["useDHCP"] is False


@pytest.mark.parametrize("mode", sorted(MODES))
def test_options_given_to_nixos_config_write_the_same_network_as_the_facts_settings(mode):
    given = MODES[mode][0]
    from_options = render(lan=LAN, address=given.get("addresses"), gateway=given.get("gateways"),
                          dns=given.get("dns"), vlan=given.get("vlan"))
    assert from_options == render(lan=facts_with(**given))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_the_network_part_names_every_live_setting_and_says_the_mode_in_words(mode):
    given, live = MODES[mode]
    text = network_text(render(lan=facts_with(**given)))
    assert text.splitlines()[:2] == ["  " + line for line in COMMENTS[mode]]
    for name, sections in live.items():
        assert 'systemd.network.%ss."%s" = {' % tuple(reversed(name.split("."))) in text
        for line in (line for lines in sections.values() for line in lines):
            key, value = line.split("=", 1)
            assert '"%s"' % value in text or "%s = %s;" % (key, value) in text, line
    assert ("lan-port" in text) is bool(given.get("vlan"))


@pytest.mark.parametrize("settings_given", [None, {}, {"addresses": [], "gateways": [], "dns": [], "vlan": None}])
def test_facts_without_settings_are_dhcp_as_before(settings_given):
    facts = dict(LAN) if settings_given is None else dict(LAN, settings=settings_given)
    assert nixos.lan_settings(facts) == DHCP_SETTINGS
    assert render(lan=facts) == render(lan=facts_with())


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        # An address brings its own gateway (none unless given); DNS and VLAN still come from the facts.
        ({"address": "198.51.100.7/24"},
         {"addresses": ["198.51.100.7/24"], "gateways": [], "dns": ["192.0.2.53"], "vlan": 42}),
        ({"address": ["198.51.100.7/24"], "gateway": ["198.51.100.1"]},
         {"addresses": ["198.51.100.7/24"], "gateways": ["198.51.100.1"], "dns": ["192.0.2.53"], "vlan": 42}),
        # A gateway alone goes with the facts' addresses.
        ({"gateway": "192.0.2.254"},
         {"addresses": [V4, V6], "gateways": ["192.0.2.254"], "dns": ["192.0.2.53"], "vlan": 42}),
        ({"dns": ["192.0.2.54", "192.0.2.55"]},
         {"addresses": [V4, V6], "gateways": ["192.0.2.1"], "dns": ["192.0.2.54", "192.0.2.55"], "vlan": 42}),
        ({"vlan": 7}, {"addresses": [V4, V6], "gateways": ["192.0.2.1"], "dns": ["192.0.2.53"], "vlan": 7}),
        ({"vlan": 0}, {"addresses": [V4, V6], "gateways": ["192.0.2.1"], "dns": ["192.0.2.53"], "vlan": None}),
        ({}, {"addresses": [V4, V6], "gateways": ["192.0.2.1"], "dns": ["192.0.2.53"], "vlan": 42}),
    ],
)
def test_options_given_win_over_the_facts_settings(options, expected):
    facts = facts_with(addresses=[V4, V6], gateways=["192.0.2.1"], dns=["192.0.2.53"], vlan=42)
    assert nixos.lan_settings(facts, **options) == expected
    text = network_text(render(lan=facts, **options))
    assert ("vlanConfig = { Id = %s; };" % expected["vlan"] in text) is bool(expected["vlan"])
    assert 'address = [ %s ];' % " ".join('"%s"' % a for a in expected["addresses"]) in text


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"lan": facts_with(addresses=[V4], gateways=["192.0.3.1"])},
         "the LAN facts' settings are not usable: the gateway 192.0.3.1 is outside the network 192.0.2.0/24 of "
         "the address 192.0.2.10/24"),
        ({"lan": dict(LAN, settings="static")}, "the LAN facts' settings 'static' are not a mapping"),
        ({"lan": LAN, "address": ["192.0.2.10/24", "192.0.2.11/24"]},
         "more than one IPv4 address given (192.0.2.10/24, 192.0.2.11/24): give one per IP version"),
        ({"lan": LAN, "address": "192.0.2.255/24"}, "the address 192.0.2.255/24 is the broadcast address"),
        ({"lan": LAN, "address": "192.0.2.0/24"}, "the address 192.0.2.0/24 is the network's own address"),
        ({"lan": LAN, "address": "192.0.2.10/24", "gateway": "192.0.2.10"},
         "the gateway 192.0.2.10 is the machine's own address"),
        ({"lan": LAN, "address": "192.0.2.10/24", "gateway": ["192.0.2.1", "192.0.2.2"]},
         "more than one IPv4 gateway given"),
        ({"lan": LAN, "vlan": 4095}, "the VLAN ID 4095 is not a number from 1 to 4094"),
        ({"lan": facts_with(vlan="forty-two")}, "the VLAN ID 'forty-two' is not a number from 1 to 4094"),
        ({"vlan": 42}, "a static address or a VLAN needs the LAN facts"),
        ({"lan": dict(LAN, name="uplink-feed-01"), "vlan": 42},
         "the interface name 'uplink-feed-01-port' is not a valid Linux interface name"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(kwargs, reason):
    with pytest.raises(nixos.NixosConfigError) as refused:
        render(**kwargs)
    assert reason in str(refused.value)


@pytest.mark.parametrize("notation", ["52:54:00:AB:CD:EF", "52-54-00-ab-cd-ef", "5254.00ab.cdef", "525400ABCDEF"])
def test_macs_of_the_facts_in_any_notation_are_matched_in_the_usual_one(notation):
    assert nixos.link_match(dict(LAN, permanent_mac=notation)) == {"PermanentMACAddress": "52:54:00:ab:cd:ef"}
    assert nixos.link_match(dict(LAN, mac=notation, permanent_mac=None)) == {"MACAddress": "52:54:00:ab:cd:ef"}
    text = render(lan=dict(LAN, permanent_mac=notation), vlan=42)
    assert 'matchConfig = { PermanentMACAddress = "52:54:00:ab:cd:ef"; };' in text
    assert "the NIC with MAC 52:54:00:ab:cd:ef is named lan-port" in text


def test_a_mac_that_is_no_mac_names_the_fact_and_the_notations_taken():
    with pytest.raises(nixos.NixosConfigError, match=r"the LAN MAC address \(permanent_mac of the LAN facts\): "
                                                     r"'52:54:00:zz:cd:ef' is not a MAC address \(six hex pairs"):
        render(lan=dict(LAN, permanent_mac="52:54:00:zz:cd:ef"))


@needs_nix
def test_dns_servers_without_lan_facts_go_to_every_ethernet_nic(tmp_path):
    text = render(dns="192.0.2.53, 2001:db8::53")
    network = evaluate_module(tmp_path, text)["systemd"]["network"]
    assert unit_files(network) == {
        "90-ethernet-dhcp.network": {"Match": ["Type=ether"], "Network": ["DHCP=yes", "DNS=192.0.2.53",
                                                                          "DNS=2001:db8::53", "IPv6AcceptRA=yes"],
                                     "DHCPv4": ["ClientIdentifier=mac"]},
    }
    assert "every Ethernet NIC" in text and "# runs DHCP for IPv4, router advertisements for IPv6; DNS " in text
