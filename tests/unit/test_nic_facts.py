"""NIC discovery against fake /sys trees (see fixtures/nics/README.md), and the fake machine the LAN tests share."""

from __future__ import annotations

import errno
import functools
import inspect
import ipaddress
import json
import os
from pathlib import Path

import pytest
from ansible.module_utils.basic import AnsibleModule
from module_harness import run_module
from runners import RecordingRunner

from ansible_collections.prenixos.baseline.plugins.module_utils import nics
from ansible_collections.prenixos.baseline.plugins.modules import nic_facts

FIXTURES = Path(__file__).parent / "fixtures" / "nics"
EINVAL = "EINVAL"
IFF_BROADCAST_MULTICAST = 0x1002


def fake_get_bin_path(self, name, required=False, opt_dirs=None):
    return name


def read_unit(path):
    """A systemd unit file as ``{(section, key): [values]}``, the way networkd reads its files."""
    unit, section = {}, None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, value = line.split("=", 1) if "=" in line else (line, "")
        unit.setdefault((section, key.strip()), []).append(value.strip())
    return unit


class FakeMachine:
    """A fake Linux box: sysfs in ``tmp_path``, a runner answering ``ip``, ``networkctl``, ``systemctl`` from its state.

    Time is fake too: ``sleep`` advances ``now`` and fires what :meth:`at` scheduled (a cable plugged in,
    a DHCP answer), so a 60 s wait takes no time.

    networkd is faked from the files in ``network_dir`` (the lan tests point it at the module's directory):
    ``networkctl reconfigure X`` drops what X had and configures it by the first ``.network`` file that matches
    its name, as networkd does. ``DHCP=yes|ipv4`` gets ``dhcp``'s lease after its delay; ``Address=`` lines
    appear after ``STATIC_DELAY`` s (IPv6 ones tentative for ``DAD_DELAY`` s more, as duplicate address
    detection keeps them); ``IPv6AcceptRA`` (yes unless the file says no) gets ``ra``'s address (tentative
    too) when a router advertises one; ``VLAN=`` makes the VLAN its ``.netdev`` describes, a virtual link over
    X, and configures it as a new link. A file for no link, or no file, leaves the link unconfigured. Without
    ``network_dir`` every link is configured by DHCP. ``ip link delete`` removes a VLAN; a NIC renamed
    stays under its VLANs, and no link takes a name another one has.
    """

    STATIC_DELAY = 1
    DAD_DELAY = 1

    def __init__(self, tmp_path, fixture, monkeypatch):
        data = json.loads((FIXTURES / ("%s.json" % fixture)).read_text())
        self.sysfs = tmp_path / "sys"
        self.einval = set()
        self.now = 0.0
        self.events = []
        self.networkd_active = True
        self.network_dir = None
        # What the DHCP server answers, and how long it takes; None: no DHCP server on the wire.
        self.dhcp = {"delay": 3, "address": "10.0.2.15/24", "gateway": "10.0.2.2", "dns": ["10.0.2.3"]}
        # What a router advertises (SLAAC), and how long it takes; None: no IPv6 router on the wire.
        self.ra = None
        # What networkd configured on each link: {"addresses": [...], "gateway": ..., "dns": [...]}.
        self.config = {}
        self.nics = {}
        self.vlans = {}
        for index, nic in enumerate(data["nics"], start=2):
            self.add_nic(dict(nic, ifindex=index))
        for entry in data.get("virtual", []):
            self.add_virtual(entry)
        self.ip_link_verbatim = data.get("ip_link")
        self.runner = RecordingRunner(
            {
                ("ip", "-j", "link", "show"): self.answer_ip_link_show,
                ("ip", "-j", "-d", "link", "show", "dev"): self.answer_ip_link_show_details,
                ("ip", "link", "set", "dev"): self.answer_ip_link_set,
                ("ip", "link", "delete", "dev"): self.answer_ip_link_delete,
                ("ip", "-j", "-4", "addr", "show", "dev"): self.answer_addr_show,
                ("ip", "-j", "-6", "addr", "show", "dev"): self.answer_addr_show,
                ("ip", "-j", "-4", "route", "show", "default", "dev"): self.answer_route_show,
                ("networkctl", "status"): self.answer_networkctl_status,
                ("networkctl", "reconfigure"): self.answer_reconfigure,
                ("systemctl", "is-active"): lambda argv: (0 if self.networkd_active else 3, "", ""),
                ("systemctl", "start"): self.answer_systemctl_start,
            }
        )
        monkeypatch.setattr(nics, "read_file", self.read_file)

    # ------------------------------------------------------------------ sysfs

    def read_file(self, path):
        if os.path.realpath(path) in self.einval:
            raise OSError(errno.EINVAL, "Invalid argument", path)
        with open(path) as handle:
            return handle.read()

    def write_attr(self, directory, attribute, value):
        path = directory / attribute
        real = os.path.realpath(path)
        self.einval.discard(real)
        if value == EINVAL:
            self.einval.add(real)
            value = ""
        path.write_text("%s\n" % value)

    def add_nic(self, nic):
        device = self.sysfs / nic["device"]
        driver = self.sysfs / nic["driver"]
        driver.mkdir(parents=True, exist_ok=True)
        device.mkdir(parents=True, exist_ok=True)
        (device / "driver").symlink_to(os.path.relpath(driver, device))
        self.nics[nic["name"]] = nic
        self.place(nic["name"])

    def net_dir(self, name):
        return self.sysfs / self.nics[name]["device"] / "net" / name

    def place(self, name):
        net = self.net_dir(name)
        net.mkdir(parents=True)
        (net / "device").symlink_to("../..")
        (self.sysfs / "class" / "net").mkdir(parents=True, exist_ok=True)
        (self.sysfs / "class" / "net" / name).symlink_to(os.path.relpath(net, self.sysfs / "class" / "net"))
        self.sync(name)

    def add_virtual(self, entry):
        net = self.sysfs / "devices" / "virtual" / "net" / entry["name"]
        net.mkdir(parents=True)
        for attribute, value in entry["attrs"].items():
            self.write_attr(net, attribute, value)
        (self.sysfs / "class" / "net").mkdir(parents=True, exist_ok=True)
        (self.sysfs / "class" / "net" / entry["name"]).symlink_to(os.path.relpath(net, self.sysfs / "class" / "net"))

    def remove_virtual(self, name):
        net = self.sysfs / "devices" / "virtual" / "net" / name
        (self.sysfs / "class" / "net" / name).unlink()
        for path in net.iterdir():
            path.unlink()
        net.rmdir()

    def sync(self, name):
        """Write the attributes the kernel would show for the NIC's state."""
        nic = self.nics[name]
        net = self.net_dir(name)
        linked = nic["up"] and nic["cable"]
        self.write_attr(net, "address", nic["mac"])
        self.write_attr(net, "addr_assign_type", nic["addr_assign_type"])
        self.write_attr(net, "type", 1)
        self.write_attr(net, "flags", hex(IFF_BROADCAST_MULTICAST | (1 if nic["up"] else 0)))
        self.write_attr(net, "operstate", "up" if linked else "down")
        if nic.get("carrier_unreadable"):
            self.write_attr(net, "carrier", EINVAL)
        else:
            self.write_attr(net, "carrier", ("1" if linked else "0") if nic["up"] else EINVAL)
        self.write_attr(net, "speed", ((nic["link_speed"] or -1) if linked else -1) if nic["up"] else EINVAL)

    # ------------------------------------------------------------------ the world

    def at(self, when, action):
        self.events.append((when, action))

    def plug(self, name):
        self.nics[name]["cable"] = True
        self.sync(name)

    def sleep(self, seconds):
        self.now += seconds
        for event in sorted((e for e in self.events if e[0] <= self.now), key=lambda e: e[0]):
            self.events.remove(event)
            event[1]()

    def monotonic(self):
        return self.now

    def links(self):
        """Every link's name: the NICs and the VLANs."""
        return set(self.nics) | set(self.vlans)

    def ifindex(self, name):
        return (self.nics.get(name) or self.vlans[name])["ifindex"]

    def carrier(self, name):
        """A NIC up with its cable in; a VLAN when its NIC is."""
        nic = self.nics.get(name) or self.nics.get(self.vlans.get(name, {}).get("parent"))
        return bool(nic and nic["up"] and nic["cable"])

    # ------------------------------------------------------------------ networkd

    def unit_files(self, suffix):
        return [read_unit(path) for path in sorted(self.network_dir.glob("*" + suffix))] if self.network_dir else []

    def network_for(self, name):
        """The ``.network`` file networkd takes for the link: the first whose ``[Match] Name=`` is its name."""
        if self.network_dir is None:
            return {("Network", "DHCP"): ["ipv4"]}
        return next((unit for unit in self.unit_files(".network") if name in unit.get(("Match", "Name"), [])), None)

    def forget(self, name):
        """The link loses what networkd gave it (link down, reconfigured, deleted)."""
        self.config.pop(name, None)

    def configure(self, name):
        """What networkd does when it configures the link: addresses now or later, VLANs made."""
        self.forget(name)
        network = self.network_for(name)
        if network is None:
            return
        state = self.config[name] = {"addresses": [], "gateway": None, "dns": list(network.get(("Network", "DNS"), []))}

        def later(delay, action):
            # Whatever the link went through meanwhile (reconfigured, down, deleted) cancels it.
            self.at(self.now + delay, lambda: self.config.get(name) is state and self.carrier(name) and action())

        def add(address, dynamic):
            entry = {"address": address, "dynamic": dynamic, "tentative": ":" in address}
            state["addresses"].append(entry)
            if entry["tentative"]:
                later(self.DAD_DELAY, lambda: entry.update(tentative=False))

        def lease():
            add(self.dhcp["address"], True)
            state["gateway"] = self.dhcp.get("gateway")
            state["dns"] += [server for server in self.dhcp.get("dns", []) if server not in state["dns"]]

        def static():
            for address in network.get(("Network", "Address"), []):
                add(address, False)
            state["gateway"] = next((g for g in network.get(("Network", "Gateway"), []) if ":" not in g), None)

        for vlan in network.get(("Network", "VLAN"), []):
            self.make_vlan(vlan, name)
        if network.get(("Network", "DHCP"), ["no"])[-1] in ("yes", "ipv4") and self.dhcp is not None:
            later(self.dhcp["delay"], lease)
        if network.get(("Network", "Address")):
            later(self.STATIC_DELAY, static)
        if network.get(("Network", "IPv6AcceptRA"), ["yes"])[-1] == "yes" and self.ra is not None:
            later(self.ra["delay"], lambda: add(self.ra["address"], True))

    def make_vlan(self, name, parent):
        """The VLAN of a ``VLAN=`` line, from its ``.netdev`` file, unless the name is taken."""
        netdev = next((unit for unit in self.unit_files(".netdev") if unit.get(("NetDev", "Name")) == [name]), None)
        if netdev is None or netdev.get(("NetDev", "Kind")) != ["vlan"] or name in self.links():
            return
        ifindex = 100 + len(self.vlans)
        self.vlans[name] = {"id": int(netdev[("VLAN", "Id")][-1]), "parent": parent, "ifindex": ifindex}
        self.add_virtual({"name": name, "attrs": {"address": self.nics[parent]["mac"], "type": 1}})
        self.configure(name)

    # ------------------------------------------------------------------ commands

    def answer_ip_link_show(self, argv):
        if self.ip_link_verbatim is not None:
            return 0, json.dumps(self.ip_link_verbatim), ""
        links = []
        for name, nic in sorted(self.nics.items(), key=lambda item: item[1]["ifindex"]):
            link = {
                "ifindex": nic["ifindex"],
                "ifname": name,
                "flags": ["BROADCAST", "MULTICAST"] + (["UP"] if nic["up"] else []),
                "operstate": "UP" if nic["up"] and nic["cable"] else "DOWN",
                "link_type": "ether",
                "address": nic["mac"],
                "broadcast": "ff:ff:ff:ff:ff:ff",
            }
            if nic.get("permaddr"):
                link["permaddr"] = nic["permaddr"]
            links.append(link)
        for name, vlan in sorted(self.vlans.items()):
            links.append(
                {
                    "ifindex": vlan["ifindex"],
                    "link": vlan["parent"],
                    "ifname": name,
                    "link_type": "ether",
                    "address": self.nics[vlan["parent"]]["mac"],
                }
            )
        return 0, json.dumps(links), ""

    def answer_ip_link_show_details(self, argv):
        name = argv[-1]
        if name not in self.links():
            return 1, "", 'Device "%s" does not exist.\n' % name
        link = {"ifindex": self.ifindex(name), "ifname": name, "link_type": "ether", "promiscuity": 0}
        if name in self.vlans:
            vlan = self.vlans[name]
            link.update(
                link=vlan["parent"],
                linkinfo={
                    "info_kind": "vlan",
                    "info_data": {"protocol": "802.1Q", "id": vlan["id"], "flags": ["REORDER_HDR"]},
                },
            )
        return 0, json.dumps([link]), ""

    def answer_ip_link_set(self, argv):
        name = argv[4]
        if name not in self.nics:
            return 1, "", 'Cannot find device "%s"\n' % name
        verb = argv[5]
        if verb in ("up", "down"):
            self.nics[name]["up"] = verb == "up"
            if verb == "down":
                self.forget(name)
            self.sync(name)
            return 0, "", ""
        new = argv[6]
        if self.nics[name]["up"]:
            return 2, "", "RTNETLINK answers: Device or resource busy\n"
        if new in self.nics or (self.sysfs / "class" / "net" / new).exists():
            return 2, "", "RTNETLINK answers: File exists\n"
        old_dir = self.net_dir(name)
        (self.sysfs / "class" / "net" / name).unlink()
        for path in old_dir.iterdir():
            path.unlink()
        old_dir.rmdir()
        self.nics[new] = dict(self.nics.pop(name), name=new)
        self.config.pop(name, None)
        for vlan in self.vlans.values():
            if vlan["parent"] == name:
                vlan["parent"] = new
        self.place(new)
        return 0, "", ""

    def answer_ip_link_delete(self, argv):
        name = argv[4]
        if name in self.nics:
            return 2, "", "RTNETLINK answers: Operation not supported\n"
        if name not in self.vlans:
            return 1, "", 'Cannot find device "%s"\n' % name
        del self.vlans[name]
        self.forget(name)
        self.remove_virtual(name)
        return 0, "", ""

    def answer_addr_show(self, argv):
        name, version = argv[6], 6 if argv[2] == "-6" else 4
        if name not in self.links():
            return 1, "", 'Device "%s" does not exist.\n' % name
        state = self.config.get(name)
        if not state:
            return 0, "[]", ""
        infos = []
        for entry in state["addresses"]:
            interface = ipaddress.ip_interface(entry["address"])
            if interface.version != version:
                continue
            info = {
                "family": "inet6" if version == 6 else "inet",
                "local": str(interface.ip),
                "prefixlen": interface.network.prefixlen,
                "scope": "global",
            }
            if version == 4:
                info["broadcast"] = str(interface.network.broadcast_address)
            for flag in ("dynamic", "tentative"):
                if entry[flag]:
                    info[flag] = True
            info.update(label=name, valid_life_time=86391, preferred_life_time=86391)
            infos.append(info)
        if version == 6:
            infos.append({"family": "inet6", "local": "fe80::5054:ff:fe12:3456", "prefixlen": 64, "scope": "link"})
        return 0, json.dumps([{"ifindex": self.ifindex(name), "ifname": name, "addr_info": infos}]), ""

    def answer_route_show(self, argv):
        name = argv[7]
        if name not in self.links():
            return 1, "", 'Cannot find device "%s"\n' % name
        state = self.config.get(name)
        if not state or not state["gateway"] or not any(":" not in e["address"] for e in state["addresses"]):
            return 0, "[]", ""
        route = {"dst": "default", "gateway": state["gateway"], "protocol": "dhcp", "metric": 1024, "flags": []}
        return 0, json.dumps([route]), ""

    def answer_networkctl_status(self, argv):
        name = argv[-1]
        if name not in self.links():
            return 1, "", 'Interface "%s" not found.\n' % name
        state = self.config.get(name)
        addresses = [e["address"].split("/")[0] for e in (state or {}).get("addresses", []) if not e["tentative"]]
        lines = [
            "\u25cf %d: %s" % (self.ifindex(name), name),
            "                     Link File: /usr/lib/systemd/network/99-default.link",
            "                  Network File: /etc/systemd/network/10-%s.network" % name,
            "                          Type: %s" % ("vlan" if name in self.vlans else "ether"),
            "                         State: %s"
            % ("routable (configured)" if addresses else "no-carrier (configuring)"),
        ]
        for index, address in enumerate(addresses + ["fe80::5054:ff:fe12:3456"] if addresses else []):
            lines.append("%s%s" % ("                       Address: " if index == 0 else " " * 32, address))
        if addresses and state["gateway"]:
            lines.append("                       Gateway: %s" % state["gateway"])
        for index, server in enumerate(state["dns"] if addresses else []):
            lines.append("%s%s" % ("                           DNS: " if index == 0 else " " * 32, server))
        return 0, "\n".join(lines) + "\n", ""

    def answer_reconfigure(self, argv):
        name = argv[2]
        if name not in self.links():
            return 1, "", 'Failed to resolve interface "%s": No such device\n' % name
        self.configure(name)
        return 0, "", ""

    def answer_systemctl_start(self, argv):
        self.networkd_active = True
        return 0, "", ""

    # ------------------------------------------------------------------ helpers for assertions

    def mutations(self, calls=None):
        """The commands (of ``calls``, default all) that change something."""
        return [
            call
            for call in (self.runner.calls if calls is None else calls)
            if call[:3] in (["ip", "link", "set"], ["ip", "link", "delete"])
            or call[:2] in (["networkctl", "reload"], ["networkctl", "reconfigure"], ["systemctl", "start"])
        ]


