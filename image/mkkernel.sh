#!/bin/bash
# mkkernel.sh VMLINUZ CONFIG VERSION CACHE OUT: Debian's kernel, the same vmlinux, repacked in an
# LZ4 bzImage instead of its XZ one.  The bzImage's decompressor (and its EFI stub) is built from
# Debian's own source of that version (linux-source-X.Y, VERSION: the linux-image package's), with
# Debian's configuration but CONFIG_KERNEL_LZ4; its payload is Debian's, decompressed: the kernel
# itself and its relocation table, byte for byte (checked below).  Why: under emulation the XZ
# decompressor ran about 4 s of every boot between the boot loader and the kernel; with LZ4 that
# stretch took half as long, for 6.7 MB more that the firmware reads (docs/IMAGE.md "Boot time",
# the eleventh pass).  Built once per kernel in CACHE (apt-get download of the source, about 2
# minutes on 2 CPUs).
set -euo pipefail
vmlinuz=$1 config=$2 version=$3 cache=$4 out=$5
mkdir -p "$cache"
cache=$(realpath "$cache")
key=$(sha256sum "$vmlinuz" | cut -c1-16)
if [ -e "$cache/bzImage-$key" ]; then
    cp "$cache/bzImage-$key" "$out"
    exit 0
fi

# Debian's payload: setup sectors, then the 32/64-bit part; payload_offset/length in the setup header
payload() {  # BZIMAGE: the compressed payload (with its 4-byte size appended)
    python3 - "$1" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
start = (d[0x1f1] + 1) * 512 + struct.unpack_from("<I", d, 0x248)[0]
sys.stdout.buffer.write(d[start:start + struct.unpack_from("<I", d, 0x24c)[0]])
PY
}
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
payload "$vmlinuz" | xz -dc --single-stream > "$work/vmlinux.payload"

src=linux-source-${version%.*-*}                                # 6.1.192-3 -> linux-source-6.1
(cd "$work" && apt-get download -q "$src=$version" >/dev/null)
dpkg-deb --fsys-tarfile "$work"/"${src}"_*.deb | tar -xO "./usr/src/$src.tar.xz" | tar -xJ -C "$work"
k=$work/$src
cp "$config" "$k/.config"
sed -i 's/^CONFIG_KERNEL_XZ=y/# CONFIG_KERNEL_XZ is not set/; s/^# CONFIG_KERNEL_LZ4 is not set/CONFIG_KERNEL_LZ4=y/' "$k/.config"
# the decompressor takes its payload as it is (not from a vmlinux linked here); voffset.h (the
# kernel's extent, which sizes the decompression buffer) from the payload's own section headers
sed -i 's|^\$(obj)/vmlinux.bin.lz4: \$(vmlinux.bin.all-y) FORCE|$(obj)/vmlinux.bin.lz4: $(obj)/vmlinux.payload FORCE|' \
    "$k/arch/x86/boot/compressed/Makefile"
cp "$work/vmlinux.payload" "$k/arch/x86/boot/compressed/"
python3 - "$work/vmlinux.payload" > "$work/voffset.S" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
shoff, shentsize, shnum, shstrndx = struct.unpack_from("<Q", d, 0x28)[0], *struct.unpack_from("<HHH", d, 0x3a)
sec = [struct.unpack_from("<IIQQQQ", d, shoff + i * shentsize) for i in range(shnum)]
names = sec[shstrndx][4]
name = lambda s: d[names + s[0]:d.index(b"\0", names + s[0])].decode()
by = {name(s): s for s in sec}
page = lambda a: (a + 4095) & ~4095
# arch/x86/kernel/vmlinux.lds.S: _text, __start_rodata and __bss_start open their sections; _end is
# the page after .brk
for sym, addr in (("_text", by[".text"][3]), ("__start_rodata", by[".rodata"][3]),
                  ("__bss_start", by[".bss"][3]), ("_end", page(by[".brk"][3] + by[".brk"][5]))):
    print(f".globl {sym}\n.set {sym}, {addr:#x}")
PY
as --64 "$work/voffset.S" -o "$k/vmlinux"
cat > "$work/bz.mk" <<'MK'
PHONY += capbox-bzimage
capbox-bzimage:
	$(Q)$(MAKE) $(build)=arch/x86/boot arch/x86/boot/bzImage
MK
(
    cd "$k"
    export KBUILD_BUILD_USER=debian-kernel KBUILD_BUILD_HOST=lists.debian.org KBUILD_BUILD_VERSION=1
    make -s olddefconfig
    make -s -j"$(nproc)" prepare
    # what the boot code includes from the kernel's own build: the EFI stub library, the CPU feature
    # names, the instruction decoder's tables, the release and version strings (KASLR's seed mixes them)
    make -s -j"$(nproc)" drivers/firmware/efi/libstub/ arch/x86/kernel/cpu/capflags.o
    awk -f arch/x86/tools/gen-insn-attr-x86.awk arch/x86/lib/x86-opcode-map.txt > arch/x86/lib/inat-tables.c
    release=$(strings "$work/vmlinux.payload" | sed -n 's/^Linux version \([^ ]*\) .* \(#[0-9].*\)$/\1|\2/p' | head -1)
    [ -n "$release" ] || { echo "mkkernel.sh: no version banner in the kernel" >&2; exit 1; }
    echo "#define UTS_RELEASE \"${release%%|*}\"" > include/generated/utsrelease.h
    echo "#define UTS_VERSION \"${release#*|}\"" > include/generated/utsversion.h
    make -s -rR -f Makefile -f "$work/bz.mk" capbox-bzimage >/dev/null
)
bz=$k/arch/x86/boot/bzImage
# the kernel in it is Debian's, byte for byte
payload "$bz" | head -c -4 | lz4 -dc | cmp - "$work/vmlinux.payload" \
    || { echo "mkkernel.sh: the repacked kernel differs from Debian's" >&2; exit 1; }
cp "$bz" "$cache/bzImage-$key"
cp "$bz" "$out"
