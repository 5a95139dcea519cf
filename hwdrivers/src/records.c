/* records.c - which record an event carries, filled from the packet (not
 * the snippet, which may be shorter) as the event is pushed, and counted. */
#include <string.h>

#include "hw.h"

void hwint_records_fill(struct hw_rec_counters *c, int kind, const struct hw_meta *m, struct hw_event *e)
{
    int rc;
    switch (kind) {
    case HW_EV_DNS:
        rc = hw_dns_parse(m->pay, m->pay_cap, m->proto == 6, &e->rec.dns);
        /* cut by the snap length: what came before the cut stands (as tshark shows it) */
        if (rc && m->pay_cap < m->pay_len && m->pay_cap >= (m->proto == 6 ? 6u : 4u)) {
            e->rec.dns.cut = 1;
            rc = 0;
        }
        break;
    case HW_EV_TLS: rc = hw_tls_parse(m->pay, m->pay_cap, &e->rec.tls); break;
    case HW_EV_HTTP: rc = hw_http_parse(m->pay, m->pay_cap, &e->rec.http); break;
    case HW_EV_ARP: rc = hw_arp_parse(m->arp, 28, &e->rec.arp); break; /* parse.c checked the 28 bytes */
    /* NDP: from the ICMPv6 type byte, 8 bytes before the payload parse.c set */
    case HW_EV_NDP: rc = hw_ndp_parse(m->pay - 8, m->pay_cap + 8, &e->rec.ndp); break;
    case HW_EV_DHCP:
        rc = hw_dhcp_parse(m->pay, m->pay_cap, m->sport == 67 || m->sport == 68 ? 4 : 6, &e->rec.dhcp);
        break;
    default: return;
    }
    e->has_rec = 1;
    e->rec_status = (uint8_t)rc;
    if (rc) c->malformed[rc]++;
    else c->parsed[kind]++;
}

static const char *const names[HW_RMAL_COUNT] = {
    "none", "dns_header", "dns_name", "dns_question", "dns_rr", "dns_rdata",
    "tls_record", "tls_hello", "tls_certificate",
    "arp", "ndp", "dhcp", "http",
};

const char *hw_record_malformed_name(int r) { return r >= 0 && r < HW_RMAL_COUNT ? names[r] : NULL; }
