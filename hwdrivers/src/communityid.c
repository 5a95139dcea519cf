/* communityid.c - the Corelight community ID (v1) of a flow: "1:" and the
 * base64 of SHA-1(seed, lower endpoint address, higher endpoint address,
 * protocol, 0, lower port, higher port), the endpoints ordered by address
 * then port, so that both directions of a flow get the same id (the
 * reference: github.com/corelight/community-id-spec).  Protocols with ports
 * (TCP, UDP, SCTP) and those without; ICMP's type/code mapping is not done
 * (HW_E_ARG: the caller leaves the id out rather than write a wrong one). */
#include <string.h>

/* SHA-1's own functions (deprecated in OpenSSL 3 for the EVP interface, but kept): EVP's provider lookup
 * and the context it allocates, cleanses and frees per digest cost 0.21 us an id, these 0.09 us (SHA-NI),
 * when the protocol logs make one per record */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_NI 1
#endif

#include "logger.h"

/* The hashed message (at most 40 bytes) into msg; its length, 0 when the flow has no id (ICMP, no family). */
static size_t message(const struct hwint_cid_key *k, uint8_t *msg)
{
    size_t alen = k->family == 6 ? 16 : k->family == 4 ? 4 : 0;
    if (!alen || k->proto == 1 || k->proto == 58) return 0;
    int ports = k->proto == 6 || k->proto == 17 || k->proto == 132;
    int c = memcmp(k->src, k->dst, alen);
    int swap = c > 0 || (c == 0 && ports && k->sport > k->dport);
    const uint8_t *a = swap ? k->dst : k->src, *b = swap ? k->src : k->dst;
    uint16_t pa = swap ? k->dport : k->sport, pb = swap ? k->sport : k->dport;
    size_t n = 0;
    msg[n++] = (uint8_t)(k->seed >> 8);
    msg[n++] = (uint8_t)k->seed;
    memcpy(msg + n, a, alen), n += alen;
    memcpy(msg + n, b, alen), n += alen;
    msg[n++] = k->proto;
    msg[n++] = 0;
    if (ports) {
        msg[n++] = (uint8_t)(pa >> 8), msg[n++] = (uint8_t)pa;
        msg[n++] = (uint8_t)(pb >> 8), msg[n++] = (uint8_t)pb;
    }
    return n;
}

/* base64's digit of x (0-63), and a table of the two digits of every 12 bits (8 KB): three bytes are two
 * lookups, where a digit each was a fifth of a conn line's community ID */
#define B64(x) ((x) < 26 ? 'A' + (x) : (x) < 52 ? 'a' + (x) - 26 : (x) < 62 ? '0' + (x) - 52 : (x) == 62 ? '+' : '/')
#define P1(h, l) {B64(h), B64(l)}
#define P4(h, l) P1(h, l), P1(h, l + 1), P1(h, l + 2), P1(h, l + 3)
#define P16(h, l) P4(h, l), P4(h, l + 4), P4(h, l + 8), P4(h, l + 12)
#define P64(h) P16(h, 0), P16(h, 16), P16(h, 32), P16(h, 48)
#define H4(h) P64(h), P64(h + 1), P64(h + 2), P64(h + 3)
#define H16(h) H4(h), H4(h + 4), H4(h + 8), H4(h + 12)
static const char pairs64[4096][2] = {H16(0), H16(16), H16(32), H16(48)};
#undef B64
#undef P1
#undef P4
#undef P16
#undef P64
#undef H4
#undef H16

void hwint_cid_encode(const uint8_t *md, char *out)
{
    *out++ = '1', *out++ = ':';
    for (int i = 0; i < 18; i += 3, out += 4) {
        uint32_t v = (uint32_t)md[i] << 16 | (uint32_t)md[i + 1] << 8 | md[i + 2];
        memcpy(out, pairs64[v >> 12], 2);
        memcpy(out + 2, pairs64[v & 4095], 2);
    }
    uint32_t v = (uint32_t)md[18] << 16 | (uint32_t)md[19] << 8;
    memcpy(out, pairs64[v >> 12], 2);
    out[2] = pairs64[v & 4095][0], out[3] = '=', out[4] = 0;
}

/* SHA-1 of the n bytes through SHA1_Init/Update/Final (SHA1() goes through EVP: twice the cost); 0 failed */
static int digest(const uint8_t *msg, size_t n, uint8_t *md)
{
    SHA_CTX ctx;
    return SHA1_Init(&ctx) && SHA1_Update(&ctx, msg, n) && SHA1_Final(md, &ctx);
}

#if HAVE_SHA_NI
/* Two one-block digests with the SHA instructions, their rounds interleaved: a digest's 80 rounds are one
 * chain of dependent instructions (46 ns on this CPU), so a second chain beside it comes nearly free (24 ns
 * a digest).  Each block holds its message padded (at most 55 bytes). */
