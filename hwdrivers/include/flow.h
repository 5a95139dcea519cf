/* flow.h - the flow table's entry and the table, shared by flowtable.c and
 * windows.c (which folds each flow's share of a window).  Internal. */
#ifndef HW_FLOW_H
#define HW_FLOW_H

#include "hw.h"

struct hw_flow {
    /* line 1: the key and what every packet reads */
    uint8_t a[16], b[16]; /* initiator, responder */
    uint16_t pa, pb;
    uint16_t vlan;
    uint8_t family, proto;
    uint32_t hash;
    uint8_t used, state, app, fin;
    uint64_t last_ns;
    uint8_t tcp_flags[2];
    uint8_t seq_init, hole;
    uint32_t next_free;
    /* line 2: what every packet writes */
    uint64_t packets[2], bytes[2];
    uint32_t next_seq[2];
    uint64_t adv_ns[2];
    uint32_t retrans[2];
    /* line 3: set once or rarely */
    uint64_t id, first_ns;
    uint64_t syn_ns, synack_ns, rtt_ns;
    uint32_t ooo[2];
    uint32_t isn; /* initiator's SYN sequence number, when syn_ns is set */
    uint32_t hole_lo[2], hole_hi[2]; /* the latest gap in each direction's sequence space */
    uint8_t mac_a[6], mac_b[6];
    uint8_t continued;
    uint16_t icmp_tc[2];             /* ICMP type and code of each direction's first packet */
    /* the current traffic window (windows.c) */
    uint8_t port_app;                /* the application its ports name */
    uint8_t wflags;                  /* HW_WF_* already reported, and WF_RESPONDED */
    uint32_t wid;                    /* the window that last saw it, 0 once folded */
    uint32_t wbase_retrans;          /* retransmissions when the window first saw it */
    uint64_t wbase_bytes[2];         /* bytes when the window first saw it */
    uint32_t segs[2];                /* data segments sent per direction */
    uint64_t req_ns;                 /* the initiator's first data after the handshake */
    /* line 5: the tunnel that carried it, set once */
    uint16_t vlan_inner;             /* part of the key: QinQ's second tag */
    uint8_t tun_type, tun_family;
    uint32_t tun_id[2];
    uint8_t tun_src[16], tun_dst[16];
    uint8_t cid[20];                 /* its community ID's SHA-1, made at its first log line (all zero: not yet) */
} __attribute__((aligned(64)));

_Static_assert(sizeof(struct hw_flow) == 320, "a flow entry is five cache lines");

#define WF_RESPONDED 0x80            /* the response time was sampled */

struct hw_flowtable {
    uint64_t *slot; /* hash << 32 | (pool index + 1); 0 = empty */
    uint32_t mask, max_slots; /* the slot array doubles at half load, up to max_slots */
    struct hw_flow *pool;
    uint32_t max, high, free_head, active;
    uint64_t idle_ns, active_ns, sweep_ns;
    uint64_t next_sweep_ns, last_sweep_ns;
    uint32_t sweep_hand, evict_hand;
    uint32_t flush_from;      /* no flow in the pool below it (a flush in several calls resumes there) */
    uint64_t next_id;
    size_t pool_bytes, slot_bytes;
    hw_flow_sink sink;
    struct hw_session *session;
    struct hw_windows *win;   /* NULL when windows are off */
    struct hw_hosts *hosts;   /* the talkers the expired flows fold into (their slots fetched ahead in a flush) */
};

/* Traffic windows (windows.c).  The flow table calls the hooks as flows and
 * handshakes happen; the session moves the clock and reads closed windows. */
struct hw_windows;
struct hw_windows *hwint_win_create(const struct hw_config *cfg);
void hwint_win_destroy(struct hw_windows *w);
/* Packet time reached ts: close the windows that ended, before ts is counted. */
void hwint_win_clock(struct hw_windows *w, struct hw_flowtable *ft, struct hw_counters *c, uint64_t ts);
/* Where the current window ends (0 before the first packet). */
uint64_t hwint_win_end(struct hw_windows *w);
/* Wall clock, with no packet (live capture): close the windows that ended. */
void hwint_win_idle(struct hw_windows *w, struct hw_flowtable *ft, struct hw_counters *c, uint64_t now);
/* A packet stamped ts arrives (before it is counted). */
void hwint_win_packet(struct hw_windows *w, struct hw_flowtable *ft, struct hw_counters *c, uint64_t ts);
/* Close the current window where it stands (end of input). */
void hwint_win_flush(struct hw_windows *w, struct hw_flowtable *ft, struct hw_counters *c);
int hwint_win_read(struct hw_windows *w, struct hw_window *out, int max);
uint32_t hwint_win_queued(struct hw_windows *w, uint32_t *capacity);

void hwint_win_touch(struct hw_windows *w, struct hw_flow *f, uint32_t idx);
void hwint_win_new_flow(struct hw_windows *w, const struct hw_flow *f, uint8_t tcp_flags);
void hwint_win_fold(struct hw_windows *w, struct hw_flow *f);
void hwint_win_rtt(struct hw_windows *w, uint64_t ns);
void hwint_win_resp(struct hw_windows *w, uint64_t ns);
void hwint_win_rst(struct hw_windows *w, const struct hw_flow *f);
void hwint_win_unreachable(struct hw_windows *w, const uint8_t *addr, uint8_t family);

#endif
