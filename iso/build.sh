#!/usr/bin/env bash
# Builds build/pre-nixos.iso: a hybrid (CD/USB) UEFI+BIOS image that boots straight into
# systemd from RAM and runs first boot (pre-nixos.service).
#
#   iso/build.sh                      # key: build/id_ed25519 (made on first use)
#   SSH_KEY="a.pub b.pub" iso/build.sh   # bake these public keys in instead
#   CONSOLE="ttyS1,57600" AUTOLOGIN=0 iso/build.sh   # serial console(s) and no root autologin
#                                     # (iso/boot_config.py says what each does; default ttyS0,115200 and 1)
#
# Three stages, timed:
#   1. OS layer   Debian bookworm (mmdebstrap) + ansible-core as a zstd cpio, cached under
#                 build/cache/ by a hash of its inputs (iso/os-layer/**, the ansible pin, this
#                 stage's code): rebuilt only when those change.
#   2. layer      the collection (built from this checkout), the first-boot unit and the keys,
#                 as a second small cpio.
#   3. ISO        GRUB (serial + screen) loads the kernel and both cpios as one initramfs: Debian's
#                 signed shim and GRUB under UEFI (Secure Boot on or off), GRUB's core image under BIOS.
# Needs root (mmdebstrap, chroot). Installs its Debian packages when they are missing.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
iso_src=$repo/iso
build=${BUILD_DIR:-$repo/build}
# OS layers and the signed boot files, kept between builds (another BUILD_DIR may share them).
cache=${CACHE_DIR:-$build/cache}
out=$build/pre-nixos.iso
venv=${VENV:-$repo/.venv}
# The collection baked into the image: this checkout, unless another one is named.
collection_dir=${PRENIXOS_COLLECTION_DIR:-$repo}
suite=bookworm
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# Extra kernel arguments for every boot entry (init_on_alloc=0 measured no faster here: docs/iso.md).
kernel_args=${KERNEL_ARGS-}
# The serial consoles (beside the screen) and whether root is logged in on them: iso/boot_config.py.
console=${CONSOLE:-ttyS0,115200}
autologin=${AUTOLOGIN:-1}
# OS layer compression: -19 with a 128 MiB match window (--long=27) is 13 % smaller than -9
# --long=27 and costs ~5 min of build once per OS layer (cached); the kernel's initramfs unpacker
# takes windows up to 128 MiB (2^27), so never raise --long above 27.
zstd_level=${ZSTD_LEVEL:-19}

APT_NEEDS=(mmdebstrap cpio zstd xorriso mtools grub-pc-bin grub-common dosfstools openssh-client)

# Scratch directories of this run (named with its PID), removed however it ends.
scratch_dir() { mktemp -d "$build/$1.$$.XXXXXX"; }
trap 'rm -rf "$build"/*.$$.*' EXIT

build_started=$(date +%s)
stage_started=$build_started
log() { printf '==> %s\n' "$*" >&2; }
stage() { stage_started=$(date +%s); log "stage $*"; }
stage_done() { log "stage $1 done in $(( $(date +%s) - stage_started )) s"; }

