# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for prenixos.baseline.firstboot_status.

Where Ansible runs on the machine itself (connection local, as on the boot image) the status is
recorded right here, in the controller's process: a status line is bookkeeping, and running a module
for it costs seconds under emulation. Over any other connection the module runs on the target.
"""
from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.prenixos.baseline.plugins.module_utils import status

LOCAL = ("local", "ansible.builtin.local")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_diff = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        if self._connection.transport not in LOCAL or self._play_context.become:
            result.update(self._execute_module(module_name="prenixos.baseline.firstboot_status",
                                               module_args=self._task.args, task_vars=task_vars))
            return result
        params = self.validate_argument_spec(argument_spec=status.ARGUMENT_SPEC)[1]
        result.update(status.record(params, check_mode=self._task.check_mode, diff=self._task.diff))
        return result
