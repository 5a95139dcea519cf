/* topn.c - the N largest of a stream by a 64-bit key: a min-heap of the best
 * so far, sorted once at the end.  Used for top flows and top talkers. */
#include <stdlib.h>
#include <string.h>

#include "hw.h"

#define ELEM(t, i) ((uint8_t *)(t)->out + (size_t)(i) * (t)->size)

static void swap(struct hw_topn *t, int a, int b)
{
    uint8_t tmp[HW_TOPN_ELEM_MAX];
    memcpy(tmp, ELEM(t, a), t->size);
    memcpy(ELEM(t, a), ELEM(t, b), t->size);
    memcpy(ELEM(t, b), tmp, t->size);
}

void hwint_topn_push(struct hw_topn *t, const void *e)
{
    if (t->max <= 0) return;
    if (t->n < t->max) {
        int k = t->n++;
        memcpy(ELEM(t, k), e, t->size);
        while (k > 0 && t->key(ELEM(t, (k - 1) / 2)) > t->key(ELEM(t, k))) {
            swap(t, k, (k - 1) / 2);
            k = (k - 1) / 2;
        }
        return;
    }
    if (t->key(e) <= t->key(ELEM(t, 0))) return;
    memcpy(ELEM(t, 0), e, t->size);
    for (int k = 0;;) {
        int l = 2 * k + 1, r = l + 1, m = k;
        if (l < t->n && t->key(ELEM(t, l)) < t->key(ELEM(t, m))) m = l;
        if (r < t->n && t->key(ELEM(t, r)) < t->key(ELEM(t, m))) m = r;
        if (m == k) break;
        swap(t, k, m);
        k = m;
    }
}

/* Heap order to descending order: pop the minimum to the end, n times. */
int hwint_topn_finish(struct hw_topn *t)
{
    int n = t->n;
    for (int end = n - 1; end > 0; end--) {
        swap(t, 0, end);
        for (int k = 0;;) {
            int l = 2 * k + 1, r = l + 1, m = k;
            if (l < end && t->key(ELEM(t, l)) < t->key(ELEM(t, m))) m = l;
            if (r < end && t->key(ELEM(t, r)) < t->key(ELEM(t, m))) m = r;
            if (m == k) break;
            swap(t, k, m);
            k = m;
        }
    }
    return n;
}
