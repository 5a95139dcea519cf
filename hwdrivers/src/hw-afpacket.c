/* hw-afpacket.c - Linux AF_PACKET with a TPACKET_V3 memory-mapped ring.
 *
 * The kernel fills whole blocks of packets; a poll hands on the packets of
 * the current block in place (no copy) and gives the block back to the
 * kernel on the next poll.  Block size and count come from buffer_size_mb;
 * a fanout group spreads one interface over several sessions.  VLAN tags the
 * kernel stripped are put back in front of the payload, as libpcap does, and
 * those frames meet the BPF filter afterwards, in user space, so `vlan`
 * filters mean what they mean on a capture file. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hw.h"

#define VLAN_TAG_LEN 4
#define PREFETCH_BYTES 2048 /* how far ahead of the walk a block is fetched: another CPU wrote it */

struct af {
    int fd;
    uint8_t *ring;
    size_t ring_bytes;
    uint32_t block_size, block_nr, cur;
    uint32_t snaplen;
    int loopback; /* lo hands every packet over twice: going out and coming in */
    struct tpacket_block_desc *held, *release;
    uint8_t *next, *prefetched, *block_end;
    uint32_t left;
    uint64_t received, dropped, filtered;
    struct bpf_program prog; /* the filter, for frames whose tag the kernel stripped */
    int filtering;
};

static int af_available(char *errbuf)
{
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0)
        return hwint_err(errbuf, errno == EPERM ? HW_E_PERM : HW_E_UNSUPPORTED,
                         "AF_PACKET socket: %s%s", strerror(errno), errno == EPERM ? " (needs CAP_NET_RAW)" : "");
    close(fd);
    return HW_OK;
}

static void af_close(void *st)
{
    struct af *a = st;
    if (a->ring) munmap(a->ring, a->ring_bytes);
    if (a->fd >= 0) close(a->fd);
    if (a->filtering) pcap_freecode(&a->prog);
    free(a);
}

/* Kernel BPF: libpcap compiles, the socket runs it; its return value is the
 * snap length, so with no expression a one-instruction program truncates.
 * The kernel strips VLAN tags before the filter runs, so frames that had one
 * pass the kernel (a three-instruction prefix) and are filtered in user space
 * once the tag is back. */
static int af_set_filter(void *st, const char *bpf, char *errbuf)
{
    struct af *a = st;
    struct bpf_program prog = {0, NULL};
    struct sock_filter ret_snap = BPF_STMT(BPF_RET | BPF_K, a->snaplen);
    struct sock_fprog fp = {1, &ret_snap};
    struct sock_filter *code = NULL;
    int compiled = bpf && *bpf;
    if (compiled) {
        int rc = hwint_bpf_compile(HW_DLT_EN10MB, a->snaplen, bpf, &prog, errbuf);
        if (rc) return rc;
        code = calloc(prog.bf_len + 3, sizeof *code);
        if (!code) {
            pcap_freecode(&prog);
            return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
        }
        code[0] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT);
        code[1] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0);
        code[2] = ret_snap;
        memcpy(code + 3, prog.bf_insns, prog.bf_len * sizeof *code);
        fp.len = (unsigned short)(prog.bf_len + 3);
        fp.filter = code;
    }
    int rc = setsockopt(a->fd, SOL_SOCKET, SO_ATTACH_FILTER, &fp, sizeof fp);
    int err = errno;
    free(code);
    if (rc < 0) {
        if (compiled) pcap_freecode(&prog);
        return hwint_err(errbuf, HW_E_FILTER, "SO_ATTACH_FILTER: %s", strerror(err));
    }
    if (a->filtering) pcap_freecode(&a->prog);
    a->filtering = compiled;
    a->prog = prog;
    return HW_OK;
}

static int sockopt(struct af *a, int level, int name, const void *v, socklen_t n, const char *what,
                   char *errbuf)
{
    if (setsockopt(a->fd, level, name, v, n) == 0) return HW_OK;
    return hwint_err(errbuf, errno == EPERM ? HW_E_PERM : HW_E_OPEN, "%s: %s", what, strerror(errno));
}

