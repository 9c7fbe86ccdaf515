# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A bytecode cache for Python modules imported from zip files: Ansible's AnsiballZ payloads.

Python keeps no bytecode for what it imports from a zip file, so every module task Ansible runs
compiles ``ansible.module_utils.basic`` and everything it imports anew: under software emulation
that is most of a module's own start-up. This hook keeps the compiled code of each such source in a
root-only directory, keyed by a hash of the source and the interpreter's bytecode magic number, so
the same source compiles once per boot. The image's Pythons load it from ``prenixos_zip_pycache.pth``
(the venv's and the system's site directories); only processes running as root use it, and a cache
entry that cannot be read or written is simply compiled again.
"""
import os
import zipimport

CACHE = os.environ.get("PRENIXOS_ZIP_PYCACHE", "/run/pre-nixos/zip-pycache")
compile_source = zipimport._compile_source  # pylint: disable=protected-access


def cached_compile_source(pathname, source):
    """zipimport's ``_compile_source``, through the cache: the code object for ``source`` at ``pathname``."""
    import _imp  # pylint: disable=import-outside-toplevel
    import hashlib  # pylint: disable=import-outside-toplevel
    import marshal  # pylint: disable=import-outside-toplevel
    from importlib.util import MAGIC_NUMBER  # pylint: disable=import-outside-toplevel

    entry = os.path.join(CACHE, hashlib.blake2b(MAGIC_NUMBER + source, digest_size=20).hexdigest())
    try:
        with open(entry, "rb") as handle:
            code = marshal.loads(handle.read())
    except (OSError, ValueError, EOFError, TypeError):
        code = compile_source(pathname, source)
        try:
            os.makedirs(CACHE, mode=0o700, exist_ok=True)
            partial = "%s.%d" % (entry, os.getpid())
            with open(partial, "wb") as handle:
                handle.write(marshal.dumps(code))
            os.replace(partial, entry)
        except OSError:
            pass
        return code
    # The same source in another zip (each task's payload has a path of its own): tracebacks name this one.
    _imp._fix_co_filename(code, pathname)  # pylint: disable=protected-access
    return code


def install():
    if os.geteuid() == 0:
        zipimport._compile_source = cached_compile_source  # pylint: disable=protected-access


install()
