#!/usr/bin/python
# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import annotations

DOCUMENTATION = r"""
---
module: sshd_hardening
short_description: Enforce sshd settings in a drop-in and prove them with the effective configuration
version_added: "0.1.0"
description:
  - Writes the settings to a drop-in that sorts first in C(/etc/ssh/sshd_config.d) (sshd keeps the first value
    it reads), then checks the whole configuration with C(sshd -t) and the effective values with
    C(sshd -T -C user=root,host=localhost,addr=127.0.0.1).
  - Unless O(settings) names them, also pins where sshd takes keys from, C(AuthorizedKeysFile .ssh/authorized_keys)
    and C(AuthorizedKeysCommand none), so keys in C(authorized_keys2) or from a command no longer let anyone in.
  - A C(Match) block (in O(config) or a file it includes) can change the settings for some connections only.
    For each block, C(sshd -T -C) is also asked about a connection the block matches (an address of its
    C(Address) network, its C(User), C(Host), C(LocalAddress), C(LocalPort)); a block that sets a managed keyword
    to another value is refused from its lines too, which covers the blocks no connection can be made up for
    (C(Match Group)).
  - When either check fails, the previous drop-in is put back before the module fails, so the running sshd
    (which reads its files only when it starts or reloads) never sees a bad configuration.
  - Creates the privilege separation directory C(/run/sshd) when it is missing.
  - Does not reload sshd; the caller does, without waiting (C(systemctl try-reload-or-restart --no-block ssh)).
author: pre-nixos baseline engineers (@prenixos)
options:
  settings:
    description: sshd keywords and their values.
    type: dict
    required: true
  path:
    description: The drop-in file.
    type: path
    default: /etc/ssh/sshd_config.d/00-pre-nixos.conf
  config:
    description: The main sshd configuration that includes the drop-in directory.
    type: path
    default: /etc/ssh/sshd_config
extends_documentation_fragment:
  - prenixos.baseline.attributes
  - prenixos.baseline.attributes.diff
attributes:
  diff_mode:
    description: Shows the drop-in before and after.
"""

EXAMPLES = r"""
- name: Key-only root login
  prenixos.baseline.sshd_hardening:
    settings:
      PermitRootLogin: prohibit-password
      PasswordAuthentication: "no"
      KbdInteractiveAuthentication: "no"
  notify: Reload sshd
"""

RETURN = r"""
effective:
  description: The effective value of every managed keyword for root from localhost (lowercase, as C(sshd -T)
    prints them).
  returned: always
  type: dict
  sample: {passwordauthentication: "no", permitrootlogin: without-password}
commands:
  description: The commands run to check the configuration.
  returned: always
  type: list
  elements: list
"""

import glob
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.prenixos.baseline.plugins.module_utils import sshd
from ansible_collections.prenixos.baseline.plugins.module_utils.files import WriteError, read_text, write_text
from ansible_collections.prenixos.baseline.plugins.module_utils.runner import CommandError, Runner

# sshd's privilege separation directory: sshd, and sshd -t, fail when it is missing.
PRIVSEP_DIR = "/run/sshd"


def effective_config(runner, sshd_bin, config, spec):
    """The values sshd would use for the connection ``spec`` describes (``sshd -T -C``)."""
    return sshd.parse_effective_config(runner.run([sshd_bin, "-T", "-f", config, "-C", spec])[1])


def check_config(runner, sshd_bin, config, settings):
    """Check the whole configuration, then the values sshd would use for every connection that matters.

    Those are root from localhost, and for each ``Match`` block in the files sshd reads a connection the block
    matches; a block no connection can be made up for (``Match Group``) has its lines read instead.
    Returns the effective values for root from localhost; raises ValueError naming each difference.
    """
    runner.run([sshd_bin, "-t", "-f", config])
    effective = effective_config(runner, sshd_bin, config, sshd.connection_spec(sshd.DEFAULT_CONNECTION))
    wrong = sshd.mismatches(settings, effective)
    problems = ["%s wanted %s, effective %s" % (k, w, a) for k, (w, a) in sorted(wrong.items())]
    problems = [", ".join(problems)] if problems else []
    blocks = sshd.match_blocks(config, read_text, lambda pattern: sorted(glob.glob(pattern)))
    caught = set()
    for block, spec in sshd.match_contexts(blocks):
        there = sshd.mismatches(settings, effective_config(runner, sshd_bin, config, spec))
        for keyword, (wanted, actual) in sorted(there.items()):
            if wrong.get(keyword) == (wanted, actual):
                continue  # the same difference everywhere: already said once
            caught.add((block["where"], keyword.lower()))
            problems.append(
                "%s wanted %s, effective %s for connections that match %r (%s; asked sshd -T -C %s)"
                % (keyword, wanted, actual, block["match"], block["where"], spec)
            )
    problems.extend(sshd.setting_overrides(blocks, settings, caught))
    if problems:
        raise ValueError(
            "sshd would not use the wanted settings (another file overrides them?): " + "; ".join(problems)
        )
    return effective


def wanted_settings(settings):
    """The caller's settings as sshd values, with where sshd reads keys from pinned unless the caller names it."""
    wanted = {str(k): ("yes" if v is True else "no" if v is False else str(v)) for k, v in settings.items()}
    named = {keyword.lower() for keyword in wanted}
    wanted.update((k, v) for k, v in sshd.PINNED_SETTINGS.items() if k.lower() not in named)
    return wanted


def main():
    module = AnsibleModule(
        argument_spec={
            "settings": {"type": "dict", "required": True},
            "path": {"type": "path", "default": "/etc/ssh/sshd_config.d/00-pre-nixos.conf"},
            "config": {"type": "path", "default": "/etc/ssh/sshd_config"},
        },
        supports_check_mode=True,
    )
    params = module.params
    settings = wanted_settings(params["settings"])
    sshd_bin = module.get_bin_path("sshd", required=True)
    runner = Runner(module)
    if not os.path.isdir(PRIVSEP_DIR) and not module.check_mode:
        os.makedirs(PRIVSEP_DIR, mode=0o755, exist_ok=True)

    before = read_text(params["path"])
    after = sshd.render_dropin(settings)
    changed = before != after
    result = {"changed": changed, "commands": runner.commands}
    if module._diff:
        result["diff"] = {
            "before": before or "",
            "after": after,
            "before_header": params["path"],
            "after_header": params["path"],
        }

    if changed and not module.check_mode:
        try:
            write_text(module, params["path"], after)
        except WriteError as err:
            module.fail_json(msg="%s; sshd and its configuration are as they were" % err, commands=runner.commands)
    try:
        if changed and module.check_mode:
            effective = {}
        else:
            effective = check_config(runner, sshd_bin, params["config"], settings)
    except (CommandError, ValueError) as err:
        if changed and not module.check_mode:
            if before is None:
                os.unlink(params["path"])
            else:
                write_text(module, params["path"], before)
        details = err.as_fail_kwargs() if isinstance(err, CommandError) else {"msg": str(err)}
        details["msg"] = "sshd configuration rejected, previous configuration kept: " + details["msg"]
        module.fail_json(commands=runner.commands, **details)

    result["effective"] = {k.lower(): effective.get(k.lower()) for k in settings} if effective else {}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