@pytest.fixture
def machine(tmp_path, monkeypatch):
    built = []

    def build(fixture):
        built.append(FakeMachine(tmp_path / ("machine%d" % len(built)), fixture, monkeypatch))
        return built[-1]

    return build


def gather(machine):
    return nics.gather_nics(str(machine.sysfs), nics.parse_ip_link(machine.answer_ip_link_show([])[1]))


# ---------------------------------------------------------------- what a NIC looks like


def test_this_host_has_one_physical_nic_and_its_virtual_ones_are_left_out(machine):
    host = machine("host_kvm")
    assert gather(host) == [
        {
            "name": "eth0",
            "mac": "02:fc:00:00:00:01",
            "permanent_mac": "02:fc:00:00:00:01",
            "driver": "virtio_net",
            "bus_path": "virtio2",
            "device_path": "devices/pci0000:00/0000:00:03.0/virtio2",
            "usb": False,
            "up": True,
            "operstate": "up",
            "carrier": True,
            "speed": None,
        }
    ]


def test_a_down_link_whose_carrier_and_speed_fail_with_einval_reads_as_unknown(machine):
    guest = machine("qemu_three_nics")
    assert [(nic["name"], nic["up"], nic["operstate"], nic["carrier"], nic["speed"]) for nic in gather(guest)] == [
        ("ens3", False, "down", None, None),
        ("ens4", False, "down", None, None),
        ("ens5", False, "down", None, None),
    ]


