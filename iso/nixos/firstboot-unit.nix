# pre-nixos.service as the NixOS image runs it: the Debian image's unit file, read as it is, with only
# its ExecStart pointed at the wrapper by store path (NixOS has no /usr/local/lib, no /usr/bin/python3).
{ execStart, unitFile ? ../firstboot/pre-nixos.service }:
let
  text = builtins.readFile unitFile;
  debianExecStart = "ExecStart=/usr/bin/python3 -I /usr/local/lib/pre-nixos/pre_nixos_firstboot.py";
  replaced = builtins.replaceStrings [ debianExecStart ] [ "ExecStart=${execStart}" ] text;
in
if replaced == text then
  throw "${toString unitFile} has no line '${debianExecStart}': update iso/nixos/firstboot-unit.nix to match it"
else
  replaced
