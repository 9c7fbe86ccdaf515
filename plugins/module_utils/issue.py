# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``/etc/issue``, the text shown before the login prompt: this collection's lines after the distro banner.

Pure function over strings: no command, no file.
"""

from __future__ import annotations


def render(existing, lines, owned):
    """``existing`` with the lines starting with one of ``owned`` replaced by ``lines``, blank-line separated.

    The new lines take the place of the first owned line; with none, they go at the end. Every other line
    (the distro banner, other phases' lines) is kept, blank runs folded to one blank line. Rendering twice
    gives the same text, and so do two owners rendering in turn: neither moves the other's lines, so a run
    that changes nothing leaves the file as it was.
    """
    kept, place = [], None
    for line in (existing or "").splitlines():
        if line.startswith(tuple(owned)):
            place = len(kept) if place is None else place
        # A removed line leaves no trace: no blank line after a blank line, none around our lines.
        elif line.strip() or not kept or kept[-1].strip():
            kept.append(line)
    place = len(kept) if place is None else place
    before, after = trailing_blanks_dropped(kept[:place]), trailing_blanks_dropped(kept[place:], leading=True)
    if not lines:
        return joined(before + ([""] if before and after else []) + after)
    return joined(before + ([""] if before else []) + list(lines) + ([""] if after else []) + after)


def trailing_blanks_dropped(lines, leading=False):
    """``lines`` without blank lines at the end (and at the start, when ``leading``)."""
    start, end = 0, len(lines)
    while leading and start < end and not lines[start].strip():
        start += 1
    while end > start and not lines[end - 1].strip():
        end -= 1
    return lines[start:end]


def joined(body):
    return "\n".join(body) + "\n\n" if body else ""
