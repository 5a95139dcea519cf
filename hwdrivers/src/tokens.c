/* tokens.c - the honeytoken matcher.
 *
 * Every registered token is at least HW_TOKEN_MIN bytes, so a match starts
 * with a known pair of bytes: a 64 K-bit table of first pairs lets the scan
 * look at each payload position with one load and a bit test, and only a
 * position whose pair starts a token goes on to the (short) list of tokens
 * with that pair.  Random honeytokens make those lists a token or two long.
 * A session with no token set never calls in here. */
#include <stdlib.h>
#include <string.h>

#include "hw.h"

struct hw_tokens {
    uint64_t pairs[65536 / 64];   /* bit (a << 8 | b): some token starts with a, b */
    uint32_t *bucket_start;       /* 65536 + 1 offsets into order[] by first pair */
    uint32_t *order;              /* token indices grouped by first pair */
    uint32_t n;
    uint32_t *len;
    uint8_t *bytes;               /* token i at bytes + i * HW_TOKEN_MAX */
};

static inline uint32_t pair_of(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }

void hwint_tokens_destroy(struct hw_tokens *t)
{
    if (!t) return;
    free(t->bucket_start);
    free(t->order);
    free(t->len);
    free(t->bytes);
    free(t);
}

int hwint_tokens_build(const uint8_t *const *tokens, const uint32_t *lens, int n, struct hw_tokens **out,
                       char *errbuf)
{
    *out = NULL;
    if (n < 0 || n > HW_TOKENS_MAX) return hwint_err(errbuf, HW_E_ARG, "%d tokens: at most %d", n, HW_TOKENS_MAX);
    for (int i = 0; i < n; i++)
        if (!tokens[i] || lens[i] < HW_TOKEN_MIN || lens[i] > HW_TOKEN_MAX)
            return hwint_err(errbuf, HW_E_ARG, "token %d is %u bytes: tokens are %d to %d bytes", i,
                             tokens[i] ? lens[i] : 0, HW_TOKEN_MIN, HW_TOKEN_MAX);
    if (n == 0) return HW_OK;
    struct hw_tokens *t = calloc(1, sizeof *t);
    if (!t) return hwint_err(errbuf, HW_E_NOMEM, "out of memory");
    t->n = (uint32_t)n;
    t->bucket_start = calloc(65536 + 1, sizeof *t->bucket_start);
    t->order = malloc((size_t)n * sizeof *t->order);
    t->len = malloc((size_t)n * sizeof *t->len);
    t->bytes = malloc((size_t)n * HW_TOKEN_MAX);
    uint32_t *fill = calloc(65536, sizeof *fill);
    if (!t->bucket_start || !t->order || !t->len || !t->bytes || !fill) {
        free(fill);
        hwint_tokens_destroy(t);
        return hwint_err(errbuf, HW_E_NOMEM, "out of memory for %d tokens", n);
    }
    for (int i = 0; i < n; i++) {
        t->len[i] = lens[i];
        memcpy(t->bytes + (size_t)i * HW_TOKEN_MAX, tokens[i], lens[i]);
        uint32_t pr = pair_of(tokens[i]);
        t->pairs[pr >> 6] |= 1ULL << (pr & 63);
        t->bucket_start[pr + 1]++;
    }
    for (uint32_t k = 0; k < 65536; k++) t->bucket_start[k + 1] += t->bucket_start[k];
    for (int i = 0; i < n; i++) {
        uint32_t pr = pair_of(tokens[i]);
        t->order[t->bucket_start[pr] + fill[pr]++] = (uint32_t)i;
    }
    free(fill);
    *out = t;
    return HW_OK;
}

/* Offset of the first token found in p[0..n), or -1. */
int hwint_tokens_find(const struct hw_tokens *t, const uint8_t *p, uint32_t n)
{
    if (n < HW_TOKEN_MIN) return -1;
    for (uint32_t i = 0; i + HW_TOKEN_MIN <= n; i++) {
        uint32_t pr = pair_of(p + i);
        if (HW_LIKELY(!(t->pairs[pr >> 6] & (1ULL << (pr & 63))))) continue;
        for (uint32_t k = t->bucket_start[pr]; k < t->bucket_start[pr + 1]; k++) {
            uint32_t id = t->order[k], len = t->len[id];
            if (len <= n - i && !memcmp(p + i, t->bytes + (size_t)id * HW_TOKEN_MAX, len)) return (int)i;
        }
    }
    return -1;
}
