/* Unix stream sockets by path: the VM API's and the console's. */
#ifndef VIRTUS_LIB_UNIXSOCK_H
#define VIRTUS_LIB_UNIXSOCK_H

#include <sys/types.h>
#include <sys/un.h>

#include "lib/err.h"

/* path as a sockaddr; an empty path or one longer than sun_path holds is an error naming it. */
int unix_socket_addr(const char *path, struct sockaddr_un *addr, vt_err *err);
/* Listen at path (mode 0600, close-on-exec, non-blocking). A socket file nobody listens on is replaced;
 * one that answers is "in use"; anything else at path is left alone and is an error. */
int unix_listen(const char *path, int backlog, vt_err *err);
/* Connect (blocking, close-on-exec); on failure errno is the connect's. */
int unix_connect(const char *path, vt_err *err);

/* One message of len bytes with nfds descriptors (SCM_RIGHTS; nfds 0 sends none), MSG_NOSIGNAL. */
ssize_t unix_send_fds(int sock, const void *buf, size_t len, const int *fds, unsigned nfds);
/* One message into buf and up to max descriptors (close-on-exec; more are closed). Returns its length, 0 at
 * the end, -1 on an error or a truncated message (the caller closes the *nfds that came). flags: recvmsg's. */
ssize_t unix_recv_fds(int sock, void *buf, size_t len, int *fds, unsigned max, unsigned *nfds, int flags);

#endif
