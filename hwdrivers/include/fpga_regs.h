/* fpga_regs.h - the capture card's register map and DMA structures: the one
 * definition the driver (hw-fpga.c) and the card model (fpgasim.c) share.
 *
 * The device is one memory mapping: BAR0 (the registers, FPGA_BAR_SIZE bytes)
 * followed by the card's DMA window in host memory (descriptor ring, packet
 * data ring, flow-cache table) at the offsets the card advertises.  The
 * software model creates it as a shared-memory file; docs/FPGA.md has the
 * table.  Registers are 32-bit unless marked 64; counters are free-running. */
#ifndef FPGA_REGS_H
#define FPGA_REGS_H

#include "hw.h"

#include <linux/futex.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FPGA_ID 0xCB0F9A01u          /* FPGA_REG_ID of every capbox capture card */
#define FPGA_BAR_SIZE 0x10000u       /* 64 KiB of registers */
#define FPGA_TARGET_LEN 32           /* hardware target name, NUL-padded */
#define FPGA_DEFAULT_DEVICE "/dev/shm/capbox-fpga0"

/* identity */
#define FPGA_REG_ID 0x0000
#define FPGA_REG_HW_VERSION 0x0004   /* board revision: major << 16 | minor */
#define FPGA_REG_CAPS 0x0008         /* FPGA_CAP_* */
#define FPGA_REG_LINKTYPE 0x000C     /* DLT of the frames the card captures */
#define FPGA_REG_TARGET 0x0010       /* FPGA_TARGET_LEN bytes: the hardware target firmware must be built for */

/* control and status */
#define FPGA_REG_CONTROL 0x0040      /* FPGA_CTRL_* */
#define FPGA_REG_STATUS 0x0044       /* FPGA_ST_* (read only) */
#define FPGA_REG_IRQ_STATUS 0x0048   /* FPGA_IRQ_* raised since cleared (write 1 to clear) */
#define FPGA_REG_IRQ_ARMED 0x004C    /* driver writes 1 before it sleeps; the card clears it when it interrupts */
#define FPGA_REG_IRQ_COUNT 0x0050    /* interrupts raised: the word the driver sleeps on (futex) */
#define FPGA_REG_HEARTBEAT 0x0054    /* advanced by the card's engine while it works: frozen = stalled */
#define FPGA_REG_DOORBELL 0x0058     /* driver: incremented (and woken) after a control or mailbox write */

/* firmware */
#define FPGA_REG_FW_STATE 0x0080     /* FPGA_FW_* */
#define FPGA_REG_FW_ERROR 0x0084     /* FPGA_FWERR_* of the last load that failed */
#define FPGA_REG_FW_VERSION_MAJOR 0x0088
#define FPGA_REG_FW_VERSION_MINOR 0x008C /* minor << 16 | patch */
#define FPGA_REG_FW_ROLLBACK 0x0090
#define FPGA_REG_FW_LOADS 0x0094     /* images accepted since power-on */
#define FPGA_REG_FW_CRC 0x0098       /* CRC-32 of the running image's payload */
#define FPGA_REG_FW_LENGTH 0x009C

/* firmware mailbox: command and arguments, then MBOX_SEQ = n; the card
 * answers MBOX_STATUS and MBOX_ACK = n.  Chunks go through MBOX_DATA. */
#define FPGA_REG_MBOX_CMD 0x00A0     /* FPGA_MBOX_* */
#define FPGA_REG_MBOX_SEQ 0x00A4
#define FPGA_REG_MBOX_ACK 0x00A8
#define FPGA_REG_MBOX_STATUS 0x00AC  /* 0 = done, else FPGA_FWERR_* */
#define FPGA_REG_MBOX_ARG0 0x00B0    /* BEGIN: length, CRC-32, major, minor << 16 | patch, rollback; CHUNK: offset, length */
#define FPGA_MBOX_ARGS 5
#define FPGA_MBOX_DATA 0x1000        /* chunk window (BEGIN: the target name) */
#define FPGA_MBOX_DATA_SIZE 0x1000

