"""The lan module and IPv6 with DHCP: router advertisements awaited after the lease, IPv6-only networks (fake)."""

from __future__ import annotations

import pytest
from test_lan import APPLY, World

SLAAC = "2001:db8::5054:ff:fe12:3458"


@pytest.fixture
def world(tmp_path, monkeypatch, capsys):
    def build(ra_delay=None, dhcp=True):
        w = World(tmp_path, monkeypatch, capsys, "qemu_three_nics")
        w.box.plug("ens5")
        if ra_delay is not None:
            w.box.ra = {"delay": ra_delay, "address": SLAAC + "/64"}
        if not dhcp:
            w.box.dhcp = None
        return w

    return build


def test_an_ipv6_address_that_comes_after_the_lease_is_awaited_and_shown_beside_the_ipv4_one(world):
    w = world(ra_delay=5)
    result = w.run()
    # Lease at 3 s; the router's address at 5 s, tentative until 6 s (duplicate address detection).
    assert w.box.now == 6
    assert (result["address"], result["address6"], result["prefix6"]) == ("10.0.2.15", SLAAC, 64)
    assert result["msg"] == "ssh root@10.0.2.15 or root@%s (lan is ens5 52:54:00:12:34:58)" % SLAAC
    lines = [
        "pre-nixos: ssh root@10.0.2.15",
        "pre-nixos: ssh root@%s" % SLAAC,
        "pre-nixos: lan DHCP 10.0.2.15/24 %s/64 gateway 10.0.2.2 dns 10.0.2.3 on lan (52:54:00:12:34:58, was ens5)"
        % SLAAC,
    ]
    assert w.issue.read_text().endswith("\n".join(lines) + "\n\n")
    assert w.console_text() == ["".join(line + "\r\n" for line in lines)] * 2


def test_an_ipv6_address_that_never_comes_is_given_ipv6_timeout_after_the_lease(world):
    w = world()
    result = w.run(ipv6_timeout=4)
    assert w.box.now == 3 + 4
    assert "failed" not in result and (result["address"], result["address6"]) == ("10.0.2.15", None)
    assert "ssh root@" not in w.issue.read_text().split("pre-nixos: ssh root@10.0.2.15\n", 1)[1]


def test_an_ipv6_address_already_there_with_the_lease_is_not_waited_for_again(world):
    w = world(ra_delay=1)
    result = w.run()
    assert w.box.now == 3
    assert (result["address"], result["address6"]) == ("10.0.2.15", SLAAC)


def test_an_ipv6_only_network_is_configured_15_s_after_the_files_with_no_ipv4_lease_said(world):
    w = world(ra_delay=2, dhcp=False)
    result = w.run()
    assert w.box.now == 15
    assert result.get("failed") is None and (result["address"], result["address6"]) == (None, SLAAC)
    assert result["msg"] == "ssh root@%s (lan is ens5 52:54:00:12:34:58; no IPv4 lease)" % SLAAC
    assert w.issue.read_text().endswith(
        "pre-nixos: ssh root@%s\npre-nixos: lan DHCP (no IPv4 lease) %s/64 on lan (52:54:00:12:34:58, was ens5)\n\n"
        % (SLAAC, SLAAC)
    )
    # A later run finds the IPv6 address, lan as it should be: nothing is applied or waited for.
    now = w.box.now
    again = w.run()
    assert (again["changed"], w.mutations(), w.box.now, again["address6"]) == (False, [], now, SLAAC)


def test_an_ipv6_address_at_dhcp_timeout_before_15_s_is_taken_too(world):
    w = world(ra_delay=2, dhcp=False)
    result = w.run(dhcp_timeout=10)
    assert (w.box.now, result["address"], result["address6"]) == (10, None, SLAAC)


def test_neither_a_lease_nor_an_ipv6_address_fails_as_without_ipv6(world):
    w = world(dhcp=False)
    result = w.run(dhcp_timeout=20)
    assert result["failed"] is True
    assert result["msg"] == "link lan (52:54:00:12:34:58, was ens5) is up, but no DHCP answer in 20 s"
    assert 20 <= w.box.now < 22


def test_a_later_run_with_the_lease_but_no_ipv6_address_waits_for_nothing_and_changes_nothing(world):
    w = world()
    w.run()
    now = w.box.now
    w.box.ra = {"delay": 1, "address": SLAAC + "/64"}  # a router appears; networkd would take it on its own
    again = w.run()
    assert (again["changed"], w.mutations(), w.box.now, again["address6"]) == (False, [], now, None)


def test_a_later_run_with_neither_address_configures_lan_again(world):
    w = world()
    w.run()
    w.box.config.clear()  # the lease expired and no server answered meanwhile
    result = w.run(ipv6_timeout=0)
    assert (w.mutations(), result["address"]) == (APPLY, "10.0.2.15")
