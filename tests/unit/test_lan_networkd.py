"""networkd files, the lease as ip/networkctl print it, and /etc/issue: pure functions over text."""

from __future__ import annotations

import ipaddress
import json

from hypothesis import given
from hypothesis import strategies as st

from ansible_collections.prenixos.baseline.plugins.module_utils import addressing, networkd

NIC = {
    "name": "ens3",
    "mac": "52:54:00:12:34:56",
    "permanent_mac": "52:54:00:12:34:56",
    "driver": "e1000",
    "bus_path": "0000:00:03.0",
}

# networkctl 252 (Debian 12), LC_ALL=C, --lines=0: right-aligned labels, further values indented without one.
NETWORKCTL_STATUS = """\
\u25cf 2: lan
                     Link File: /etc/systemd/network/10-lan.link
                  Network File: /etc/systemd/network/10-lan.network
                          Type: ether
                         State: routable (configured)
                  Online state: online
                          Path: pci-0000:00:03.0
                        Driver: e1000
                    HW Address: 52:54:00:12:34:56 (Red Hat, Inc.)
      Number of Queues (Tx/Rx): 1/1
                       Address: 10.0.2.15 (DHCP4 via 10.0.2.2)
                                fec0::5054:ff:fe12:3456
                                fe80::5054:ff:fe12:3456
                       Gateway: 10.0.2.2
                                fe80::2
                           DNS: 10.0.2.3
                                192.168.1.1
                                10.0.2.3
                Search Domains: example.net
               DHCP4 Client ID: IAID:0x3a1b2c4d/DUID
             Activation Policy: up
"""


def test_the_link_file_names_the_nic_by_its_permanent_mac_and_keeps_its_kernel_name():
    assert networkd.render_link(NIC, "lan", "ens3") == (
        "# Managed by prenixos.baseline.lan; changes are overwritten.\n"
        "# First boot found the link on ens3 (driver e1000, bus 0000:00:03.0).\n"
        "[Match]\n"
        "PermanentMACAddress=52:54:00:12:34:56\n"
        "\n"
        "[Link]\n"
        "Name=lan\n"
    )


def test_the_link_file_falls_back_to_the_current_mac_without_a_permanent_one():
    text = networkd.render_link(dict(NIC, permanent_mac=None, driver=None), "uplink", "eth0")
    assert "[Match]\nMACAddress=52:54:00:12:34:56\n" in text
    assert "(driver unknown, bus 0000:00:03.0)" in text and "Name=uplink\n" in text


def test_the_original_name_is_read_back_only_from_a_file_for_the_same_nic():
    text = networkd.render_link(NIC, "lan", "ens3")
    assert networkd.recorded_original_name(text, dict(NIC, name="lan")) == "ens3"
    assert networkd.recorded_original_name(text, dict(NIC, permanent_mac="52:54:00:99:99:99")) is None
    assert networkd.recorded_original_name(None, NIC) is None
    assert networkd.recorded_original_name("[Match]\nPermanentMACAddress=52:54:00:12:34:56\n", NIC) is None


HEADER = "# Managed by prenixos.baseline.lan; changes are overwritten.\n"


def test_the_network_file_asks_dhcp_as_the_mac_and_takes_router_advertisements():
    dhcp = HEADER + "[Match]\nName=lan\n\n[Network]\nDHCP=yes\nIPv6AcceptRA=yes\n\n[DHCPv4]\nClientIdentifier=mac\n"
    assert networkd.render_network("lan") == dhcp
    assert networkd.render_network("lan", addressing.lan_settings()) == dhcp


def test_the_operators_dns_servers_are_added_to_dhcp():
    settings = addressing.lan_settings(dns="192.0.2.53, 2001:db8::53")
    assert networkd.render_network("lan", settings) == (
        HEADER + "[Match]\nName=lan\n\n[Network]\nDHCP=yes\nIPv6AcceptRA=yes\nDNS=192.0.2.53\nDNS=2001:db8::53\n"
        "\n[DHCPv4]\nClientIdentifier=mac\n"
    )


