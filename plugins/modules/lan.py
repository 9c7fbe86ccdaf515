#!/usr/bin/python
# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: lan
short_description: Name the NIC with a live link C(lan) and configure it by DHCP through systemd-networkd
version_added: "0.1.0"
description:
  - Considers the physical NICs (those with a C(device) link in sysfs), or only the one with the operator's O(mac).
  - Brings each candidate up (a down link cannot report carrier) and polls until one has a link, up to
    O(carrier_timeout) seconds. Carrier that the kernel cannot read counts as unknown; C(operstate up) then decides.
  - Of several with a link it keeps the one already named O(name), else takes the fastest, else the first in bus
    order; USB NICs (a BMC's virtual NIC, a dongle) come after all others.
  - Renames it O(name) now (C(ip link set dev X down), C(... name lan), C(ip link set dev lan up)) and for later boots
    with C(10-lan.link) matching the permanent MAC (the current MAC when the driver made it up), writes
    C(10-lan.network) (DHCPv4, client identified by MAC), starts systemd-networkd when it is not running, has it apply
    the files (C(networkctl reload), C(networkctl reconfigure lan)) and waits up to O(dhcp_timeout) seconds for an
    IPv4 lease.
  - Idempotent. When O(name) exists with an IPv4 address and the files are already right it runs no command that
    changes anything and reports C(changed=false).
  - With O(root) other than C(/) it only writes the files under O(root) (for the installed system) and touches no
    live link; the NIC is then the one already named O(name), else the operator's O(mac), else the one NIC or the
    one with a link now.
  - "Optionally tells the operator the outcome, C(ssh root@<address>) followed by the SSH host key's fingerprint
    to check at first contact (C(pre-nixos: host key SHA256:...), as C(ssh-keygen -lf) prints it for
    C(/etc/ssh/ssh_host_ed25519_key.pub); no such line while the key is not made yet), or why the network is not
    configured, in the managed lines of O(issue_path) and on each of O(consoles). Both are written only when their
    text changes. On failure the announcement is made before the module fails."
author: pre-nixos baseline engineers (@prenixos)
requirements:
  - netaddr (reads the operator's MAC and addresses)
options:
  name:
    description: The name the chosen NIC gets.
    type: str
    default: lan
  mac:
    description:
      - The operator's choice. Only the NIC whose current or permanent MAC this is may become O(name).
      - Any common notation, C(52:54:00:ab:cd:ef), C(52-54-00-AB-CD-EF), C(5254.00ab.cdef).
    type: str
  carrier_timeout:
    description: Seconds to wait for a link on a candidate NIC.
    type: int
    default: 60
  dhcp_timeout:
    description: Seconds to wait for an IPv4 lease once O(name) is configured.
    type: int
    default: 60
  poll_interval:
    description: Seconds between two looks at carrier or lease.
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
        and the commands it would run. When no NIC has a link yet, says so and changes nothing.
  diff_mode:
    description: Shows the files (and the issue file) before and after.
notes:
  - Needs C(ip) (iproute2); live runs also need C(networkctl) and C(systemctl) (systemd-networkd).
  - A live run (O(root=/)) refuses, before touching any NIC, where C(/run/systemd/system) is missing (systemd is
    not init) - networkd could not take the renamed NIC over, and the machine would be left without its network.
  - NICs that were brought up to look for a link and were not chosen stay up, unconfigured.
"""

EXAMPLES = r"""
- name: Name the NIC with a link lan and get a lease
  prenixos.baseline.lan:
  register: lan

- name: Use this port, whatever else has a link
  prenixos.baseline.lan:
    mac: "52:54:00:12:34:57"

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
  description: The name the NIC has (or gets).
  returned: success
  type: str
  sample: lan
original_name:
  description: The kernel name the NIC had before it was renamed (read back from C(10-lan.link) on later runs).
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
  description: The IPv4 address; null in check mode or with O(root) other than C(/) when there is none yet.
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
  description: The default gateway through O(name), null when the DHCP server gave none.
  returned: success
  type: str
  sample: 10.0.2.2
dns:
  description: DNS servers networkd got for O(name) (empty when it reports none).
  returned: success
  type: list
  elements: str
  sample: [10.0.2.3]
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
  description: The files this module manages and their wanted content.
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
msg:
  description: What happened, in one line.
  returned: always
  type: str
"""

import os
import time

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


class LanFailure(Exception):
    """The network cannot be configured; the message tells the operator why."""


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


class Lan:
    """One run of the module: look, decide, act (unless check mode), report."""

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
        self.commands = []
        self.changed = False
        self.diff = []
        self.nics = []
        self.ip_links = {}
        self.result = {"nic": None, "files": {}, "host_key": sshd.host_key_fingerprint(read_text(HOST_KEY_PATH))}

    # ------------------------------------------------------------------ looking

    def look(self):
        """Re-read sysfs (the permanent MACs from ``ip`` are read once: they do not change)."""
        self.nics = nics.gather_nics(SYSFS_ROOT, self.ip_links)
        return self.nics

    def lease(self):
        """The IPv4 lease of ``name`` as the kernel and networkd show it; address None when there is none."""
        out = self.runner.run([self.ip, "-j", "-4", "addr", "show", "dev", self.name], check=False)
        interface = networkd.parse_ipv4_address(out[1]) if out[0] == 0 else None
        if interface is None:
            return networkd.lease_facts(None, None, []), False
        out = self.runner.run([self.ip, "-j", "-4", "route", "show", "default", "dev", self.name], check=False)
        gateway = networkd.parse_default_gateway(out[1]) if out[0] == 0 else None
        networkctl = self.module.get_bin_path("networkctl")
        status = {"dns": [], "configured": False}
        if networkctl:
            out = self.runner.run([networkctl, "status", "--no-pager", "--lines=0", self.name], check=False)
            if out[0] == 0:
                status = networkd.parse_networkctl_status(out[1])
        complete = gateway is not None or status["configured"] or not networkctl
        return networkd.lease_facts(interface, gateway, status["dns"]), complete

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
        return next((nic for nic in self.nics if nic["name"] == self.name), None)

    def settled_choice(self, candidates):
        """The NIC already called ``name`` when it is a candidate with a link or an address: never switch away."""
        current = self.named()
        if current is None or current not in candidates:
            return None
        if nics.has_link(current) or (self.live and self.lease()[0]["address"]):
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
            chosen = nics.pick_nic(candidates, self.name)
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
            chosen = nics.pick_nic(candidates, self.name)
            if chosen is None:
                raise LanFailure(
                    "no NIC has a link now, so none can be chosen for the files under %s; name it with mac"
                    " (NICs: %s)" % (self.params["root"], ", ".join(nics.describe(n) for n in candidates))
                )
            return chosen
        if self.check:
            return nics.pick_nic(candidates, self.name)
        return self.wait_for_carrier()

    # ------------------------------------------------------------------ the run

    def original_name(self, nic):
        if nic["name"] != self.name:
            return nic["name"]
        for directory in (self.network_dir, LIVE_NETWORK_DIR):
            recorded = networkd.recorded_original_name(
                read_text(os.path.join(directory, networkd.link_file_name(self.name))), nic
            )
            if recorded:
                return recorded
        return nic["name"]

    def rename(self, nic):
        if nic["name"] == self.name:
            return False
        holder = self.named()
        if holder is not None:
            raise LanFailure(
                "cannot name %s %s: %s already has that name (an earlier choice); reboot to choose again"
                % (nic["name"], self.name, nics.describe(holder))
            )
        self.act([self.ip, "link", "set", "dev", nic["name"], "down"])
        self.act([self.ip, "link", "set", "dev", nic["name"], "name", self.name])
        self.act([self.ip, "link", "set", "dev", self.name, "up"])
        return True

    def apply(self):
        """Have networkd (started when needed) read the files and configure ``name`` again."""
        systemctl = self.module.get_bin_path("systemctl", required=True)
        networkctl = self.module.get_bin_path("networkctl", required=True)
        if self.runner.run([systemctl, "is-active", "--quiet", "systemd-networkd.service"], check=False)[0] != 0:
            self.act([systemctl, "start", "systemd-networkd.service"])
        self.act([networkctl, "reload"])
        self.act([networkctl, "reconfigure", self.name])

    def wait_for_lease(self, nic):
        deadline = time.monotonic() + self.params["dhcp_timeout"]
        while True:
            lease, complete = self.lease()
            if lease["address"] and complete:
                return lease
            if time.monotonic() >= deadline:
                if lease["address"]:
                    return lease
                raise LanFailure(
                    "link %s (%s, was %s) is up, but no DHCP answer in %s s"
                    % (self.name, nic["mac"], self.original_name(nic), self.params["dhcp_timeout"])
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
        renamed = self.rename(nic) if self.live else False
        # The .link file only matters when udev names a new device (next boot): no live action for it.
        self.converge_file(
            os.path.join(self.network_dir, networkd.link_file_name(self.name)),
            networkd.render_link(nic, self.name, original_name),
        )
        network_changed = self.converge_file(
            os.path.join(self.network_dir, networkd.network_file_name(self.name)), networkd.render_network(self.name)
        )

        lease = networkd.lease_facts(None, None, [])
        if nic["name"] == self.name or not self.live:
            lease = self.lease()[0]
        if self.live and (renamed or network_changed or not lease["address"]):
            self.apply()
            if not self.check:
                lease = self.wait_for_lease(nic)

        self.result.update(lease)
        self.result.update(
            name=self.name, original_name=original_name, mac=nic["mac"], permanent_mac=nic["permanent_mac"]
        )
        if not self.live:
            self.result["msg"] = "files for %s (%s, was %s) under %s" % (
                self.name,
                nic["mac"],
                original_name,
                self.params["root"],
            )
        elif lease["address"]:
            self.result["msg"] = "ssh root@%s (%s is %s %s)" % (lease["address"], self.name, original_name, nic["mac"])
        else:
            self.result["msg"] = "would name %s (%s) %s and ask DHCP for an address" % (
                original_name,
                nic["mac"],
                self.name,
            )
        return lease["address"] and networkd.success_lines(
            lease, self.name, dict(nic, name=original_name), self.result["host_key"]
        )

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
            "carrier_timeout": {"type": "int", "default": 60},
            "dhcp_timeout": {"type": "int", "default": 60},
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
        if module.params["mac"] is not None:
            try:
                addressing.mac(module.params["mac"])
            except addressing.AddressError as err:
                raise LanFailure(str(err)) from None
        lines = lan.run()
    except (LanFailure, CommandError, nics.NicFactsError, WriteError) as err:
        details = err.as_fail_kwargs() if isinstance(err, CommandError) else {"msg": str(err)}
        lan.announce(networkd.failure_lines(details["msg"], module.params["failure_hint"]))
        module.fail_json(**dict(lan.report(), **details))
    lan.announce(lines)
    module.exit_json(**lan.report())


if __name__ == "__main__":
    main()
