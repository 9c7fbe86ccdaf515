"""Runners for unit tests: a recording fake, and the real Runner over an in-process AnsibleModule."""
from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.prenixos.baseline.plugins.module_utils.runner import CommandError, Runner


class RecordingRunner:
    """A fake runner: records every command and answers from a table.

    ``responses`` maps a command prefix (a tuple of leading arguments) to
    ``(rc, stdout, stderr)`` or to a callable taking the argv and returning one.
    The longest matching prefix wins; unmatched commands answer ``(0, "", "")``.
    """

    def __init__(self, responses=None):
        self.responses = dict(responses or {})
        self.calls = []
        self.commands = self.calls

    def run(self, argv, check=True, data=None):
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        best = None
        for prefix, answer in self.responses.items():
            if tuple(argv[: len(prefix)]) == tuple(prefix) and (best is None or len(prefix) > len(best[0])):
                best = (prefix, answer)
        rc, out, err = (0, "", "")
        if best is not None:
            answer = best[1]
            rc, out, err = answer(argv) if callable(answer) else answer
        if check and rc != 0:
            raise CommandError(argv, rc, out, err)
        return rc, out, err


def local_runner():
    """The collection's Runner as a module has it, running commands on this machine."""
    with patch_module_args({}):
        module = AnsibleModule(argument_spec={})
    return Runner(module)
