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

/* A DNS answer whose name-level facts (name, type, server, the answer section's address set and CNAMEs)
 * equal those of the last answer sent for the same (server, name, type): a repeat of that template.  The
 * event still holds its whole record; a reader that knows the template reads these few fields instead. */
struct hw_dns_repeat {
    uint64_t gen;               /* the template it repeats (0: none) */
    uint64_t defines;           /* the template this answer made (0: none): a reader keeps its facts */
    uint32_t ttl;               /* the least TTL of its A/AAAA answers (has_ttl 0: none) */
    uint16_t id;                /* the transaction id (its query's, folded in: same client, port, name, type) */
    uint8_t has_ttl;
};

struct hw_rec_dns_fold {        /* the rec union of a dns event: its record, then the query it carries */
    struct hw_rec_dns dns;
    struct hw_dns_fold fold;
    struct hw_dns_repeat rep;
};

struct hw_dnsgate_counters {
    uint64_t held;              /* queries held back */
    uint64_t folded;            /* of those, carried by the next DNS event */
    uint64_t released;          /* sent as they were, before another event (or at the end, or when idle) */
    uint64_t dropped;           /* released into a full ring (also in events_dropped) */
    uint64_t repeats;           /* answers marked as repeats of a template */
    uint64_t templates;         /* templates made (an answer with a new key or new facts) */
    uint64_t changed;           /* of those, replacing a template of the same key whose facts changed */
    uint64_t evicted;           /* of those, replacing another key's template (the oldest of its 8-way set) */
    uint64_t unfit;             /* folded answers that cannot be a template (too many addresses or CNAMEs) */
};

/* Fold queries (on 1; 2: and mark repeated answers, struct hw_dns_repeat) from now on; off releases the
 * held one. */
int hw_session_set_dns_fold(struct hw_session *s, int on);
int hw_dnsgate_counters(struct hw_session *s, struct hw_dnsgate_counters *out);
