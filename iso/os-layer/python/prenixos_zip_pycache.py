# Copyright: pre-nixos baseline engineers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A bytecode cache for the Python code Ansible ships to a machine: AnsiballZ payloads and Mitogen imports.

Python keeps no bytecode for what it imports from a zip file, so every module task Ansible runs
compiles ``ansible.module_utils.basic`` and everything it imports anew; Mitogen, which first boot runs
under, sends the same modules (and the collection's ``module_utils``) as source and compiles them with
``compile(source, path, "exec", 0, True)`` in every new interpreter. Under software emulation that is
most of a module's own start-up. This hook keeps the compiled code of each such source in a root-only
directory, keyed by a hash of the source and the interpreter's bytecode magic number, so the same source
compiles once per boot. It wraps ``compile()``, and caches only the calls that inherit nothing from their
caller (``dont_inherit``, no flags: the code depends on the source alone); every other call is left alone.
The image's Pythons load it from ``prenixos_zip_pycache.pth`` (the venv's and the system's site
directories); only processes running as root use it, and a cache entry that cannot be read or written is
simply compiled again.
"""
import builtins
import os

CACHE = os.environ.get("PRENIXOS_ZIP_PYCACHE", "/run/pre-nixos/zip-pycache")
builtin_compile = builtins.compile


def through_cache(pathname, key, compile_code):
    """The code object for ``key`` (bytes naming the source), from the cache, else ``compile_code()``, kept."""
    import _imp  # pylint: disable=import-outside-toplevel
    import hashlib  # pylint: disable=import-outside-toplevel
    import marshal  # pylint: disable=import-outside-toplevel
    from importlib.util import MAGIC_NUMBER  # pylint: disable=import-outside-toplevel

    entry = os.path.join(CACHE, hashlib.blake2b(MAGIC_NUMBER + key, digest_size=20).hexdigest())
    try:
        with open(entry, "rb") as handle:
            code = marshal.loads(handle.read())
    except (OSError, ValueError, EOFError, TypeError):
        code = compile_code()
        try:
            os.makedirs(CACHE, mode=0o700, exist_ok=True)
            partial = "%s.%d" % (entry, os.getpid())
            with open(partial, "wb") as handle:
                handle.write(marshal.dumps(code))
            os.replace(partial, entry)
        except OSError:
            pass
        return code
    # The same source from another place (each task's payload has a path of its own): tracebacks name this one.
    _imp._fix_co_filename(code, pathname)  # pylint: disable=protected-access
    return code


def cached_compile(source, filename, mode, flags=0, dont_inherit=False, optimize=-1, **kwargs):
    """``compile()``, through the cache when the code depends on the source alone.

    That is how zipimport compiles what it imports (``dont_inherit=True``), how Mitogen's importer does,
    and how importlib compiles a ``.py`` file that has no bytecode beside it.
    """
    if (mode != "exec" or flags or not dont_inherit or optimize != -1 or kwargs or not isinstance(filename, str)
            or not isinstance(source, (str, bytes))):
        return builtin_compile(source, filename, mode, flags, dont_inherit, optimize, **kwargs)
    key = b"b" + source if isinstance(source, bytes) else b"s" + source.encode("utf-8", "surrogatepass")
    return through_cache(filename, key, lambda: builtin_compile(source, filename, mode, flags, dont_inherit))


def install():
    if os.geteuid() == 0:
        builtins.compile = cached_compile


install()