def test_a_static_ipv4_address_keeps_router_advertisements_for_ipv6():
    settings = addressing.lan_settings(addresses=["192.0.2.10/24"], gateways=["192.0.2.1"], dns=["192.0.2.53"])
    assert networkd.render_network("lan", settings) == (
        HEADER + "[Match]\nName=lan\n\n[Network]\nDHCP=no\nAddress=192.0.2.10/24\nGateway=192.0.2.1\n"
        "DNS=192.0.2.53\nIPv6AcceptRA=yes\n"
    )


def test_static_ipv4_and_ipv6_addresses_ignore_router_advertisements():
    settings = addressing.lan_settings(
        addresses="192.0.2.10/24,2001:DB8::10/64", gateways="192.0.2.1,2001:db8::1", dns="2001:db8::53"
    )
    assert networkd.render_network("lan", settings) == (
        HEADER + "[Match]\nName=lan\n\n[Network]\nDHCP=no\nAddress=192.0.2.10/24\nAddress=2001:db8::10/64\n"
        "Gateway=192.0.2.1\nGateway=2001:db8::1\nDNS=2001:db8::53\nIPv6AcceptRA=no\n"
    )
    only_ipv6 = networkd.render_network("lan", addressing.lan_settings(addresses=["2001:db8::10/64"]))
    assert "DHCP=no\nAddress=2001:db8::10/64\nIPv6AcceptRA=no\n" in only_ipv6


def test_a_vlan_is_a_netdev_and_the_nic_under_it_carries_it_without_an_address():
    assert networkd.render_vlan_netdev("lan", 42) == HEADER + "[NetDev]\nName=lan\nKind=vlan\n\n[VLAN]\nId=42\n"
    assert networkd.render_port_network("lan-port", "lan") == (
        HEADER + "[Match]\nName=lan-port\n\n[Network]\nVLAN=lan\nLinkLocalAddressing=no\nIPv6AcceptRA=no\nDHCP=no\n"
    )
    assert (networkd.netdev_file_name("lan"), networkd.link_file_name("lan-port")) == (
        "10-lan.netdev",
        "10-lan-port.link",
    )


def test_only_files_this_module_wrote_are_its_own():
    assert networkd.is_managed(networkd.render_vlan_netdev("lan", 42))
    assert not networkd.is_managed("[NetDev]\nName=lan\nKind=vlan\n")
    assert not networkd.is_managed("# " + HEADER)
    assert not networkd.is_managed(None)


def addr_show(*infos):
    return json.dumps([{"ifindex": 2, "ifname": "lan", "addr_info": list(infos)}])


def test_the_dhcp_address_wins_over_a_static_one_and_link_local_or_tentative_ones_do_not_count():
    static = {"family": "inet", "local": "192.168.50.10", "prefixlen": 24, "scope": "global"}
    dynamic = {"family": "inet", "local": "10.0.2.15", "prefixlen": 24, "scope": "global", "dynamic": True}
    link_local = {"family": "inet", "local": "169.254.7.7", "prefixlen": 16, "scope": "link"}
    tentative = dict(dynamic, local="10.0.2.16", tentative=True)
    assert networkd.parse_ipv4_address(addr_show(static, dynamic)) == ipaddress.ip_interface("10.0.2.15/24")
    assert networkd.parse_ipv4_address(addr_show(static)) == ipaddress.ip_interface("192.168.50.10/24")
    assert networkd.parse_ipv4_address(addr_show(link_local, tentative)) is None
    assert networkd.parse_ipv4_address("[]") is None
    assert networkd.parse_ipv4_address("") is None


def test_this_hosts_ip_output_gives_its_static_address_and_gateway():
    # `ip -j -4 addr show dev eth0` and `ip -j -4 route show default dev eth0` on this development host, verbatim
    addr = (
        '[{"ifindex":4,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1400,'
        '"qdisc":"pfifo_fast","operstate":"UP","group":"default","txqlen":1000,"addr_info":[{"family":"inet",'
        '"local":"192.0.2.2","prefixlen":24,"broadcast":"192.0.2.255","scope":"global","label":"eth0",'
        '"valid_life_time":4294967295,"preferred_life_time":4294967295}]}]'
    )
    assert networkd.parse_ipv4_address(addr) == ipaddress.ip_interface("192.0.2.2/24")
    assert networkd.parse_default_gateway('[{"dst":"default","gateway":"192.0.2.1","flags":[]}]') == "192.0.2.1"
    assert networkd.parse_ipv4_address("[{}]") is None


