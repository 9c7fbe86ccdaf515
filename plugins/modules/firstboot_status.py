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
      - File shown before the login prompt (C(/etc/issue)). When given, a C(failed) or C(skipped) phase puts
        one line there (C(pre-nixos: PHASE STATE: REASON)), so the operator at the console sees why, and any
        other state removes that line. Every other line of the file is kept. Empty for none.
    type: str
    default: ""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Returns the phase before and after the change.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
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

from ansible_collections.prenixos.baseline.plugins.module_utils import issue
from ansible_collections.prenixos.baseline.plugins.module_utils import status as status_file
from ansible_collections.prenixos.baseline.plugins.module_utils.files import read_text, write_text

# The states that leave a line in the issue file.
ISSUE_STATES = ("failed", "skipped")


def announce(console, phase, state, reason):
    if not console:
        return
    line = progress_line(phase, state, reason) + "\n"
    try:
        with open(console, "w") as handle:
            handle.write(line)
    except OSError:
        pass


def progress_line(phase, state, reason):
    return "pre-nixos: %-14s %s%s" % (phase, state, (": " + reason) if reason else "")


def issue_text(existing, phase, state, reason):
    """The issue file with this phase's line: present for a failed or skipped phase, absent otherwise."""
    lines = ["pre-nixos: %s %s: %s" % (phase, state, reason or "no reason given")] if state in ISSUE_STATES else []
    return issue.render(existing, lines, ["pre-nixos: %s " % phase])


def main():
    module = AnsibleModule(
        argument_spec={
            "phase": {"type": "str", "required": True},
            "state": {"type": "str", "required": True, "choices": list(status_file.STATES)},
            "reason": {"type": "str", "default": ""},
            "details": {"type": "raw"},
            "path": {"type": "path", "default": status_file.DEFAULT_PATH},
            "console": {"type": "str", "default": ""},
            "issue_path": {"type": "str", "default": ""},
        },
        supports_check_mode=True,
    )
    params = module.params
    before = status_file.load(params["path"])
    after = status_file.set_phase(before, params["phase"], params["state"], params["reason"], params["details"])
    old_phase = before["phases"].get(params["phase"], {})
    new_phase = after["phases"][params["phase"]]
    changed = {k: old_phase.get(k) for k in ("state", "reason", "details")} != {
        k: new_phase.get(k) for k in ("state", "reason", "details")
    }
    issue_before = issue_after = None
    if params["issue_path"]:
        issue_before = read_text(params["issue_path"])
        issue_after = issue_text(issue_before, params["phase"], params["state"], params["reason"])
        if issue_after == (issue_before or ""):
            issue_after = issue_before
    issue_changed = issue_after != issue_before
    result = {"changed": changed or issue_changed, "status": after if changed else before}
    if module._diff:
        result["diff"] = [{"before": old_phase, "after": new_phase}]
        if issue_changed:
            result["diff"].append(
                {
                    "before": issue_before or "",
                    "after": issue_after,
                    "before_header": params["issue_path"],
                    "after_header": params["issue_path"],
                }
            )
    if module.check_mode:
        module.exit_json(**result)
    if changed:
        status_file.save(after, params["path"])
        announce(params["console"], params["phase"], params["state"], params["reason"])
    if issue_changed:
        write_text(module, params["issue_path"], issue_after)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
