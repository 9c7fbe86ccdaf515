# Which files of the repository the image carries as the collection: those `ansible-galaxy collection
# build` ships (everything but galaxy.yml's build_ignore), as the Debian image installs it.
# Usage: builtins.path { path = root; filter = import ./collection-filter.nix (toString root); }
root: path: type:
let
  relative = builtins.substring (builtins.stringLength root + 1) (builtins.stringLength path) path;
  top = builtins.head (builtins.split "/" relative);
  name = baseNameOf path;
  ignoredAtTop = [ ".venv" "build" "collections" ".git" ".ci" ".config" "molecule" "iso" ".pytest_cache" ".ruff_cache" ".hypothesis"
                   "Makefile" "ansible.cfg" "inventory" "tools" ".ansible-lint" "ruff.toml" ".gitignore" "requirements.txt" ];
in
!(builtins.elem top ignoredAtTop)
&& name != "__pycache__"
&& builtins.match ".*\\.tar\\.gz" name == null
