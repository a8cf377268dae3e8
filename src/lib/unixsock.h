/* Unix stream sockets by path: the VM API's and the console's. */
#ifndef VIRTUS_LIB_UNIXSOCK_H
#define VIRTUS_LIB_UNIXSOCK_H

#include <sys/un.h>

#include "lib/err.h"

/* path as a sockaddr; an empty path or one longer than sun_path holds is an error naming it. */
int unix_socket_addr(const char *path, struct sockaddr_un *addr, vt_err *err);
/* Listen at path (mode 0600, close-on-exec, non-blocking). A socket file nobody listens on is replaced;
 * one that answers is "in use"; anything else at path is left alone and is an error. */
int unix_listen(const char *path, int backlog, vt_err *err);
/* Connect (blocking, close-on-exec); on failure errno is the connect's. */
int unix_connect(const char *path, vt_err *err);

#endif