def test_the_gateway_is_the_first_default_route():
    routes = [
        {"dst": "default", "gateway": "10.0.2.2", "protocol": "dhcp", "metric": 1024},
        {"dst": "default", "gateway": "10.0.2.254", "metric": 2048},
    ]
    assert networkd.parse_default_gateway(json.dumps(routes)) == "10.0.2.2"
    assert networkd.parse_default_gateway(json.dumps([{"dst": "default", "dev": "lan"}])) is None
    assert networkd.parse_default_gateway("[]") is None


# `ip -j -6 addr show dev lan` of a networkd link on a network with router advertisements (iproute2 6.1).
IP6_ADDR = json.dumps(
    [
        {
            "ifindex": 2,
            "ifname": "lan",
            "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
            "mtu": 1500,
            "operstate": "UP",
            "addr_info": [
                {"family": "inet6", "local": "2001:db8::99", "prefixlen": 64, "scope": "global", "tentative": True},
                {"family": "inet6", "local": "2001:db8::aa", "prefixlen": 64, "scope": "global", "deprecated": True},
                {
                    "family": "inet6",
                    "local": "2001:db8::bb",
                    "prefixlen": 64,
                    "scope": "global",
                    "temporary": True,
                    "dynamic": True,
                },
                {"family": "inet6", "local": "fec0::5054:ff:fe12:3456", "prefixlen": 64, "scope": "site"},
                {
                    "family": "inet6",
                    "local": "2001:db8::5054:ff:fe12:3456",
                    "prefixlen": 64,
                    "scope": "global",
                    "dynamic": True,
                    "mngtmpaddr": True,
                    "noprefixroute": True,
                    "valid_life_time": 86398,
                    "preferred_life_time": 14398,
                },
                {
                    "family": "inet6",
                    "local": "fe80::5054:ff:fe12:3456",
                    "prefixlen": 64,
                    "scope": "link",
                    "valid_life_time": 4294967295,
                    "preferred_life_time": 4294967295,
                },
            ],
        }
    ]
)


def test_the_ipv6_address_to_ssh_to_is_global_and_neither_tentative_deprecated_nor_temporary():
    assert networkd.parse_ipv6_address(IP6_ADDR) == ipaddress.ip_interface("2001:db8::5054:ff:fe12:3456/64")
    assert networkd.parse_ipv4_address(IP6_ADDR) is None
    assert (
        networkd.parse_ipv6_address(
            addr_show({"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"})
        )
        is None
    )
    assert networkd.parse_ipv6_address("[{}]") is None
    assert networkd.parse_ipv6_address("") is None


def test_a_static_address_is_there_once_it_is_no_longer_tentative():
    addresses = networkd.parse_addresses(IP6_ADDR) + networkd.parse_addresses(
        addr_show({"family": "inet", "local": "192.0.2.10", "prefixlen": 24, "scope": "global"})
    )
    assert networkd.missing_addresses(["192.0.2.10/24", "2001:db8::5054:ff:fe12:3456/64"], addresses) == []
    assert networkd.missing_addresses(["192.0.2.10/25", "2001:db8::99/64", "2001:db8::aa/64"], addresses) == [
        "192.0.2.10/25",
        "2001:db8::99/64",
    ]


def test_the_vlan_link_gives_its_id_and_the_nic_under_it():
    # `ip -j -d link show dev lan`, iproute2 6.1, trimmed
    vlan = [
        {
            "ifindex": 5,
            "link": "lan-port",
            "ifname": "lan",
            "link_type": "ether",
            "address": "52:54:00:12:34:56",
            "linkinfo": {"info_kind": "vlan", "info_data": {"protocol": "802.1Q", "id": 42, "flags": ["REORDER_HDR"]}},
        }
    ]
    assert networkd.parse_vlan_link(json.dumps(vlan)) == {"kind": "vlan", "id": 42, "parent": "lan-port"}
    nic = [{"ifindex": 2, "ifname": "lan", "link_type": "ether", "address": "52:54:00:12:34:56"}]
    assert networkd.parse_vlan_link(json.dumps(nic)) == {"kind": None, "id": None, "parent": None}
    assert networkd.parse_vlan_link("[]") is None


