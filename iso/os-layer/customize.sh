#!/usr/bin/env bash
# Stage 1 of the boot image, run by mmdebstrap as its customize hook (on the build host):
#   customize.sh ROOT WHEELS_DIR ANSIBLE_PIN MITOGEN_PIN NETADDR_PIN
# Turns the freshly bootstrapped Debian tree ROOT into the OS layer: image config, ansible-core
# in a venv, services enabled, no host keys, trimmed. Part of the OS-layer cache key.
set -euo pipefail
root=$1 wheels=$2 ansible_pin=$3 mitogen_pin=$4 netaddr_pin=$5
here=$(cd "$(dirname "$0")" && pwd)
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

# Image configuration (sshd key-only drop-in, host key unit, DHCP, autologin gettys, ...)
cp -a --no-preserve=ownership "$here/rootfs/." "$root/"

# ansible-core, Mitogen (first boot's strategy: one Python for every module task) and netaddr (the lan
# settings are read with it), pinned, from wheels downloaded on the host (no network needed in the chroot)
in_root python3 -m venv /opt/pre-nixos/venv
mkdir -p "$root/tmp/wheels" && cp "$wheels"/*.whl "$root/tmp/wheels/"
in_root /opt/pre-nixos/venv/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check \
    --find-links /tmp/wheels "ansible-core==$ansible_pin" "mitogen==$mitogen_pin" "netaddr==$netaddr_pin"
in_root /opt/pre-nixos/venv/bin/pip freeze --all > "$root/opt/pre-nixos/venv/requirements.lock"
rm -rf "$root/tmp/wheels"
# The image runs ansible, it does not install Python packages: no pip, setuptools, ansible-test.
in_root /opt/pre-nixos/venv/bin/python -m pip uninstall -q -y pip setuptools
rm -rf "$root"/opt/pre-nixos/venv/lib/python3.11/site-packages/ansible_test \
       "$root"/opt/pre-nixos/venv/bin/ansible-test
# netaddr's IEEE registries (9 MiB; read only to name a MAC's vendor, which nothing here asks) and its tests.
rm -rf "$root"/opt/pre-nixos/venv/lib/python3.11/site-packages/netaddr/{eui/*.txt,eui/*.idx,tests} \
       "$root"/opt/pre-nixos/venv/bin/netaddr
# Runs over SSH use the system Python: it gets the same netaddr.
ln -s /opt/pre-nixos/venv/lib/python3.11/site-packages/netaddr "$root/usr/lib/python3/dist-packages/netaddr"

# Module tasks import Ansible's module_utils from a zip, which Python compiles anew every time:
# a bytecode cache for zip imports, in the venv (first boot) and the system Python (runs over SSH).
for site in /opt/pre-nixos/venv/lib/python3.11/site-packages /usr/lib/python3/dist-packages; do
    install -m 0644 "$here/python/prenixos_zip_pycache.py" "$here/python/prenixos_zip_pycache.pth" "$root$site/"
    in_root python3 -m compileall -q "$site/prenixos_zip_pycache.py"
done

# Services: networkd (DHCP until the lan role takes over), host keys before sshd, no timers.
in_root systemctl enable systemd-networkd.service systemd-resolved.service ssh.service \
    pre-nixos-ssh-hostkeys.service
# Nothing waits for "network online"; boot and first boot must not block on it.
in_root systemctl mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
    dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
    mdcheck_start.timer mdcheck_continue.timer mdmonitor-oneshot.timer

# No secrets or identity baked in: host keys are made at boot, machine-id is transient.
rm -f "$root"/etc/ssh/ssh_host_*
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"

# The kernel runs /init from the initramfs: that is systemd, straight away.
ln -sfn /lib/systemd/systemd "$root/init"

# Trim what a headless server never loads, as paths under the kernel's module tree. Every NIC,
# storage controller (SATA, NVMe, SAS, RAID, FC), USB host/storage/HID, md, dm, virtio and IPMI
# driver stays. A kept module that needs a pruned one fails the build (checked against the
# modules.dep the kernel shipped); depmod then rebuilds the index.
kdir=$(echo "$root"/lib/modules/*)
kver=$(basename "$kdir")
prune=(
    # sound, video capture (and what needs them: Intel SoundWire, MIDI/LCD HID gadgets, laptop
    # hotkeys), radios: wireless, bluetooth, CAN, WWAN, 802.15.4, NFC, GNSS, ham radio
    sound drivers/media drivers/soundwire/soundwire-intel.ko drivers/hid/hid-prodikeys.ko
    drivers/hid/hid-picolcd.ko drivers/platform/x86/thinkpad_acpi.ko
    drivers/platform/x86/toshiba_acpi.ko
    drivers/net/wireless drivers/bluetooth net/bluetooth net/mac80211
    net/wireless drivers/net/can net/can drivers/net/wwan drivers/net/ieee802154 net/ieee802154
    net/mac802154 net/6lowpan drivers/nfc net/nfc drivers/gnss drivers/net/hamradio net/ax25
    net/netrom net/rose
    # GPUs with their own drivers (the EFI framebuffer, BMC video ast/mgag200, bochs, cirrus and
    # virtio-gpu stay), desktop hypervisor and USB displays
    drivers/gpu/drm/amd drivers/gpu/drm/nouveau drivers/gpu/drm/i915 drivers/gpu/drm/radeon
    drivers/gpu/drm/gma500 drivers/gpu/drm/vmwgfx drivers/gpu/drm/vboxvideo drivers/gpu/drm/qxl
    drivers/gpu/drm/hyperv drivers/gpu/drm/xen drivers/gpu/drm/udl drivers/gpu/drm/vgem
    drivers/gpu/drm/display
    # staging, industrial I/O (and its two sensor users), ISDN, ATM, comedi, InfiniBand with
    # NVMe and 9p over RDMA (mlx4/mlx5 Ethernet and NVMe over PCIe/TCP/FC need none of it)
    drivers/staging drivers/iio drivers/power/supply/axp288_fuel_gauge.ko
    drivers/hwmon/ntc_thermistor.ko drivers/isdn drivers/atm net/atm drivers/comedi
    drivers/infiniband drivers/nvme/host/nvme-rdma.ko drivers/nvme/target/nvmet-rdma.ko
    net/9p/9pnet_rdma.ko
    # input beyond keyboards and HID: touchscreens, joysticks, tablets, mice, gameports
    drivers/input/touchscreen drivers/input/joystick drivers/input/tablet drivers/input/mouse
    drivers/input/gameport
    # desktop and laptop peripherals: FireWire, Memory Stick, USB gadget/serial/Type-C/USB-IP/
    # cameras/ATM modems, speakup, Android binder, Chromebook platform
    drivers/firewire drivers/memstick drivers/usb/gadget drivers/usb/serial drivers/usb/typec
    drivers/usb/usbip drivers/usb/image drivers/usb/atm drivers/accessibility drivers/android
    drivers/platform/chrome
    # storage targets (LIO and its fabric modules: the image is an initiator)
    drivers/target drivers/scsi/qla2xxx/tcm_qla2xxx.ko drivers/vhost/vhost_scsi.ko
    drivers/xen/xen-scsiback.ko
    # network file systems and their transports: NFS, SMB, Ceph (and rbd), AFS, Coda, OrangeFS,
    # GFS2, OCFS2 (dlm stays for md-cluster)
    fs/nfs fs/nfsd fs/lockd fs/nfs_common net/sunrpc fs/smb fs/ceph net/ceph drivers/block/rbd.ko
    fs/afs net/rxrpc fs/coda fs/orangefs fs/gfs2 fs/ocfs2
    # file systems of other systems and of raw flash (ext4, vfat, xfs, btrfs, iso9660, udf, exfat,
    # squashfs, overlay, fuse, 9p stay)
    fs/adfs fs/affs fs/befs fs/bfs fs/efs fs/freevxfs fs/hfs fs/hfsplus fs/hpfs fs/jffs2 fs/jfs
    fs/minix fs/nilfs2 fs/omfs fs/qnx4 fs/qnx6 fs/reiserfs fs/romfs fs/sysv fs/ubifs fs/ufs
    fs/vboxsf fs/f2fs fs/erofs
    # protocols a provisioning host does not speak
    net/appletalk drivers/net/appletalk net/batman-adv net/dccp net/kcm net/l2tp net/lapb
    net/qrtr net/rds net/smc net/tipc
)
shipped_deps=$(cat "$kdir/modules.dep")
for d in "${prune[@]}"; do
    rm -rf "${kdir:?}/kernel/$d"
done
broken=$(cd "$kdir" && while IFS=: read -r m deps; do
    [[ -e $m ]] || continue
    for d in $deps; do [[ -e $d ]] || echo "$m needs $d"; done
done <<< "$shipped_deps")
[[ -z $broken ]] || { echo "pruned modules that kept ones need:"; echo "$broken"; exit 1; } >&2
# Each module compressed on its own (kmod reads .ko.zst): the kernel unpacks the whole image into
# memory at every boot, and a server loads only a few dozen of these thousands of modules.
find "$kdir/kernel" -name '*.ko' -print0 | xargs -0 -n 64 -P "$(nproc)" zstd -q --rm -19
in_root depmod -a "$kver"

# Outside the kernel: firmware of Realtek Wi-Fi/Bluetooth chips (rtl_nic, bnx2, bnx2x stay);
# the hwdb sources (udev reads the compiled hwdb.bin, which stays); glibc's gconv charsets (UTF-8
# is built into glibc, Python has its own codecs); the pip/setuptools wheels for new venvs (the
# image makes none); Python's pydoc topics, lib2to3 and regression-test helpers (unittest stays).
rm -rf "$root"/lib/firmware/{rtw88,rtw89,rtlwifi,RTL8192E,rtl_bt} "$root"/lib/udev/hwdb.d/*.hwdb \
       "$root"/usr/lib/x86_64-linux-gnu/gconv "$root"/usr/share/python-wheels/*.whl \
       "$root"/usr/lib/python3.11/{pydoc_data,lib2to3,test}

# Perl only came for usrmerge, whose work is done (the tree is merged-/usr; usr-is-merged
# stays and keeps dpkg's dependencies whole). perl-base goes too: only dpkg's maintainer-script
# helpers and debconf use it, and nothing is installed on the running image.
in_root dpkg --purge usrmerge libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl \
    perl perl-modules-5.36 libperl5.36
in_root dpkg --purge --force-remove-essential --force-depends perl-base

# Docs, man pages and locales are excluded at unpack time (dpkg path-exclude); caches go here.
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/*.log \
       "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
