/* A Unix socket path as a sockaddr, shared by the API's server and client. */
#ifndef VIRTUS_API_UNIX_ADDR_H
#define VIRTUS_API_UNIX_ADDR_H

#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "lib/err.h"

static inline int api_unix_addr(const char *path, struct sockaddr_un *addr, vt_err *err)
{
	size_t len = strlen(path);
	if (len == 0 || len >= sizeof(addr->sun_path))
		return vt_fail(err, "API socket path '%s' is empty or longer than %zu bytes", path,
			       sizeof(addr->sun_path) - 1);
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	memcpy(addr->sun_path, path, len + 1);
	return 0;
}

#endif