__attribute__((target("sha,ssse3,sse4.1"))) static void sha1_two(const uint8_t block[2][64], uint8_t md[2][20])
{
    const __m128i swap = _mm_set_epi64x(0x0001020304050607ULL, 0x08090a0b0c0d0e0fULL);
    const __m128i abcd0 = _mm_set_epi32(0x67452301, (int)0xefcdab89, (int)0x98badcfe, 0x10325476);
    const __m128i e0 = _mm_set_epi32((int)0xc3d2e1f0, 0, 0, 0);
    __m128i w[2][4], abcd[2], prev[2], e[2];
    for (int k = 0; k < 2; k++) {
        abcd[k] = prev[k] = abcd0;
        for (int i = 0; i < 4; i++)
            w[k][i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(block[k] + 16 * i)), swap);
    }
    /* 20 groups of 4 rounds: a group's words from the four groups' before (msg1, xor, msg2), its E from the
     * ABCD before the group ahead (nexte); the round function f (an immediate) changes every 5 groups */
#define GROUP(g, f)                                                                                             \
    for (int k = 0; k < 2; k++) {                                                                               \
        if ((g) >= 4)                                                                                           \
            w[k][(g) % 4] = _mm_sha1msg2_epu32(                                                                 \
                _mm_xor_si128(_mm_sha1msg1_epu32(w[k][(g) % 4], w[k][((g) + 1) % 4]), w[k][((g) + 2) % 4]),     \
                w[k][((g) + 3) % 4]);                                                                           \
        e[k] = (g) ? _mm_sha1nexte_epu32(prev[k], w[k][(g) % 4]) : _mm_add_epi32(e0, w[k][0]);                 \
        prev[k] = abcd[k];                                                                                      \
        abcd[k] = _mm_sha1rnds4_epu32(abcd[k], e[k], f);                                                        \
    }
    GROUP(0, 0) GROUP(1, 0) GROUP(2, 0) GROUP(3, 0) GROUP(4, 0)
    GROUP(5, 1) GROUP(6, 1) GROUP(7, 1) GROUP(8, 1) GROUP(9, 1)
    GROUP(10, 2) GROUP(11, 2) GROUP(12, 2) GROUP(13, 2) GROUP(14, 2)
    GROUP(15, 3) GROUP(16, 3) GROUP(17, 3) GROUP(18, 3) GROUP(19, 3)
#undef GROUP
    for (int k = 0; k < 2; k++) {
        e[k] = _mm_sha1nexte_epu32(prev[k], e0);
        _mm_storeu_si128((__m128i *)md[k], _mm_shuffle_epi8(_mm_add_epi32(abcd[k], abcd0), swap));
        uint32_t last = (uint32_t)_mm_extract_epi32(e[k], 3);       /* big-endian words: the digest's bytes */
        md[k][16] = (uint8_t)(last >> 24), md[k][17] = (uint8_t)(last >> 16);
        md[k][18] = (uint8_t)(last >> 8), md[k][19] = (uint8_t)last;
    }
}

static int sha_ni(void)
{
    static int known = -1;
    if (known < 0) {
        unsigned a, b, c, d;
        int sse = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_SSE4_1) && (c & bit_SSSE3);
        known = sse && __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b & bit_SHA);
    }
    return known;
}
#endif

void hwint_community_md2(const struct hwint_cid_key key[2], uint8_t md[2][20], int rc[2])
{
    uint8_t block[2][64];
    memset(block[0], 0, 64);        /* a block at a time: 128 bytes at once were a rep stos, slow to start */
    memset(block[1], 0, 64);
    size_t n[2] = {message(&key[0], block[0]), message(&key[1], block[1])};
#if HAVE_SHA_NI
    if (n[0] && n[1] && sha_ni()) {
        for (int k = 0; k < 2; k++) {
            block[k][n[k]] = 0x80;          /* the padding: a one bit, zeros, the length in bits */
            block[k][62] = (uint8_t)(n[k] * 8 >> 8), block[k][63] = (uint8_t)(n[k] * 8);
        }
        sha1_two((const uint8_t (*)[64])block, md);
        rc[0] = rc[1] = 0;
        return;
    }
#endif
    for (int k = 0; k < 2; k++) rc[k] = !n[k] || !digest(block[k], n[k], md[k]) ? HW_E_ARG : 0;
}

int hwint_community_md(const struct hwint_cid_key *k, uint8_t *md)
{
    uint8_t msg[40];
    size_t n = message(k, msg);
    return !n || !digest(msg, n, md) ? HW_E_ARG : 0;
}

int hw_community_id(int family, const uint8_t *src, const uint8_t *dst, uint8_t proto, uint16_t sport,
                    uint16_t dport, uint16_t seed, char *out)
{
    struct hwint_cid_key k = {family, src, dst, proto, sport, dport, seed};
    uint8_t md[SHA_DIGEST_LENGTH];
    if (hwint_community_md(&k, md)) return HW_E_ARG;
    hwint_cid_encode(md, out);
    return 0;
}
