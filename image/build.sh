#!/bin/bash
# image/build.sh: the capbox disk image (`make image`).  docs/IMAGE.md has the
# layout, the boot chain and the update flow; this script is the recipe.
#
#   wheels   capbox (with its compiled C core) and its dependencies, on the host
#   rootfs   mmdebstrap of bookworm + packages.txt, the wheels installed offline
#            into /opt/capbox, the units and initramfs scripts of image/
#   slots    root.img: squashfs of the tree + release.json + capbox.toml, then
#            its dm-verity hash tree (root hash in root.img.verity)
#   uki      capbox.efi: systemd stub + kernel (Debian's, repacked with LZ4: mkkernel.sh) + initrd + os-release + cmdline
#            (with the slot's root hash), signed for Secure Boot (sbsign)
#   esp      FAT: systemd-boot (signed), loader.conf (default slot a), the UKI per slot
#   data     ext4: the agent's data dir with the bundle key trusted and the
#            update state; no secret: every box makes its own on first boot
#            (capbox run --firstboot in capbox.service, the agent's admin key)
#   disk     GPT (per-image disk and partition UUIDs) assembled with sfdisk + dd
#   out      disk.img, disk.img.zst, disk.img.bmap, SHA256SUMS, the lock file,
#            and the update bundle of this same build (signed)
#
# Environment: IMAGE_OUT (build/image), IMAGE_VERSION (the agent's version),
# IMAGE_ROLLBACK (1), IMAGE_KEY (minisign secret key signing bundles; made
# under IMAGE_OUT/keys on the first build), IMAGE_SB_KEY / IMAGE_SB_CERT (the
# Secure Boot signing key and certificate, PEM; made there too),
# IMAGE_APT_SOURCES (a deb822 .sources file; default the host's Debian one).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
OUT=$(realpath -m "${IMAGE_OUT:-$SRC/build/image}")
PY=${PY:-$SRC/.venv/bin/python}
CAPBOX=${CAPBOX:-$SRC/.venv/bin/capbox}
VERSION=${IMAGE_VERSION:-$("$PY" -c 'import agent; print(agent.__version__)')}
ROLLBACK=${IMAGE_ROLLBACK:-1}
TARGET=capbox-x86_64
KEY=${IMAGE_KEY:-$OUT/keys/capbox-update.key}
SB_KEY=${IMAGE_SB_KEY:-$OUT/keys/secureboot-db.key}
SB_CERT=${IMAGE_SB_CERT:-$OUT/keys/secureboot-db.crt}
SUITE=bookworm
WORK=$OUT/work
DIST=$OUT/out
MiB=$((1024 * 1024))
# partition sizes, MiB (docs/IMAGE.md)
ESP_MB=256 ROOT_MB=512 DATA_MB=1024

[ "$(id -u)" = 0 ] || { echo "image/build.sh: needs root (mmdebstrap --mode=root, chroot)" >&2; exit 1; }
mkdir -p "$WORK" "$DIST" "$(dirname "$KEY")"
: > "$WORK/timings.tsv"
t_all=$(date +%s.%N)
t_stage=$t_all
stage() {  # stage NAME: the time of the previous stage goes to timings.tsv
    local now; now=$(date +%s.%N)
    [ -n "${STAGE:-}" ] && printf '%s\t%.1f\n' "$STAGE" "$(echo "$now - $t_stage" | bc)" >> "$WORK/timings.tsv"
    STAGE=$1 t_stage=$now
    [ "$1" = end ] || echo "== $1"
}
BUILD_ID=$(date -u +%Y%m%dT%H%M%SZ)-$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo nogit)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git -C "$SRC" log -1 --format=%ct 2>/dev/null || date +%s)}

# IMAGE_REUSE_ROOTFS=1 (working on the recipe's later stages): keep the last tree
if [ "${IMAGE_REUSE_ROOTFS:-0}" = 1 ] && [ -d "$WORK/rootfs/opt/capbox" ]; then
    echo "== wheels, rootfs: reusing $WORK/rootfs"
else
# ---- wheels ----------------------------------------------------------------------
stage wheels
rm -rf "$WORK/wheels"
mkdir -p "$WORK/wheels"
(cd "$SRC" && env -u CAPBOX_NO_EXT "$PY" -m pip wheel -q --no-deps --no-build-isolation -w "$WORK/wheels" .)
wheel=$(ls "$WORK"/wheels/capbox-*.whl)
env -u PIP_FIND_LINKS "$PY" -m pip download -q --only-binary=:all: -d "$WORK/wheels" "$wheel"

