#!/usr/bin/python
# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: nic_facts
short_description: Gather the physical network interfaces of a machine
version_added: "0.1.0"
description:
  - Lists every physical NIC, that is every interface with a C(device) link in C(/sys/class/net/<name>)
    (loopback, bridges, bonds, veths and tunnels have none), and returns them as C(ansible_facts.prenixos_nics).
  - Reads sysfs and runs C(ip -j link show) once (for the permanent MAC). Changes nothing.
  - The list is in bus order (the device tree under C(/sys/devices), PCI addresses compared as
    fixed-width hex), then by name. The same hardware gives the same list every time.
author: pre-nixos baseline engineers (@prenixos)
requirements:
  - netaddr (reads the MACs in any notation the kernel or a driver prints)
extends_documentation_fragment:
  - prenixos.baseline.attributes
  - prenixos.baseline.attributes.no_diff
attributes:
  diff_mode:
    description: Changes nothing, so there is no diff.
"""

EXAMPLES = r"""
- name: Gather the NICs
  prenixos.baseline.nic_facts:

- name: Show which NICs have a link
  ansible.builtin.debug:
    msg: "{{ ansible_facts.prenixos_nics | selectattr('carrier') | map(attribute='name') | list }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    prenixos_nics:
      description: The physical NICs, in bus order then by name.
      returned: always
      type: list
      elements: dict
      contains:
        name:
          description: Interface name now (C(ens3), C(eth0), C(lan)).
          type: str
        mac:
          description: Current MAC address, lowercase.
          type: str
        permanent_mac:
          description:
            - The address burnt into the NIC. C(permaddr) of C(ip -j link show) when the current address
              differs from it; else the current address when the kernel marks it permanent
              (C(addr_assign_type) 0); else null (the driver made one up).
          type: str
        driver:
          description: Kernel driver (basename of C(device/driver)), or null when none is bound.
          type: str
        bus_path:
          description: Basename of the device the NIC sits on (C(0000:00:03.0), C(virtio0), C(1-1:1.0)).
          type: str
        device_path:
          description: The device under the sysfs root, the bus-order sort key.
          type: str
          sample: devices/pci0000:00/0000:00:03.0/virtio0
        usb:
          description: The NIC hangs off a USB bus (a dongle, a BMC's virtual NIC).
          type: bool
        up:
          description: Administratively up (C(IFF_UP) in C(flags)).
          type: bool
        operstate:
          description: C(operstate) from sysfs (C(up), C(down), C(dormant), C(unknown), ...).
          type: str
        carrier:
          description: Link detected; null when the kernel cannot tell (a down link answers EINVAL).
          type: bool
        speed:
          description: Link speed in Mb/s; null when unknown (down link, -1, virtual hardware).
          type: int
      sample:
        - name: ens3
          mac: "52:54:00:12:34:56"
          permanent_mac: "52:54:00:12:34:56"
          driver: e1000
          bus_path: "0000:00:03.0"
          device_path: devices/pci0000:00/0000:00:03.0
          usb: false
          up: true
          operstate: up
          carrier: true
          speed: 1000
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prenixos.baseline.plugins.module_utils.addressing import require_netaddr
from ansible_collections.prenixos.baseline.plugins.module_utils.nics import NicFactsError, gather_nics, parse_ip_link
from ansible_collections.prenixos.baseline.plugins.module_utils.runner import CommandError, Runner


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    require_netaddr(module)
    ip = module.get_bin_path("ip", required=True)
    try:
        ip_links = parse_ip_link(Runner(module).run([ip, "-j", "link", "show"])[1])
        nics = gather_nics(ip_links=ip_links)
    except CommandError as err:
        module.fail_json(**err.as_fail_kwargs())
    except NicFactsError as err:
        module.fail_json(msg="NIC discovery failed: %s" % err)
    module.exit_json(changed=False, ansible_facts={"prenixos_nics": nics})


if __name__ == "__main__":
    main()
