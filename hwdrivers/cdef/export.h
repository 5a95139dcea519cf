/* export.h - flow export from the flow table: IPFIX (RFC 7011/7012, biflow
 * records per RFC 5103 as an option), NetFlow v9 (RFC 3954) and NetFlow v5,
 * to collectors over UDP (IPFIX also over TCP).  Records are encoded in C as
 * flows expire; Python only adds, removes and reads exporters. */

#define HW_EXPORT_MAX 8          /* exporters per session */

#define HW_EXP_V5 5
#define HW_EXP_V9 9
#define HW_EXP_IPFIX 10

#define HW_EXP_UDP 0
#define HW_EXP_TCP 1

struct hw_export_config {
    const char *host;            /* collector: a numeric IPv4 or IPv6 address */
    uint16_t port;
    uint8_t version;             /* HW_EXP_V5, HW_EXP_V9, HW_EXP_IPFIX */
    uint8_t transport;           /* HW_EXP_UDP, or HW_EXP_TCP (IPFIX only) */
    uint8_t biflow;              /* IPFIX: one RFC 5103 record per conversation instead of one per direction */
    uint8_t lossless;            /* wait for the socket instead of dropping (offline export) */
    uint32_t observation_domain; /* IPFIX observation domain, v9 source id, v5 engine id (low 8 bits) */
    uint32_t export_interval_ms; /* a partly filled message leaves at most this long after its first record */
    uint32_t template_refresh_s; /* UDP: templates resent at least this often (export time) */
    uint32_t template_refresh_packets; /* UDP: and at least every this many messages */
    uint32_t mtu;                /* UDP: largest message in bytes (TCP: 65535) */
};

struct hw_export_stats {
    int id;
    uint8_t version, transport, biflow, connected;
    uint16_t port;
    char host[64];
    uint32_t observation_domain;
    uint32_t sample_rate;        /* 1 in N packets metered (announced to the collector when > 1) */
    uint64_t flows;              /* flow-table records handed to this exporter */
    uint64_t records;            /* data records sent (two per conversation unless biflow) */
    uint64_t messages;           /* messages (datagrams) sent */
    uint64_t bytes;              /* message bytes sent */
    uint64_t template_sends;     /* times the templates went out */
    uint64_t records_dropped;    /* lost: socket full, collector unreachable, not connected */
    uint64_t records_skipped;    /* not exportable in this version (IPv6 in v5) */
    uint64_t send_errors;
    uint64_t reconnects;         /* TCP connections re-established */
    uint32_t sequence;           /* the header's sequence number of the next message */
    int last_errno;
    char last_error[128];
};

void hw_export_config_init(struct hw_export_config *cfg);
/* Add an exporter to a session: returns its id (> 0) or HW_E_* with errbuf.
 * TCP connects here (1 s timeout); later disconnects reconnect on their own. */
int hw_export_add(struct hw_session *s, const struct hw_export_config *cfg, char *errbuf);
/* Send what is queued and remove the exporter (its last counters in *last,
 * unless NULL); HW_E_ARG for an unknown id. */
int hw_export_remove(struct hw_session *s, int id, struct hw_export_stats *last);
int hw_export_list(struct hw_session *s, struct hw_export_stats *out, int max);
