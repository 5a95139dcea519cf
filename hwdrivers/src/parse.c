/* parse.c - link, network and transport headers of one packet.
 *
 * Every read is checked against the captured length first.  A packet whose
 * flow key cannot be read (a header cut short or impossible) is malformed:
 * counted by reason and left alone.  A packet whose key is intact but whose
 * bytes stop before the lengths its headers announce is metered and counted
 * as truncated: that is what snaplen does, and what tshark also meters. */
#include <string.h>

#include "hw.h"

#define MAX_TAGS 4    /* VLAN tags we follow before calling the frame malformed */
#define MAX_LABELS 16 /* MPLS stack depth */
#define MAX_EXT 8     /* IPv6 extension headers */

#define ETH_IPV4 0x0800
#define ETH_ARP 0x0806
#define ETH_IPV6 0x86dd
#define ETH_VLAN 0x8100
#define ETH_QINQ 0x88a8
#define ETH_QINQ_OLD 0x9100
#define ETH_MPLS 0x8847
#define ETH_MPLS_MC 0x8848
#define ETH_PPPOE_DISC 0x8863
#define ETH_PPPOE_SESS 0x8864

static inline int bad(struct hw_counters *c, int reason)
{
    c->malformed++;
    c->malformed_by[reason]++;
    return HW_P_BAD;
}

static inline void layer(struct hw_counters *c, int l, uint32_t wirelen)
{
    c->layer_packets[l]++;
    c->layer_bytes[l] += wirelen;
}

/* Truncation reasons are collected and counted once the packet is known
 * not to be malformed (a malformed packet is only malformed). */
static inline void truncated(int reason, int *reasons)
{
    *reasons |= 1 << reason;
}

/* IPv4 addresses fill the first 4 bytes; the rest is zero so keys compare whole. */
static inline void set_addr4(struct hw_meta *m, const uint8_t *src, const uint8_t *dst)
{
    memset(m->src, 0, sizeof m->src + sizeof m->dst);
    memcpy(m->src, src, 4);
    memcpy(m->dst, dst, 4);
}

/* L4 header at p; cap bytes captured, len bytes announced by the IP layer. */
static int parse_l4(const uint8_t *p, uint32_t cap, uint32_t len, struct hw_meta *m,
                    struct hw_counters *c, uint32_t wirelen, int *tflag)
{
    switch (m->proto) {
    case 6: {
        layer(c, HW_L_TCP, wirelen);
        if (cap < 20) return bad(c, HW_MAL_TCP);
        uint32_t doff = (uint32_t)(p[12] >> 4) * 4;
        if (doff < 20 || (m->frag == 0 && doff > len)) return bad(c, HW_MAL_TCP);
        m->sport = hw_be16(p);
        m->dport = hw_be16(p + 2);
        m->seq = hw_be32(p + 4);
        m->ack = hw_be32(p + 8);
        m->tcp_flags = p[13];
        if (m->frag == 0) m->pay_len = len - doff;
        if (doff < cap) {
            m->pay = p + doff;
            m->pay_cap = cap - doff;
        }
        return HW_P_IP;
    }
    case 17: {
        layer(c, HW_L_UDP, wirelen);
        if (cap < 8) return bad(c, HW_MAL_UDP);
        uint32_t ulen = hw_be16(p + 4);
        if (ulen < 8) return bad(c, HW_MAL_UDP);
        m->sport = hw_be16(p);
        m->dport = hw_be16(p + 2);
        if (m->frag == 0 && ulen > len) {
            truncated(HW_TRUNC_L4_LEN, tflag);
            ulen = len;
        }
        m->pay_len = ulen - 8;
        m->pay = p + 8;
        m->pay_cap = cap - 8 < m->pay_len ? cap - 8 : m->pay_len;
        return HW_P_IP;
    }
    case 1:
    case 58: {
        layer(c, m->proto == 1 ? HW_L_ICMP : HW_L_ICMP6, wirelen);
        if (cap < 4) return bad(c, HW_MAL_ICMP);
        uint8_t type = p[0], code = p[1];
        m->icmp_tc = (uint16_t)(type << 8 | code);
        int echo = m->proto == 1 ? (type == 8 || type == 0 || type == 13 || type == 14)
                                 : (type == 128 || type == 129);
        if (echo) {
            if (cap < 8) return bad(c, HW_MAL_ICMP);
            m->sport = m->dport = hw_be16(p + 4);
        } else {
            m->dport = (uint16_t)(type << 8 | code);
        }
        if (cap > 8) {
            m->pay = p + 8;
            m->pay_cap = cap - 8;
        }
        return HW_P_IP;
    }
    case 132: /* SCTP: ports where TCP and UDP have them */
        layer(c, HW_L_OTHER_L4, wirelen);
        if (cap < 12) return bad(c, HW_MAL_UDP);
        m->sport = hw_be16(p);
        m->dport = hw_be16(p + 2);
        return HW_P_IP;
    case 4:
    case 41:
    case 47: /* IP in IP and GRE: what they carry, for the tunnel decoder */
        layer(c, HW_L_OTHER_L4, wirelen);
        m->pay = p;
        m->pay_cap = cap;
        m->pay_len = len;
        return HW_P_IP;
    default:
        layer(c, HW_L_OTHER_L4, wirelen);
        return HW_P_IP;
    }
}

