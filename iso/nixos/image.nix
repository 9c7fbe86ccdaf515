# The NixOS flavour of the pre-nixos boot image, as a NixOS module: NixOS's minimal installer ISO plus
# this collection, ansible-core, and the Debian image's first boot (iso/firstboot/pre-nixos.service and
# iso/firstboot/pre_nixos_firstboot.py, read from there, not copied), a serial console, and root SSH for
# the operator's keys only.
{ config, lib, pkgs, modulesPath, ... }:
let
  cfg = config.prenixos.image;
  repository = ../..;

  # The collection, where the first-boot wrapper looks for it (/usr/share/pre-nixos/collections).
  collectionSource = builtins.path {
    path = repository;
    name = "prenixos-baseline";
    filter = import ./collection-filter.nix (toString repository);
  };
  collections = pkgs.linkFarm "pre-nixos-collections" [
    { name = "ansible_collections/prenixos/baseline"; path = collectionSource; }
  ];

  # Where the wrapper expects a Python with ansible-core and netaddr (/opt/pre-nixos/venv).
  ansible = pkgs.python3.withPackages (ps: [ ps.ansible-core ps.netaddr ]);

  firstbootUnit = pkgs.writeTextDir "lib/systemd/system/pre-nixos.service" (import ./firstboot-unit.nix {
    execStart = "${ansible}/bin/python3 -I ${../firstboot/pre_nixos_firstboot.py}";
  });

  # What the collection's modules and the wrapper call (the spec's tool list), and nixos-install.
  tools = with pkgs; [
    util-linux gptfdisk mdadm lvm2 e2fsprogs dosfstools iproute2 systemd openssh
    coreutils findutils gnugrep gnused gawk kmod procps
  ];
in
{
  imports = [ (modulesPath + "/installer/cd-dvd/installation-cd-minimal.nix") ];

  options.prenixos.image.authorizedKeys = lib.mkOption {
    type = lib.types.listOf lib.types.str;
    default = [ ];
    description = "Public keys root may log in with over SSH, from the first start of sshd on.";
  };

  config = {
    assertions = [
      {
        assertion = cfg.authorizedKeys != [ ];
        message = ''
          pre-nixos: no operator key. Build with iso/nixos/build.sh (SSH_KEY="key.pub ..." or a key made for you),
          or PRENIXOS_AUTHORIZED_KEYS=path/to/authorized_keys nix build --impure ./iso/nixos#iso'';
      }
    ];

    isoImage.isoBaseName = "pre-nixos";
    isoImage.appendToMenuLabel = " (pre-nixos baseline)";
    # Unattended: boot the first entry soon (as the Debian image's GRUB does).
    boot.loader.timeout = lib.mkForce 3;

    # Serial console: the ISO's GRUB and syslinux already offer serial; kernel and a login prompt on
    # the screen and on ttyS0 (a getty follows console=ttyS0). Console access is physical access.
    boot.kernelParams = [ "console=tty0" "console=ttyS0,115200n8" ];
    services.getty.autologinUser = lib.mkForce "root";
    services.getty.helpLine = lib.mkForce ''
      pre-nixos baseline: root logs in over SSH with the image's keys only.
      First boot: journalctl -u pre-nixos, /run/pre-nixos/status.json, /var/log/pre-nixos/.'';
    hardware.enableRedistributableFirmware = lib.mkDefault true;

    # SSH: hardened from the first start, with the Debian image's drop-in as the source of the settings.
    services.openssh.enable = true;
    services.openssh.settings = import ./sshd-settings.nix { };
    # The ssh_hardening role reloads "ssh.service", the Debian name.
    systemd.services.sshd.aliases = [ "ssh.service" ];
    users.users.root.openssh.authorizedKeys.keys = cfg.authorizedKeys;
    # Where the first-boot playbook reads the image's keys.
    environment.etc."pre-nixos/authorized_keys".text = lib.concatStringsSep "\n" cfg.authorizedKeys + "\n";

    # Network as on the Debian image: systemd-networkd with DHCP on every wired NIC until first boot
    # names the one with a link `lan` (same .network file).
    networking.useNetworkd = true;
    networking.useDHCP = false;
    systemd.network.enable = true;
    environment.etc."systemd/network/90-pre-nixos-dhcp.network".source =
      ../os-layer/rootfs/etc/systemd/network/90-pre-nixos-dhcp.network;

    # First boot: the Debian unit and wrapper; the drop-in adds PATH (and NIX_PATH for nixos-install).
    systemd.packages = [ firstbootUnit ];
    systemd.services.pre-nixos = {
      overrideStrategy = "asDropin";
      wantedBy = [ "multi-user.target" ];
      path = tools ++ [ ansible "/run/current-system/sw" ];
      environment.NIX_PATH = lib.concatStringsSep ":" config.nix.nixPath;
    };
    # The wrapper's fixed paths (COLLECTIONS, VENV) lead to the store.
    systemd.tmpfiles.rules = [
      "d /usr/share/pre-nixos 0755 root root -"
      "L+ /usr/share/pre-nixos/collections - - - - ${collections}"
      "d /opt/pre-nixos 0755 root root -"
      "L+ /opt/pre-nixos/venv - - - - ${ansible}"
    ];

    # The same roles by hand or over SSH: ansible and the tools in the system path.
    environment.systemPackages = tools ++ [ ansible ];
    environment.variables.ANSIBLE_COLLECTIONS_PATH = "/usr/share/pre-nixos/collections";
  };
}
