/* tunnel.c - one layer of encapsulation, peeled.
 *
 * The parser has read an IP packet's key; if that packet is a tunnel (GRE
 * and the ERSPAN it carries, VXLAN, Geneve, GTP-U, IP in IP), this finds
 * where the packet it carries starts and what it is: an Ethernet frame or an
 * IP packet.  The parser then parses that packet as the one to meter.  Every
 * read is checked against the captured bytes first; a tunnel header cut
 * short or impossible is malformed, counted by the tunnel's reason. */
#include "hw.h"

#define ETH_IPV4 0x0800
#define ETH_IPV6 0x86dd
#define ETH_TEB 0x6558     /* transparent Ethernet bridging (NVGRE, Geneve) */
#define ETH_ERSPAN 0x88be  /* ERSPAN type I (no header) and II */
#define ETH_ERSPAN3 0x22eb
#define ETH_PPP 0x880b     /* enhanced GRE (PPTP) */

#define GRE_C 0x8000
#define GRE_R 0x4000
#define GRE_K 0x2000
#define GRE_S 0x1000
#define GRE_A 0x0080       /* enhanced GRE: acknowledgment number present */

#define GTP_GPDU 0xff
#define GTP_MAX_EXT 8

static inline int on(const struct hw_config *cfg, int type)
{
    return !(cfg->tunnel_off & (1u << type));
}

static inline int port_in(uint16_t port, const uint16_t *ports, int n)
{
    for (int i = 0; i < n; i++)
        if (ports[i] && ports[i] == port) return 1;
    return 0;
}

/* What follows a header of hl bytes: an Ethernet frame (type 0) or an IP
 * packet of the given ethertype.  A frame too short for its link header is
 * the tunnel's fault. */
static int inner(const uint8_t *p, uint32_t cap, uint32_t wire, uint32_t hl, uint32_t type,
                 struct hwint_inner *in, int reason)
{
    if (cap < hl || wire < hl) return -reason;
    if (type == 0 && cap - hl < 14) return -reason;
    in->p = p + hl;
    in->cap = cap - hl;
    in->wire = wire - hl;
    in->ethertype = type;
    return 1;
}

/* A PPP header as PPTP sends it: address and control optional, protocol 1 or 2 bytes. */
static int ppp(const uint8_t *p, uint32_t cap, uint32_t wire, uint32_t off, struct hwint_inner *in)
{
    if (cap >= off + 2 && p[off] == 0xff && p[off + 1] == 0x03) off += 2;
    if (cap < off + 1) return -HW_MAL_GRE;
    uint32_t proto;
    if (p[off] & 1) {
        proto = p[off];
        off += 1;
    } else {
        if (cap < off + 2) return -HW_MAL_GRE;
        proto = hw_be16(p + off);
        off += 2;
    }
    if (proto == 0x21) return inner(p, cap, wire, off, ETH_IPV4, in, HW_MAL_GRE);
    if (proto == 0x57) return inner(p, cap, wire, off, ETH_IPV6, in, HW_MAL_GRE);
    return 0; /* LCP, CCP...: PPTP's own control, metered as the GRE flow */
}

/* ERSPAN II and III: the session id, then the mirrored frame. */
static int erspan(const uint8_t *p, uint32_t cap, uint32_t wire, uint32_t off, int v3,
                  struct hwint_inner *in)
{
    uint32_t hl = v3 ? 12 : 8;
    if (cap < off + hl) return -HW_MAL_ERSPAN;
    const uint8_t *e = p + off;
    if ((e[0] >> 4) != (v3 ? 2 : 1)) return -HW_MAL_ERSPAN;
    in->id = hw_be16(e + 2) & 0x3ff;
    uint32_t type = 0;
    if (v3) {
        uint32_t ft = (e[10] >> 2) & 0x1f;
        if (e[11] & 1) hl += 8; /* the platform-specific sub-header */
        if (ft == 2) {          /* an IP packet rather than a frame */
            if (cap < off + hl + 1) return -HW_MAL_ERSPAN;
            type = (p[off + hl] >> 4) == 6 ? ETH_IPV6 : ETH_IPV4;
        } else if (ft != 0) {
            return -HW_MAL_ERSPAN;
        }
    }
    return inner(p, cap, wire, off + hl, type, in, HW_MAL_ERSPAN);
}

static int gre(const uint8_t *p, uint32_t cap, uint32_t wire, const struct hw_config *cfg,
               struct hwint_inner *in)
{
    if (cap < 4) return -HW_MAL_GRE;
    uint16_t fl = hw_be16(p), proto = hw_be16(p + 2);
    int ver = fl & 7;
    if ((fl & GRE_R) || ver > 1) return -HW_MAL_GRE;
    uint32_t off = 4;
    if (ver == 1) { /* RFC 2637: key (payload length, call id) always present */
        if (!(fl & GRE_K) || proto != ETH_PPP) return -HW_MAL_GRE;
        off += 4 + (fl & GRE_S ? 4 : 0) + (fl & GRE_A ? 4 : 0);
        if (cap < off) return -HW_MAL_GRE;
        in->type = HW_TUN_GRE;
        in->id = hw_be16(p + 6);
        return ppp(p, cap, wire, off, in);
    }
    if (fl & GRE_C) off += 4;
    if (fl & GRE_K) {
        if (cap < off + 4) return -HW_MAL_GRE;
        in->id = hw_be32(p + off);
        off += 4;
    }
    if (fl & GRE_S) off += 4;
    if (cap < off) return -HW_MAL_GRE;
    in->type = HW_TUN_GRE;
    switch (proto) {
    case ETH_IPV4:
    case ETH_IPV6: return inner(p, cap, wire, off, proto, in, HW_MAL_GRE);
    case ETH_TEB: return inner(p, cap, wire, off, 0, in, HW_MAL_GRE);
    case ETH_ERSPAN:
    case ETH_ERSPAN3:
        if (!on(cfg, HW_TUN_ERSPAN)) return 0;
        in->type = HW_TUN_ERSPAN;
        in->id = 0;
        if (proto == ETH_ERSPAN && !(fl & GRE_S)) /* type I: the frame follows GRE */
            return inner(p, cap, wire, off, 0, in, HW_MAL_ERSPAN);
        return erspan(p, cap, wire, off, proto == ETH_ERSPAN3, in);
    default: return 0;
    }
}