/* cap: bytes captured from p; wire: bytes on the wire from p. */
static int parse_ipv4(const uint8_t *p, uint32_t cap, uint32_t wire, struct hw_meta *m,
                      struct hw_counters *c, uint32_t wirelen, int *tflag)
{
    layer(c, HW_L_IPV4, wirelen);
    if (cap < 20 || (p[0] >> 4) != 4) return bad(c, HW_MAL_IPV4_HDR);
    uint32_t ihl = (uint32_t)(p[0] & 15) * 4;
    if (ihl < 20 || ihl > cap) return bad(c, HW_MAL_IPV4_HDR);
    uint32_t tot = hw_be16(p + 2);
    if (tot == 0) tot = wire; /* TSO: the stack left the length for the NIC to fill */
    if (tot < ihl) return bad(c, HW_MAL_IPV4_LEN);
    if (tot > wire) {
        truncated(HW_TRUNC_IP_LEN, tflag);
        tot = wire;
    }
    uint32_t avail = tot < cap ? tot : cap;
    m->family = 4;
    m->proto = p[9];
    set_addr4(m, p + 12, p + 16);
    uint16_t fl = hw_be16(p + 6);
    if (fl & 0x3fff) {
        layer(c, HW_L_FRAGMENT, wirelen);
        m->frag = (fl & 0x1fff) ? 2 : 1;
        m->frag_id = hw_be16(p + 4);
        if (m->frag == 2) {
            m->pay_len = tot - ihl;
            return HW_P_IP;
        }
    }
    return parse_l4(p + ihl, avail - ihl, tot - ihl, m, c, wirelen, tflag);
}

static int parse_ipv6(const uint8_t *p, uint32_t cap, uint32_t wire, struct hw_meta *m,
                      struct hw_counters *c, uint32_t wirelen, int *tflag)
{
    layer(c, HW_L_IPV6, wirelen);
    if (cap < 40 || (p[0] >> 4) != 6) return bad(c, HW_MAL_IPV6_HDR);
    uint32_t tot = 40 + (uint32_t)hw_be16(p + 4);
    if (tot == 40 && p[6] != 59) tot = wire; /* jumbogram or TSO */
    if (tot > wire) {
        truncated(HW_TRUNC_IP_LEN, tflag);
        tot = wire;
    }
    uint32_t avail = tot < cap ? tot : cap;
    m->family = 6;
    memcpy(m->src, p + 8, 16);
    memcpy(m->dst, p + 24, 16);
    uint8_t nh = p[6];
    uint32_t off = 40;
    for (int i = 0;; i++) {
        if (nh != 0 && nh != 43 && nh != 44 && nh != 51 && nh != 60 && nh != 135) break;
        if (i == MAX_EXT || off + 8 > avail) return bad(c, HW_MAL_IPV6_EXT);
        const uint8_t *e = p + off;
        uint32_t elen;
        if (nh == 44) {
            elen = 8;
            uint16_t fo = hw_be16(e + 2);
            if (m->frag == 0) layer(c, HW_L_FRAGMENT, wirelen);
            m->frag = (fo & 0xfff8) ? 2 : 1;
            m->frag_id = hw_be32(e + 4);
        } else if (nh == 51) {
            elen = ((uint32_t)e[1] + 2) * 4;
        } else {
            elen = ((uint32_t)e[1] + 1) * 8;
        }
        if (off + elen > avail) return bad(c, HW_MAL_IPV6_EXT);
        nh = e[0];
        off += elen;
        if (m->frag == 2) break;
    }
    m->proto = nh;
    if (m->frag == 2) {
        m->pay_len = tot - off;
        return HW_P_IP;
    }
    if (nh == 59) {
        layer(c, HW_L_OTHER_L4, wirelen);
        return HW_P_IP;
    }
    return parse_l4(p + off, avail - off, tot - off, m, c, wirelen, tflag);
}