def test_an_up_link_without_cable_has_no_carrier_and_one_with_cable_has_its_speed(machine):
    guest = machine("qemu_three_nics")
    guest.nics["ens4"]["up"] = True
    guest.sync("ens4")
    guest.nics["ens5"].update(up=True, cable=True)
    guest.sync("ens5")
    assert {nic["name"]: (nic["operstate"], nic["carrier"], nic["speed"]) for nic in gather(guest)} == {
        "ens3": ("down", None, None),
        "ens4": ("down", False, None),
        "ens5": ("up", True, 1000),
    }


def test_a_missing_carrier_file_is_unknown_and_a_missing_operstate_unknown(machine):
    guest = machine("qemu_three_nics")
    (guest.net_dir("ens3") / "carrier").unlink()
    (guest.net_dir("ens3") / "operstate").unlink()
    ens3 = gather(guest)[0]
    assert (ens3["carrier"], ens3["operstate"]) == (None, "unknown")


def test_the_server_nics_come_in_bus_order_with_pci_addresses_compared_as_hex(machine):
    server = machine("server_mixed")
    assert [(nic["name"], nic["bus_path"], nic["driver"], nic["usb"]) for nic in gather(server)] == [
        ("enp0s20f0u1u6", "1-1.6:2.0", "cdc_ether", True),
        ("eno1", "0000:02:00.0", "igb", False),
        ("eno2", "0000:02:00.1", "igb", False),
        ("ens1f0", "0000:3b:00.0", "ixgbe", False),
        ("ens1f1", "0000:3b:00.1", "ixgbe", False),
    ]


