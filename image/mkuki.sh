#!/bin/bash
# mkuki.sh KERNEL INITRD OS-RELEASE CMDLINE OUT: a unified kernel image (the
# systemd stub + os-release + command line + kernel + initrd, one PE file that
# systemd-boot lists by itself).  bookworm has no ukify: objcopy places the
# sections after the stub's last one, each on the stub's section alignment.
# With SB_KEY and SB_CERT (PEM) set, the result is signed for Secure Boot
# (sbsign): the firmware then checks the command line (the slot's dm-verity
# root hash) along with the kernel and initrd.
set -euo pipefail
kernel=$1 initrd=$2 osrel=$3 cmdline=$4 out=$5
stub=${UKI_STUB:-/usr/lib/systemd/boot/efi/linuxx64.efi.stub}

align=$((16#$(objdump -p "$stub" | awk '$1 == "SectionAlignment" {print $2}')))
read -r size vma < <(objdump -h "$stub" | awk 'NF == 7 && $1 ~ /^[0-9]+$/ {s = $3; v = $4} END {print s, v}')
next=$((16#$size + 16#$vma))
up() { echo $(( ($1 + align - 1) / align * align )); }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s' "$cmdline" > "$tmp/cmdline"
args=()
for sec in osrel:"$osrel" cmdline:"$tmp/cmdline" linux:"$kernel" initrd:"$initrd"; do
    name=${sec%%:*} file=${sec#*:}
    at=$(up $next)
    args+=(--add-section ".$name=$file" --change-section-vma ".$name=$(printf '0x%x' "$at")")
    next=$((at + $(stat -Lc %s "$file")))
done
objcopy "${args[@]}" "$stub" "$tmp/uki.efi"
if [ -n "${SB_KEY:-}" ]; then
    sbsign --key "$SB_KEY" --cert "${SB_CERT:?SB_CERT with SB_KEY}" --output "$out.tmp" "$tmp/uki.efi" 2>/dev/null
else
    cp "$tmp/uki.efi" "$out.tmp"
fi
mv "$out.tmp" "$out"
