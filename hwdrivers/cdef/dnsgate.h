/* dnsgate.h - the DNS gate (src/dnsgate.c): a DNS query that would go to
 * the event ring is held back and carried by the next DNS event instead
 * (its facts in that event's rec.dnsfold.fold), or sent as it was before
 * any other event reaches the ring.  Python learns exactly what it learnt
 * from the query, in the same order, for one event fewer. */

#define HW_DNS_FOLD_NAME_MAX 256

struct hw_dns_fold {            /* the DNS query sent just before an event, folded into it */
    uint64_t ts_ns;             /* 0: the event carries no query */
    uint64_t flow_id;
    uint8_t src[16], dst[16];
    uint8_t src_mac[6], dst_mac[6];
    uint32_t wirelen, payload_len;
    uint16_t sport, dport, vlan;
    uint16_t id, flags, qtype, qclass;
    uint16_t rcode, arcount, name_len;
    uint8_t family, proto, from_initiator, edns, cut;
    uint16_t edns_udp_size;
    uint8_t edns_version, edns_do;
    char name[HW_DNS_FOLD_NAME_MAX];
};

struct hw_rec_dns_fold {        /* the rec union of a dns event: its record, then the query it carries */
    struct hw_rec_dns dns;
    struct hw_dns_fold fold;
};

struct hw_dnsgate_counters {
    uint64_t held;              /* queries held back */
    uint64_t folded;            /* of those, carried by the next DNS event */
    uint64_t released;          /* sent as they were, before another event (or at the end, or when idle) */
    uint64_t dropped;           /* released into a full ring (also in events_dropped) */
};

/* Fold queries (on 1) from now on; off releases the held one. */
int hw_session_set_dns_fold(struct hw_session *s, int on);
int hw_dnsgate_counters(struct hw_session *s, struct hw_dnsgate_counters *out);
