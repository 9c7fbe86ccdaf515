# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The attributes every module of the collection declares, worded once.

Every module extends ``prenixos.baseline.attributes`` (check mode supported in full, POSIX targets) and
one of ``prenixos.baseline.attributes.diff`` / ``prenixos.baseline.attributes.no_diff``, plus
``prenixos.baseline.attributes.facts`` when it returns facts. Under ``attributes`` a module then says only
what is its own (what its diff shows, what check mode returns).
"""
from __future__ import annotations


class ModuleDocFragment:
    # The wording of ansible-core's own modules. Every module of the collection runs in check mode and
    # reports what it would change; every one runs on the Linux machines the collection prepares.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
"""

    DIFF = r"""
attributes:
  diff_mode:
    support: full
"""

    NO_DIFF = r"""
attributes:
  diff_mode:
    support: none
"""

    FACTS = r"""
attributes:
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
    support: full
"""
