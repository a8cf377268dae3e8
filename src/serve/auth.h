/* `virtus serve`'s access control: the login token (a file of 64 hex digits, mode 0600) and the limit on
 * wrong tokens per client address. */
#ifndef VIRTUS_SERVE_AUTH_H
#define VIRTUS_SERVE_AUTH_H

#include <pthread.h>
#include <stdbool.h>
#include <time.h>

#include "lib/err.h"

#define SERVE_TOKEN_LEN 64
#define SERVE_FAILS_ALLOWED 5      /* wrong tokens from one address within a window before it is refused */
#define SERVE_FAIL_WINDOW_S 60
#define SERVE_LIMITER_SLOTS 256    /* addresses remembered; the oldest window is forgotten first */

/* The token in path, or a new random one written there (parent directories made 0700). A file that others
 * can read or write, or that is not 64 hex digits, is an error naming it: it is not silently replaced. */
int serve_token_load(const char *path, char token[SERVE_TOKEN_LEN + 1], vt_err *err);
/* Whether given (NUL-terminated, may be NULL) is the token; takes the same time wherever they differ. */
bool serve_token_matches(const char *token, const char *given);

struct serve_limiter {
	pthread_mutex_t lock;
	struct {
		char addr[48];        /* the client's address as text; "" unused */
		time_t since;         /* start of its window */
		unsigned fails;
	} slot[SERVE_LIMITER_SLOTS];
};

void serve_limiter_init(struct serve_limiter *l);
/* Whether addr has used up its wrong tokens in the current window. */
bool serve_limiter_blocked(struct serve_limiter *l, const char *addr, time_t now);
/* Count one wrong token from addr. */
void serve_limiter_fail(struct serve_limiter *l, const char *addr, time_t now);

#endif
