/* events.h - the event ring: compact records of the few packets Python must
 * see (DNS, ARP, TLS hellos and alerts, HTTP heads, SIP, ND, DHCP), each
 * with a bounded snippet of its payload, and per-source summaries of TCP
 * SYNs and RSTs (tcp_src: counted in C, never one event per SYN). */

#define HW_SNIPPET_MAX 1536

struct hw_event {
    uint64_t ts_ns;
    uint64_t flow_id;            /* 0 when the packet has no flow (ARP) */
    uint8_t src[16], dst[16];    /* ARP: sender and target protocol address */
    uint8_t src_mac[6], dst_mac[6];
    uint32_t wirelen;
    uint32_t seq, ack;           /* TCP */
    uint16_t sport, dport, vlan;
    uint16_t snippet_len;        /* bytes of payload in snippet (ARP: the ARP body) */
    uint32_t payload_len;        /* payload bytes the headers announce */
    uint8_t kind;                /* HW_EV_* */
    uint8_t family, proto, tcp_flags;
    uint8_t from_initiator;      /* 1 when sent by the flow's initiator */
    uint8_t rec_status;          /* HW_RMAL_* of the record below (0: rec holds one) */
    uint8_t has_rec;             /* 1 when this kind carries a record (dns, tls, arp, http, ndp, dhcp, tcp_src) */
    uint8_t snippet[HW_SNIPPET_MAX];
    union {                      /* by kind: records.h */
        struct hw_rec_dns dns;
        struct hw_rec_dns_fold dnsfold; /* dns: rec.dns, then the query it carries (dnsgate.h) */
        struct hw_rec_tls tls;
        struct hw_rec_arp arp;
        struct hw_rec_ndp ndp;
        struct hw_rec_dhcp dhcp;
        struct hw_rec_http http;
        struct hw_rec_tcpsrc tcpsrc;
    } rec;
};

/* Copy up to max events out of the ring, oldest first: each only as far as it is read (its head and snippet,
 * its record, a DNS event's folded query); the rest of each slot of out is left as it was. */
int hw_events_read(struct hw_session *s, struct hw_event *out, int max);
