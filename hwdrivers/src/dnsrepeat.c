/* dnsrepeat.c - DNS answer templates: the name-level facts of the last answer
 * sent for each (server, name, type), so that an answer repeating them is
 * marked as a repeat (struct hw_dns_repeat) and Python reads a few fields
 * of it instead of its whole record (hwdrivers.events.DnsRepeat).
 *
 * A template holds facts, never a judgement: what the detectors conclude
 * from an answer also depends on the LAN, the client, the transaction and
 * the history, which Python still judges for every repeat.  So nothing here
 * goes stale with time or with other events: an answer is a repeat exactly
 * when its facts are byte-equal to the template's.
 *
 * Only the simplest exchange can repeat (else the answer goes as it is, and
 * makes no template): a UDP NOERROR answer of one question, not truncated or
 * cut, every record kept, answering the query the gate folded into it (the
 * same client, port, id, name and type; from the server and through the MAC
 * the query went to). */
#include <stdlib.h>
#include <string.h>

#include "hw.h"

#define SLOTS 16384               /* 8-way sets: a new key replaces the set's oldest template (evicted) */
#define WAYS 8
#define ADDR_MAX 8                /* addresses a template holds (more: unfit, sent in full) */
#define CNAME_TEXT_MAX 256        /* CNAME targets' text a template holds */

struct facts {
    uint8_t server[16];
    uint16_t qtype, name_len, n_addr, cname_len;
    uint8_t family;
    char name[HW_DNS_NAME_MAX];
    uint8_t addr[ADDR_MAX][17];   /* length (4 or 16), then the address: sorted, unique */
    char cname[CNAME_TEXT_MAX];   /* the answer section's CNAME targets, in order, each with its length first */
};

struct tmpl {
    uint64_t gen;                 /* 0: empty */
    struct facts f;
};

struct hw_dnsrepeat {
    struct tmpl slot[SLOTS];
};

static _Atomic uint64_t gens;     /* process-wide: a reader keys templates by gen alone, whatever the session */

struct hw_dnsrepeat *hwint_dnsrepeat_create(void) { return calloc(1, sizeof(struct hw_dnsrepeat)); }

void hwint_dnsrepeat_destroy(struct hw_dnsrepeat *t) { free(t); }

/* The query q the gate folded into e is the one e answers, through the same hop. */
static int answers_its_query(const struct hw_event *q, const struct hw_event *e)
{
    const struct hw_rec_dns *a = &e->rec.dns, *d = &q->rec.dns;
    return q->family == e->family && !memcmp(q->src, e->dst, 16) && !memcmp(q->dst, e->src, 16) &&
           q->sport == e->dport && q->dport == e->sport && !memcmp(q->src_mac, e->dst_mac, 6) &&
           !memcmp(q->dst_mac, e->src_mac, 6) && d->id == a->id && d->qtype == a->qtype &&
           d->name_len == a->name_len && !memcmp(d->name, a->name, a->name_len);
}

static int simple_answer(const struct hw_event *e)
{
    const struct hw_rec_dns *d = &e->rec.dns;
    return e->proto == 17 && e->has_rec && !e->rec_status && (d->flags & 0x8000) && !(d->flags & 0x0200) &&
           d->rcode == 0 && d->qdcount == 1 && !d->rr_skipped && !d->cut && d->name_len < HW_DNS_NAME_MAX;
}

static int cmp_addr(const void *a, const void *b) { return memcmp(a, b, 17); }

