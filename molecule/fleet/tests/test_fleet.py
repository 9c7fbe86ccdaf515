# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every machine of the fleet reached the baseline through provision.yml, none through first boot."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
from testlib import first_boot_status, guest_json  # noqa: E402


def test_first_boot_did_nothing_and_provisioning_did_everything(host):
    status = first_boot_status(host)
    found = {name: phase["state"] for name, phase in status["phases"].items()}
    assert found == {"ssh": "done", "lan": "done", "storage_plan": "done", "storage_apply": "done",
                     "nixos_config": "done", "nixos_install": "skipped"}, "expected every phase provisioned: %s" % found
    assert "prenixos.firstboot=0" in host.file("/proc/cmdline").content_string


def test_each_machine_has_lan_and_its_root_mounted_by_label(host):
    (lan,) = guest_json(host, "ip -j -4 addr show dev lan")
    assert [a["local"] for a in lan["addr_info"]] == ["10.0.2.15"], "expected lan with its DHCP address: %s" % lan
    assert host.check_output("findmnt -n -o LABEL /mnt") == "slash", "expected / of the plan at /mnt"
