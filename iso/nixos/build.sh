#!/usr/bin/env bash
# Builds the NixOS flavour of the boot image with Nix: build/pre-nixos-nixos.iso.
#
#   iso/nixos/build.sh                        # key: build/id_ed25519 (made on first use, as iso/build.sh does)
#   SSH_KEY="a.pub b.pub" iso/nixos/build.sh  # bake these public keys in instead
#   NIX_BUILD_ARGS="--override-input nixpkgs github:NixOS/nixpkgs/nixos-25.05" iso/nixos/build.sh
#
# Needs Nix with flakes and either the NixOS binary cache or time to build. Run it from a git checkout:
# the flake reads the collection and iso/firstboot/ from the repository, and Nix only sees tracked files.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$repo/build}
out=$build/pre-nixos-nixos.iso
keys=$build/nixos/authorized_keys
log() { printf '==> %s\n' "$*" >&2; }

command -v nix > /dev/null || {
    echo "iso/nixos/build.sh needs Nix (https://nixos.org/download); on Debian the nix-bin package is too old" \
         "for flakes, use the installer from nixos.org" >&2
    exit 1
}
mkdir -p "$build/nixos"

# The keys baked into the image: SSH_KEY (space-separated .pub paths) or build/id_ed25519.
: > "$keys"
if [[ -n ${SSH_KEY:-} ]]; then
    for key in $SSH_KEY; do
        [[ -r $key ]] || { echo "SSH_KEY: cannot read $key" >&2; exit 1; }
        ssh-keygen -l -f "$key" > /dev/null || { echo "SSH_KEY: $key is not a public key" >&2; exit 1; }
        grep -v '^[[:space:]]*\(#\|$\)' "$key" >> "$keys"
        log "baking in key $key"
    done
else
    if [[ ! -f $build/id_ed25519 ]]; then
        ssh-keygen -q -t ed25519 -N '' -C "pre-nixos-build@$(hostname)" -f "$build/id_ed25519"
        log "made a key pair for this build: $build/id_ed25519 (pass SSH_KEY=path.pub to use yours)"
    fi
    cat "$build/id_ed25519.pub" >> "$keys"
    log "baking in key $build/id_ed25519.pub; log in with: ssh -i $build/id_ed25519 root@<address>"
fi

started=$(date +%s)
log "nix build $repo/iso/nixos#iso (this downloads or builds NixOS; it takes a while)"
# --impure: the flake reads the keys from PRENIXOS_AUTHORIZED_KEYS.
# shellcheck disable=SC2086 # NIX_BUILD_ARGS is a list of words on purpose
PRENIXOS_AUTHORIZED_KEYS=$keys nix --extra-experimental-features 'nix-command flakes' build --impure \
    --out-link "$build/nixos/result" ${NIX_BUILD_ARGS:-} "$repo/iso/nixos#iso"
iso=$(find -L "$build/nixos/result/iso" -maxdepth 1 -name '*.iso' | head -n1)
[[ -n $iso ]] || { echo "nix build finished but left no ISO under $build/nixos/result/iso" >&2; exit 1; }
cp --no-preserve=mode "$iso" "$out"
log "built $out ($(du -h "$out" | cut -f1)) in $(( $(date +%s) - started )) s"
