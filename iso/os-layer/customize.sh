#!/usr/bin/env bash
# Stage 1 of the boot image, run by mmdebstrap as its customize hook (on the build host):
#   customize.sh ROOT WHEELS_DIR ANSIBLE_PIN
# Turns the freshly bootstrapped Debian tree ROOT into the OS layer: image config, ansible-core
# in a venv, services enabled, no host keys, trimmed. Part of the OS-layer cache key.
set -euo pipefail
root=$1 wheels=$2 ansible_pin=$3
here=$(cd "$(dirname "$0")" && pwd)
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

# Image configuration (sshd key-only drop-in, host key unit, DHCP, autologin gettys, ...)
cp -a --no-preserve=ownership "$here/rootfs/." "$root/"

# ansible-core, pinned, from wheels downloaded on the host (no network needed in the chroot)
in_root python3 -m venv /opt/pre-nixos/venv
mkdir -p "$root/tmp/wheels" && cp "$wheels"/*.whl "$root/tmp/wheels/"
in_root /opt/pre-nixos/venv/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check \
    --find-links /tmp/wheels "ansible-core==$ansible_pin"
in_root /opt/pre-nixos/venv/bin/pip freeze --all > "$root/opt/pre-nixos/venv/requirements.lock"
rm -rf "$root/tmp/wheels"
# The image runs ansible, it does not install Python packages: no pip, setuptools, ansible-test.
in_root /opt/pre-nixos/venv/bin/python -m pip uninstall -q -y pip setuptools
rm -rf "$root"/opt/pre-nixos/venv/lib/python3.11/site-packages/ansible_test \
       "$root"/opt/pre-nixos/venv/bin/ansible-test

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

# Trim what a headless server never loads: sound, video capture, wireless, GPUs with
# their own drivers (the EFI framebuffer and BMC video drivers stay), staging, InfiniBand.
kdir=$(echo "$root"/lib/modules/*)
kver=$(basename "$kdir")
for d in sound drivers/media drivers/net/wireless drivers/bluetooth net/bluetooth net/mac80211 \
         net/wireless drivers/gpu/drm/amd drivers/gpu/drm/nouveau drivers/gpu/drm/i915 \
         drivers/gpu/drm/radeon drivers/iio drivers/staging drivers/isdn drivers/infiniband \
         drivers/comedi drivers/net/can net/can drivers/net/wwan drivers/net/ieee802154 \
         net/ieee802154 drivers/input/touchscreen drivers/input/joystick; do
    rm -rf "${kdir:?}/kernel/$d"
done
in_root depmod -a "$kver"

# Perl only came for usrmerge, whose work is done (the tree is merged-/usr; usr-is-merged
# stays and keeps dpkg's dependencies whole).
in_root dpkg --purge usrmerge libfile-find-rule-perl libnumber-compare-perl libtext-glob-perl \
    perl perl-modules-5.36 libperl5.36

# Docs, man pages and locales are excluded at unpack time (dpkg path-exclude); caches go here.
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/*.log \
       "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