# ---- rootfs ----------------------------------------------------------------------
stage rootfs
sources=${IMAGE_APT_SOURCES:-/etc/apt/sources.list.d/debian.sources}
[ -r "$sources" ] || { echo "no Debian apt sources at $sources: set IMAGE_APT_SOURCES" >&2; exit 1; }
rm -rf "$WORK/rootfs" "$WORK/pip.lock" "$WORK/dpkg.lock"
packages=$(grep -v '^#' "$HERE/packages.txt" | xargs | tr ' ' ',')
# the .debs are kept in $OUT/apt-cache between builds (about 25 s a build)
mkdir -p "$OUT/apt-cache"
mmdebstrap --mode=root --variant=minbase --quiet \
    --include="$packages" \
    --dpkgopt="$HERE/dpkg-excludes" \
    --aptopt='Acquire::Retries "3"' \
    --skip=essential/unlink --skip=download/empty \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $OUT/apt-cache /var/cache/apt/archives/" \
    --essential-hook="sync-in $HERE/initramfs /" \
    --customize-hook="sync-in $HERE/rootfs /" \
    --customize-hook="mkdir -p \"\$1/tmp/wheels\" && cp $WORK/wheels/*.whl \"\$1/tmp/wheels/\"" \
    --customize-hook="$HERE/customize.sh \"\$1\" $SRC $WORK/pip.lock" \
    --customize-hook="sync-out /var/cache/apt/archives $OUT/apt-cache" \
    "$SUITE" "$WORK/rootfs" "$sources"
