#!/usr/bin/python
# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: firstboot_status
short_description: Record a first-boot phase in the pre-nixos status file
version_added: "0.1.0"
description:
  - Sets the state of one phase (C(lan), C(ssh), C(storage_plan), C(storage_apply), C(nixos_config), ...)
    in the first-boot status file, C(/run/pre-nixos/status.json) by default.
  - The file is created when missing and always replaced atomically.
  - Optionally prints a progress line on the system console so an operator at the screen
    or the serial console sees which phase runs.
  - Over a local connection (the boot image's first boot) its action plugin records the phase in the
    controller's own process, with the same code, instead of starting a module.
author: pre-nixos baseline engineers (@prenixos)
options:
  phase:
    description: Name of the phase.
    type: str
    required: true
  state:
    description: New state of the phase.
    type: str
    required: true
    choices: [pending, running, done, skipped, failed]
  reason:
    description: Why the phase is in this state, in words an operator can act on.
    type: str
    default: ""
  details:
    description: Extra data stored with the phase (for example the LAN address or the plan summary).
    type: raw
  path:
    description: Status file to update.
    type: path
    default: /run/pre-nixos/status.json
  console:
    description:
      - Character device that receives a progress line; an empty string prints nothing.
      - A missing or unwritable console is ignored.
    type: str
    default: ""
  issue_path:
    description:
      - "File shown before the login prompt (C(/etc/issue)). When given, a C(failed) or C(skipped) phase puts
        one line there (C(pre-nixos: PHASE STATE: REASON)), so the operator at the console sees why, and any
        other state removes that line. Every other line of the file is kept. Empty for none."
    type: str
    default: ""
extends_documentation_fragment:
  - prenixos.baseline.attributes
  - prenixos.baseline.attributes.diff
attributes:
  diff_mode:
    description: Returns the phase before and after the change.
"""

EXAMPLES = r"""
- name: Mark the storage plan as running
  prenixos.baseline.firstboot_status:
    phase: storage_plan
    state: running
    console: /dev/console

- name: Record why storage was only planned
  prenixos.baseline.firstboot_status:
    phase: storage_apply
    state: skipped
    reason: "sdb holds data (partition table (gpt)); boot with prenixos.wipe=1 to rebuild it"
"""

RETURN = r"""
status:
  description: The whole status document after the change.
  returned: always
  type: dict
  sample:
    version: 1
    state: running
    phases:
      storage_plan:
        state: done
        reason: ""
        started: "2026-11-22T08:00:00+00:00"
        finished: "2026-11-22T08:00:02+00:00"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prenixos.baseline.plugins.module_utils import status


def main():
    module = AnsibleModule(argument_spec=status.ARGUMENT_SPEC, supports_check_mode=True)
    module.exit_json(**status.record(module.params, module.check_mode, module._diff, module))


if __name__ == "__main__":
    main()
