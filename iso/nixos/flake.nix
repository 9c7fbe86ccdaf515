# The NixOS flavour of the pre-nixos boot image: NixOS's minimal installer ISO that runs the same
# first boot as the Debian image (iso/firstboot/), with this collection, ansible-core, a serial
# console, and the operator's SSH key.
#
#   iso/nixos/build.sh                                  # key: build/id_ed25519, or SSH_KEY="a.pub b.pub"
#   PRENIXOS_AUTHORIZED_KEYS=keys.txt nix build --impure ./iso/nixos#iso    # the same, by hand
#
# Build it from the git checkout (the flake reads the collection and iso/firstboot/ from ../..,
# so those files must be tracked by git). It needs the NixOS binary cache or a lot of building.
{
  description = "pre-nixos baseline: NixOS installer ISO that brings a server to the pre-nixos baseline";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";

  outputs = { self, nixpkgs }:
    let
      system = "x86_64-linux";
      # The operator's keys: a file named by PRENIXOS_AUTHORIZED_KEYS (needs --impure). Without it the
      # image's own assertion stops the build and says how to give one.
      keysFile = builtins.getEnv "PRENIXOS_AUTHORIZED_KEYS";
      operatorKeys = if keysFile == "" then [ ] else import ./keys.nix (builtins.readFile keysFile);
    in
    {
      # The image as a NixOS module, for flakes that build their own variant of it.
      nixosModules.default = ./image.nix;

      nixosConfigurations.pre-nixos = nixpkgs.lib.nixosSystem {
        inherit system;
        modules = [
          ./image.nix
          { prenixos.image.authorizedKeys = operatorKeys; }
        ];
      };

      packages.${system} = {
        iso = self.nixosConfigurations.pre-nixos.config.system.build.isoImage;
        default = self.packages.${system}.iso;
      };
    };
}