/* A UDP port is only a hint: a payload without the tunnel's fixed bits is
 * some other protocol on that port and is metered as the UDP flow it is
 * (0).  One with them whose header is cut short or broken is malformed. */

static int vxlan(const uint8_t *p, uint32_t cap, uint32_t wire, struct hwint_inner *in)
{
    if (cap < 8) return -HW_MAL_VXLAN;
    /* the I flag (a valid VNI), only it and GBP's G flag, reserved bytes zero (GBP: its policy) */
    if ((p[0] & 0x7f) != 0x08 || p[7] != 0 || (!(p[0] & 0x80) && (p[1] | p[2] | p[3]))) return 0;
    in->type = HW_TUN_VXLAN;
    in->id = hw_be32(p + 4) >> 8;
    return inner(p, cap, wire, 8, 0, in, HW_MAL_VXLAN);
}

static int geneve(const uint8_t *p, uint32_t cap, uint32_t wire, struct hwint_inner *in)
{
    if (cap < 8) return -HW_MAL_GENEVE;
    uint32_t hl = 8 + (uint32_t)(p[0] & 0x3f) * 4; /* options skipped by their length */
    uint16_t proto = hw_be16(p + 2);
    if ((p[0] >> 6) != 0 || p[7] != 0) return 0; /* version 0, reserved byte zero */
    in->type = HW_TUN_GENEVE;
    in->id = hw_be32(p + 4) >> 8;
    if (proto == ETH_TEB) return inner(p, cap, wire, hl, 0, in, HW_MAL_GENEVE);
    if (proto == ETH_IPV4 || proto == ETH_IPV6) return inner(p, cap, wire, hl, proto, in, HW_MAL_GENEVE);
    return 0;
}

/* len: the UDP payload's length as UDP announces it (also in a first fragment). */
static int gtp(const uint8_t *p, uint32_t cap, uint32_t wire, uint32_t len, struct hwint_inner *in)
{
    if (cap < 8) return -HW_MAL_GTP;
    /* version 1, protocol type GTP, and a length that is the rest of the datagram */
    if ((p[0] >> 5) != 1 || !(p[0] & 0x10) || hw_be16(p + 2) + 8u != len) return 0;
    if (p[1] != GTP_GPDU) return 0; /* echo, error indication...: the tunnel's own signalling */
    in->type = HW_TUN_GTP;
    in->id = hw_be32(p + 4);
    uint32_t off = 8;
    if (p[0] & 0x07) { /* sequence number, N-PDU number, next extension type */
        if (cap < 12) return -HW_MAL_GTP;
        uint8_t next = p[11];
        off = 12;
        for (int n = 0; next; n++) {
            if (n == GTP_MAX_EXT || cap < off + 4) return -HW_MAL_GTP;
            uint32_t len = (uint32_t)p[off] * 4;
            if (len == 0 || cap < off + len) return -HW_MAL_GTP;
            next = p[off + len - 1];
            off += len;
        }
    }
    if (cap < off + 1) return -HW_MAL_GTP;
    switch (p[off] >> 4) {
    case 4: return inner(p, cap, wire, off, ETH_IPV4, in, HW_MAL_GTP);
    case 6: return inner(p, cap, wire, off, ETH_IPV6, in, HW_MAL_GTP);
    default: return -HW_MAL_GTP;
    }
}

int hwint_tunnel(const struct hw_meta *m, const struct hw_config *cfg, struct hwint_inner *in)
{
    if (m->frag == 2 || !m->pay) return 0; /* a later fragment carries no tunnel header */
    const uint8_t *p = m->pay;
    uint32_t cap = m->pay_cap;
    /* a first fragment announces only its own length: the carried packet's may run past it */
    uint32_t wire = m->frag ? UINT32_MAX / 2 : m->pay_len;
    in->id = 0;
    switch (m->proto) {
    case 47:
        return on(cfg, HW_TUN_GRE) ? gre(p, cap, wire, cfg, in) : 0;
    case 4:
    case 41:
        if (!on(cfg, HW_TUN_IPIP)) return 0;
        in->type = HW_TUN_IPIP;
        return inner(p, cap, wire, 0, m->proto == 4 ? ETH_IPV4 : ETH_IPV6, in, HW_MAL_IPV4_HDR);
    case 17:
        if (port_in(m->dport, cfg->vxlan_ports, HW_TUN_PORTS) && on(cfg, HW_TUN_VXLAN))
            return vxlan(p, cap, wire, in);
        if (port_in(m->dport, cfg->geneve_ports, HW_TUN_PORTS) && on(cfg, HW_TUN_GENEVE))
            return geneve(p, cap, wire, in);
        if (port_in(m->dport, cfg->gtp_ports, HW_TUN_PORTS) && on(cfg, HW_TUN_GTP))
            return gtp(p, cap, wire, m->pay_len, in);
        return 0;
    default:
        return 0;
    }
}

static const char *const tun_names[HW_TUN_COUNT] = {"", "gre", "erspan", "vxlan", "geneve", "gtp", "ipip"};

const char *hw_tunnel_name(int type) { return type >= 0 && type < HW_TUN_COUNT ? tun_names[type] : NULL; }