static int parse_arp(const uint8_t *p, uint32_t cap, struct hw_meta *m, struct hw_counters *c,
                     uint32_t wirelen)
{
    layer(c, HW_L_ARP, wirelen);
    /* Ethernet/IPv4 ARP only: hardware type 1, protocol 0x0800, lengths 6 and 4 */
    if (cap < 28 || hw_be16(p) != 1 || hw_be16(p + 2) != ETH_IPV4 || p[4] != 6 || p[5] != 4)
        return bad(c, HW_MAL_ARP);
    m->arp = p;
    m->family = 0;
    set_addr4(m, p + 14, p + 24);
    return HW_P_ARP;
}

static int parse_l3(uint32_t type, const uint8_t *p, uint32_t cap, uint32_t wire,
                    struct hw_meta *m, struct hw_counters *c, uint32_t wirelen, int *tflag)
{
    switch (type) {
    case ETH_IPV4: return parse_ipv4(p, cap, wire, m, c, wirelen, tflag);
    case ETH_IPV6: return parse_ipv6(p, cap, wire, m, c, wirelen, tflag);
    case ETH_ARP: return parse_arp(p, cap, m, c, wirelen);
    default:
        layer(c, HW_L_OTHER_L3, wirelen);
        return HW_P_OTHER;
    }
}

/* Ethertype chain from an Ethernet payload: VLAN tags, MPLS, PPPoE. */
static int parse_ether_payload(uint32_t type, const uint8_t *p, uint32_t cap, uint32_t wire,
                               struct hw_meta *m, struct hw_counters *c, uint32_t wirelen,
                               int *tflag)
{
    int tags = 0, counted_vlan = 0, counted_mpls = 0;
    for (;;) {
        switch (type) {
        case ETH_VLAN:
        case ETH_QINQ:
        case ETH_QINQ_OLD:
            if (!counted_vlan++) layer(c, HW_L_VLAN, wirelen);
            if (cap < 4 || ++tags > MAX_TAGS) return bad(c, HW_MAL_VLAN);
            if (tags == 1) m->vlan = hw_be16(p) & 0x0fff;
            else if (tags == 2) m->vlan_inner = hw_be16(p) & 0x0fff;
            type = hw_be16(p + 2);
            p += 4, cap -= 4, wire -= 4;
            continue;
        case ETH_MPLS:
        case ETH_MPLS_MC: {
            if (!counted_mpls++) layer(c, HW_L_MPLS, wirelen);
            int n = 0;
            for (;;) {
                if (cap < 4 || ++n > MAX_LABELS) return bad(c, HW_MAL_MPLS);
                int bos = p[2] & 1;
                p += 4, cap -= 4, wire -= 4;
                if (bos) break;
            }
            if (cap < 1) return bad(c, HW_MAL_MPLS);
            switch (p[0] >> 4) {
            case 4: type = ETH_IPV4; continue;
            case 6: type = ETH_IPV6; continue;
            case 0: /* pseudowire control word, then an Ethernet frame */
                if (cap < 4 + 14) return bad(c, HW_MAL_MPLS);
                type = hw_be16(p + 4 + 12);
                p += 18, cap -= 18, wire -= 18;
                continue;
            default:
                layer(c, HW_L_OTHER_L3, wirelen);
                return HW_P_OTHER;
            }
        }
        case ETH_PPPOE_SESS: {
            layer(c, HW_L_PPPOE, wirelen);
            if (cap < 8 || p[0] != 0x11 || p[1] != 0) return bad(c, HW_MAL_PPPOE);
            uint16_t ppp = hw_be16(p + 6);
            p += 8, cap -= 8, wire -= 8;
            if (ppp == 0x0021) type = ETH_IPV4;
            else if (ppp == 0x0057) type = ETH_IPV6;
            else {
                layer(c, HW_L_OTHER_L3, wirelen);
                return HW_P_OTHER;
            }
            return parse_l3(type, p, cap, wire, m, c, wirelen, tflag);
        }
        case ETH_PPPOE_DISC:
            layer(c, HW_L_PPPOE, wirelen);
            layer(c, HW_L_OTHER_L3, wirelen);
            return HW_P_OTHER;
        default:
            return parse_l3(type, p, cap, wire, m, c, wirelen, tflag);
        }
    }
}