def test_the_permanent_mac_comes_from_permaddr_when_the_address_was_changed(machine):
    server = machine("server_mixed")
    by_name = {nic["name"]: nic for nic in gather(server)}
    assert (by_name["ens1f1"]["mac"], by_name["ens1f1"]["permanent_mac"]) == ("02:11:22:33:44:55", "a0:36:9f:00:00:03")
    assert by_name["ens1f0"]["permanent_mac"] == "a0:36:9f:00:00:02"


def test_a_mac_the_driver_made_up_has_no_permanent_mac(machine):
    guest = machine("qemu_three_nics")
    guest.nics["ens3"]["addr_assign_type"] = 1
    guest.sync("ens3")
    assert gather(guest)[0]["permanent_mac"] is None


def test_sort_keys_follow_the_device_tree():
    paths = [
        "devices/pci0000:a0/0000:a0:01.0",
        "devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0",
        "devices/pci0000:00/0000:00:1c.0/0000:02:00.0",
        "devices/pci0000:00/0000:00:03.0/virtio10",
        "devices/pci0000:00/0000:00:03.0/virtio2",
    ]
    assert sorted(paths, key=nics.bus_key) == [
        "devices/pci0000:00/0000:00:03.0/virtio2",
        "devices/pci0000:00/0000:00:03.0/virtio10",
        "devices/pci0000:00/0000:00:1c.0/0000:02:00.0",
        "devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0",
        "devices/pci0000:a0/0000:a0:01.0",
    ]


