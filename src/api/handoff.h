/* Descriptors handed to a running VMM by its owner: what a jailed VMM cannot open itself (it reaches no host
 * path). The VMM listens on a 0600 Unix socket in the VM's directory, made before the jail closes, beside the
 * API's; the `virtus vm` verbs are its clients.
 *
 * One request per connection: the client sends "OP" (a word, at most HANDOFF_OP_MAX bytes) with up to
 * HANDOFF_MAX_FDS descriptors (SCM_RIGHTS) in one message; the VMM answers "0" or "1 MESSAGE" and closes.
 * Ops: "snapshot" with the state file and the memory file, both new and empty (docs/snapshot.md).
 * HTTP cannot carry descriptors, hence a socket of its own; the API stays Firecracker's. */
#ifndef VIRTUS_API_HANDOFF_H
#define VIRTUS_API_HANDOFF_H

#include "lib/err.h"

#define HANDOFF_SOCKET "handoff.sock"
#define HANDOFF_OP_MAX 32
#define HANDOFF_MAX_FDS 2
#define HANDOFF_TIMEOUT_MS 120000 /* a snapshot writes the guest's memory */

struct handoff_request {
	int conn;                  /* the client's connection: handoff_answer closes it */
	char op[HANDOFF_OP_MAX + 1];
	int fds[HANDOFF_MAX_FDS];
	unsigned nfds;
};

/* Accept one client on the listening socket lfd and read its request (within a second: the client sends it
 * at once). Returns 0 with req filled, 1 when there was nobody to accept, -1 on a bad request (answered,
 * nothing kept). */
int handoff_accept(int lfd, struct handoff_request *req);
/* Answer (failure NULL: done), close the connection and any descriptor still in req (set to -1 when kept). */
void handoff_answer(struct handoff_request *req, const vt_err *failure);

/* The client: send op with fds to the VMM listening at path, and wait for its answer. */
int handoff_call(const char *path, const char *op, const int *fds, unsigned nfds, vt_err *err);

#endif
