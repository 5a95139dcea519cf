/* records.h - protocol records: the facts of a DNS message or a TLS
 * handshake, parsed in C on the packet path and carried in the event that
 * announced the packet, so Python reads fields, never bytes.  Fixed-size;
 * strings are NUL-terminated and cut at their buffer (a flag says so). */

/* Why a record could not be read (0: it was).  Counted per reason. */
#define HW_RMAL_NONE 0
#define HW_RMAL_DNS_HEADER 1    /* shorter than the 12-byte header (or the TCP length prefix) */
#define HW_RMAL_DNS_NAME 2      /* a name runs past the message, loops, or is over 255 bytes */
#define HW_RMAL_DNS_QUESTION 3  /* question type/class cut short */
#define HW_RMAL_DNS_RR 4        /* resource record header or rdata past the message */
#define HW_RMAL_DNS_RDATA 5     /* rdata length wrong for its type (A not 4, AAAA not 16...) */
#define HW_RMAL_TLS_RECORD 6    /* TLS record header cut short */
#define HW_RMAL_TLS_HELLO 7     /* hello body or an extension runs past its length */
#define HW_RMAL_TLS_CERT 8      /* certificate list lengths inconsistent */
#define HW_RMAL_ARP 9           /* ARP body cut short */
#define HW_RMAL_NDP 10          /* ND message or option cut short, zero-length option */
#define HW_RMAL_DHCP 11         /* DHCP header or option runs past the payload */
#define HW_RMAL_HTTP 12         /* the start line is not a request or status line */
#define HW_RMAL_COUNT 13

/* ---- DNS ---------------------------------------------------------------- */
#define HW_DNS_NAME_MAX 256     /* presentation form, no trailing dot */
#define HW_DNS_RR_MAX 16        /* answer + authority records kept; the rest counted */
#define HW_DNS_TEXT_MAX 2048    /* names and TXT data of the kept records */

#define HW_DNS_SEC_ANSWER 1
#define HW_DNS_SEC_AUTHORITY 2
#define HW_DNS_FACTS_MADE 1     /* struct hw_rec_dns facts: made; not made yet is 0 */
#define HW_DNS_FACTS_NO_ROOM 2  /* no room left in text[] for them: Python reads the records */

struct hw_dns_rr {
    uint32_t ttl;
    uint16_t type, cls;
    uint8_t section;            /* HW_DNS_SEC_* */
    uint8_t addr_len;           /* A: 4, AAAA: 16, else 0 */
    uint16_t pref;              /* MX preference */
    uint16_t owner_off, owner_len;  /* owner name in text[] */
    uint16_t data_off, data_len;    /* CNAME/NS/PTR/MX/SOA mname: a name; TXT: the raw strings; SOA: "mname rname" */
    uint32_t soa[5];            /* SOA serial, refresh, retry, expire, minimum */
    uint8_t addr[16];
};

struct hw_rec_dns {
    uint16_t id, flags;         /* flags as on the wire (QR, opcode, AA, TC, RD, RA, AD, CD, rcode) */
    uint16_t rcode;             /* with the EDNS extended bits */
    uint16_t qdcount, ancount, nscount, arcount;
    uint16_t qtype, qclass;
    uint8_t edns;               /* an OPT record was present */
    uint8_t edns_version;
    uint8_t edns_do;            /* DNSSEC OK */
    uint8_t n_rr;               /* records in rr[] */
    uint16_t edns_udp_size;
    uint16_t rr_skipped;        /* answer/authority records beyond HW_DNS_RR_MAX or text[] */
    uint16_t name_len;
    uint16_t text_len;
    uint8_t cut;                /* the message ran past the captured bytes */
    /* what the DNS detector reads of an answer's addresses (hwdrivers/records.py answer_ips), made here: */
    uint8_t n_addr;             /* answer-section A/AAAA records kept (their least TTL: min_ttl) */
    uint8_t n_cname;            /* answer-section CNAME records kept */
    uint8_t facts;              /* HW_DNS_FACTS_MADE: ips_off/ips_len hold the distinct addresses (hw_dns_facts) */
    uint32_t min_ttl;
    uint16_t ips_off, ips_len;  /* in text[]: the distinct addresses' text, sorted by it, joined by ' ' */
    uint16_t ips_public;        /* bit i: the i-th of them is public (hw_addr_public) */
    char name[HW_DNS_NAME_MAX];
    struct hw_dns_rr rr[HW_DNS_RR_MAX];
    char text[HW_DNS_TEXT_MAX];
};

/* ---- TLS ---------------------------------------------------------------- */
#define HW_TLS_LIST_MAX 160     /* cipher suites, extensions, groups... kept per list (JA3 of the kept) */
#define HW_TLS_STR_MAX 256
#define HW_TLS_ALPN_MAX 8
#define HW_TLS_CERT_MAX 4
#define HW_TLS_V2_MAX 64