/* DMA: descriptor ring and packet data ring in the DMA window */
#define FPGA_REG_DESC_OFF 0x0100     /* byte offset of the descriptor ring in the device mapping */
#define FPGA_REG_DESC_COUNT 0x0104   /* descriptors, a power of two */
#define FPGA_REG_DATA_OFF 0x0108
#define FPGA_REG_DATA_SIZE 0x010C    /* bytes, a power of two */
#define FPGA_REG_DESC_HEAD 0x0110    /* card: descriptors written (free-running) */
#define FPGA_REG_DESC_TAIL 0x0114    /* driver: descriptors given back */
#define FPGA_REG_DATA_TAIL 0x0118    /* driver: data ring bytes given back (free-running position) */
#define FPGA_REG_MAP_SIZE 0x011C     /* bytes of the whole device mapping */

/* counters (64-bit) */
#define FPGA_REG_RX_PACKETS 0x0200   /* frames received from the link */
#define FPGA_REG_RX_BYTES 0x0208     /* their wire bytes */
#define FPGA_REG_RX_DROPPED 0x0210   /* frames lost inside the card (DMA reset with frames queued) */
#define FPGA_REG_LINK_DOWNS 0x0218   /* link-down events */
#define FPGA_REG_DMA_RESETS 0x0220

/* hardware clock (64-bit, ns since the Unix epoch) */
#define FPGA_REG_TS_NOW 0x0300       /* the card's clock: the stamp of the last frame received */
#define FPGA_REG_TS_FIRST 0x0308     /* stamp of the first frame since DMA was enabled */

/* flow-cache offload: the card meters each conversation in a table in the DMA window */
#define FPGA_REG_FC_OFF 0x0400
#define FPGA_REG_FC_ENTRIES 0x0404   /* a power of two */
#define FPGA_REG_FC_USED 0x0408
#define FPGA_REG_FC_OVERFLOW 0x0410  /* 64: packets not metered, their probe run was full */

/* model only: fault injection (docs/FPGA.md) */
#define FPGA_REG_SIM_FAULT 0x0F00    /* FPGA_FAULT_*: armed until it fires */
#define FPGA_REG_SIM_FAULT_AT 0x0F08 /* 64: fires before frame number (0-based) */
#define FPGA_REG_SIM_FAULT_ARG 0x0F10 /* link: milliseconds down */
#define FPGA_REG_SIM_FAULTS 0x0F14   /* faults fired */

#define FPGA_CAP_HWTSTAMP 1
#define FPGA_CAP_FLOWCACHE 2
#define FPGA_CAP_MODEL 4             /* the software model, not a card */

#define FPGA_CTRL_RESET 1            /* reset the DMA engine (rings to 0); the card clears it when done */
#define FPGA_CTRL_DMA_ENABLE 2       /* move frames into the ring; a rising edge starts a new capture */
#define FPGA_CTRL_FLOWCACHE 4        /* meter flows in the flow cache */

#define FPGA_ST_FW_RUNNING 1
#define FPGA_ST_LINK_UP 2
#define FPGA_ST_DMA_RUNNING 4
#define FPGA_ST_EOS 8                /* the model's source has ended (a file): no frame will follow */

#define FPGA_IRQ_RX 1
#define FPGA_IRQ_MBOX 2
#define FPGA_IRQ_LINK 4
#define FPGA_IRQ_EOS 8

/* firmware states and faults: the values Python sees (cdef/fpga.h) */
#define FPGA_FW_NONE HW_FPGA_FW_NONE
#define FPGA_FW_LOADING HW_FPGA_FW_LOADING
#define FPGA_FW_RUNNING HW_FPGA_FW_RUNNING
#define FPGA_FW_FAILED HW_FPGA_FW_FAILED

#define FPGA_MBOX_BEGIN 1
#define FPGA_MBOX_CHUNK 2
#define FPGA_MBOX_COMMIT 3
#define FPGA_MBOX_ABORT 4

#define FPGA_FWERR_NONE 0
#define FPGA_FWERR_TARGET 1          /* built for another target */
#define FPGA_FWERR_LENGTH 2          /* bytes received differ from the length announced, or too large */
#define FPGA_FWERR_CRC 3             /* CRC-32 of the bytes received differs */
#define FPGA_FWERR_SEQUENCE 4        /* chunk out of order, or no BEGIN */
#define FPGA_FWERR_COMMAND 5         /* unknown command */

#define FPGA_FAULT_NONE 0
#define FPGA_FAULT_STALL HW_FPGA_FAULT_STALL
#define FPGA_FAULT_CORRUPT HW_FPGA_FAULT_CORRUPT
#define FPGA_FAULT_LINK HW_FPGA_FAULT_LINK    /* down for SIM_FAULT_ARG ms */
#define FPGA_FAULT_FW_CRC HW_FPGA_FAULT_FW_CRC

