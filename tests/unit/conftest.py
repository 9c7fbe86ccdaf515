"""Make the collection importable as ``ansible_collections.prenixos.baseline`` from a checkout."""
from __future__ import annotations

import os
import sys

import pytest
from ansible.module_utils.common import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, "collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)


@pytest.fixture(autouse=True)
def no_warnings_from_earlier_tests():
    """A module's warnings go to ansible-core's process-wide lists, which exit_json reads: in one pytest
    process a test would otherwise see the warnings of the module runs before it."""
    warnings._global_warnings.clear()
    warnings._global_deprecations.clear()
    yield