#define HW_TLS_CLIENT_HELLO 1
#define HW_TLS_SERVER_HELLO 2
#define HW_TLS_CERTIFICATE 11
#define HW_TLS_ALERT 21         /* not a handshake: an alert record */

struct hw_tls_cert {
    uint8_t sha256[32];
    int64_t not_before, not_after;  /* seconds since the epoch */
    char subject[HW_TLS_STR_MAX];   /* RFC 2253 */
    char issuer[HW_TLS_STR_MAX];
    uint8_t parsed;             /* 0: the DER did not parse (fingerprint still set) */
};

struct hw_tls_list {
    uint16_t n;
    uint16_t v[HW_TLS_LIST_MAX];
};

struct hw_rec_tls {
    uint8_t hs_type;            /* HW_TLS_* of the first message; 0 when none was read */
    uint8_t sslv2;              /* the hello was in the SSLv2 record format */
    uint8_t alert_level, alert_desc;
    uint8_t has_server_hello, has_client_hello;
    uint8_t n_certs, n_alpn;
    uint16_t record_version;
    uint16_t version;           /* hello's legacy_version (SSLv2: the offered version) */
    uint16_t selected_version;  /* server: supported_versions, else 0 */
    uint16_t cipher;            /* server: the chosen suite */
    uint8_t compression;
    uint8_t sni_cut;
    struct hw_tls_list ciphers, extensions, groups, point_formats, sig_algs, versions;
    uint16_t n_v2_ciphers;
    uint32_t v2_ciphers[HW_TLS_V2_MAX]; /* SSLv2 hellos: 24-bit cipher specs (ciphers[] is empty) */
    uint8_t server_random_tail[8];      /* RFC 8446's downgrade sentinel lives here */
    char sni[HW_TLS_STR_MAX];
    char alpn[HW_TLS_ALPN_MAX][32];
    char ja3[33], ja3s[33];     /* MD5 hex of the JA3 / JA3S strings */
    char ja4[40];
    struct hw_tls_cert certs[HW_TLS_CERT_MAX];
};

/* ---- ARP, IPv6 neighbour discovery, DHCP --------------------------------- */
struct hw_rec_arp {
    uint16_t op;                /* 1 request, 2 reply */
    uint8_t sender_mac[6], target_mac[6];
    uint8_t sender_ip[4], target_ip[4];
};

#define HW_NDP_PREFIX_MAX 4
#define HW_NDP_RDNSS_MAX 4
struct hw_ndp_prefix {
    uint8_t len, flags;         /* flags: 0x80 on-link (L), 0x40 autonomous (A) */
    uint32_t valid, preferred;  /* lifetimes, seconds */
    uint8_t prefix[16];
};

struct hw_rec_ndp {             /* ICMPv6 133 RS, 134 RA, 135 NS, 136 NA, 137 redirect */
    uint8_t type, code;
    uint8_t flags;              /* NA: 0x80 router, 0x40 solicited, 0x20 override; RA: M 0x80, O 0x40, Prf bits 3-4 */
    uint8_t hop_limit;          /* RA */
    int8_t router_pref;         /* RA: -1 low, 0 medium, 1 high (RFC 4191) */
    uint8_t has_source_mac, has_target_mac, n_prefixes;
    uint16_t router_lifetime;   /* RA, seconds */
    uint32_t reachable_ms, retrans_ms, mtu;
    uint8_t target[16];         /* NS, NA, redirect */
    uint8_t source_mac[6], target_mac[6];  /* link-layer address options */
    struct hw_ndp_prefix prefixes[HW_NDP_PREFIX_MAX];
    uint8_t n_rdnss;            /* RA: recursive DNS servers (RFC 8106), first HW_NDP_RDNSS_MAX */
    uint8_t rdnss[HW_NDP_RDNSS_MAX][16];
};

#define HW_DHCP_ID_MAX 32
#define HW_DHCP_ADDR_MAX 4
struct hw_rec_dhcp {
    uint8_t version;            /* 4 or 6 */
    uint8_t msg_type;           /* v4: option 53 (1 DISCOVER .. 8 INFORM); v6: the message type (1 SOLICIT ..) */
    uint8_t op;                 /* v4: 1 request, 2 reply */
    uint8_t has_client_mac;
    uint32_t xid;               /* v6: 24 bits */
    uint32_t lease_s;           /* v4 option 51, v6 IAADDR valid lifetime */
    uint8_t client_mac[6];      /* v4 chaddr; v6 from a DUID-LL/LLT client id */
    uint8_t server_id_len;
    uint8_t server_id[HW_DHCP_ID_MAX];  /* v4: option 54 (4 bytes); v6: the server DUID */
    uint8_t offered[16];        /* v4 yiaddr (4 bytes), v6 IAADDR */
    uint8_t requested[4];       /* v4 option 50 */
    uint8_t router[4];          /* v4 option 3, first */
    uint8_t has_offered, has_requested, has_router;
    uint8_t client_ip[4];       /* v4 ciaddr */
    uint8_t n_routers, n_dns;   /* v4 option 3; v4 option 6 / v6 option 23: first HW_DHCP_ADDR_MAX */
    uint8_t routers[HW_DHCP_ADDR_MAX][4];
    uint8_t dns[HW_DHCP_ADDR_MAX][16];  /* v4: 4 bytes each */
};