ensure_tools() {
    local missing=() p
    for p in "${APT_NEEDS[@]}"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    if (( ${#missing[@]} )); then
        log "installing: ${missing[*]}"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
    [[ $(id -u) == 0 ]] || { echo "iso/build.sh needs root (mmdebstrap, chroot)" >&2; exit 1; }
    [[ -x $venv/bin/ansible-galaxy ]] || { echo "no $venv/bin/ansible-galaxy: run 'make venv' first" >&2; exit 1; }
}

# A package's pinned version in requirements.txt (the image carries the same ansible-core and mitogen).
pin() {
    sed -n "s/^$1==\\([^ ;#]*\\).*/\\1/p" "$repo/requirements.txt" | head -n1
}
ansible_pin() { pin ansible-core; }

# The keys baked into the image: SSH_KEY (space-separated .pub paths) or build/id_ed25519.
collect_keys() {
    local dest=$1 key
    : > "$dest"
    if [[ -n ${SSH_KEY:-} ]]; then
        for key in $SSH_KEY; do
            [[ -r $key ]] || { echo "SSH_KEY: cannot read $key" >&2; exit 1; }
            ssh-keygen -l -f "$key" > /dev/null || { echo "SSH_KEY: $key is not a public key" >&2; exit 1; }
            grep -v '^[[:space:]]*\(#\|$\)' "$key" >> "$dest"
            log "baking in key $key ($(ssh-keygen -l -f "$key" | cut -d' ' -f2))"
        done
    else
        if [[ ! -f $build/id_ed25519 ]]; then
            ssh-keygen -q -t ed25519 -N '' -C "pre-nixos-build@$(hostname)" -f "$build/id_ed25519"
            log "made a key pair for this build: $build/id_ed25519 (pass SSH_KEY=path.pub to use yours)"
        fi
        cat "$build/id_ed25519.pub" >> "$dest"
        log "baking in key $build/id_ed25519.pub; log in with: ssh -i $build/id_ed25519 root@<address>"
    fi
}

# ---------------------------------------------------------------- stage 1: the OS layer
os_layer_key() {
    {
        printf 'suite=%s mirror=%s security=%s ansible=%s mitogen=%s netaddr=%s zstd=%s\n' "$suite" "$mirror" "$security_mirror" \
            "$(ansible_pin)" "$(pin mitogen)" "$(pin netaddr)" "$zstd_level"
        declare -f build_os_layer
        (cd "$iso_src/os-layer" && find . -type f -o -type l | LC_ALL=C sort | while read -r f; do
            printf '%s %s\n' "$f" "$(stat -c %a "$f")"; sha256sum < "$f"; done)
    } | sha256sum | cut -c1-16
}

build_os_layer() {
    local dest=$1 work
    work=$(scratch_dir os-layer)
    mkdir -p "$work/wheels"
    "$venv/bin/pip" download -q --disable-pip-version-check --only-binary=:all: \
        --python-version 3.11 --implementation cp --abi cp311 \
        --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
        -d "$work/wheels" "ansible-core==$(ansible_pin)" "mitogen==$(pin mitogen)" "netaddr==$(pin netaddr)" 2> >(grep -v 'is ignored: it is neither' >&2)
    local packages
    packages=$(grep -v '^[[:space:]]*\(#\|$\)' "$iso_src/os-layer/packages.txt" | tr '\n' ',' | sed 's/,$//')
    # INITRD=No: the kernel's postinst makes no initramfs; the whole OS layer is the initramfs.
    INITRD=No mmdebstrap --variant=minbase --mode=root --format=directory \
        --components=main,non-free-firmware \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/lintian/*' \
        --include="$packages" \
        --customize-hook="$iso_src/os-layer/customize.sh \"\$1\" $work/wheels $(ansible_pin) $(pin mitogen) $(pin netaddr)" \
        "$suite" "$work/root" \
        "deb $mirror $suite main non-free-firmware" \
        "deb $mirror $suite-updates main non-free-firmware" \
        "deb $security_mirror $suite-security main non-free-firmware"
    mkdir -p "$work/out"
    cp "$work/root"/boot/vmlinuz-* "$work/out/vmlinuz"
    rm -rf "$work/root"/boot/*
    # newc cpio, sorted, zstd: the kernel unpacks it into its tmpfs root and runs /init (systemd).
    (cd "$work/root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible) \
        | zstd -q -T0 "-$zstd_level" --long=27 -o "$work/out/os.cpio.zst"
    {
        echo "built: $(date -u +%FT%TZ)"
        echo "suite: $suite"
        echo "kernel: $(basename "$(ls -d "$work/root"/lib/modules/*)")"
        echo "unpacked: $(du -sm "$work/root" | cut -f1) MiB"
        echo "ansible-core: $(ansible_pin)"
        cat "$work/root/opt/pre-nixos/venv/requirements.lock"
    } > "$work/out/info.txt"
    rm -rf "$dest"
    mv "$work/out" "$dest"
    rm -rf "$work"
}

# ---------------------------------------------------------------- stage 2: the small layer
build_layer() {
    local dest=$1 work root tarball
    work=$(scratch_dir layer)
    root=$work/root
    install -d -m 0755 "$root"/usr/share/pre-nixos/collections "$root"/usr/local/lib "$root"/usr/local/bin \
        "$root"/etc/systemd/system/multi-user.target.wants "$root"/etc/pre-nixos "$root"/usr \
        "$root"/usr/share "$root"/usr/local "$root"/etc "$root"/etc/systemd
    install -d -m 0700 "$root"/root "$root"/root/.ssh
    "$venv/bin/ansible-galaxy" collection build --force --output-path "$work" "$collection_dir" > /dev/null
    tarball=$(ls "$work"/prenixos-baseline-*.tar.gz)
    ANSIBLE_COLLECTIONS_PATH="$root/usr/share/pre-nixos/collections" \
        "$venv/bin/ansible-galaxy" collection install --offline --force \
        -p "$root/usr/share/pre-nixos/collections" "$tarball" > /dev/null
    install -m 0644 "$iso_src/firstboot/pre-nixos.service" "$root/etc/systemd/system/pre-nixos.service"
    ln -s ../pre-nixos.service "$root/etc/systemd/system/multi-user.target.wants/pre-nixos.service"
    install -D -m 0644 "$iso_src/firstboot/pre_nixos_firstboot.py" "$root/usr/local/lib/pre-nixos/pre_nixos_firstboot.py"
    # pre-nixos, the operator's command (status, plan, edit, apply, log), on PATH
    install -m 0644 "$iso_src/firstboot/pre_nixos_cli.py" "$root/usr/local/lib/pre-nixos/pre_nixos_cli.py"
    install -D -m 0755 "$iso_src/firstboot/pre-nixos" "$root/usr/local/bin/pre-nixos"
    collect_keys "$work/keys"
    install -m 0644 "$work/keys" "$root/etc/pre-nixos/authorized_keys"
    install -m 0600 "$work/keys" "$root/root/.ssh/authorized_keys"
    python3 "$iso_src/boot_config.py" gettys --root "$root" --console "$console" --autologin "$autologin"
    {
        echo "version: $(basename "$tarball" .tar.gz | sed 's/^prenixos-baseline-//')"
        echo "commit: $(git -C "$collection_dir" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$collection_dir" diff --quiet HEAD 2>/dev/null || echo '+changes')"
        echo "built: $(date -u +%FT%TZ)"
        echo "os layer: $os_key"
        echo "console: $console"
        echo "autologin: $autologin"
    } > "$root/etc/pre-nixos/build-info"
    (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible -R 0:0) \
        | zstd -q -f -T0 -19 -o "$dest"
    rm -rf "$work"
}

# ---------------------------------------------------------------- stage 3: the ISO
# Debian's signed boot chain for UEFI, as Debian's own installer media use it: shim (signed by Microsoft,
# so Secure Boot with Microsoft's keys lets it run) starts GRUB for CD/USB (signed by Debian), which finds
# the medium by /.disk/info, reads /boot/grub/grub.cfg and has shim check the kernel's signature (Debian's).
# Taken with apt-get download (never installed: their scripts would touch this machine's boot loader) and
# kept under build/cache/ by package version.
SIGNED_BOOT_PACKAGES=(shim-signed shim-helpers-amd64-signed grub-efi-amd64-signed)

signed_boot_files() {
    local versions dest work deb
    versions=$(apt-cache policy "${SIGNED_BOOT_PACKAGES[@]}" 2>/dev/null | sed -n 's/^  Candidate: //p' | tr '\n' ' ')
    if [[ $versions != *[0-9]*' '*[0-9]*' '*[0-9]* ]]; then
        apt-get update -q >&2
        versions=$(apt-cache policy "${SIGNED_BOOT_PACKAGES[@]}" | sed -n 's/^  Candidate: //p' | tr '\n' ' ')
    fi
    dest=$cache/signed-boot-$(echo "$versions" | sha256sum | cut -c1-12)
    if [[ ! -s $dest/grubx64.efi ]]; then
        work=$(scratch_dir signed-boot)
        (cd "$work" && apt-get download -q -o APT::Sandbox::User=root "${SIGNED_BOOT_PACKAGES[@]}" >&2)
        for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$work/x"; done
        mkdir -p "$work/out"
        cp "$work/x/usr/lib/shim/shimx64.efi.signed" "$work/out/BOOTX64.EFI"
        cp "$work/x/usr/lib/shim/mmx64.efi.signed" "$work/out/mmx64.efi"
        cp "$work/x/usr/lib/grub/x86_64-efi-signed/gcdx64.efi.signed" "$work/out/grubx64.efi"
        echo "${SIGNED_BOOT_PACKAGES[*]}: $versions" > "$work/out/versions"
        rm -rf "$dest"
        mv "$work/out" "$dest"
        rm -rf "$work"
    fi
    echo "$dest"
}

# The FAT image UEFI boots from (El Torito on a CD, the second partition on a stick or disk).
make_efi_image() {
    local image=$1 signed=$2 kib
    kib=$(( $(du -ck "$signed"/*.EFI "$signed"/*.efi | tail -n1 | cut -f1) + 128 ))
    rm -f "$image"
    mkfs.vfat -C -n PRENIXOSEFI "$image" "$kib" > /dev/null
    mmd -i "$image" ::/EFI ::/EFI/BOOT
    mcopy -i "$image" "$signed/BOOTX64.EFI" "$signed/grubx64.efi" "$signed/mmx64.efi" ::/EFI/BOOT/
}

# Legacy BIOS: one GRUB core image with every module the menu uses (no module directory on the medium).
BIOS_GRUB_MODULES=(biosdisk iso9660 part_msdos part_gpt normal configfile linux echo test probe search
    search_fs_uuid search_fs_file serial terminal minicmd)

build_iso() {
    local work tree size_mib version signed
    work=$(scratch_dir iso)
    tree=$work/tree
    mkdir -p "$tree/boot/grub" "$tree/.disk"
    cp "$os_dir/vmlinuz" "$tree/boot/vmlinuz"
    cp "$os_dir/os.cpio.zst" "$tree/boot/os.cpio.zst"
    cp "$build/layer.cpio.zst" "$tree/boot/layer.cpio.zst"
    size_mib=$(du -cm "$tree"/boot/* | tail -n1 | cut -f1)
    version=$(sed -n 's/^version: //p' "$repo/galaxy.yml")
    python3 "$iso_src/boot_config.py" grub --template "$iso_src/grub/grub.cfg" --out "$tree/boot/grub/grub.cfg" \
        --console "$console" --version "$version" --size-mib "$size_mib" --kernel-args "$kernel_args"
    echo "pre-nixos baseline $version" > "$tree/.disk/info"
    signed=$(signed_boot_files)
    log "UEFI boot chain: $(cat "$signed/versions")"
    make_efi_image "$tree/boot/efi.img" "$signed"
    grub-mkimage -O i386-pc-eltorito -p /boot/grub -o "$tree/boot/grub/bios.img" "${BIOS_GRUB_MODULES[@]}"
    # A hybrid image (as grub-mkrescue lays it out): El Torito for BIOS and UEFI on a CD, and an MBR, a
    # protective GPT and the FAT image as a partition of its own for a stick or a disk.
    xorriso -as mkisofs -quiet -graft-points -volid PRENIXOS -r \
        -b boot/grub/bios.img -no-emul-boot -boot-load-size 4 -boot-info-table \
        --grub2-boot-info --grub2-mbr /usr/lib/grub/i386-pc/boot_hybrid.img \
        --efi-boot boot/efi.img -efi-boot-part --efi-boot-image --protective-msdos-label \
        -o "$work/pre-nixos.iso" "$tree"
    [[ -s $work/pre-nixos.iso ]] || { echo "xorriso made no ISO" >&2; exit 1; }
    mv "$work/pre-nixos.iso" "$out"
    rm -rf "$work"
}

main() {
    mkdir -p "$build" "$cache"
    ensure_tools
    # The build options are checked before anything is built.
    python3 "$iso_src/boot_config.py" check --console "$console" --autologin "$autologin"

    stage "1/3: OS layer"
    os_key=$(os_layer_key)
    os_dir=$cache/os-$os_key
    if [[ -s $os_dir/os.cpio.zst && -s $os_dir/vmlinuz ]]; then
        log "OS layer $os_key is cached ($os_dir)"
    else
        log "building OS layer $os_key (Debian $suite, ansible-core $(ansible_pin))"
        build_os_layer "$os_dir"
        echo $(( $(date +%s) - stage_started )) > "$os_dir/build-seconds"
        # Keep the two newest OS layers; older ones only fill the disk.
        ls -dt "$cache"/os-* | tail -n +3 | xargs -r rm -rf
    fi
    stage_done 1

    stage "2/3: collection layer"
    build_layer "$build/layer.cpio.zst"
    stage_done 2

    stage "3/3: ISO"
    build_iso
    stage_done 3

    log "built $out: $(du -m "$out" | cut -f1) MiB (OS layer $(du -m "$os_dir/os.cpio.zst" | cut -f1) MiB," \
        "collection layer $(( $(stat -c %s "$build/layer.cpio.zst") / 1024 )) KiB)"
    log "total build time: $(( $(date +%s) - build_started )) s" \
        "(building the OS layer itself took $(cat "$os_dir/build-seconds" 2> /dev/null || echo '?') s;" \
        "a cold build is that plus stages 2 and 3)"
}

main "$@"