/* The facts of e (0: more than a template holds); *ttl the least TTL of its A/AAAA answers. */
static int facts_of(const struct hw_event *e, struct facts *f, uint32_t *ttl, int *has_ttl)
{
    const struct hw_rec_dns *d = &e->rec.dns;
    memset(f, 0, offsetof(struct facts, name));
    memcpy(f->server, e->src, 16);
    f->family = e->family;
    f->qtype = d->qtype;
    f->name_len = d->name_len;
    memcpy(f->name, d->name, d->name_len);
    *has_ttl = 0;
    for (unsigned i = 0; i < d->n_rr && i < HW_DNS_RR_MAX; i++) {
        const struct hw_dns_rr *rr = &d->rr[i];
        if (rr->section != HW_DNS_SEC_ANSWER) continue;
        if ((rr->type == 1 || rr->type == 28) && rr->addr_len) {
            if (!*has_ttl || rr->ttl < *ttl) *ttl = rr->ttl;
            *has_ttl = 1;
            uint8_t a[17] = {rr->addr_len};
            memcpy(a + 1, rr->addr, rr->addr_len > 16 ? 16 : rr->addr_len);
            unsigned k = 0;
            while (k < f->n_addr && memcmp(f->addr[k], a, 17)) k++;
            if (k < f->n_addr) continue;                      /* a set: the same address twice is one */
            if (f->n_addr == ADDR_MAX) return 0;
            memcpy(f->addr[f->n_addr++], a, 17);
        } else if (rr->type == 5) {
            if (rr->data_off + rr->data_len > HW_DNS_TEXT_MAX || rr->data_len > 255 ||
                f->cname_len + 1u + rr->data_len > CNAME_TEXT_MAX)
                return 0;
            f->cname[f->cname_len++] = (char)rr->data_len;
            memcpy(f->cname + f->cname_len, d->text + rr->data_off, rr->data_len);
            f->cname_len += rr->data_len;
        } else if (rr->type == 1 || rr->type == 28) {
            return 0;                                         /* an address record without its address */
        }
    }
    qsort(f->addr, f->n_addr, 17, cmp_addr);
    return 1;
}

static int same(const struct facts *a, const struct facts *b)
{
    return !memcmp(a, b, offsetof(struct facts, name)) && !memcmp(a->name, b->name, a->name_len) &&
           !memcmp(a->addr, b->addr, sizeof a->addr[0] * a->n_addr) && !memcmp(a->cname, b->cname, a->cname_len);
}

static int same_key(const struct facts *a, const struct facts *b)
{
    return a->family == b->family && a->qtype == b->qtype && a->name_len == b->name_len &&
           !memcmp(a->server, b->server, 16) && !memcmp(a->name, b->name, a->name_len);
}

static uint32_t set_of(const struct facts *f)
{
    uint64_t h = 1469598103934665603ULL;                      /* FNV-1a over server, type and name */
    for (unsigned i = 0; i < 16; i++) h = (h ^ f->server[i]) * 1099511628211ULL;
    h = (h ^ f->qtype) * 1099511628211ULL;
    for (unsigned i = 0; i < f->name_len; i++) h = (h ^ (uint8_t)f->name[i]) * 1099511628211ULL;
    return ((uint32_t)(h ^ (h >> 32)) & (SLOTS / WAYS - 1)) * WAYS;
}

/* The template of f's key in its set, else the one to replace (empty or the oldest). */
static struct tmpl *find(struct hw_dnsrepeat *t, const struct facts *f)
{
    struct tmpl *set = &t->slot[set_of(f)], *old = set;
    for (unsigned i = 0; i < WAYS; i++) {
        if (set[i].gen && same_key(&set[i].f, f)) return &set[i];
        if (set[i].gen < old->gen) old = &set[i];
    }
    return old;
}

void hwint_dnsrepeat_mark(struct hw_dnsrepeat *t, struct hw_dnsgate_counters *n, const struct hw_event *q,
                          struct hw_event *e)
{
    struct hw_dns_repeat *r = &e->rec.dnsfold.rep;
    memset(r, 0, sizeof *r);
    if (!t || !q || !simple_answer(e) || !answers_its_query(q, e)) return;
    struct facts f;
    uint32_t ttl = 0;
    int has_ttl;
    if (!facts_of(e, &f, &ttl, &has_ttl)) {
        n->unfit++;
        return;
    }
    struct tmpl *s = find(t, &f);
    if (s->gen && same(&s->f, &f)) {
        r->gen = s->gen;
        r->ttl = ttl;
        r->has_ttl = (uint8_t)has_ttl;
        r->id = e->rec.dns.id;
        n->repeats++;
        return;
    }
    if (s->gen) {
        if (same_key(&s->f, &f)) n->changed++;
        else n->evicted++;
    }
    memcpy(&s->f, &f, offsetof(struct facts, name));
    memcpy(s->f.name, f.name, f.name_len);
    memcpy(s->f.addr, f.addr, sizeof f.addr);
    memcpy(s->f.cname, f.cname, f.cname_len);
    s->gen = ++gens;
    r->defines = s->gen;
    n->templates++;
}
