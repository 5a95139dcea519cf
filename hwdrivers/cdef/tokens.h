/* tokens.h - honeytoken search: the C core looks for registered byte strings
 * in every IP payload and queues a "token" event (HW_EV_TOKEN) for a packet
 * that carries one.  The event's snippet starts up to HW_TOKEN_CONTEXT bytes
 * before the match, so the token is always inside it. */

#define HW_TOKEN_MIN 4        /* shortest token: shorter ones would match noise */
#define HW_TOKEN_MAX 256      /* longest token */
#define HW_TOKENS_MAX 65536   /* tokens registered at once */
#define HW_TOKEN_CONTEXT 256  /* payload bytes kept before a match */

/* Replace the registered tokens (n = 0 clears them; nothing is searched then).
 * Safe while hw_session_run runs in another thread: the new set applies from
 * the next batch.  HW_E_ARG for a bad length or count. */
int hw_tokens_set(struct hw_session *s, const uint8_t *const *tokens, const uint32_t *lens, int n, char *errbuf);