def test_an_attribute_that_fails_for_another_reason_names_the_file(machine, monkeypatch):
    guest = machine("qemu_three_nics")

    def denied(path):
        raise OSError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(nics, "read_file", denied)
    with pytest.raises(nics.NicFactsError, match=r"cannot read .*/address: Permission denied"):
        gather(guest)


def test_no_class_net_directory_means_no_nic(tmp_path):
    assert nics.gather_nics(str(tmp_path)) == []


def test_ip_link_output_this_host_printed_parses(machine):
    host = machine("host_kvm")
    assert nics.parse_ip_link(host.answer_ip_link_show([])[1])["eth0"] == {
        "address": "02:fc:00:00:00:01",
        "permaddr": None,
    }
    with pytest.raises(nics.NicFactsError, match="not JSON"):
        nics.parse_ip_link('Object "link" is unknown')


@pytest.mark.parametrize(
    "spelling",
    ["52:54:00:AB:CD:EF", "52-54-00-ab-cd-ef", "52-54-00-AB-CD-EF", "5254.00ab.cdef", "5254.00AB.CDEF", "525400abcdef"],
)
def test_the_operators_mac_matches_in_any_common_spelling(spelling):
    nic = {"mac": "52:54:00:ab:cd:ef", "permanent_mac": None}
    assert nics.matches_mac(nic, spelling) is True
    assert nics.candidates(
        [dict(nic, name="ens3"), {"name": "ens4", "mac": "52:54:00:ab:cd:e0", "permanent_mac": None}], spelling
    ) == [dict(nic, name="ens3")]


