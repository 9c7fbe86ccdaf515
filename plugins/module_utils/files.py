# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading and atomically replacing the small text files the modules manage."""

from __future__ import annotations

import os
import tempfile


class WriteError(OSError):
    """A file could not be written; its text names the file and the reason, without an errno prefix."""

    def __str__(self):
        return str(self.strerror)


def read_text(path):
    """The file's text, or None when it does not exist."""
    try:
        with open(path) as handle:
            return handle.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def write_text(module, path, text, mode=0o644, dir_mode=0o755):
    """Replace ``path`` with ``text`` atomically: a temporary file beside it, then ``module.atomic_move``
    (or a plain rename where there is no module, as in an action plugin running on the controller).

    A failure (a full or read-only filesystem) leaves ``path`` as it was and no temporary file behind,
    and raises WriteError (an OSError) saying which file could not be written and why ("No space left on device").
    """
    directory = os.path.dirname(path) or "."
    tmp = None
    try:
        os.makedirs(directory, mode=dir_mode, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".pre-nixos.", dir=directory)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        if module is None:
            os.replace(tmp, path)
        else:
            module.atomic_move(tmp, path)
        tmp = None
        os.chmod(path, mode)
    except OSError as err:
        raise WriteError(err.errno, "cannot write %s: %s" % (path, err.strerror or err)) from None
    finally:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)