static int family_type(uint32_t af)
{
    switch (af) {
    case 2: return ETH_IPV4;
    case 10: case 24: case 28: case 30: return ETH_IPV6; /* AF_INET6 on Linux, BSDs, macOS */
    default: return -1;
    }
}

static int parse_link(int linktype, const uint8_t *p, uint32_t caplen, uint32_t wirelen,
                      struct hw_meta *m, struct hw_counters *c, int *tflag);

static int parse_eth(const uint8_t *p, uint32_t cap, uint32_t wire, struct hw_meta *m, struct hw_counters *c,
                     uint32_t wirelen, int *tflag)
{
    if (cap < 14) return bad(c, HW_MAL_LINK);
    m->mac_dst = p;
    m->mac_src = p + 6;
    return parse_ether_payload(hw_be16(p + 12), p + 14, cap - 14, wire - 14, m, c, wirelen, tflag);
}

/* The decapsulation loop: while the packet just parsed is a tunnel, parse
 * what it carries in its place.  The key becomes the innermost packet's; the
 * tunnel nearest to it is remembered as the packet's tunnel context. */
static int decap(int kind, struct hw_meta *m, struct hw_counters *c, uint32_t wirelen, int *tflag,
                 const struct hw_config *tun)
{
    for (uint32_t depth = 0; kind == HW_P_IP; depth++) {
        struct hwint_inner in;
        int r = hwint_tunnel(m, tun, &in);
        if (r == 0) break;
        if (r < 0) return bad(c, -r);
        if (depth == tun->tunnel_depth) return bad(c, HW_MAL_TUNNEL_DEPTH);
        c->tunnel_packets[in.type]++;
        struct hw_meta outer = *m;
        memset(m, 0, offsetof(struct hw_meta, src));
        m->tun_type = in.type;
        m->tun_depth = (uint8_t)(depth + 1);
        m->tun_id = in.id;
        m->tun_family = outer.family;
        m->tun_proto = outer.proto;
        m->tun_frag = outer.frag;
        m->tun_frag_id = outer.frag_id;
        m->inner = in.p;
        m->inner_cap = in.cap;
        m->inner_link = in.ethertype == 0 ? HW_DLT_EN10MB : HW_DLT_RAW;
        m->tun_sport = outer.sport;
        m->tun_dport = outer.dport;
        memcpy(m->tun_src, outer.src, sizeof m->tun_src);
        memcpy(m->tun_dst, outer.dst, sizeof m->tun_dst);
        if (in.ethertype == 0) kind = parse_eth(in.p, in.cap, in.wire, m, c, wirelen, tflag);
        else kind = parse_l3(in.ethertype, in.p, in.cap, in.wire, m, c, wirelen, tflag);
    }
    return kind;
}