@pytest.mark.parametrize("junk", ["52:54:00:12:34", "", None, "lan"])
def test_junk_matches_no_nic(junk):
    assert nics.matches_mac({"mac": "52:54:00:12:34:56", "permanent_mac": "52:54:00:12:34:56"}, junk) is False


def test_ip_link_and_sysfs_macs_in_other_spellings_read_as_lowercase_colon_pairs(machine):
    host = machine("qemu_three_nics")
    host.nics["ens3"]["mac"] = "52-54-00-12-34-56".upper()
    host.sync("ens3")
    links = [
        {"ifname": "ens4", "address": "5254.0012.3457", "permaddr": "52-54-00-AA-BB-CC"},
        {"ifname": "ib0", "address": "80:00:02:08:fe:80:00:00:00:00:00:00:00:02:c9:03:00:0a:0b:0c"},
    ]
    assert nics.parse_ip_link(json.dumps(links)) == {
        "ens4": {"address": "52:54:00:12:34:57", "permaddr": "52:54:00:aa:bb:cc"},
        "ib0": {"address": None, "permaddr": None},
    }
    assert [nic["mac"] for nic in gather(host)][0] == "52:54:00:12:34:56"


# ---------------------------------------------------------------- which NIC becomes lan


def nic(name, bus, speed=None, carrier=True, operstate="up", usb=False, mac=None):
    return {
        "name": name,
        "mac": mac or "52:54:00:00:00:%02x" % bus,
        "permanent_mac": mac or "52:54:00:00:00:%02x" % bus,
        "driver": "e1000",
        "bus_path": "0000:00:%02x.0" % bus,
        "device_path": "devices/pci0000:00/0000:00:%02x.0" % bus,
        "usb": usb,
        "up": True,
        "operstate": operstate,
        "carrier": carrier,
        "speed": speed,
    }


