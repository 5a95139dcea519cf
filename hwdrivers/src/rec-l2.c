/* rec-l2.c - who claims which address: ARP bodies, IPv6 neighbour
 * discovery (RS, RA, NS, NA, redirect: flags, target, link-layer address
 * options, prefixes, router preference and lifetime) and DHCPv4/v6 (message
 * type, xid, client MAC, server id, offered address).  Bounded by the
 * bytes given; options are walked with their own lengths checked. */
#include <string.h>

#include "hw.h"

int hw_arp_parse(const uint8_t *p, uint32_t n, struct hw_rec_arp *r)
{
    memset(r, 0, sizeof *r);
    if (n < 28 || hw_be16(p) != 1 || hw_be16(p + 2) != 0x0800 || p[4] != 6 || p[5] != 4) return HW_RMAL_ARP;
    r->op = hw_be16(p + 6);
    memcpy(r->sender_mac, p + 8, 6);
    memcpy(r->sender_ip, p + 14, 4);
    memcpy(r->target_mac, p + 18, 6);
    memcpy(r->target_ip, p + 24, 4);
    return 0;
}

/* ND options from p[off]: type, length in 8-byte units, body. */
static int nd_options(const uint8_t *p, uint32_t n, uint32_t off, struct hw_rec_ndp *r)
{
    while (off + 2 <= n) {
        uint32_t type = p[off], len = (uint32_t)p[off + 1] * 8;
        if (len == 0 || off + len > n) return HW_RMAL_NDP;
        const uint8_t *o = p + off;
        if ((type == 1 || type == 2) && len >= 8) {
            memcpy(type == 1 ? r->source_mac : r->target_mac, o + 2, 6);
            if (type == 1) r->has_source_mac = 1;
            else r->has_target_mac = 1;
        } else if (type == 3 && len >= 32 && r->n_prefixes < HW_NDP_PREFIX_MAX) {
            struct hw_ndp_prefix *x = &r->prefixes[r->n_prefixes++];
            x->len = o[2];
            x->flags = o[3];
            x->valid = hw_be32(o + 4);
            x->preferred = hw_be32(o + 8);
            memcpy(x->prefix, o + 16, 16);
        } else if (type == 5 && len >= 8) {
            r->mtu = hw_be32(o + 4);
        } else if (type == 25 && len >= 24) {
            for (uint32_t a = 8; a + 16 <= len && r->n_rdnss < HW_NDP_RDNSS_MAX; a += 16)
                memcpy(r->rdnss[r->n_rdnss++], o + a, 16);
        }
        off += len;
    }
    return off == n ? 0 : HW_RMAL_NDP;
}

int hw_ndp_parse(const uint8_t *p, uint32_t n, struct hw_rec_ndp *r)
{
    memset(r, 0, sizeof *r);
    if (n < 8) return HW_RMAL_NDP;
    r->type = p[0];
    r->code = p[1];
    switch (r->type) {
    case 133: return nd_options(p, n, 8, r);
    case 134: {
        if (n < 16) return HW_RMAL_NDP;
        r->hop_limit = p[4];
        r->flags = p[5];
        static const int8_t prf[4] = {0, 1, 0 /* reserved: medium */, -1};
        r->router_pref = prf[(p[5] >> 3) & 3];
        r->router_lifetime = hw_be16(p + 6);
        r->reachable_ms = hw_be32(p + 8);
        r->retrans_ms = hw_be32(p + 12);
        return nd_options(p, n, 16, r);
    }
    case 135:
    case 136:
    case 137: {
        uint32_t head = r->type == 137 ? 40 : 24;
        if (n < head) return HW_RMAL_NDP;
        r->flags = r->type == 136 ? p[4] : 0;
        memcpy(r->target, p + 8, 16);
        return nd_options(p, n, head, r);
    }
    default: return HW_RMAL_NDP;
    }
}