int hwint_parse(int linktype, const uint8_t *p, uint32_t caplen, uint32_t wirelen,
                struct hw_meta *m, struct hw_counters *c, const struct hw_config *tun)
{
    int reasons = 0;
    int kind = parse_link(linktype, p, caplen, wirelen, m, c, &reasons);
    if (tun && tun->tunnel_depth && kind == HW_P_IP && m->pay && (m->proto == 17 || m->proto == 47 ||
                                                                 m->proto == 4 || m->proto == 41))
        kind = decap(kind, m, c, wirelen < caplen ? caplen : wirelen, &reasons, tun);
    if (reasons && kind != HW_P_BAD) {
        c->truncated++;
        for (int r = 0; r < HW_TRUNC_COUNT; r++)
            if (reasons & (1 << r)) c->truncated_by[r]++;
    }
    return kind;
}

static int parse_link(int linktype, const uint8_t *p, uint32_t caplen, uint32_t wirelen,
                      struct hw_meta *m, struct hw_counters *c, int *tflag)
{
    memset(m, 0, offsetof(struct hw_meta, src));
    if (wirelen < caplen) wirelen = caplen;
    if (caplen < wirelen) truncated(HW_TRUNC_SNAPLEN, tflag);
    if (caplen == 0) return bad(c, HW_MAL_RECORD);
    uint32_t hl, type;
    switch (linktype) {
    case HW_DLT_EN10MB:
        return parse_eth(p, caplen, wirelen, m, c, wirelen, tflag);
    case HW_DLT_LINUX_SLL:
        if (caplen < 16) return bad(c, HW_MAL_LINK);
        if (hw_be16(p + 4) == 6) m->mac_src = p + 6;
        type = hw_be16(p + 14);
        hl = 16;
        break;
    case HW_DLT_LINUX_SLL2:
        if (caplen < 20) return bad(c, HW_MAL_LINK);
        if (p[11] == 6) m->mac_src = p + 12;
        type = hw_be16(p);
        hl = 20;
        break;
    case HW_DLT_NULL:
    case HW_DLT_LOOP: {
        if (caplen < 4) return bad(c, HW_MAL_LINK);
        uint32_t af;
        memcpy(&af, p, 4); /* DLT_NULL: the writer's byte order, so try both */
        if (linktype == HW_DLT_LOOP) af = hw_be32(p);
        else if (af > 0xffff) af = __builtin_bswap32(af);
        int t = family_type(af);
        if (t < 0) {
            layer(c, HW_L_OTHER_L3, wirelen);
            return HW_P_OTHER;
        }
        type = (uint32_t)t;
        hl = 4;
        break;
    }
    case HW_DLT_RAW:
    case HW_DLT_RAW_OPENBSD:
    case HW_LINKTYPE_RAW:
        type = (p[0] >> 4) == 6 ? ETH_IPV6 : ETH_IPV4;
        hl = 0;
        break;
    case HW_DLT_IPV4: type = ETH_IPV4; hl = 0; break;
    case HW_DLT_IPV6: type = ETH_IPV6; hl = 0; break;
    default:
        return bad(c, HW_MAL_LINKTYPE);
    }
    /* SLL carries Ethernet-style protocol values, including VLAN and MPLS */
    return parse_ether_payload(type, p + hl, caplen - hl, wirelen - hl, m, c, wirelen, tflag);
}

static const char *const mal_names[HW_MAL_COUNT] = {
    "link", "vlan", "mpls", "pppoe", "ipv4_header", "ipv4_length", "ipv6_header",
    "ipv6_extension", "tcp", "udp", "icmp", "arp", "linktype", "empty_record",
    "gre", "erspan", "vxlan", "geneve", "gtp", "tunnel_depth",
};
static const char *const trunc_names[HW_TRUNC_COUNT] = {"snaplen", "ip_length", "l4_length"};
static const char *const layer_names[HW_L_COUNT] = {
    "ipv4", "ipv6", "arp", "other_l3", "tcp", "udp", "icmp", "icmpv6", "other_l4",
    "vlan", "mpls", "pppoe", "fragment",
};

const char *hw_malformed_name(int r) { return r >= 0 && r < HW_MAL_COUNT ? mal_names[r] : NULL; }
const char *hw_truncated_name(int r) { return r >= 0 && r < HW_TRUNC_COUNT ? trunc_names[r] : NULL; }
const char *hw_layer_name(int l) { return l >= 0 && l < HW_L_COUNT ? layer_names[l] : NULL; }
