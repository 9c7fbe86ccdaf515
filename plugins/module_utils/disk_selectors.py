# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which disks take part: the operator's disk selectors (options ``include`` and ``exclude``) matched against disks.

Pure: no command, no file. The disks are normalised ones (``plan_input.normalise_disk``).

Selectors
    ``name:sda`` or ``/dev/sda``        the kernel name
    ``serial:S3Z1NB0K123``              the serial
    ``wwn:0x5002538e40a1b2c3``          the WWN, in any spelling (``0x...``, ``naa.5002538E...``, any case)
    ``by-id:ata-Samsung_SSD_...``        the disk's ``/dev/disk/by-id/`` link (``disk_facts``' ``path``), or a
    or ``/dev/disk/by-id/ata-...``      ``wwn-<WWN>`` link of its WWN
    ``model:Samsung*``                  the model
    ``S3Z1NB0K123``, ``sda``, ``Samsung*``  a bare word: any of the name, the serial, the WWN, the name of
                                        the by-id link and the model

    A value with ``*``, ``?`` or ``[`` is a glob (fnmatch). Serials, WWNs, models and by-id links are compared
    ignoring case, kernel names exactly. Blanks in a model count as ``_`` (as udev writes them in by-id links,
    and as a kernel command line, which splits at blanks, can carry them): ``model:Samsung_SSD_860*`` matches
    ``Samsung SSD 860 EVO 1TB``.

A selector that matches no disk at all is a ``PlanError`` naming it and listing every disk with its name,
serial, model, WWN and by-id link, so that the operator can correct it: a misspelt exclusion must never let
the disk it meant be planned.
"""
from __future__ import annotations

import fnmatch
import re
from collections import namedtuple

from ansible_collections.prenixos.baseline.plugins.module_utils.plan_input import PlanError, wwn_key

KINDS = ("name", "serial", "wwn", "by-id", "model")
BY_ID = "/dev/disk/by-id/"
GLOB = re.compile(r"[*?\[]")
BLANKS = re.compile(r"\s+")

Selector = namedtuple("Selector", "text kind value")


def parse_selector(text, option="selector"):
    """A ``Selector(text, kind, value)``; kind ``any`` for a bare word. PlanError for an empty or unusable one."""
    if not isinstance(text, str) or not text.strip():
        raise PlanError("%s: a disk selector must be a non-empty string, got %r" % (option, text))
    text = text.strip()
    if text.startswith(BY_ID):
        return Selector(text, "by-id", text)
    if text.startswith("/dev/"):
        name = text[len("/dev/"):]
        if not name or "/" in name:
            raise PlanError("%s: %r is not a disk selector: a path must be /dev/NAME or a /dev/disk/by-id/ link"
                            % (option, text))
        return Selector(text, "name", name)
    kind, sep, value = text.partition(":")
    if sep and kind.lower() in KINDS:
        value = value.strip()
        if not value:
            raise PlanError("%s: %r names no %s" % (option, text, kind.lower()))
        kind = kind.lower()
        if kind == "by-id" and not value.startswith(BY_ID):
            value = BY_ID + value
        return Selector(text, kind, value)
    return Selector(text, "any", text)


def matches(selector, disk):
    """Whether the selector picks the disk."""
    kind, value = selector.kind, selector.value
    if kind == "name":
        return same(value, disk["name"])
    if kind == "serial":
        return same(value, disk["serial"], fold=True)
    if kind == "wwn":
        return same(wwn_key(value), disk["wwn_key"])
    if kind == "by-id":
        return same(value, by_id_link(disk), fold=True) or same_wwn_link(value, disk)
    if kind == "model":
        return same(model_form(value), model_form(disk["model"]), fold=True)
    link = by_id_link(disk)
    return (same(value, disk["name"]) or same(value, disk["serial"], fold=True)
            or same(wwn_key(value), disk["wwn_key"]) or same(value, link and link[len(BY_ID):], fold=True)
            or same(model_form(value), model_form(disk["model"]), fold=True))


def same(pattern, value, fold=False):
    """``value`` is ``pattern``, or matches it when it is a glob; nothing matches a missing value."""
    if pattern is None or value is None:
        return False
    if fold:
        pattern, value = pattern.lower(), value.lower()
    if GLOB.search(pattern):
        return fnmatch.fnmatchcase(value, pattern)
    return value == pattern


def by_id_link(disk):
    return disk["path"] if disk["path"].startswith(BY_ID) else None


def same_wwn_link(link, disk):
    """``/dev/disk/by-id/wwn-0x5002538e40a1b2c3`` names the disk of that WWN, whichever link disk_facts chose."""
    prefix = BY_ID + "wwn-"
    return link.lower().startswith(prefix) and same(wwn_key(link[len(prefix):]), disk["wwn_key"])


def model_form(model):
    return BLANKS.sub("_", model.strip()) if model is not None else None


def operator_reasons(disks, include=(), exclude=()):
    """``{disk name: [reason]}`` for the disks the operator leaves out: not matched by any ``include`` selector
    (when there is one), or matched by an ``exclude`` selector. PlanError when a selector matches no disk."""
    included = [parse_selector(text, "include") for text in include]
    excluded = [parse_selector(text, "exclude") for text in exclude]
    unmatched = ["%s: %r" % (option, selector.text)
                 for option, selectors in (("include", included), ("exclude", excluded))
                 for selector in selectors if not any(matches(selector, disk) for disk in disks)]
    if unmatched:
        raise PlanError(no_match_message(unmatched, disks))
    reasons = {}
    for disk in disks:
        found = []
        if included and not any(matches(selector, disk) for selector in included):
            found.append("not in the operator's include list")
        by = [selector.text for selector in excluded if matches(selector, disk)]
        if by:
            found.append("excluded by the operator (exclude: %s)" % ", ".join(by))
        if found:
            reasons[disk["name"]] = found
    return reasons


def no_match_message(unmatched, disks):
    lines = ["disk selector(s) matching no disk: %s" % ", ".join(unmatched)]
    if not disks:
        return lines[0] + "; no disk was reported at all"
    lines.append("the disks (a selector is a name, serial:, wwn:, by-id:, model: or a bare word):")
    lines += ["  - %s" % describe(disk) for disk in disks]
    return "\n".join(lines)


def describe(disk):
    """``sda: serial S3Z1NB0K123, model Samsung SSD 860 EVO 1TB, WWN 0x5002538e40a1b2c3, /dev/disk/by-id/...``"""
    facts = [
        "serial %s" % disk["serial"] if disk["serial"] else "no serial",
        "model %s" % disk["model"] if disk["model"] else "no model",
    ]
    if disk["wwn"]:
        facts.append("WWN %s" % disk["wwn"])
    if by_id_link(disk):
        facts.append(disk["path"])
    return "%s: %s" % (disk["name"], ", ".join(facts))
