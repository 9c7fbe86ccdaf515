#!/usr/bin/python
# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: lan
short_description: Name the NIC with a live link C(lan) and configure it through systemd-networkd
version_added: "0.1.0"
description:
  - Considers the physical NICs (those with a C(device) link in sysfs), or only the one with the operator's O(mac).
  - Checks the operator's O(mac), O(address), O(gateway), O(dns) and O(vlan) first (with netaddr); a bad value
    fails the module with the reason before any NIC is looked at, and the reason is announced as any failure.
  - Brings each candidate up (a down link cannot report carrier) and polls until one has a link, up to
    O(carrier_timeout) seconds. Carrier that the kernel cannot read counts as unknown; C(operstate up) then decides.
  - Of several with a link it keeps the one already named O(name) (or C(<name>-port)), else takes the fastest, else
    the first in bus order; USB NICs (a BMC's virtual NIC, a dongle) come after all others.
  - Renames it O(name) now (C(ip link set dev X down), C(... name lan), C(ip link set dev lan up)) and for later boots
    with C(10-lan.link) matching the permanent MAC (the current MAC when the driver made it up), writes
    C(10-lan.network), starts systemd-networkd when it is not running, has it apply the files (C(networkctl reload),
    C(networkctl reconfigure lan)) and waits for the addresses.
  - "Without O(address): DHCP (IPv4, the MAC as client identifier) and IPv6 router advertisements (networkd starts
    DHCPv6 when they ask for it). It waits up to O(dhcp_timeout) seconds for the IPv4 lease, then up to
    O(ipv6_timeout) more for a global IPv6 address. A network with IPv6 only (a global IPv6 address, no IPv4 lease
    15 s after the files were applied) is configured with IPv6 alone."
  - With O(address), static addresses, O(gateway) and O(dns) as given, no DHCP; router advertisements are ignored
    when a static IPv6 address is given. It waits up to O(dhcp_timeout) seconds until each address is on C(lan).
  - "With O(vlan): the chosen NIC is named C(lan-port) instead (live and C(10-lan-port.link)) and carries the
    tagged interface C(lan) (C(10-lan.netdev), C(10-lan-port.network)); C(10-lan.network) configures C(lan) as
    above. Files this module wrote for the other choice (C(10-lan.netdev), C(10-lan-port.*) without a VLAN,
    C(10-lan.link) with one) are removed, a VLAN interface that is not the one asked for is deleted
    (C(ip link delete dev lan)) and the NIC renamed between C(lan) and C(lan-port) as needed."
  - Idempotent. When O(name) has its addresses and the files are already right it runs no command that changes
    anything and reports C(changed=false); a missing IPv6 (or, on an IPv6-only network, IPv4) address is then not
    waited for.
  - With O(root) other than C(/) it only writes the files under O(root) (for the installed system) and touches no
    live link; the NIC is then the one already named O(name) (or C(<name>-port)), else the operator's O(mac), else
    the one NIC or the one with a link now.
  - "Optionally tells the operator the outcome, C(ssh root@<address>) (a second such line for the IPv6 address)
    followed by the SSH host key's fingerprint to check at first contact (C(pre-nixos: host key SHA256:...), as
    C(ssh-keygen -lf) prints it for C(/etc/ssh/ssh_host_ed25519_key.pub); no such line while the key is not made
    yet) and C(pre-nixos: lan DHCP|static <addresses> ... on lan (...)), or why the network is not configured, in
    the managed lines of O(issue_path) and on each of O(consoles). Both are written only when their text changes.
    On failure the announcement is made before the module fails."
