/* Stream socket addresses written as URLs, as migration takes them: "tcp:HOST:PORT" (HOST an IPv4 address,
 * a bracketed IPv6 address or, where names may be resolved, a host name) or "unix:PATH". */
#ifndef VIRTUS_LIB_SOCK_URL_H
#define VIRTUS_LIB_SOCK_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/err.h"

/* url with a host name replaced by its first address, into out (the VMM, sandboxed, takes numbers only). */
int sock_url_resolve(const char *url, char *out, size_t len, vt_err *err);
/* Connect to url within timeout_ms (blocking, close-on-exec); numeric_only refuses host names. */
int sock_url_connect(const char *url, int timeout_ms, bool numeric_only, vt_err *err);
/* Listen on url (close-on-exec, blocking accept); unix: the path must not exist. */
int sock_url_listen(const char *url, vt_err *err);

#endif