def test_only_nics_with_a_link_are_picked():
    assert nics.pick_nic([nic("ens3", 3, carrier=False, operstate="down"), nic("ens4", 4)])["name"] == "ens4"
    assert nics.pick_nic([nic("ens3", 3, carrier=False, operstate="down")]) is None


def test_the_fastest_link_wins():
    assert (
        nics.pick_nic([nic("eno1", 3, speed=1000), nic("ens1f0", 4, speed=10000), nic("eno2", 5)])["name"] == "ens1f0"
    )


def test_equal_speeds_go_by_bus_order():
    assert nics.pick_nic([nic("ens3", 3, speed=1000), nic("ens4", 4, speed=1000)])["name"] == "ens3"
    assert nics.pick_nic([nic("eth0", 3), nic("eth1", 4)])["name"] == "eth0"


def test_unreadable_carrier_falls_back_to_operstate():
    assert (
        nics.pick_nic([nic("ens3", 3, carrier=None, operstate="down"), nic("ens4", 4, carrier=None)])["name"] == "ens4"
    )


def test_a_usb_nic_comes_after_every_other_whatever_its_speed():
    assert nics.pick_nic([nic("bmc", 1, speed=10000, usb=True), nic("eno1", 3, speed=100)])["name"] == "eno1"
    assert nics.pick_nic([nic("bmc", 1, usb=True)])["name"] == "bmc"


