#!/usr/bin/python
# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: nixos_config
short_description: Write the NixOS configuration that matches this machine's disks, network and SSH
version_added: "0.1.0"
description:
  - Renders, from the storage plan, the LAN facts and root's public keys, a NixOS module for the system
    that C(nixos-install) will put on the disks, and writes it to C(<root>/etc/nixos/pre-nixos.nix).
  - "The module mounts every filesystem and the swap by label (forced over the by-uuid entries of
    C(hardware-configuration.nix)), enables mdadm (C(HOMEHOST <ignore>), so arrays made on the boot image
    assemble) and LVM in the initrd, installs systemd-boot on the ESP labelled C(EFI) and copies it to the
    spare ESPs after every install, puts the kernel console on the screen and C(ttyS0), sets up the network
    as the M(prenixos.baseline.lan) module sets up the live one, and lets root in over SSH with the given keys
    only, the firewall open for SSH alone."
  - "The network: systemd-networkd names the NIC with the LAN MAC C(lan) through a C(.link) (with a VLAN, it
    is named C(lan-port) and carries the tagged interface C(lan)); C(lan) runs DHCP and IPv6 router
    advertisements, or the static addresses (one IPv4, one IPv6), gateways and DNS servers. Each of
    O(address), O(gateway), O(dns) and O(vlan) given wins over the C(settings) of O(lan) (the network the
    image was reached on, static or VLAN included); what neither gives is DHCP without a VLAN."
  - When C(<root>/etc/nixos/configuration.nix) is missing, writes a minimal one that imports
    C(./pre-nixos.nix) and, when present, C(./hardware-configuration.nix), and holds C(system.stateVersion).
    C(nixos-generate-config) keeps an existing C(configuration.nix), so nothing generated needs a hand edit.
    An existing C(configuration.nix) is never changed; when it does not import C(pre-nixos.nix) the result
    says so and a warning tells what to add.
  - Optionally also writes the plan as a disko layout to C(<root>/etc/nixos/disko.nix) (not imported).
  - Files are written atomically and only when their content differs.
author: pre-nixos baseline engineers (@prenixos)
requirements:
  - netaddr (on the host that runs the module)
options:
  plan:
    description:
      - The storage plan, as M(prenixos.baseline.storage_plan) returns it (version 2; version 1 is still read).
    type: dict
    required: true
  lan:
    description:
      - The LAN facts M(prenixos.baseline.lan) returns (C(name), C(mac), C(permanent_mac), C(settings), ...).
        C(mac) (or C(permanent_mac)), in any common notation, is required in it; C(name) defaults to C(lan).
      - Its C(settings) (C(addresses), C(gateways), C(dns), C(vlan)) are what the installed system gets where
        O(address), O(gateway), O(dns) and O(vlan) are not given.
      - When not given, every Ethernet NIC of the installed system asks for DHCP, and no NIC is renamed.
    type: dict
  authorized_keys:
    description:
      - Public key lines root may log in with on the installed system. At least one.
    type: list
    elements: str
    required: true
  root:
    description:
      - Where the installed system's root filesystem is mounted.
    type: path
    default: /mnt
  require_mounted:
    description:
      - Refuse to write unless O(root) is a mount point, so the configuration never lands on the live
        system when the plan's filesystems are not mounted.
    type: bool
    default: true
  address:
    description:
      - Static addresses with their prefix length for C(lan) instead of DHCP, at most one IPv4 and one IPv6
        (C(192.0.2.10/24), C(2001:db8::10/64)); one string is one address. Needs O(lan).
      - A static IPv6 address turns IPv6 router advertisements off.
      - Not given - the addresses of the C(settings) of O(lan), else DHCP.
    type: list
    elements: str
  gateway:
    description:
      - Default gateways, at most one per IP version, each inside the network of the static address of its
        version (or link-local). Needs O(lan).
      - Not given - none when O(address) is given, else the gateways of the C(settings) of O(lan).
    type: list
    elements: str
  dns:
    description:
      - DNS servers for C(lan), with a static address or beside the ones DHCP brings.
      - Not given - the DNS servers of the C(settings) of O(lan).
    type: list
    elements: str
  vlan:
    description:
      - The VLAN ID (1-4094) C(lan) is tagged with; the NIC is then named C(lan-port). C(0) is no VLAN. Needs O(lan).
      - Not given - the VLAN of the C(settings) of O(lan), else none.
    type: int
  hostname:
    description:
      - The installed system's host name (C(networking.hostName), as C(lib.mkDefault)). NixOS's default when not set.
    type: str
  state_version:
    description:
      - C(system.stateVersion) written into a new C(configuration.nix). Never changes an existing one.
    type: str
    default: "24.11"
  ssh_settings:
    description:
      - sshd settings for the installed system (C(yes)/C(no) become NixOS booleans).
      - Defaults to the hardened set of the C(ssh_hardening) role.
    type: dict
  disko:
    description:
      - Also write the plan as a disko C(disko.devices) layout to C(<root>/etc/nixos/disko.nix).
    type: bool
    default: false
