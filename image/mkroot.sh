#!/bin/bash
# mkroot.sh ROOTFS-DIR OUT RELEASE-JSON CONFIG-TOML: a root slot image
# (squashfs, zstd) of the tree, with the release file and the agent's
# configuration added as it is written: the one tree gives every variant an
# update test needs (another version, a broken configuration) in seconds.
# zstd level 8: 6 s and 142 MB here, where mksquashfs's default (15) takes 73 s
# for 134 MB.  SQUASHFS_COMP replaces the compressor options (experiments:
# "-comp lz4" 213 MB, "-noI -noD -noF -noX" 488 MB; neither read the agent's
# imports faster under emulation: docs/IMAGE.md "Boot time").
#
# The squashfs is followed in the same file by its dm-verity hash tree
# (veritysetup format, 4 KiB blocks, the hash area starting where the
# squashfs ends).  OUT.verity gets the kernel command line parameter that
# opens it, `capbox.verity=ROOTHASH:HASH-OFFSET`: mkuki.sh puts it into the
# slot's UKI, whose signature thereby covers every block of the slot.
set -euo pipefail
tree=$1 out=$2 release=$3 config=$4
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(date +%s)}
rm -f "$out.tmp"
mksquashfs "$tree" "$out.tmp" -noappend -quiet -no-progress ${SQUASHFS_COMP:--comp zstd -Xcompression-level 8} \
    -b "${SQUASHFS_BLOCK:-131072}" \
    -p "usr/lib/capbox/release.json f 644 0 0 cat $(realpath "$release")" \
    -p "etc/capbox/capbox.toml f 644 0 0 cat $(realpath "$config")" >/dev/null
size=$(stat -c %s "$out.tmp")
blocks=$(( (size + 4095) / 4096 ))
truncate -s $((blocks * 4096)) "$out.tmp"          # squashfs pads to 4 KiB already; this only makes sure
roothash=$(veritysetup format --data-block-size=4096 --hash-block-size=4096 --data-blocks="$blocks" \
    --hash-offset=$((blocks * 4096)) "$out.tmp" "$out.tmp" | awk '/^Root hash:/ {print $3}')
[ ${#roothash} = 64 ] || { echo "mkroot.sh: veritysetup gave no root hash" >&2; exit 1; }
echo "capbox.verity=$roothash:$((blocks * 4096))" > "$out.verity"
mv "$out.tmp" "$out"