def test_networkctl_status_gives_the_state_and_the_dns_servers_once_each_in_order():
    assert networkd.parse_networkctl_status(NETWORKCTL_STATUS) == {
        "state": "routable (configured)",
        "configured": True,
        "dns": ["10.0.2.3", "192.168.1.1"],
    }


def test_networkctl_status_of_a_link_still_waiting_has_no_dns():
    text = "\u25cf 2: lan\n                         State: no-carrier (configuring)\n"
    assert networkd.parse_networkctl_status(text) == {
        "state": "no-carrier (configuring)",
        "configured": False,
        "dns": [],
    }
    assert networkd.parse_networkctl_status("") == {"state": "", "configured": False, "dns": []}


def test_lease_facts_do_the_address_math():
    assert networkd.lease_facts(ipaddress.ip_interface("192.168.7.20/23"), "192.168.6.1", ["192.168.6.1"]) == {
        "address": "192.168.7.20",
        "prefix": 23,
        "network": "192.168.6.0/23",
        "gateway": "192.168.6.1",
        "dns": ["192.168.6.1"],
        "address6": None,
        "prefix6": None,
    }
    assert networkd.lease_facts(None, None, [], ipaddress.ip_interface("2001:db8::10/64")) == {
        "address": None,
        "prefix": None,
        "network": None,
        "gateway": None,
        "dns": [],
        "address6": "2001:db8::10",
        "prefix6": 64,
    }


V4 = ipaddress.ip_interface("10.0.2.15/24")
V6 = ipaddress.ip_interface("2001:db8::5054:ff:fe12:3456/64")


def test_the_operator_lines_say_where_to_ssh_and_why_not():
    lease = networkd.lease_facts(V4, None, [])
    assert networkd.success_lines(lease, "lan", NIC) == [
        "pre-nixos: ssh root@10.0.2.15",
        "pre-nixos: lan DHCP 10.0.2.15/24 on lan (52:54:00:12:34:56, was ens3)",
    ]
    assert networkd.failure_lines("no carrier", "retrying") == [
        "pre-nixos: network not configured: no carrier",
        "pre-nixos: network: retrying",
    ]


def test_an_ipv6_address_gets_its_own_ssh_line_before_the_host_key():
    lease = networkd.lease_facts(V4, "10.0.2.2", ["10.0.2.3"], V6)
    assert networkd.success_lines(lease, "lan", NIC, "SHA256:k (ED25519)") == [
        "pre-nixos: ssh root@10.0.2.15",
        "pre-nixos: ssh root@2001:db8::5054:ff:fe12:3456",
        "pre-nixos: host key SHA256:k (ED25519)",
        "pre-nixos: lan DHCP 10.0.2.15/24 2001:db8::5054:ff:fe12:3456/64 gateway 10.0.2.2 dns 10.0.2.3"
        " on lan (52:54:00:12:34:56, was ens3)",
    ]


def test_an_ipv6_only_network_says_there_was_no_ipv4_lease():
    lease = networkd.lease_facts(None, None, [], V6)
    assert networkd.success_lines(lease, "lan", NIC, settings=addressing.lan_settings()) == [
        "pre-nixos: ssh root@2001:db8::5054:ff:fe12:3456",
        "pre-nixos: lan DHCP (no IPv4 lease) 2001:db8::5054:ff:fe12:3456/64 on lan (52:54:00:12:34:56, was ens3)",
    ]