mkdir -p "$WORK/boot"
mv "$WORK"/rootfs/boot/vmlinuz-* "$WORK/boot/vmlinuz"
mv "$WORK"/rootfs/boot/initrd.img-* "$WORK/boot/initrd.img"
mv "$WORK"/rootfs/boot/config-* "$WORK/boot/config"
rm -f "$WORK"/rootfs/boot/* "$WORK"/rootfs/vmlinuz* "$WORK"/rootfs/initrd.img*
chroot "$WORK/rootfs" dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n' > "$WORK/dpkg.lock"
rm -rf "$WORK"/rootfs/var/lib/apt/lists/* "$WORK"/rootfs/var/cache/apt/*
fi

# ---- root slot image -------------------------------------------------------------
stage slot
"$PY" - "$WORK/release.json" "$VERSION" "$ROLLBACK" "$TARGET" "$BUILD_ID" <<'PY'
import json, sys, time
out, version, rollback, target, build_id = sys.argv[1:]
import agent
json.dump({"name": "capbox", "version": version, "rollback_index": int(rollback), "target": target,
           "build_id": build_id, "built_at": int(time.time()), "capbox_version": agent.__version__},
          open(out, "w"), indent=2)
PY
"$HERE/mkroot.sh" "$WORK/rootfs" "$WORK/root.img" "$WORK/release.json" "$HERE/capbox.toml"
[ "$(stat -c %s "$WORK/root.img")" -le $((ROOT_MB * MiB)) ] || { echo "root.img is larger than a slot" >&2; exit 1; }
cp "$WORK/root.img.verity" "$DIST/root.img.verity"

# ---- UKI ------------------------------------------------------------------------
stage uki
cat > "$WORK/os-release" <<EOF
PRETTY_NAME="capbox $VERSION"
NAME=capbox
ID=capbox
ID_LIKE=debian
VERSION_ID=$VERSION
IMAGE_ID=capbox
IMAGE_VERSION=$VERSION
BUILD_ID=$BUILD_ID
EOF
# no root=: the initramfs finds the slot from the entry systemd-boot started
CMDLINE="ro panic=10 net.ifnames=0 systemd.gpt_auto=0 console=tty0 console=ttyS1,115200 quiet loglevel=3 systemd.show_status=true"
# the Secure Boot key (db): made on the first build, kept like the bundle key (docs/IMAGE.md: enrolling it)
if [ ! -e "$SB_KEY" ]; then
    (umask 077; openssl req -new -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
        -subj "/CN=capbox Secure Boot signing key ($(hostname) $(date -u +%Y-%m-%d))/O=capbox" \
        -keyout "$SB_KEY" -out "$SB_CERT" 2>/dev/null)
    echo "   new Secure Boot signing key $SB_KEY (keep it: enrolled boxes boot only what it signed)"
fi
# Debian's kernel in an LZ4 bzImage: its XZ decompressor took about 4 s of a boot under emulation
"$HERE/mkkernel.sh" "$WORK/boot/vmlinuz" "$WORK/boot/config" \
    "$(awk -F'\t' '$1 ~ /^linux-image-[0-9]/ {print $2}' "$WORK/dpkg.lock")" "$OUT/kernel" "$WORK/boot/vmlinuz.lz4"
export SB_KEY SB_CERT
"$HERE/mkuki.sh" "$WORK/boot/vmlinuz.lz4" "$WORK/boot/initrd.img" "$WORK/os-release" \
    "$CMDLINE $(cat "$WORK/root.img.verity")" "$WORK/capbox.efi"
sbsign --key "$SB_KEY" --cert "$SB_CERT" --output "$WORK/BOOTX64.EFI" \
    /usr/lib/systemd/boot/efi/systemd-bootx64.efi 2>/dev/null
mkdir -p "$DIST/secureboot"
cp "$SB_CERT" "$DIST/secureboot/db.crt"
openssl x509 -in "$SB_CERT" -outform DER -out "$DIST/secureboot/db.cer"

# ---- ESP -------------------------------------------------------------------------
stage esp
rm -f "$WORK/esp.img"
mkfs.vfat -C -F 32 -n CAPBOX-ESP -i "$(printf '%08X' $((SOURCE_DATE_EPOCH & 0xFFFFFFFF)))" "$WORK/esp.img" $((ESP_MB * 1024)) >/dev/null
printf 'default capbox-a.efi\ntimeout 0\neditor no\n' > "$WORK/loader.conf"
export MTOOLS_SKIP_CHECK=1
mmd -i "$WORK/esp.img" ::/EFI ::/EFI/BOOT ::/EFI/Linux ::/loader
mcopy -i "$WORK/esp.img" "$WORK/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$WORK/esp.img" "$WORK/loader.conf" ::/loader/loader.conf
mcopy -i "$WORK/esp.img" "$WORK/capbox.efi" ::/EFI/Linux/capbox-a.efi
mcopy -i "$WORK/esp.img" "$WORK/capbox.efi" ::/EFI/Linux/capbox-b.efi

# ---- signing key, bundle -----------------------------------------------------------
stage bundle
if [ ! -e "$KEY" ]; then
    "$CAPBOX" fw keygen -s "$KEY" -p "${KEY%.key}.pub" >/dev/null
    echo "   new bundle signing key $KEY (keep it: boxes of this image trust only it)"
fi
PUB=${KEY%.key}.pub
[ -e "$PUB" ] || { echo "$PUB: the public half of $KEY is missing" >&2; exit 1; }
bundle=$DIST/capbox-$VERSION.bundle
"$CAPBOX" update build --rootfs "$WORK/root.img" --uki "$WORK/capbox.efi" --target "$TARGET" \
    --version "$VERSION" --rollback "$ROLLBACK" --build-id "$BUILD_ID" --key "$KEY" -o "$bundle" >/dev/null

# ---- data partition --------------------------------------------------------------
stage data
rm -rf "$WORK/data" "$WORK/data.img"
mkdir -p "$WORK/data/capbox/firmware/keys" "$WORK/data/var"
"$CAPBOX" fw trust "$PUB" --data-dir "$WORK/data/capbox" >/dev/null
"$PY" -m firmware.rootslots seed "$WORK/data/capbox/update" --version "$VERSION" --rollback "$ROLLBACK" \
    --target "$TARGET" --build-id "$BUILD_ID" --rootfs "$WORK/root.img" --uki "$WORK/capbox.efi"
# no secret goes into the image: the admin key, console setup code, TLS key pair and machine id are
# each box's own, made on its first boot (docs/IMAGE.md "First boot"); the signing keys stay in keys/
rm -rf "$DIST/credentials"
mkfs.ext4 -q -F -L capbox-data -U "$(cat /proc/sys/kernel/random/uuid)" -E root_owner=0:0 -d "$WORK/data" "$WORK/data.img" ${DATA_MB}M

# ---- GPT disk --------------------------------------------------------------------
stage disk
disk=$DIST/disk.img
rm -f "$disk"
total=$((1 + ESP_MB + 2 * ROOT_MB + DATA_MB + 1))
truncate -s $((total * MiB)) "$disk"
start_esp=1 start_a=$((1 + ESP_MB)) start_b=$((1 + ESP_MB + ROOT_MB)) start_data=$((1 + ESP_MB + 2 * ROOT_MB))
# per-image UUIDs: two disks flashed from two builds never share a PARTUUID
sfdisk -q --no-reread --no-tell-kernel "$disk" <<EOF
label: gpt
label-id: $(cat /proc/sys/kernel/random/uuid)
start=${start_esp}MiB, size=${ESP_MB}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$(cat /proc/sys/kernel/random/uuid), name=esp
start=${start_a}MiB, size=${ROOT_MB}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$(cat /proc/sys/kernel/random/uuid), name=root-a
start=${start_b}MiB, size=${ROOT_MB}MiB, type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$(cat /proc/sys/kernel/random/uuid), name=root-b
start=${start_data}MiB, size=${DATA_MB}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$(cat /proc/sys/kernel/random/uuid), name=data
EOF
put() { dd if="$1" of="$disk" bs=1M seek="$2" conv=notrunc,sparse status=none; }
put "$WORK/esp.img" $start_esp
put "$WORK/root.img" $start_a
put "$WORK/root.img" $start_b
put "$WORK/data.img" $start_data
sfdisk --json "$disk" > "$DIST/partitions.json"

# ---- compressed copy, block map, checksums, lock ----------------------------------
stage compress
# --long: slot b is slot a's copy 512 MiB further on; decompress with --long=31 too
zstd -q -f -T0 -10 --long=31 "$disk" -o "$disk.zst"
bmaptool -q create -o "$disk.bmap" "$disk"
{
    echo "# capbox image $VERSION ($BUILD_ID): what the build resolved"
    echo "[image]"
    echo "version = \"$VERSION\""
    echo "build_id = \"$BUILD_ID\""
    echo "suite = \"$SUITE\""
    echo "stub_sha256 = \"$(sha256sum /usr/lib/systemd/boot/efi/linuxx64.efi.stub | cut -d' ' -f1)\""
    echo "kernel_bzimage_sha256 = \"$(sha256sum "$WORK/boot/vmlinuz.lz4" | cut -d' ' -f1)\""
    echo "systemd_boot_sha256 = \"$(sha256sum /usr/lib/systemd/boot/efi/systemd-bootx64.efi | cut -d' ' -f1)\""
    echo "verity = \"$(cat "$WORK/root.img.verity")\""
    echo "secureboot_db_sha256 = \"$(sha256sum "$DIST/secureboot/db.cer" | cut -d' ' -f1)\""
    echo; echo "[debian]"
    awk -F'\t' '{printf "\"%s:%s\" = \"%s\"\n", $1, $3, $2}' "$WORK/dpkg.lock"
    echo; echo "[python]"
    awk -F'==' 'NF == 2 {printf "\"%s\" = \"%s\"\n", $1, $2}' "$WORK/pip.lock"
    echo; echo "[wheels]"
    (cd "$WORK/wheels" && sha256sum *.whl | awk '{printf "\"%s\" = \"%s\"\n", $2, $1}')
} > "$DIST/capbox-image.lock"
(cd "$DIST" && sha256sum disk.img disk.img.zst disk.img.bmap "$(basename "$bundle")" "$(basename "$bundle").minisig" \
    capbox-image.lock root.img.verity secureboot/db.crt secureboot/db.cer > SHA256SUMS)
stage end

{
    printf 'total\t%.1f\n' "$(echo "$(date +%s.%N) - $t_all" | bc)"
    printf 'disk_img_bytes\t%s\n' "$(stat -c %s "$disk")"
    printf 'disk_img_allocated_bytes\t%s\n' "$(( $(stat -c %b "$disk") * $(stat -c %B "$disk") ))"
    printf 'disk_img_zst_bytes\t%s\n' "$(stat -c %s "$disk.zst")"
    printf 'root_img_bytes\t%s\n' "$(stat -c %s "$WORK/root.img")"
    printf 'uki_bytes\t%s\n' "$(stat -c %s "$WORK/capbox.efi")"
    printf 'bundle_bytes\t%s\n' "$(stat -c %s "$bundle")"
    printf 'debian_packages\t%s\n' "$(wc -l < "$WORK/dpkg.lock")"
} >> "$WORK/timings.tsv"
cp "$WORK/timings.tsv" "$DIST/build-timings.tsv"
column -t -s$'\t' "$DIST/build-timings.tsv"
echo "image: $disk ($(du -h --apparent-size "$disk" | cut -f1) apparent), $disk.zst ($(du -h "$disk.zst" | cut -f1))"