static int dhcp4(const uint8_t *p, uint32_t n, struct hw_rec_dhcp *r)
{
    if (n < 240 || hw_be32(p + 236) != 0x63825363) return HW_RMAL_DHCP;
    r->op = p[0];
    r->xid = hw_be32(p + 4);
    if (p[1] == 1 && p[2] == 6) {
        memcpy(r->client_mac, p + 28, 6);
        r->has_client_mac = 1;
    }
    memcpy(r->client_ip, p + 12, 4);
    memcpy(r->offered, p + 16, 4);
    r->has_offered = hw_be32(p + 16) != 0;
    for (uint32_t off = 240; off < n;) {
        uint32_t code = p[off];
        if (code == 255) return 0;
        if (code == 0) {
            off++;
            continue;
        }
        if (off + 2 > n || off + 2 + p[off + 1] > n) return HW_RMAL_DHCP;
        uint32_t len = p[off + 1];
        const uint8_t *o = p + off + 2;
        if (code == 53 && len >= 1) r->msg_type = o[0];
        else if (code == 54 && len == 4) memcpy(r->server_id, o, r->server_id_len = 4);
        else if (code == 50 && len == 4) memcpy(r->requested, o, 4), r->has_requested = 1;
        else if (code == 3 && len >= 4) memcpy(r->router, o, 4), r->has_router = 1;
        if (code == 3 || code == 6) { /* addresses, 4 bytes each */
            uint8_t *k = code == 3 ? &r->n_routers : &r->n_dns;
            for (uint32_t a = 0; a + 4 <= len && *k < HW_DHCP_ADDR_MAX; a += 4, ++*k)
                memcpy(code == 3 ? r->routers[*k] : r->dns[*k], o + a, 4);
        }
        else if (code == 51 && len == 4) r->lease_s = hw_be32(o);
        off += 2 + len;
    }
    return 0;
}

/* A DUID-LLT (1) or DUID-LL (3) over Ethernet (hardware type 1) names a MAC. */
static void duid_mac(const uint8_t *d, uint32_t len, struct hw_rec_dhcp *r)
{
    uint32_t at = 0;
    if (len >= 14 && hw_be16(d) == 1 && hw_be16(d + 2) == 1) at = 8;
    else if (len >= 10 && hw_be16(d) == 3 && hw_be16(d + 2) == 1) at = 4;
    if (!at) return;
    memcpy(r->client_mac, d + at, 6);
    r->has_client_mac = 1;
}

static int dhcp6_options(const uint8_t *p, uint32_t n, uint32_t off, struct hw_rec_dhcp *r, int depth)
{
    while (off + 4 <= n) {
        uint32_t code = hw_be16(p + off), len = hw_be16(p + off + 2);
        if (off + 4 + len > n) return HW_RMAL_DHCP;
        const uint8_t *o = p + off + 4;
        if (code == 1) {
            duid_mac(o, len, r);
        } else if (code == 2) {
            r->server_id_len = (uint8_t)(len < HW_DHCP_ID_MAX ? len : HW_DHCP_ID_MAX);
            memcpy(r->server_id, o, r->server_id_len);
        } else if (code == 23 && depth == 0) { /* DNS recursive name servers */
            for (uint32_t a = 0; a + 16 <= len && r->n_dns < HW_DHCP_ADDR_MAX; a += 16)
                memcpy(r->dns[r->n_dns++], o + a, 16);
        } else if (code == 3 && len >= 12 && depth == 0) { /* IA_NA: IAID, T1, T2, then options */
            int rc = dhcp6_options(o, len, 12, r, 1);
            if (rc) return rc;
        } else if (code == 5 && len >= 24 && depth == 1 && !r->has_offered) { /* IAADDR */
            memcpy(r->offered, o, 16);
            r->lease_s = hw_be32(o + 20);
            r->has_offered = 1;
        }
        off += 4 + len;
    }
    return off == n ? 0 : HW_RMAL_DHCP;
}

int hw_dhcp_parse(const uint8_t *p, uint32_t n, int version, struct hw_rec_dhcp *r)
{
    memset(r, 0, sizeof *r);
    r->version = (uint8_t)version;
    if (version == 4) return dhcp4(p, n, r);
    if (n < 4) return HW_RMAL_DHCP;
    r->msg_type = p[0];
    if (r->msg_type == 12 || r->msg_type == 13) return 0; /* relay messages: not followed */
    r->xid = (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
    return dhcp6_options(p, n, 4, r, 0);
}
