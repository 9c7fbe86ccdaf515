# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``/etc/issue``, the text shown before the login prompt: this collection's lines after the distro banner.

Pure function over strings: no command, no file.
"""

from __future__ import annotations


def render(existing, lines, owned):
    """``existing`` with the lines starting with one of ``owned`` replaced by ``lines``, blank-line separated.

    Every other line (the distro banner, other phases' lines) is kept, blank runs folded to one blank line;
    rendering twice gives the same text, and so does removing a line and putting it back.
    """
    kept = []
    for line in (existing or "").splitlines():
        # A removed line leaves no trace: no blank line after a blank line, none at the end.
        if line.startswith(tuple(owned)) or (not line.strip() and kept and not kept[-1].strip()):
            continue
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    body = kept + ([""] if kept and lines else []) + list(lines)
    return "\n".join(body) + "\n\n" if body else ""