extends_documentation_fragment:
  - prenixos.baseline.attributes
  - prenixos.baseline.attributes.diff
attributes:
  diff_mode:
    description: Returns each file's content before and after.
"""

EXAMPLES = r"""
- name: Write the NixOS configuration for the disks mounted under /mnt
  prenixos.baseline.nixos_config:
    plan: "{{ lookup('ansible.builtin.file', '/var/log/pre-nixos/plan.json') | from_json }}"
    lan: "{{ __lan_result.lan }}"
    authorized_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl operator@desk
    hostname: web1

- name: Same, with a static address and a disko layout next to it
  prenixos.baseline.nixos_config:
    plan: "{{ storage_plan.plan }}"
    lan: {mac: "52:54:00:12:34:56"}
    authorized_keys: "{{ prenixos_ssh_authorized_keys }}"
    address: 192.0.2.10/24
    gateway: 192.0.2.1
    dns: [192.0.2.53]
    disko: true

- name: The installed system on VLAN 42 with static IPv4 and IPv6 (the MAC from the LAN facts)
  prenixos.baseline.nixos_config:
    plan: "{{ storage_plan.plan }}"
    lan: "{{ prenixos_lan_result.lan }}"
    authorized_keys: "{{ prenixos_ssh_authorized_keys }}"
    address: [192.0.2.10/24, 2001:db8::10/64]
    gateway: [192.0.2.1, 2001:db8::1]
    vlan: 42
"""

RETURN = r"""
network:
  description: The settings C(lan) gets on the installed system (empty C(addresses) is DHCP).
  returned: always
  type: dict
  sample: {addresses: [192.0.2.10/24, 2001:db8::10/64], gateways: [192.0.2.1], dns: [192.0.2.53], vlan: 42}
path:
  description: The NixOS module written (or, in check mode, that would be written).
  returned: always
  type: str
  sample: /mnt/etc/nixos/pre-nixos.nix
nixos:
  description: The content of O(root)/etc/nixos/pre-nixos.nix.
  returned: always
  type: str
configuration_path:
  description: The C(configuration.nix) that imports the module.
  returned: always
  type: str
  sample: /mnt/etc/nixos/configuration.nix
configuration_state:
  description: C(written) when this run wrote it (or would, in check mode), C(kept) when it existed.
  returned: always
  type: str
  sample: written
configuration_imports_pre_nixos:
  description: Whether C(configuration.nix) (written or existing) imports C(./pre-nixos.nix).
  returned: always
  type: bool
  sample: true
disko_path:
  description: The disko layout written.
  returned: when O(disko) is true
  type: str
  sample: /mnt/etc/nixos/disko.nix
files:
  description: Every file this module manages, and whether this run changed (or would change) it.
  returned: always
  type: list
  elements: dict
  sample:
    - {path: /mnt/etc/nixos/pre-nixos.nix, changed: true}
    - {path: /mnt/etc/nixos/configuration.nix, changed: false}
install_tools:
  description: Where this host has C(nixos-generate-config) and C(nixos-install) (null when missing, as on Debian).
  returned: always
  type: dict
  sample: {nixos-generate-config: null, nixos-install: null}
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prenixos.baseline.plugins.module_utils.addressing import require_netaddr
from ansible_collections.prenixos.baseline.plugins.module_utils.disko import render_disko
from ansible_collections.prenixos.baseline.plugins.module_utils.files import read_text, write_text
from ansible_collections.prenixos.baseline.plugins.module_utils.nixos import (
    NixosConfigError,
    imports_pre_nixos,
    lan_settings,
    render_configuration,
    render_pre_nixos,
)
from ansible_collections.prenixos.baseline.plugins.module_utils.storage_contract import READABLE_PLAN_VERSIONS

INSTALL_TOOLS = ("nixos-generate-config", "nixos-install")


