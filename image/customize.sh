#!/bin/bash
# customize.sh ROOTFS SRC PIP-LOCK: mmdebstrap's last step: the agent from the wheels in
# ROOTFS/tmp/wheels (offline: PyPI is the host's business), units, masks, and
# what a read-only root needs.
set -euo pipefail
R=$1 SRC=$2 PIP_LOCK=$3
in_root() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 chroot "$R" "$@"; }

in_root python3 -m venv /opt/capbox
in_root /opt/capbox/bin/pip install -q --no-index --find-links /tmp/wheels capbox
rm -rf "$R/tmp/wheels"
# nothing is installed on a read-only root: pip and setuptools stay behind (the lock lists them first;
# it goes straight to the host: mmdebstrap empties the tree's /tmp when it is done)
in_root /opt/capbox/bin/pip freeze --all > "$PIP_LOCK"
rm -rf "$R"/opt/capbox/bin/pip* "$R"/opt/capbox/lib/python3.11/site-packages/{pip,setuptools,pkg_resources,_distutils_hack}* \
    "$R"/opt/capbox/lib/python3.11/site-packages/distutils-precedence.pth
ln -sf /opt/capbox/bin/capbox "$R/usr/local/bin/capbox"
# bytecode that stays valid on the slot: pip's .pyc files record their sources' mtimes, which
# mksquashfs clamps to SOURCE_DATE_EPOCH, so every import on the box found them stale and compiled
# the source again, in memory (the root is read-only), in every process on every boot: most of the
# agent's start under emulation.  Unchecked hash-based .pyc (PEP 552) are taken as they are; the slot
# is read-only and dm-verity checks every block of it.  The standard library too: Debian compiles it
# with *checked* hashes, so each of its imports also read its source off the slot and hashed it (the
# agent's start alone: 162 modules, 3.8 MB of source)
in_root /opt/capbox/bin/python -m compileall -q -f --invalidation-mode unchecked-hash \
    /opt/capbox/lib/python3.11/site-packages /usr/lib/python3.11
# and the code of the dataclasses' methods, which CPython compiles from text at every import otherwise
# (hwdrivers/dataclasscode.py)
in_root /opt/capbox/bin/python -c 'from hwdrivers import dataclasscode; print("   dataclass methods:", dataclasscode.write())'
# Debian's sitecustomize only tries apport's hook, which a box does not have: a failed import, every
# directory of sys.path searched, at the start of every Python process
rm -f "$R/etc/python3.11/sitecustomize.py" "$R/usr/lib/python3.11/sitecustomize.py" \
    "$R"/usr/lib/python3.11/__pycache__/sitecustomize.*.pyc

systemctl --root="$R" enable -q systemd-networkd.service capbox-grow-data.service capbox.service capbox-console.service capbox-tui.service \
    capbox-coldplug.service \
    capbox-verify-slot.service \
    capbox-update-guard.service
# ttyS0 belongs to the capbox console, tty1 to the TUI; nothing prompts or runs apt on a box
systemctl --root="$R" mask -q serial-getty@.service getty@tty1.service systemd-firstboot.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service
# and what a box has no use for (each unit is a process to start; under emulation it shows)
systemctl --root="$R" mask -q systemd-update-utmp.service systemd-update-utmp-runlevel.service \
    systemd-binfmt.service proc-sys-fs-binfmt_misc.automount dpkg-db-backup.timer fstrim.timer \
    dev-hugepages.mount sys-kernel-debug.mount sys-kernel-tracing.mount sys-fs-fuse-connections.mount \
    modprobe@drm.service modprobe@loop.service modprobe@efi_pstore.service modprobe@configfs.service \
    sys-kernel-config.mount systemd-network-generator.service systemd-pstore.service
# nor these, which sat on the path to the agent in a profile of the boot (systemd-analyze critical-chain):
# static /dev nodes for modules loaded on demand (tun, fuse, loop: none used), dm_mod (the initramfs loaded
# it), an empty modules-load list, POSIX message queues, user sessions (no getty: the console and the TUI
# own the terminals).  logind stays, and D-Bus for it: it is what turns the power button into a clean
# shutdown (with logind masked, a box ignored the button)
systemctl --root="$R" mask -q kmod-static-nodes.service modprobe@dm_mod.service systemd-modules-load.service \
    dev-mqueue.mount systemd-user-sessions.service
# and the remount of the root: the initramfs mounts the slot read-only (it is squashfs: there is nothing
# to remount), yet with no root line in fstab systemd-remount-fs still ran mount(8) on it, before
# local-fs.target and so before the agent (2.7 s in a profile's systemd-analyze blame)
systemctl --root="$R" mask -q systemd-remount-fs.service
# generators a box has no use for: each is a process systemd runs, and waits for, before it loads a
# unit (no SysV scripts, crypttab, integrity or verity tables for systemd, hibernation, getty on a
# console, GPT auto-mounts, debug shells or offline updates), nor fstab's (an empty fstab: the initramfs
# mounts /tmp with the rest)
mkdir -p "$R/etc/systemd/system-generators"
for g in systemd-fstab-generator systemd-sysv-generator systemd-rc-local-generator systemd-cryptsetup-generator \
         systemd-integritysetup-generator systemd-veritysetup-generator systemd-hibernate-resume-generator \
         systemd-getty-generator systemd-gpt-auto-generator systemd-debug-generator \
         systemd-system-update-generator systemd-run-generator; do
    ln -sf /dev/null "$R/etc/systemd/system-generators/$g"
done

# read-only root: machine-id is bound from /data at boot (initramfs), mount points exist
: > "$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"
mkdir -p "$R/var/lib/dbus" && ln -sf /etc/machine-id "$R/var/lib/dbus/machine-id"
mkdir -p "$R/data" "$R/etc/capbox" "$R/usr/lib/capbox" "$R/var/lib/capbox"
mkdir -p "$R/usr/share/doc/capbox"
# the files the agent's start reads, in order, for the initramfs to read ahead (image/preload.py)
# (the agent's modules read /proc as they load: mounted here when mmdebstrap has not)
cp "$SRC/image/preload.py" "$R/tmp/preload.py"
own_proc=0
[ -e "$R/proc/self/maps" ] || { mount -t proc proc "$R/proc"; own_proc=1; }
in_root /opt/capbox/bin/python /tmp/preload.py > "$R/usr/lib/capbox/preload.list"
if [ "$own_proc" = 1 ]; then umount "$R/proc"; fi
rm -f "$R/tmp/preload.py"
echo "   preload list: $(wc -l < "$R/usr/lib/capbox/preload.list") files"
cp "$SRC/docs/IMAGE.md" "$R/usr/share/doc/capbox/" 2>/dev/null || true
