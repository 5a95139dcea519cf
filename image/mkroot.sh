#!/bin/bash
# mkroot.sh ROOTFS-DIR OUT RELEASE-JSON CONFIG-TOML: a root slot image
# (squashfs, zstd) of the tree, with the release file and the agent's
# configuration written into it first (replacing the last variant's): the one
# tree gives every variant an update test needs (another version, a broken
# configuration) in seconds.  (Written, not mksquashfs pseudo files: with
# -sort, below, mksquashfs 4.5.1 stores those empty.)
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
# the files the agent's start reads (usr/lib/capbox/preload.list, image/preload.py: in the order it
# reads them) go first and together: their small files' tails share fragment blocks with each other
# instead of with whatever sorted beside them in the tree, so the boot reads, hashes (dm-verity) and
# decompresses about a third less of the slot for them (20 MB -> 13 MB of squashfs read, here)
sort_list=$(mktemp)
trap 'rm -f "$sort_list"' EXIT
[ -r "$tree/usr/lib/capbox/preload.list" ] && \
    awk '{ sub("^/", ""); print $0, 32000 - NR }' "$tree/usr/lib/capbox/preload.list" > "$sort_list"
install -D -m 644 -o 0 -g 0 "$release" "$tree/usr/lib/capbox/release.json"
install -D -m 644 -o 0 -g 0 "$config" "$tree/etc/capbox/capbox.toml"
mksquashfs "$tree" "$out.tmp" -noappend -quiet -no-progress ${SQUASHFS_COMP:--comp zstd -Xcompression-level 8} \
    -b "${SQUASHFS_BLOCK:-131072}" -sort "$sort_list" >/dev/null
size=$(stat -c %s "$out.tmp")
blocks=$(( (size + 4095) / 4096 ))
truncate -s $((blocks * 4096)) "$out.tmp"          # squashfs pads to 4 KiB already; this only makes sure
roothash=$(veritysetup format --data-block-size=4096 --hash-block-size=4096 --data-blocks="$blocks" \
    --hash-offset=$((blocks * 4096)) "$out.tmp" "$out.tmp" | awk '/^Root hash:/ {print $3}')
[ ${#roothash} = 64 ] || { echo "mkroot.sh: veritysetup gave no root hash" >&2; exit 1; }
echo "capbox.verity=$roothash:$((blocks * 4096))" > "$out.verity"
mv "$out.tmp" "$out"