author: pre-nixos baseline engineers (@prenixos)
requirements:
  - netaddr (reads the operator's MAC and addresses)
options:
  name:
    description: The name the chosen NIC gets; with O(vlan), the name of the tagged interface (the NIC is then
      C(<name>-port)).
    type: str
    default: lan
  mac:
    description:
      - The operator's choice. Only the NIC whose current or permanent MAC this is may become O(name).
      - Any common notation, C(52:54:00:ab:cd:ef), C(52-54-00-AB-CD-EF), C(5254.00ab.cdef).
    type: str
  address:
    description:
      - Static addresses for O(name) as C(ADDR/PREFIX), at most one IPv4 and one IPv6 address, instead of DHCP.
        One string of addresses separated by commas (as a kernel switch gives them) is accepted too.
      - The prefix is required; a network's own address and an IPv4 broadcast address are refused.
      - Empty, DHCP and IPv6 router advertisements.
    type: list
    elements: str
    default: []
  gateway:
    description:
      - Default gateways, at most one per IP version, each inside the network of the static address of its
        version (an IPv6 link-local gateway is accepted as it is). Needs O(address).
    type: list
    elements: str
    default: []
  dns:
    description:
      - DNS servers. With DHCP they are used beside the ones the server gives.
    type: list
    elements: str
    default: []
  vlan:
    description:
      - Put O(name) on this tagged VLAN (802.1Q ID, 1 to 4094) over the chosen NIC. C(0), an empty value or none
        for no VLAN.
      - An int or its text (a kernel switch gives text); anything else fails the module with the reason.
    type: raw
  carrier_timeout:
    description: Seconds to wait for a link on a candidate NIC.
    type: int
    default: 60
  dhcp_timeout:
    description: Seconds to wait for an IPv4 lease (or, with O(address), for the static addresses) once O(name) is
      configured.
    type: int
    default: 60
  ipv6_timeout:
    description: Seconds to wait, once the IPv4 lease is there, for a global IPv6 address (router advertisement or
      DHCPv6). Not waited for when one is already there, nor with O(address).
    type: int
    default: 5
  poll_interval:
    description: Seconds between two looks at carrier or addresses.
    type: float
    default: 1
  root:
    description:
      - Root of the system that receives the files, in C(etc/systemd/network) under it. With anything else than
        C(/), only files are written.
    type: path
    default: /
  issue_path:
    description:
      - File shown before the login prompt (C(/etc/issue)) whose C(pre-nixos:) lines tell the outcome.
        The other lines (the distribution's banner) are kept. Not written when unset.
    type: path
  consoles:
    description:
      - Character devices that get the outcome lines when they change, for example C(/dev/console),
        C(/dev/tty1), C(/dev/ttyS0). C(/dev/console) stands for the kernel's active consoles, so a device
        listed twice prints once. Missing or unwritable devices are skipped.
    type: list
    elements: path
    default: []
  failure_hint:
    description: A further line for the operator when the network is not configured (what happens next).
    type: str
    default: ""
extends_documentation_fragment:
  - prenixos.baseline.attributes
  - prenixos.baseline.attributes.diff
attributes:
  check_mode:
    description:
      - Reports the NIC it would pick from the links as they are (no link is brought up), the files it would write
        or remove and the commands it would run. When no NIC has a link yet, says so and changes nothing.
  diff_mode:
    description: Shows the files (and the issue file) before and after.
notes:
  - Needs C(ip) (iproute2); live runs also need C(networkctl) and C(systemctl) (systemd-networkd).
  - A live run (O(root=/)) refuses, before touching any NIC, where C(/run/systemd/system) is missing (systemd is
    not init) - networkd could not take the renamed NIC over, and the machine would be left without its network.
  - NICs that were brought up to look for a link and were not chosen stay up, unconfigured.
"""

EXAMPLES = r"""
- name: Name the NIC with a link lan and get a lease (and an IPv6 address where routers advertise one)
  prenixos.baseline.lan:
  register: lan

- name: Use this port, whatever else has a link
  prenixos.baseline.lan:
    mac: "52:54:00:12:34:57"

- name: A static IPv4 and IPv6 address
  prenixos.baseline.lan:
    address: [192.0.2.10/24, "2001:db8::10/64"]
    gateway: [192.0.2.1, "2001:db8::1"]
    dns: [192.0.2.53]

- name: DHCP on the tagged VLAN 42 (the NIC is named lan-port, lan is the VLAN)
  prenixos.baseline.lan:
    vlan: 42

- name: A static address on VLAN 42, as the kernel switches give it
  prenixos.baseline.lan:
    address: 192.0.2.10/24
    gateway: 192.0.2.1
    vlan: "42"

- name: Name it lan in the installed system too
  prenixos.baseline.lan:
    root: /mnt

- name: Tell the operator at the console
  prenixos.baseline.lan:
    issue_path: /etc/issue
    consoles: [/dev/console, /dev/tty1, /dev/ttyS0]
    failure_hint: retrying every 30 s; plug in a cable
"""

RETURN = r"""
name:
  description: The name of the interface with the addresses (the NIC's, or with O(vlan) the tagged interface's).
  returned: success
  type: str
  sample: lan
original_name:
  description: The kernel name the NIC had before it was renamed (read back from C(10-lan.link) or
    C(10-lan-port.link) on later runs).
  returned: success
  type: str
  sample: ens3
mac:
  description: The NIC's current MAC.
  returned: success
  type: str
  sample: "52:54:00:12:34:56"
permanent_mac:
  description: The NIC's permanent MAC, null when unknown.
  returned: success
  type: str
address:
  description: The IPv4 address; null in check mode or with O(root) other than C(/) when there is none yet, and on
    a network with IPv6 only.
  returned: success
  type: str
  sample: 10.0.2.15
prefix:
  description: The prefix length of RV(address).
  returned: success
  type: int
  sample: 24
network:
  description: The network of RV(address).
  returned: success
  type: str
  sample: 10.0.2.0/24
gateway:
  description: The IPv4 default gateway through O(name), null when there is none.
  returned: success
  type: str
  sample: 10.0.2.2
dns:
  description: DNS servers networkd has for O(name) (empty when it reports none).
  returned: success
  type: list
  elements: str
  sample: [10.0.2.3]
address6:
  description: The first global IPv6 address of O(name) (not tentative, not deprecated), null when there is none.
  returned: success
  type: str
  sample: "2001:db8::5054:ff:fe12:3456"
prefix6:
  description: The prefix length of RV(address6).
  returned: success
  type: int
  sample: 64
settings:
  description: The operator's settings as checked (addresses as C(ADDR/PREFIX), a VLAN ID or null); no
    C(addresses) means DHCP.
  returned: when the settings are valid
  type: dict
  sample: {"addresses": ["192.0.2.10/24"], "gateways": ["192.0.2.1"], "dns": [], "vlan": 42}
nic:
  description: The chosen NIC as M(prenixos.baseline.nic_facts) describes it (before the rename); null in check mode
    when no NIC has a link yet.
  returned: always
  type: dict
nics:
  description: Every physical NIC as last seen.
  returned: always
  type: list
  elements: dict
files:
  description: The files this module manages and their wanted content; null for a file it removes (one it wrote
    for a VLAN when none is asked for now, or the other way round).
  returned: always
  type: dict
  sample: {"/etc/systemd/network/10-lan.network": "# Managed by ..."}
commands:
  description: The commands that change something, run (or, in check mode, to run) in order.
  returned: always
  type: list
  elements: list
  sample: [[ip, link, set, dev, ens3, up], [ip, link, set, dev, ens3, down]]
host_key:
  description: The fingerprint of the SSH host key (C(/etc/ssh/ssh_host_ed25519_key.pub)) as C(ssh-keygen -lf)
    prints it; null when there is no such key (yet).
  returned: always
  type: str
  sample: SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU (ED25519)
settings_refused:
  description: True when the module failed because the operator's settings (MAC, addresses, gateways, DNS, VLAN)
    cannot work; nothing was looked at or changed, and running again without correcting them fails the same way.
  returned: failure
  type: bool
msg:
  description: What happened, in one line.
  returned: always
  type: str
"""

import os
import time
from collections import namedtuple

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prenixos.baseline.plugins.module_utils import addressing, networkd, nics, sshd
from ansible_collections.prenixos.baseline.plugins.module_utils.files import WriteError, read_text, write_text
from ansible_collections.prenixos.baseline.plugins.module_utils.runner import CommandError, Runner

# Where the live system keeps its networkd files: a write under another root reads the original name back from here.
LIVE_NETWORK_DIR = "/etc/systemd/network"
SYSFS_ROOT = "/sys"
# Exists only while systemd runs as init.
SYSTEMD_RUN_DIR = "/run/systemd/system"
# The host key whose fingerprint the operator checks at first contact (the image makes only this one).
HOST_KEY_PATH = "/etc/ssh/ssh_host_ed25519_key.pub"
# Seconds after the files were applied from which a global IPv6 address without an IPv4 lease is taken as an
# IPv6-only network: a DHCPv4 server answers within a few seconds where there is one.
IPV6_ONLY_AFTER = 15

# What ``name`` has now: the facts the module returns, whether the IPv4 lease is complete (gateway or networkd
# done), and every address on it (networkd.parse_addresses).
Reading = namedtuple("Reading", "facts complete addresses")
NOTHING = Reading(networkd.lease_facts(None, None, []), False, [])


class LanFailure(Exception):
    """The network cannot be configured; the message tells the operator why."""


class SettingsRefused(LanFailure):
    """The operator's settings cannot work: trying again changes nothing until they are corrected."""

    hint = "nothing was changed; correct the setting (kernel switch or variable) and run again"


def console_devices(consoles, sysfs_root):
    """The devices to write to, ``/dev/console`` expanded to the kernel's active consoles, each once.

    ``tty0`` is the foreground virtual terminal, which at boot is ``tty1``.
    """
    devices = []
    for console in consoles:
        expanded = [console]
        if console == "/dev/console":
            active = (nics.read_attr(os.path.join(sysfs_root, "class", "tty", "console", "active")) or "").split()
            if active:
                expanded = ["/dev/" + ("tty1" if tty == "tty0" else tty) for tty in active]
        devices.extend(device for device in expanded if device not in devices)
    return devices


def write_consoles(devices, lines):
    text = "".join("%s\r\n" % line for line in lines)
    for device in devices:
        try:
            fd = os.open(device, os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_APPEND)
        except OSError:
            continue
        try:
            os.write(fd, text.encode())
        except OSError:
            pass
        finally:
            os.close(fd)


def remove_file(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        raise WriteError(err.errno, "cannot remove %s: %s" % (path, err.strerror or err)) from None


class Lan:
    """One run of the module: check the settings, look, decide, act (unless check mode), report."""

    def __init__(self, module, runner):
        self.module = module
        self.runner = runner
        self.params = module.params
        self.check = module.check_mode
        self.name = self.params["name"]
        root = self.params["root"]
        self.live = os.path.realpath(root) == "/"
        self.network_dir = LIVE_NETWORK_DIR if self.live else os.path.join(root, "etc", "systemd", "network")
        self.ip = module.get_bin_path("ip", required=True)
        self.settings = None
        self.vlan = None
        # The name the chosen NIC gets: name, or name-port when it carries the VLAN name.
        self.nic_name = self.name
        self.commands = []
        self.changed = False
        self.diff = []
        self.nics = []
        self.ip_links = {}
        self.result = {"nic": None, "files": {}, "host_key": sshd.host_key_fingerprint(read_text(HOST_KEY_PATH))}

    # ------------------------------------------------------------------ the operator's settings

    def check_settings(self):
        """The operator's MAC and network settings, read with netaddr before anything is looked at."""
        try:
            if self.params["mac"] is not None:
                addressing.mac(self.params["mac"])
            self.settings = addressing.lan_settings(
                addresses=self.params["address"],
                gateways=self.params["gateway"],
                dns=self.params["dns"],
                vlan=self.params["vlan"],
            )
        except addressing.AddressError as err:
            raise SettingsRefused(str(err)) from None
        self.vlan = self.settings["vlan"]
        self.nic_name = addressing.port_name(self.name) if self.vlan else self.name
        self.result["settings"] = self.settings

    @property
    def static(self):
        return addressing.is_static(self.settings)

    def our_names(self):
        """The names a NIC this module chose has: the one wanted now first, then the other mode's."""
        port = addressing.port_name(self.name)
        return (port, self.name) if self.vlan else (self.name, port)

    # ------------------------------------------------------------------ looking

    def look(self):
        """Re-read sysfs (the permanent MACs from ``ip`` are read once: they do not change)."""
        self.nics = nics.gather_nics(SYSFS_ROOT, self.ip_links)
        return self.nics

    def read(self):
        """What ``name`` has now, as the kernel and networkd show it (a :data:`Reading`)."""
        addresses = []
        for family in ("-4", "-6"):
            out = self.runner.run([self.ip, "-j", family, "addr", "show", "dev", self.name], check=False)
            if out[0] == 0:
                addresses.extend(networkd.parse_addresses(out[1]))
        interface, interface6 = networkd.ipv4_address(addresses), networkd.ipv6_address(addresses)
        if interface is None and interface6 is None:
            return Reading(NOTHING.facts, False, addresses)
        gateway = None
        if interface is not None:
            out = self.runner.run([self.ip, "-j", "-4", "route", "show", "default", "dev", self.name], check=False)
            gateway = networkd.parse_default_gateway(out[1]) if out[0] == 0 else None
        networkctl = self.module.get_bin_path("networkctl")
        status = {"dns": [], "configured": False}
        if networkctl:
            out = self.runner.run([networkctl, "status", "--no-pager", "--lines=0", self.name], check=False)
            if out[0] == 0:
                status = networkd.parse_networkctl_status(out[1])
        complete = interface is not None and (gateway is not None or status["configured"] or not networkctl)
        return Reading(networkd.lease_facts(interface, gateway, status["dns"], interface6), complete, addresses)

    def configured(self, reading):
        """``name`` has what it needs: every static address, or (DHCP) an IPv4 lease or a global IPv6 address."""
        if self.static:
            return not networkd.missing_addresses(self.settings["addresses"], reading.addresses)
        return bool(reading.facts["address"] or reading.facts["address6"])

    def has_address(self):
        facts = self.read().facts
        return bool(facts["address"] or facts["address6"])

    def vlan_link(self):
        """The live link called ``name`` (:func:`networkd.parse_vlan_link`), ``None`` when there is none."""
        out = self.runner.run([self.ip, "-j", "-d", "link", "show", "dev", self.name], check=False)
        return networkd.parse_vlan_link(out[1]) if out[0] == 0 else None

    # ------------------------------------------------------------------ acting

    def act(self, argv):
        """Run a command that changes something; in check mode only record it."""
        self.commands.append([str(arg) for arg in argv])
        self.changed = True
        if not self.check:
            self.runner.run(argv)

    def converge_file(self, path, wanted):
        before = read_text(path)
        self.result["files"][path] = wanted
        if before == wanted:
            return False
        self.changed = True
        self.diff.append({"before": before or "", "after": wanted, "before_header": path, "after_header": path})
        if not self.check:
            write_text(self.module, path, wanted)
        return True

    def remove_managed_file(self, path):
        """Remove a file this module wrote for the other choice of VLAN; a file someone else wrote is kept."""
        before = read_text(path)
        if not networkd.is_managed(before):
            return False
        self.result["files"][path] = None
        self.changed = True
        self.diff.append({"before": before, "after": "", "before_header": path, "after_header": path})
        if not self.check:
            remove_file(path)
        return True

    # ------------------------------------------------------------------ deciding

    def candidates(self):
        found = nics.candidates(self.nics, self.params["mac"])
        if not self.nics:
            raise LanFailure(
                "no physical NIC: no interface in %s has a device link"
                % os.path.join(SYSFS_ROOT, "class", "net")
            )
        if not found:
            raise LanFailure(
                "no NIC has the MAC %s; the NICs are: %s"
                % (self.params["mac"], ", ".join(nics.describe(nic) for nic in self.nics))
            )
        return found

    def named(self):
        """The NIC an earlier run chose (named ``name``, or ``name``-port under a VLAN), the wanted name first."""
        for name in self.our_names():
            found = next((nic for nic in self.nics if nic["name"] == name), None)
            if found is not None:
                return found
        return None

    def settled_choice(self, candidates):
        """The NIC an earlier run chose when it is a candidate with a link or an address: never switch away."""
        current = self.named()
        if current is None or current not in candidates:
            return None
        if nics.has_link(current) or (self.live and self.has_address()):
            return current
        return None

    def wait_for_carrier(self):
        """Bring every candidate up, then poll until one has a link."""
        for nic in self.candidates():
            if not nic["up"]:
                self.act([self.ip, "link", "set", "dev", nic["name"], "up"])
        deadline = time.monotonic() + self.params["carrier_timeout"]
        while True:
            self.look()
            candidates = self.candidates()
            chosen = nics.pick_nic(candidates, self.nic_name)
            if chosen is not None:
                return chosen
            if time.monotonic() >= deadline:
                raise LanFailure(
                    "no carrier on any NIC within %s s: %s"
                    % (self.params["carrier_timeout"], ", ".join(nics.describe(n) for n in candidates))
                )
            time.sleep(self.params["poll_interval"])

    def choose(self):
        self.ip_links = nics.parse_ip_link(self.runner.run([self.ip, "-j", "link", "show"])[1])
        self.look()
        candidates = self.candidates()
        chosen = self.settled_choice(candidates)
        if chosen is not None:
            return chosen
        if not self.live:
            if self.params["mac"] or len(candidates) == 1:
                return candidates[0]
            chosen = nics.pick_nic(candidates, self.nic_name)
            if chosen is None:
                raise LanFailure(
                    "no NIC has a link now, so none can be chosen for the files under %s; name it with mac"
                    " (NICs: %s)" % (self.params["root"], ", ".join(nics.describe(n) for n in candidates))
                )
            return chosen
        if self.check:
            return nics.pick_nic(candidates, self.nic_name)
        return self.wait_for_carrier()

    # ------------------------------------------------------------------ the run

    def original_name(self, nic):
        """The NIC's kernel name: its name now, or the one the ``.link`` file of an earlier run recorded."""
        if nic["name"] not in self.our_names():
            return nic["name"]
        for directory in (self.network_dir, LIVE_NETWORK_DIR):
            for name in self.our_names():
                recorded = networkd.recorded_original_name(
                    read_text(os.path.join(directory, networkd.link_file_name(name))), nic
                )
                if recorded:
                    return recorded
        return nic["name"]

    def refuse_taken_name(self, nic):
        """Fail, before anything changes, when another NIC has one of our names (an earlier choice)."""
        holder = next((other for other in self.nics if other["name"] in self.our_names() and other != nic), None)
        if holder is not None and nic["name"] != self.nic_name:
            raise LanFailure(
                "cannot name %s %s: %s already has %s (an earlier choice); reboot to choose again"
                % (
                    nic["name"],
                    self.nic_name,
                    nics.describe(holder),
                    "that name" if holder["name"] == self.nic_name else "the name %s" % holder["name"],
                )
            )

    def rename(self, nic):
        """Give the NIC its name live (``name``, or ``name``-port under a VLAN), also when it has the other one."""
        if nic["name"] == self.nic_name:
            return False
        self.act([self.ip, "link", "set", "dev", nic["name"], "down"])
        self.act([self.ip, "link", "set", "dev", nic["name"], "name", self.nic_name])
        self.act([self.ip, "link", "set", "dev", self.nic_name, "up"])
        return True

    def replace_vlan_link(self):
        """Delete a live VLAN called ``name`` that is not the one asked for (none asked for now, another ID or
        another NIC under it): networkd never changes or removes a netdev it made, and without a VLAN the NIC
        needs the name. Returns (deleted, kept): whether it was deleted, whether the wanted one is there."""
        link = self.vlan_link()
        if link is None or link["kind"] != "vlan":
            return False, False
        if self.vlan and link["id"] == self.vlan and link["parent"] == self.nic_name:
            return False, True
        self.act([self.ip, "link", "delete", "dev", self.name])
        return True, False

    def wanted_files(self, nic, original_name):
        """``{file name: text}`` for the settings, and the names of the files the other choice of VLAN had."""
        port = addressing.port_name(self.name)
        network = networkd.render_network(self.name, self.settings)
        if not self.vlan:
            wanted = {
                networkd.link_file_name(self.name): networkd.render_link(nic, self.name, original_name),
                networkd.network_file_name(self.name): network,
            }
            stale = [
                networkd.netdev_file_name(self.name),
                networkd.link_file_name(port),
                networkd.network_file_name(port),
            ]
            return wanted, stale
        wanted = {
            networkd.link_file_name(port): networkd.render_link(nic, port, original_name),
            networkd.network_file_name(port): networkd.render_port_network(port, self.name),
            networkd.netdev_file_name(self.name): networkd.render_vlan_netdev(self.name, self.vlan),
            networkd.network_file_name(self.name): network,
        }
        return wanted, [networkd.link_file_name(self.name)]

    def converge_files(self, nic, original_name):
        """Write the wanted files and remove the other choice's; whether networkd has to read them again.

        A ``.link`` file only matters when udev names a new device (next boot): no live action for it.
        """
        wanted, stale = self.wanted_files(nic, original_name)
        changed = []
        for file_name, text in wanted.items():
            if self.converge_file(os.path.join(self.network_dir, file_name), text):
                changed.append(file_name)
        for file_name in stale:
            if self.remove_managed_file(os.path.join(self.network_dir, file_name)):
                changed.append(file_name)
        return any(not file_name.endswith(".link") for file_name in changed)

    def apply(self, vlan_kept):
        """Have networkd (started when needed) read the files and configure the NIC again.

        Configuring the NIC under a VLAN makes networkd create the VLAN, which it then configures as a new link;
        a VLAN that was already there is configured again itself.
        """
        systemctl = self.module.get_bin_path("systemctl", required=True)
        networkctl = self.module.get_bin_path("networkctl", required=True)
        if self.runner.run([systemctl, "is-active", "--quiet", "systemd-networkd.service"], check=False)[0] != 0:
            self.act([systemctl, "start", "systemd-networkd.service"])
        self.act([networkctl, "reload"])
        self.act([networkctl, "reconfigure", self.nic_name])
        if vlan_kept:
            self.act([networkctl, "reconfigure", self.name])

    def describe_nic(self, nic, original_name):
        """``lan (52:54:00:12:34:56, was ens3)``, with the VLAN and the NIC under it when there is one."""
        parts = ["VLAN %d over %s" % (self.vlan, self.nic_name)] if self.vlan else []
        parts.append(nic["mac"])
        parts.append("was %s" % original_name)
        return "%s (%s)" % (self.name, ", ".join(parts))

    def wait_for_lease(self, nic, original_name):
        """DHCP: the IPv4 lease, then up to ipv6_timeout more for a global IPv6 address; a global IPv6 address
        alone once IPV6_ONLY_AFTER seconds passed without a lease (or at dhcp_timeout)."""
        start = time.monotonic()
        deadline = start + self.params["dhcp_timeout"]
        while True:
            reading = self.read()
            facts = reading.facts
            if facts["address"] and reading.complete:
                return self.wait_for_ipv6(facts)
            if facts["address6"] and not facts["address"] and time.monotonic() >= start + IPV6_ONLY_AFTER:
                return facts
            if time.monotonic() >= deadline:
                if facts["address"] or facts["address6"]:
                    return facts
                raise LanFailure(
                    "link %s is up, but no DHCP answer in %s s"
                    % (self.describe_nic(nic, original_name), self.params["dhcp_timeout"])
                )
            time.sleep(self.params["poll_interval"])

    def wait_for_ipv6(self, facts):
        """Give router advertisements (and DHCPv6) ipv6_timeout seconds after the lease, unless one is there."""
        deadline = time.monotonic() + self.params["ipv6_timeout"]
        while not facts["address6"] and time.monotonic() < deadline:
            time.sleep(self.params["poll_interval"])
            facts = self.read().facts
        return facts

    def wait_for_static(self, nic, original_name):
        """Static: wait until every address is on ``name`` (an IPv6 one once duplicate address detection passed)."""
        deadline = time.monotonic() + self.params["dhcp_timeout"]
        while True:
            reading = self.read()
            missing = networkd.missing_addresses(self.settings["addresses"], reading.addresses)
            if not missing:
                return reading.facts
            if time.monotonic() >= deadline:
                raise LanFailure(
                    "link %s is up, but %s not on it after %s s (another machine with the address?)"
                    % (self.describe_nic(nic, original_name), " and ".join(missing), self.params["dhcp_timeout"])
                )
            time.sleep(self.params["poll_interval"])

    def run(self):
        if self.live and not os.path.isdir(SYSTEMD_RUN_DIR):
            raise LanFailure(
                "systemd is not running this machine (no %s): refusing to touch its NICs, since systemd-networkd"
                " could not configure a renamed one; nothing changed" % SYSTEMD_RUN_DIR
            )
        nic = self.choose()
        self.result["nic"] = nic
        if nic is None:
            # Check mode with no link yet: a real run would bring the candidates up and wait.
            for candidate in self.candidates():
                if not candidate["up"]:
                    self.act([self.ip, "link", "set", "dev", candidate["name"], "up"])
            self.result["msg"] = (
                "no NIC has a link now; a real run brings the candidates up and waits up to %s s"
                % (self.params["carrier_timeout"])
            )
            return None

        original_name = self.original_name(nic)
        deleted = renamed = vlan_kept = False
        if self.live:
            self.refuse_taken_name(nic)
            deleted, vlan_kept = self.replace_vlan_link()
            renamed = self.rename(nic)
        files_changed = self.converge_files(nic, original_name)

        # Before the rename (or with the VLAN deleted), name was another link or none: what it had says nothing.
        reading = NOTHING if renamed or deleted else self.read()
        facts = reading.facts
        if self.live and (renamed or deleted or files_changed or not self.configured(reading)):
            self.apply(vlan_kept)
            if not self.check:
                wait = self.wait_for_static if self.static else self.wait_for_lease
                facts = wait(nic, original_name)

        self.result.update(facts)
        self.result.update(
            name=self.name, original_name=original_name, mac=nic["mac"], permanent_mac=nic["permanent_mac"]
        )
        self.result["msg"] = self.message(nic, original_name, facts)
        if not (facts["address"] or facts["address6"]):
            return None
        return networkd.success_lines(
            facts, self.name, dict(nic, name=original_name), self.result["host_key"], self.settings
        )

    def message(self, nic, original_name, facts):
        """The one line the task shows: where to SSH, the files written, or what a real run would do."""
        if not self.live:
            return "files for %s under %s" % (self.describe_nic(nic, original_name), self.params["root"])
        addresses = [address for address in (facts["address"], facts["address6"]) if address]
        if addresses:
            what = "%s %s" % (original_name, nic["mac"])
            if self.vlan:
                what = "VLAN %d over %s, %s" % (self.vlan, self.nic_name, what)
            notes = ["static"] if self.static else ([] if facts["address"] else ["no IPv4 lease"])
            return "ssh root@%s (%s is %s%s)" % (
                " or root@".join(addresses),
                self.name,
                what,
                "".join("; %s" % note for note in notes),
            )
        then = "give it %s" % ", ".join(self.settings["addresses"]) if self.static else "ask DHCP for an address"
        if self.vlan:
            return "would name %s (%s) %s, put %s on VLAN %d over it and %s" % (
                (original_name, nic["mac"], self.nic_name, self.name, self.vlan, then)
            )
        return "would name %s (%s) %s and %s" % (original_name, nic["mac"], self.name, then)

    # ------------------------------------------------------------------ telling the operator

    def announce(self, lines):
        """Put ``lines`` in the issue file and on the consoles, each only when the text changes."""
        if self.check or not lines:
            return
        issue_changed = False
        if self.params["issue_path"]:
            before = read_text(self.params["issue_path"])
            wanted = networkd.render_issue(before, lines)
            if before != wanted:
                issue_changed = True
                self.changed = True
                self.diff.append(
                    {
                        "before": before or "",
                        "after": wanted,
                        "before_header": self.params["issue_path"],
                        "after_header": self.params["issue_path"],
                    }
                )
                write_text(self.module, self.params["issue_path"], wanted)
        if issue_changed or (not self.params["issue_path"] and self.changed):
            write_consoles(console_devices(self.params["consoles"], SYSFS_ROOT), lines)

    def report(self):
        result = dict(self.result, changed=self.changed, commands=self.commands, nics=self.nics)
        if self.module._diff:
            result["diff"] = self.diff
        return result


def main():
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "default": "lan"},
            "mac": {"type": "str"},
            "address": {"type": "list", "elements": "str", "default": []},
            "gateway": {"type": "list", "elements": "str", "default": []},
            "dns": {"type": "list", "elements": "str", "default": []},
            "vlan": {"type": "raw"},
            "carrier_timeout": {"type": "int", "default": 60},
            "dhcp_timeout": {"type": "int", "default": 60},
            "ipv6_timeout": {"type": "int", "default": 5},
            "poll_interval": {"type": "float", "default": 1},
            "root": {"type": "path", "default": "/"},
            "issue_path": {"type": "path"},
            "consoles": {"type": "list", "elements": "path", "default": []},
            "failure_hint": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    addressing.require_netaddr(module)
    lan = Lan(module, Runner(module))
    try:
        lan.check_settings()
        lines = lan.run()
    except (LanFailure, CommandError, nics.NicFactsError, WriteError) as err:
        details = err.as_fail_kwargs() if isinstance(err, CommandError) else {"msg": str(err)}
        refused = isinstance(err, SettingsRefused)
        details["settings_refused"] = refused
        lan.announce(networkd.failure_lines(details["msg"], err.hint if refused else module.params["failure_hint"]))
        module.fail_json(**dict(lan.report(), **details))
    lan.announce(lines)
    module.exit_json(**lan.report())


if __name__ == "__main__":
    main()