#define FPGA_FW_MAX (64u << 20)      /* largest firmware payload the card takes */

/* One received frame, written by the card, given back through DESC_TAIL. */
struct fpga_desc {
    uint64_t ts_ns;          /* hardware timestamp */
    uint32_t data_pos;       /* free-running position of the frame in the data ring (offset = pos & (size - 1)) */
    uint32_t caplen;         /* bytes in the data ring */
    uint32_t wirelen;        /* bytes on the wire */
    uint32_t seq;            /* descriptor number + 1: a stale or skipped slot shows */
    uint32_t flags;          /* reserved, 0 */
    uint32_t check;          /* fpga_desc_check() of the fields above */
};

/* One conversation in the flow cache: endpoints in canonical order (a <= b). */
struct fpga_flow {
    uint32_t seq;            /* even when stable; odd while the card writes it */
    uint8_t used, family, proto, pad;
    uint16_t port_a, port_b;
    uint16_t vlan, pad2;
    uint8_t addr_a[16], addr_b[16];
    uint64_t packets, bytes; /* both directions, wire bytes */
    uint64_t first_ns, last_ns;
};

#define FPGA_FRAME_ALIGN 64u         /* frames start on cache lines in the data ring */

static inline uint32_t fpga_desc_check(const struct fpga_desc *d)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ d->ts_ns;
    h = (h ^ d->data_pos) * 0xFF51AFD7ED558CCDULL;
    h = (h ^ d->caplen) * 0xC4CEB9FE1A85EC53ULL;
    h = (h ^ d->wirelen) * 0xFF51AFD7ED558CCDULL;
    h = (h ^ d->seq ^ (uint64_t)d->flags << 32) * 0xC4CEB9FE1A85EC53ULL;
    return (uint32_t)(h ^ h >> 32);
}

/* Register access over the mapping: 32- and 64-bit, ordered. */
static inline volatile uint32_t *fpga_reg(uint8_t *bar, uint32_t off) { return (volatile uint32_t *)(bar + off); }
static inline uint32_t fpga_rd(uint8_t *bar, uint32_t off)
{
    return __atomic_load_n((uint32_t *)(bar + off), __ATOMIC_ACQUIRE);
}
static inline void fpga_wr(uint8_t *bar, uint32_t off, uint32_t v)
{
    __atomic_store_n((uint32_t *)(bar + off), v, __ATOMIC_RELEASE);
}
static inline uint64_t fpga_rd64(uint8_t *bar, uint32_t off)
{
    return __atomic_load_n((uint64_t *)(bar + off), __ATOMIC_ACQUIRE);
}
static inline void fpga_wr64(uint8_t *bar, uint32_t off, uint64_t v)
{
    __atomic_store_n((uint64_t *)(bar + off), v, __ATOMIC_RELEASE);
}
static inline void fpga_or(uint8_t *bar, uint32_t off, uint32_t bits)
{
    __atomic_fetch_or((uint32_t *)(bar + off), bits, __ATOMIC_ACQ_REL);
}
static inline void fpga_clear(uint8_t *bar, uint32_t off, uint32_t bits)
{
    __atomic_fetch_and((uint32_t *)(bar + off), ~bits, __ATOMIC_ACQ_REL);
}
static inline void fpga_add64(uint8_t *bar, uint32_t off, uint64_t v)
{
    __atomic_fetch_add((uint64_t *)(bar + off), v, __ATOMIC_ACQ_REL);
}

/* Sleeping on a register word across processes (the model's interrupts and
 * doorbell): a shared futex on the mapping. */
static inline void fpga_wait(uint8_t *bar, uint32_t off, uint32_t seen, int timeout_us)
{
    struct timespec t = {timeout_us / 1000000, (long)(timeout_us % 1000000) * 1000};
    syscall(SYS_futex, (uint32_t *)(bar + off), FUTEX_WAIT, seen, &t, NULL, 0);
}
static inline void fpga_wake(uint8_t *bar, uint32_t off)
{
    syscall(SYS_futex, (uint32_t *)(bar + off), FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
}

/* CRC-32 (IEEE 802.3, as zlib's crc32) of firmware payloads. */
uint32_t hwint_crc32(uint32_t crc, const uint8_t *p, size_t n);

#endif
