# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mitogen's ``free`` strategy from the installed ``mitogen`` package, where the scenarios' Ansible looks.

``.config/molecule/config.yml`` puts this directory on ``strategy_plugins`` and runs ``provision.yml`` with
``prenixos_provision_strategy=mitogen_free``.
"""
from __future__ import annotations

from ansible_mitogen.plugins.strategy.mitogen_free import StrategyModule  # noqa: F401  # pylint: disable=unused-import