def test_a_static_address_on_a_vlan_says_so_and_names_the_nic_under_it():
    settings = addressing.lan_settings(addresses="192.0.2.10/24,2001:db8::10/64", gateways="192.0.2.1", vlan="42")
    lease = networkd.lease_facts(
        ipaddress.ip_interface("192.0.2.10/24"), "192.0.2.1", [], ipaddress.ip_interface("2001:db8::10/64")
    )
    lines = networkd.success_lines(lease, "lan", NIC, settings=settings)
    assert lines == [
        "pre-nixos: ssh root@192.0.2.10",
        "pre-nixos: ssh root@2001:db8::10",
        "pre-nixos: lan static 192.0.2.10/24 2001:db8::10/64 gateway 192.0.2.1"
        " on lan (VLAN 42 over lan-port, 52:54:00:12:34:56, was ens3)",
    ]
    assert all(line.startswith(networkd.ISSUE_PREFIXES) for line in lines)
    # A later run with other lines replaces every one of them, the second ssh line too.
    again = networkd.render_issue(networkd.render_issue("banner\n", lines), networkd.failure_lines("no carrier"))
    assert again == "banner\n\npre-nixos: network not configured: no carrier\n\n"


def test_the_host_key_fingerprint_follows_the_ssh_line():
    lease = networkd.lease_facts(V4, None, [])
    fingerprint = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s (ED25519)"
    assert networkd.success_lines(lease, "lan", NIC, fingerprint) == [
        "pre-nixos: ssh root@10.0.2.15",
        "pre-nixos: host key SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s (ED25519)",
        "pre-nixos: lan DHCP 10.0.2.15/24 on lan (52:54:00:12:34:56, was ens3)",
    ]
    lines = networkd.success_lines(lease, "lan", NIC, fingerprint)
    with_key = networkd.render_issue("Debian GNU/Linux 12 \\n \\l\n\n", lines)
    assert with_key == "Debian GNU/Linux 12 \\n \\l\n\n" + "\n".join(lines) + "\n\n"
    # A new host key (the machine booted again) replaces the line; a failure takes it away with the address.
    renewed = networkd.render_issue(with_key, networkd.success_lines(lease, "lan", NIC, "SHA256:new (ED25519)"))
    assert "SHA256:uNiV" not in renewed and "pre-nixos: host key SHA256:new (ED25519)\n" in renewed
    assert "host key" not in networkd.render_issue(with_key, networkd.failure_lines("no carrier"))


def test_issue_keeps_the_distro_banner_and_replaces_only_its_own_lines():
    debian = "Debian GNU/Linux 12 \\n \\l\n\n"
    first = networkd.render_issue(debian, ["pre-nixos: network not configured: no carrier"])
    assert first == "Debian GNU/Linux 12 \\n \\l\n\npre-nixos: network not configured: no carrier\n\n"
    assert networkd.render_issue(first, ["pre-nixos: ssh root@10.0.2.15"]) == (
        "Debian GNU/Linux 12 \\n \\l\n\npre-nixos: ssh root@10.0.2.15\n\n"
    )
    assert networkd.render_issue(None, ["pre-nixos: ssh root@10.0.2.15"]) == "pre-nixos: ssh root@10.0.2.15\n\n"
    assert networkd.render_issue("pre-nixos: storage done\n", ["pre-nixos: ssh root@x"]).startswith(
        "pre-nixos: storage done\n\n"
    )


banner_line = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\x1c\x1d\x1e"), max_size=30
)
our_line = st.sampled_from(networkd.ISSUE_PREFIXES).flatmap(
    lambda p: st.text(max_size=20).map(lambda rest: p + rest.replace("\n", " ").replace("\r", " "))
)


@given(st.lists(banner_line, max_size=5), st.lists(our_line, min_size=1, max_size=3))
def test_rendering_issue_twice_gives_the_same_text_and_keeps_every_banner_line(banner, lines):
    lines = [line.splitlines()[0] if line.splitlines() else line for line in lines]
    existing = "\n".join(banner) + "\n"
    once = networkd.render_issue(existing, lines)
    assert networkd.render_issue(once, lines) == once
    kept = []
    for line in existing.splitlines():
        if not line.startswith(networkd.ISSUE_PREFIXES) and (line.strip() or not kept or kept[-1].strip()):
            kept.append(line)  # a blank run folds to one blank line
    while kept and not kept[-1].strip():
        kept.pop()
    assert once.splitlines()[: len(kept)] == kept
    assert once.endswith("\n".join(lines) + "\n\n")
