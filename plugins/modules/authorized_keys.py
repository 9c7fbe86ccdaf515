#!/usr/bin/python
# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: authorized_keys
short_description: Install exactly the given SSH public keys for a user, refusing malformed ones
version_added: "0.1.0"
description:
  - Checks every key line as sshd reads it before touching anything - one line (no line break inside),
    options in front of the key type as sshd knows them (C(from="..."), C(no-pty), C(restrict), ...;
    comma-separated, values quoted), a known key type, and base64 key data that is a whole key of that
    type - then writes the user's C(authorized_keys) file atomically with mode 0600 (directory 0700) when
    its content differs.
  - A line sshd would ignore (an unknown or misspelt option, an unterminated quote, a cut key) fails the
    module naming the key and why, so a key that cannot log in is never reported as installed.
  - The file then holds exactly these keys. An empty list is refused, so root is never locked out by mistake.
author: pre-nixos baseline engineers (@prenixos)
options:
  keys:
    description: Public key lines (C(type base64 [comment]), options allowed before the type).
    type: list
    elements: str
    required: true
  path:
    description: The file to write.
    type: path
    default: /root/.ssh/authorized_keys
extends_documentation_fragment:
  - prenixos.baseline.attributes
  - prenixos.baseline.attributes.diff
attributes:
  diff_mode:
    description: Shows the file before and after.
"""

EXAMPLES = r"""
- name: Let the operator's key in, and only it
  prenixos.baseline.authorized_keys:
    keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB1... operator@laptop
"""

RETURN = r"""
keys:
  description: The keys now in the file, normalised.
  returned: always
  type: list
  elements: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prenixos.baseline.plugins.module_utils import sshd
from ansible_collections.prenixos.baseline.plugins.module_utils.files import WriteError, read_text, write_text


def main():
    module = AnsibleModule(
        argument_spec={
            "keys": {"type": "list", "elements": "str", "required": True, "no_log": False},
            "path": {"type": "path", "default": "/root/.ssh/authorized_keys"},
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    keys, problems = [], []
    for number, line in enumerate(module.params["keys"], start=1):
        try:
            keys.append(sshd.check_public_key(line))
        except ValueError as err:
            problems.append("key %d: %s" % (number, err))
    if problems:
        module.fail_json(msg="refusing malformed SSH public keys, nothing changed: " + "; ".join(problems))
    if not keys:
        module.fail_json(msg="no SSH public key given: refusing to leave root without a way in, nothing changed")

    before = read_text(path) or ""
    after = sshd.render_authorized_keys(keys)
    changed = before != after
    result = {"changed": changed, "keys": keys}
    if module._diff:
        result["diff"] = {"before": before, "after": after, "before_header": path, "after_header": path}
    if changed and not module.check_mode:
        try:
            write_text(module, path, after, mode=0o600, dir_mode=0o700)
        except WriteError as err:
            module.fail_json(msg="%s; the keys root had before are kept" % err)
        os.chmod(os.path.dirname(path), 0o700)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
