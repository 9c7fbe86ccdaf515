#!/usr/bin/env bash
# make demo: boot build/pre-nixos.iso in QEMU on the default machine (UEFI; an NVMe SSD, two
# SATA SSDs, an HDD pair, three larger HDDs, a USB stick; two NICs, only the second with a
# link), stream its serial console here and print the ssh command that logs in.
# Ctrl-C (or any exit) stops the VM this script started, and only that one.
#
#   iso/demo.sh                       # the ISO is built first when missing
#   DEMO_MACHINE=machine.json iso/demo.sh   # another machine (see tests/vm/qemu.py)
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
iso=$repo/build/pre-nixos.iso
workdir=$repo/build/demo
key=$repo/build/id_ed25519
launcher=(python3 "$repo/tests/vm/qemu.py")

[[ -f $iso ]] || bash "$repo/iso/build.sh"

cleaned=
cleanup() {
    [[ -n $cleaned ]] && return
    cleaned=1
    "${launcher[@]}" stop --workdir "$workdir" || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${launcher[@]}" start "${DEMO_MACHINE:-default}" --iso "$iso" --workdir "$workdir" > "$workdir.json.tmp" \
    || { rm -f "$workdir.json.tmp"; exit 1; }
rm -f "$workdir.json.tmp"
port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ssh_port"])' "$workdir/vm.json")

if [[ -f $key ]]; then
    login="ssh -i build/id_ed25519 -p $port root@127.0.0.1"
else
    login="ssh -p $port root@127.0.0.1   (with the private key of the SSH_KEY the ISO was built with)"
fi
banner() {
    printf '\n\033[1m==> %s\033[0m\n' "$@" >&2
}
banner "serial console of the demo VM follows; Ctrl-C stops the VM" "log in (once SSH is up): $login"

announce=()
[[ -f $key ]] && announce=(--announce-ssh-key "$key" --announce-message "SSH is up: $login")
"${launcher[@]}" console --workdir "$workdir" "${announce[@]}"