static int af_open(const struct hw_config *cfg, void **out, int *linktype, char *errbuf)
{
    struct af *a = calloc(1, sizeof *a);
    if (!a) return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    a->fd = -1;
    a->snaplen = cfg->snaplen;
    int rc;
    unsigned ifindex = if_nametoindex(cfg->source);
    if (!ifindex) {
        rc = hwint_err(errbuf, HW_E_NODEV, "%s: no such interface", cfg->source);
        goto fail;
    }
    /* protocol 0: the socket takes no packets until bind() names the protocol and the device, so the bind has
     * no running hook to take down first (a take-down waits for an RCU grace period, synchronize_net: 15 ms of
     * a native open; the ring's setup waits for one in any case) */
    a->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (a->fd < 0) {
        rc = hwint_err(errbuf, errno == EPERM ? HW_E_PERM : HW_E_OPEN, "AF_PACKET socket: %s", strerror(errno));
        goto fail;
    }
    /* no traffic until the ring, filter and binding are in place */
    struct sock_filter drop = BPF_STMT(BPF_RET | BPF_K, 0);
    struct sock_fprog none = {1, &drop};
    int v3 = TPACKET_V3, reserve = VLAN_TAG_LEN;
    if ((rc = sockopt(a, SOL_SOCKET, SO_ATTACH_FILTER, &none, sizeof none, "SO_ATTACH_FILTER", errbuf)) ||
        (rc = sockopt(a, SOL_PACKET, PACKET_VERSION, &v3, sizeof v3, "PACKET_VERSION", errbuf)) ||
        (rc = sockopt(a, SOL_PACKET, PACKET_RESERVE, &reserve, sizeof reserve, "PACKET_RESERVE", errbuf)))
        goto fail;

    uint32_t bs = cfg->block_size_kb > 0 ? (uint32_t)cfg->block_size_kb << 10 : 1u << 20;
    if (bs < 4096 || (bs & (bs - 1))) {
        rc = hwint_err(errbuf, HW_E_ARG, "block_size_kb %d is not a power of two of at least 4", cfg->block_size_kb);
        goto fail;
    }
    uint64_t total = (uint64_t)cfg->buffer_size_mb << 20;
    a->block_size = bs;
    a->block_nr = total / bs < 2 ? 2 : (uint32_t)(total / bs);
    struct tpacket_req3 req = {
        .tp_block_size = a->block_size,
        .tp_block_nr = a->block_nr,
        .tp_frame_size = 2048,
        .tp_frame_nr = (a->block_size / 2048) * a->block_nr,
        .tp_retire_blk_tov = (unsigned)(cfg->block_timeout_ms > 0 ? cfg->block_timeout_ms : 10),
    };
    if ((rc = sockopt(a, SOL_PACKET, PACKET_RX_RING, &req, sizeof req, "PACKET_RX_RING", errbuf))) goto fail;
    a->ring_bytes = (size_t)a->block_size * a->block_nr;
    a->ring = mmap(NULL, a->ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0);
    if (a->ring == MAP_FAILED) {
        a->ring = NULL;
        rc = hwint_err(errbuf, HW_E_NOMEM, "mmap of %zu byte ring: %s", a->ring_bytes, strerror(errno));
        goto fail;
    }
    struct sockaddr_ll ll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = (int)ifindex};
    if (bind(a->fd, (struct sockaddr *)&ll, sizeof ll) < 0) {
        rc = hwint_err(errbuf, errno == ENODEV ? HW_E_NODEV : HW_E_OPEN, "bind %s: %s", cfg->source, strerror(errno));
        goto fail;
    }
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", cfg->source);
    if (ioctl(a->fd, SIOCGIFFLAGS, &ifr) == 0) a->loopback = (ifr.ifr_flags & IFF_LOOPBACK) != 0;
    if (cfg->promisc && !a->loopback) {
        struct packet_mreq mr = {.mr_ifindex = (int)ifindex, .mr_type = PACKET_MR_PROMISC};
        if ((rc = sockopt(a, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mr, sizeof mr, "promiscuous mode", errbuf))) goto fail;
    }
    if (cfg->fanout_group >= 0) {
        int fan = (cfg->fanout_group & 0xffff) | (cfg->fanout_mode << 16);
        if ((rc = sockopt(a, SOL_PACKET, PACKET_FANOUT, &fan, sizeof fan, "PACKET_FANOUT", errbuf))) goto fail;
    }
    /* packets that queued under the drop-all filter are none; open the gate */
    if ((rc = af_set_filter(a, cfg->bpf, errbuf))) goto fail;
    *linktype = HW_DLT_EN10MB;
    *out = a;
    return HW_OK;
fail:
    af_close(a);
    return rc;
}

static int af_start(void *st, char *errbuf)
{
    (void)st, (void)errbuf;
    return HW_OK;
}

static struct tpacket_block_desc *block(struct af *a, uint32_t i)
{
    return (struct tpacket_block_desc *)(a->ring + (size_t)i * a->block_size);
}

