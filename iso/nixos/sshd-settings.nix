# The sshd settings the NixOS image boots with: the Debian image's drop-in, read as it is, so both
# images start sshd hardened from the same file. "Keyword value" lines; yes/no become booleans,
# numbers integers, and the algorithm lists lists (MACs under NixOS's name Macs), as
# services.openssh.settings wants them.
{ dropIn ? ../os-layer/rootfs/etc/ssh/sshd_config.d/00-pre-nixos.conf }:
let
  lines = builtins.filter
    (line: builtins.isString line && builtins.match "[[:space:]]*(#.*)?" line == null)
    (builtins.split "\n" (builtins.readFile dropIn));
  setting = line:
    let
      parts = builtins.match "[[:space:]]*([A-Za-z0-9]+)[[:space:]]+([^[:space:]].*[^[:space:]]|[^[:space:]])[[:space:]]*" line;
    in
    if parts == null then throw "cannot read the sshd setting '${line}' in ${toString dropIn}"
    else nixSetting (builtins.elemAt parts 0) (builtins.elemAt parts 1);
  # The settings NixOS types as lists of strings, by the name NixOS gives them.
  listSettings = { KexAlgorithms = "KexAlgorithms"; Ciphers = "Ciphers"; MACs = "Macs"; };
  nixSetting = name: text:
    if listSettings ? ${name} then { name = listSettings.${name}; value = commaList text; }
    else { inherit name; value = nixValue text; };
  commaList = text: builtins.filter builtins.isString (builtins.split "," text);
  nixValue = text:
    if text == "yes" then true
    else if text == "no" then false
    else if builtins.match "[0-9]+" text != null then builtins.fromJSON text
    else text;
in
builtins.listToAttrs (map setting lines)
