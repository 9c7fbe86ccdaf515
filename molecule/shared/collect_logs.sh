#!/usr/bin/env bash
# collect_logs.sh VM_WORKDIR DEST KEY: copy a test machine's serial console and, while it still
# answers, its first-boot journal, status and logs into DEST (kept after the VM is gone).
set -uo pipefail
workdir=$1 dest=$2 key=$3
[[ -d $workdir ]] || exit 0
rm -rf "$dest" && mkdir -p "$dest"
cp "$workdir"/serial.log "$workdir"/qemu.cmdline "$workdir"/vm.json "$dest"/ 2> /dev/null
port=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ssh_port"])' "$workdir/vm.json" 2> /dev/null) || exit 0
remote() {
    timeout 60 ssh -i "$key" -p "$port" -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=10 root@127.0.0.1 "$@"
}
remote journalctl -u pre-nixos --no-pager > "$dest/pre-nixos.journal" 2>&1
remote journalctl -b --no-pager > "$dest/boot.journal" 2>&1
remote cat /run/pre-nixos/status.json > "$dest/status.json" 2>&1
remote 'tar -C /var/log -cf - pre-nixos' 2> /dev/null | tar -C "$dest" -xf - 2> /dev/null
echo "logs of $(basename "$workdir") in $dest"
