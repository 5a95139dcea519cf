/* flows.h - flow records: the conversations the flow table meters.
 * A flow is bidirectional; index 0 of every pair is the initiator's
 * direction (the side that sent the first packet, or the SYN). */

#define HW_END_ACTIVE_FLOW 0 /* still in the table */
#define HW_END_IDLE 1        /* no packet for idle_timeout_s */
#define HW_END_ACTIVE 2      /* open longer than active_timeout_s: a new record continues it */
#define HW_END_TCP 3         /* TCP connection closed and its 5-tuple reused by a new SYN */
#define HW_END_FLUSH 4       /* end of input, or capture stopped */
#define HW_END_EVICTED 5     /* table full: the least recently seen flow made room */

#define HW_TCP_NONE 0        /* not TCP */
#define HW_TCP_OPENING 1     /* SYN seen, handshake not complete */
#define HW_TCP_ESTABLISHED 2 /* handshake complete, or joined mid-stream */
#define HW_TCP_CLOSING 3     /* one FIN seen */
#define HW_TCP_CLOSED 4      /* FIN from both sides */
#define HW_TCP_RESET 5       /* RST seen */

#define HW_ORDER_BYTES 0
#define HW_ORDER_PACKETS 1
#define HW_ORDER_LAST 2      /* most recently seen first */
#define HW_ORDER_FIRST 3     /* oldest first */

struct hw_flow_record {
    uint64_t id;                 /* unique in the session, in creation order */
    uint64_t first_ns, last_ns;
    uint64_t packets[2];
    uint64_t bytes[2];           /* wire (frame) bytes */
    uint64_t rtt_ns;             /* handshake SYN -> ACK, 0 when not seen */
    uint64_t syn_synack_ns;      /* SYN -> SYN-ACK (the responder's side of the RTT) */
    uint32_t retransmissions[2];
    uint32_t out_of_order[2];
    uint8_t src[16], dst[16];    /* initiator, responder; IPv4 in the first 4 bytes */
    uint8_t src_mac[6], dst_mac[6];
    uint16_t sport, dport;       /* ICMP echo: both the identifier; other ICMP: dport = type << 8 | code */
    uint16_t vlan;               /* outermost 802.1Q id, 0 for none */
    uint16_t icmp_type_code[2];  /* ICMP: type << 8 | code of each direction's first packet */
    uint8_t family;              /* 4 or 6 */
    uint8_t proto;
    uint8_t tcp_flags[2];        /* OR of the flags seen per direction */
    uint8_t state;               /* HW_TCP_* */
    uint8_t end_reason;          /* HW_END_* */
    uint8_t app;                 /* HW_APP_* */
    uint8_t continued;           /* follows an active-timeout record of the same flow */
    uint16_t vlan_inner;         /* QinQ: the second 802.1Q id, 0 for none */
    uint8_t tun_type;            /* HW_TUN_* of the tunnel that carried it (the innermost), 0 for none */
    uint8_t tun_family;          /* 4 or 6: the tunnel's own IP version */
    uint32_t tun_id[2];          /* per direction: VNI, ERSPAN session, GTP TEID or GRE key */
    uint8_t tun_src[16], tun_dst[16]; /* the tunnel's addresses as the initiator's first packet had them */
};

struct hw_host {
    uint8_t addr[16];
    uint8_t family;
    uint64_t bytes_out, bytes_in;
    uint64_t packets_out, packets_in;
    uint64_t flows;
};

/* Expired flows, oldest first (only when flow_ring > 0). */
int hw_flows_read(struct hw_session *s, struct hw_flow_record *out, int max);
/* The top `max` flows still in the table by HW_ORDER_*. */
int hw_flows_active(struct hw_session *s, struct hw_flow_record *out, int max, int order);
/* Hosts by total bytes, from flows that have left the table. */
int hw_hosts_top(struct hw_session *s, struct hw_host *out, int max);
const char *hw_end_name(int reason);
/* The community ID (v1) of a flow into out (at least 31 bytes): "1:" + 28 base64 characters.  Addresses in
 * network order (4 or 16 bytes by family).  0, or HW_E_ARG for ICMP (its type/code mapping is not done). */
int hw_community_id(int family, const uint8_t *src, const uint8_t *dst, uint8_t proto, uint16_t sport,
                    uint16_t dport, uint16_t seed, char *out);
const char *hw_tcp_state_name(int state);
