# pre-nixos.service as the NixOS image runs it: the Debian image's unit file, read as it is, with only
# its ExecStart pointed at the wrapper by store path (NixOS has no /usr/local/sbin, no /usr/bin/python3).
{ execStart, unitFile ? ../firstboot/pre-nixos.service }:
let
  text = builtins.readFile unitFile;
  debianExecStart = "ExecStart=/usr/local/sbin/pre-nixos-firstboot";
  replaced = builtins.replaceStrings [ debianExecStart ] [ "ExecStart=${execStart}" ] text;
in
if replaced == text then
  throw "${toString unitFile} has no line '${debianExecStart}': update iso/nixos/firstboot-unit.nix to match it"
else
  replaced
