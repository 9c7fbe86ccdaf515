# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The attributes every module of the collection declares, worded once.

A module extends ``prenixos.baseline.attributes`` and ``prenixos.baseline.attributes.platform``
(and ``prenixos.baseline.attributes.facts`` when it returns facts), then states under
``attributes`` its own ``support`` for check_mode and diff_mode, and a ``description`` where it
says more than the general one (what the diff shows).
"""
from __future__ import annotations


class ModuleDocFragment:
    # The wording of ansible-core's own modules; each module sets the support.
    DOCUMENTATION = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
"""

    # Every module runs on the Linux machines the collection prepares.
    PLATFORM = r"""
attributes:
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
"""

    FACTS = r"""
attributes:
  facts:
    description: Action returns an C(ansible_facts) dictionary that will update existing host facts.
    support: full
"""