def test_the_nic_already_named_lan_keeps_the_name():
    assert nics.pick_nic([nic("ens1f0", 3, speed=10000), nic("lan", 4, speed=1000)])["name"] == "lan"


def test_the_operators_mac_leaves_one_candidate():
    all_nics = [nic("ens3", 3), nic("ens4", 4, mac="52:54:00:12:34:57")]
    assert [n["name"] for n in nics.candidates(all_nics, "52-54-00-12-34-57")] == ["ens4"]
    assert nics.candidates(all_nics, "52:54:00:ff:ff:ff") == []
    assert nics.candidates(all_nics) == all_nics


# ---------------------------------------------------------------- the module


def point_module_at(box, monkeypatch, runner):
    """The module reads the box's sysfs (it has no option for it) and runs ``runner``."""
    monkeypatch.setattr(nic_facts, "gather_nics", functools.partial(nics.gather_nics, str(box.sysfs)))
    monkeypatch.setattr(nic_facts, "Runner", lambda module: runner)
    monkeypatch.setattr(AnsibleModule, "get_bin_path", fake_get_bin_path)


@pytest.fixture
def run_facts(machine, monkeypatch, capsys):
    def run(fixture, check_mode=False):
        box = machine(fixture)
        point_module_at(box, monkeypatch, box.runner)
        return box, run_module(nic_facts.main, {}, capsys, check_mode=check_mode)

    return run


def test_module_returns_the_nics_as_facts_and_changes_nothing(run_facts):
    box, result = run_facts("server_mixed")
    assert result["changed"] is False
    assert [n["name"] for n in result["ansible_facts"]["prenixos_nics"]] == [
        "enp0s20f0u1u6",
        "eno1",
        "eno2",
        "ens1f0",
        "ens1f1",
    ]
    assert box.runner.calls == [["ip", "-j", "link", "show"]]


def test_module_reads_the_real_sysfs_and_takes_no_option_for_it(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(nic_facts, "gather_nics", lambda *args, **kwargs: calls.append((args, kwargs)) or [])
    monkeypatch.setattr(nic_facts, "Runner", lambda module: RecordingRunner({("ip",): (0, "[]", "")}))
    monkeypatch.setattr(AnsibleModule, "get_bin_path", fake_get_bin_path)
    assert run_module(nic_facts.main, {}, capsys)["ansible_facts"] == {"prenixos_nics": []}
    assert calls == [((), {"ip_links": {}})]
    assert inspect.signature(nics.gather_nics).parameters["sysfs_root"].default == "/sys"
    refused = run_module(nic_facts.main, {"sysfs_root": "/tmp/sys"}, capsys)
    assert refused["failed"] is True and "sysfs_root" in refused["msg"]


def test_module_in_check_mode_gives_the_same_facts(run_facts):
    plain = run_facts("host_kvm")[1]
    checked = run_facts("host_kvm", check_mode=True)[1]
    assert checked["changed"] is False
    assert checked["ansible_facts"] == plain["ansible_facts"]


def test_module_fails_with_the_command_when_ip_fails(machine, monkeypatch, capsys):
    box = machine("host_kvm")
    failing = RecordingRunner({("ip",): (255, "", 'Object "link" is unknown, try "ip help".\n')})
    point_module_at(box, monkeypatch, failing)
    result = run_module(nic_facts.main, {}, capsys)
    assert result["failed"] is True
    assert (result["cmd"], result["rc"]) == (["ip", "-j", "link", "show"], 255)
    assert 'Object "link" is unknown' in result["msg"]