static int af_poll(void *st, struct hw_batch *b, int timeout_ms, char *errbuf)
{
    struct af *a = st;
    if (a->release) { /* the previous batch pointed into it; it is read now */
        __atomic_store_n(&a->release->hdr.bh1.block_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
        a->release = NULL;
    }
    if (!a->held) {
        struct tpacket_block_desc *d = block(a, a->cur);
        if (!(__atomic_load_n(&d->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) {
            struct pollfd pfd = {a->fd, POLLIN | POLLERR, 0};
            int r = poll(&pfd, 1, timeout_ms);
            if (r < 0 && errno != EINTR) return hwint_err(errbuf, HW_E_IO, "poll: %s", strerror(errno));
            if (pfd.revents & POLLERR) {
                int err = 0;
                socklen_t n = sizeof err;
                getsockopt(a->fd, SOL_SOCKET, SO_ERROR, &err, &n);
                if (err == ENETDOWN || err == ENODEV || err == ENXIO)
                    return hwint_err(errbuf, HW_E_IO, "interface went away: %s", strerror(err));
            }
            if (!(__atomic_load_n(&d->hdr.bh1.block_status, __ATOMIC_ACQUIRE) & TP_STATUS_USER)) return 0;
        }
        a->held = d;
        a->left = d->hdr.bh1.num_pkts;
        a->next = a->prefetched = (uint8_t *)d + d->hdr.bh1.offset_to_first_pkt;
        a->block_end = (uint8_t *)d + a->block_size;
    }
    while (a->left && b->n < b->cap) {
        for (; a->prefetched < a->next + PREFETCH_BYTES && a->prefetched < a->block_end; a->prefetched += 64)
            __builtin_prefetch(a->prefetched);
        struct tpacket3_hdr *h = (struct tpacket3_hdr *)a->next;
        uint8_t *mac = (uint8_t *)h + h->tp_mac;
        a->next += h->tp_next_offset;
        a->left--;
        if (a->loopback) { /* as libpcap does: keep the incoming copy only */
            const struct sockaddr_ll *ll =
                (const struct sockaddr_ll *)((uint8_t *)h + TPACKET_ALIGN(sizeof(struct tpacket3_hdr)));
            if (ll->sll_pkttype == PACKET_OUTGOING) continue;
        }
        struct hw_pkt *p = &b->pkt[b->n++];
        p->caplen = h->tp_snaplen;
        p->wirelen = h->tp_len;
        p->ts_ns = (uint64_t)h->tp_sec * HW_NS + h->tp_nsec;
        if ((h->tp_status & TP_STATUS_VLAN_VALID) && h->tp_snaplen >= 12) {
            uint16_t tpid = (h->tp_status & TP_STATUS_VLAN_TPID_VALID) ? h->hv1.tp_vlan_tpid : 0x8100;
            memmove(mac - VLAN_TAG_LEN, mac, 12);
            mac -= VLAN_TAG_LEN;
            uint16_t tag[2] = {htons(tpid), htons((uint16_t)h->hv1.tp_vlan_tci)};
            memcpy(mac + 12, tag, sizeof tag);
            p->caplen += VLAN_TAG_LEN;
            p->wirelen += VLAN_TAG_LEN;
            struct pcap_pkthdr ph = {{0, 0}, p->caplen, p->wirelen};
            if (a->filtering && !pcap_offline_filter(&a->prog, &ph, mac)) {
                b->n--;
                a->filtered++;
                continue;
            }
        }
        p->data = mac;
    }
    if (!a->left) {
        a->release = a->held;
        a->held = NULL;
        a->cur = (a->cur + 1) % a->block_nr;
    }
    return b->n;
}

static void af_stats(void *st, struct hw_counters *c)
{
    struct af *a = st;
    struct tpacket_stats_v3 ts;
    socklen_t n = sizeof ts;
    /* the kernel zeroes these on every read, so they are summed here */
    if (getsockopt(a->fd, SOL_PACKET, PACKET_STATISTICS, &ts, &n) == 0) {
        a->received += ts.tp_packets; /* includes the dropped ones */
        a->dropped += ts.tp_drops;
    }
    c->backend_received += a->received;
    c->backend_dropped += a->dropped;
    c->backend_filtered += a->filtered;
}

const struct hw_backend_ops hw_afpacket_ops = {
    .name = "afpacket",
    .description = "Linux AF_PACKET, TPACKET_V3 memory-mapped ring with fanout",
    .caps = HW_CAP_LIVE | HW_CAP_BPF | HW_CAP_PROMISC | HW_CAP_FANOUT | HW_CAP_BUFFER,
    .available = af_available,
    .open = af_open,
    .start = af_start,
    .poll = af_poll,
    .stats = af_stats,
    .set_filter = af_set_filter,
    .close = af_close,
};