/* ---- HTTP heads ------------------------------------------------------------ */
#define HW_HTTP_COOKIES 4
#define HW_HTTP_COOKIE_SECURE 1
#define HW_HTTP_COOKIE_HTTPONLY 2
#define HW_HTTP_COOKIE_SAMESITE 4

struct hw_rec_http {
    uint8_t response;           /* 1: a status line */
    uint8_t complete;           /* the head ended (blank line) within the segment */
    uint8_t hsts, hsts_subdomains;
    uint8_t form_password;      /* a url-encoded form post with a password-like field */
    uint8_t n_cookies;
    uint16_t status;
    uint32_t hsts_max_age;
    int64_t content_length;     /* -1 when absent */
    uint8_t cookie_flags[HW_HTTP_COOKIES];     /* HW_HTTP_COOKIE_* of each Set-Cookie */
    char cookie_names[HW_HTTP_COOKIES][64];
    char method[16];
    char version[16];           /* "HTTP/1.1" */
    char host[256];
    char uri[1024];
    char location[1024];
    char content_type[128];
    char password_field[64];    /* the form field's name */
    char user_agent[256];       /* a request's User-Agent (cut at 255 bytes) */
};

/* ---- TCP sources (srcsum.c) ----------------------------------------------- */
/* What one source address did over a span: the SYNs it sent (SYN without
 * ACK), the RSTs it sent and received, and how many distinct hosts and
 * (host, port) pairs its SYNs went to (estimates).  A summary is sent when
 * the source is first seen, when its SYNs show Ethernet addresses not seen
 * before (the frame that showed them is the event's own: src_mac, dst_mac,
 * dst), HW_SRC_INTERVAL_S after its span began when the span is busy
 * (HW_SRC_BURST packets an interval on average; else HW_SRC_REFRESH_S after its
 * beginning), when the table evicts
 * it, and at the end; its counts cover the packets since the last. */
#define HW_SRC_INTERVAL_S 10
#define HW_SRC_BURST 8
#define HW_SRC_REFRESH_S 300
#define HW_SRC_PAIRS 4
#define HW_SRC_NEW 0            /* why the summary was sent */
#define HW_SRC_CHANGED 1
#define HW_SRC_INTERVAL 2
#define HW_SRC_EVICTED 3
#define HW_SRC_END 4
struct hw_src_pair {            /* Ethernet addresses of its SYNs, and one destination they went to */
    uint8_t src_mac[6], dst_mac[6];
    uint8_t dst[16];
};
struct hw_rec_tcpsrc {
    uint64_t first_ns, last_ns;
    uint32_t syns, rsts_sent, rsts_received;
    uint32_t hosts, ports;
    uint8_t reason;             /* HW_SRC_* */
    uint8_t n_pairs;            /* the address pairs its SYNs showed in this span */
    struct hw_src_pair pairs[HW_SRC_PAIRS];
};

struct hw_rec_counters {
    uint64_t parsed[HW_EV_COUNT];
    uint64_t malformed[HW_RMAL_COUNT];
};

int hw_records_counters(struct hw_session *s, struct hw_rec_counters *out);
const char *hw_record_malformed_name(int reason);
/* DNS mnemonics (NULL when the code has none: the caller writes TYPE<n> or the number). */
const char *hw_dns_type_name(int type);
const char *hw_dns_rcode_name(int rcode);
/* Parse one DNS message (a UDP payload, or a TCP one with its length prefix). */
int hw_dns_parse(const uint8_t *p, uint32_t n, int tcp, struct hw_rec_dns *out);
void hw_dns_facts(struct hw_rec_dns *r);   /* once a record: what the DNS detector reads of its answer (the facts fields) */
/* Whether an address (family 4 or 6) is public as agent.detectors.detector.is_public_ip answers. */
int hw_addr_public(int family, const uint8_t *addr);
/* Parse the TLS records at the start of a TCP payload. */
int hw_tls_parse(const uint8_t *p, uint32_t n, struct hw_rec_tls *out);
/* An HTTP/1.x request or response head (and a form body in the same segment). */
int hw_http_parse(const uint8_t *p, uint32_t n, struct hw_rec_http *out);
/* An ARP body (Ethernet/IPv4). */
int hw_arp_parse(const uint8_t *p, uint32_t n, struct hw_rec_arp *out);
/* An ICMPv6 neighbour-discovery message, from its type byte. */
int hw_ndp_parse(const uint8_t *p, uint32_t n, struct hw_rec_ndp *out);
/* A DHCPv4 (version 4) or DHCPv6 (version 6) UDP payload. */
int hw_dhcp_parse(const uint8_t *p, uint32_t n, int version, struct hw_rec_dhcp *out);
