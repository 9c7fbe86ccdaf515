# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``/etc/issue``, the text shown before the login prompt: this collection's lines after the distro banner.

Pure function over strings: no command, no file.
"""

from __future__ import annotations


def render(existing, lines, owned):
    """``existing`` with the lines starting with one of ``owned`` replaced by ``lines``, blank-line separated.

    Every other line (the distro banner, other phases' lines) is kept; rendering twice gives the same text.
    """
    kept = [line for line in (existing or "").splitlines() if not line.startswith(tuple(owned))]
    while kept and not kept[-1].strip():
        kept.pop()
    body = kept + ([""] if kept and lines else []) + list(lines)
    return "\n".join(body) + "\n\n" if body else ""