def render(params):
    """``(pre-nixos.nix, configuration.nix for a fresh install, disko.nix or None, lan's settings)``."""
    plan = params["plan"]
    if plan.get("version") not in READABLE_PLAN_VERSIONS:
        raise NixosConfigError("this module reads storage plans of versions %s, not %r"
                               % (" and ".join(map(str, READABLE_PLAN_VERSIONS)), plan.get("version")))
    pre_nixos = render_pre_nixos(
        plan,
        params["authorized_keys"],
        lan=params["lan"],
        address=params["address"],
        gateway=params["gateway"],
        dns=params["dns"],
        vlan=params["vlan"],
        hostname=params["hostname"],
        ssh=params["ssh_settings"],
    )
    network = lan_settings(params["lan"], params["address"], params["gateway"], params["dns"], params["vlan"])
    configuration = render_configuration(params["state_version"])
    disko = render_disko(plan) if params["disko"] else None
    return pre_nixos, configuration, disko, network


def main():
    module = AnsibleModule(
        argument_spec={
            "plan": {"type": "dict", "required": True},
            "lan": {"type": "dict"},
            "authorized_keys": {"type": "list", "elements": "str", "required": True, "no_log": False},
            "root": {"type": "path", "default": "/mnt"},
            "require_mounted": {"type": "bool", "default": True},
            "address": {"type": "list", "elements": "str"},
            "gateway": {"type": "list", "elements": "str"},
            "dns": {"type": "list", "elements": "str"},
            "vlan": {"type": "int"},
            "hostname": {"type": "str"},
            "state_version": {"type": "str", "default": "24.11"},
            "ssh_settings": {"type": "dict"},
            "disko": {"type": "bool", "default": False},
        },
        required_by={"address": "lan", "gateway": "lan", "vlan": "lan"},
        supports_check_mode=True,
    )
    require_netaddr(module)
    params = module.params
    root = params["root"]
    if params["require_mounted"] and not os.path.ismount(root):
        module.fail_json(
            msg="%s is not a mount point: the planned filesystems are not mounted there (apply the storage plan "
            "first), and writing the configuration now would put it on the live system" % root
        )
    try:
        pre_nixos, configuration, disko, network = render(params)
    except (NixosConfigError, KeyError, TypeError, StopIteration) as error:
        reason = "the plan lacks %s" % error if isinstance(error, KeyError) else str(error) or "malformed plan"
        module.fail_json(msg="cannot write the NixOS configuration: %s" % reason)

    etc_nixos = os.path.join(root, "etc", "nixos")
    path = os.path.join(etc_nixos, "pre-nixos.nix")
    configuration_path = os.path.join(etc_nixos, "configuration.nix")
    wanted = [(path, pre_nixos)]
    existing_configuration = read_text(configuration_path)
    if existing_configuration is None:
        wanted.append((configuration_path, configuration))
        configuration_state = "written"
        imports_ok = True
    else:
        configuration_state = "kept"
        imports_ok = imports_pre_nixos(existing_configuration)
        if not imports_ok:
            module.warn(
                "%s exists and does not import ./pre-nixos.nix; add it to its imports "
                "(imports = [ ./hardware-configuration.nix ./pre-nixos.nix ];) or the installed system will not "
                "know its disks, network and keys" % configuration_path
            )
    if disko is not None:
        wanted.append((os.path.join(etc_nixos, "disko.nix"), disko))

    files = []
    diffs = []
    for file_path, content in wanted:
        before = read_text(file_path) if file_path != configuration_path else None
        changed = before != content
        files.append({"path": file_path, "changed": changed})
        if changed:
            diffs.append(
                {"before_header": file_path, "before": before or "", "after_header": file_path, "after": content}
            )
            if not module.check_mode:
                try:
                    write_text(module, file_path, content)
                except OSError as error:
                    module.fail_json(msg=str(error), files=files)
    if existing_configuration is not None:
        files.append({"path": configuration_path, "changed": False})

    result = {
        "changed": any(entry["changed"] for entry in files),
        "path": path,
        "nixos": pre_nixos,
        "network": network,
        "configuration_path": configuration_path,
        "configuration_state": configuration_state,
        "configuration_imports_pre_nixos": imports_ok,
        "files": files,
        "install_tools": {tool: module.get_bin_path(tool) for tool in INSTALL_TOOLS},
    }
    if disko is not None:
        result["disko_path"] = os.path.join(etc_nixos, "disko.nix")
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
