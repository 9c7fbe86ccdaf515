"""Run a module's ``main()`` in-process and return its result dict."""
from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args


def run_module(main, args, capsys, check_mode=False, diff=False):
    """Call ``main`` with ``args``; return the JSON result (``failed`` set when the module failed)."""
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args), pytest.raises(SystemExit):
        main()
    return json.loads(capsys.readouterr().out)
