#include "api/handoff.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/unixsock.h"
#include "lib/util.h"

#define ANSWER_MAX 1024

static void close_request(struct handoff_request *req)
{
	for (unsigned i = 0; i < req->nfds; i++)
		if (req->fds[i] >= 0)
			close(req->fds[i]);
	req->nfds = 0;
	if (req->conn >= 0)
		close(req->conn);
	req->conn = -1;
}

static bool is_word(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if ((*s < 'a' || *s > 'z') && *s != '-')
			return false;
	return true;
}

int handoff_accept(int lfd, struct handoff_request *req)
{
	*req = (struct handoff_request){ .conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC) };
	if (req->conn < 0)
		return 1;
	struct timeval tv = { .tv_sec = 1 };
	setsockopt(req->conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ssize_t n = unix_recv_fds(req->conn, req->op, HANDOFF_OP_MAX, req->fds, HANDOFF_MAX_FDS, &req->nfds, 0);
	if (n > 0) {
		req->op[n] = 0;
		if (is_word(req->op))
			return 0;
	}
	vt_err err;
	vt_fail(&err, "a handoff request is one word with at most %d descriptors", HANDOFF_MAX_FDS);
	handoff_answer(req, &err);
	return -1;
}

void handoff_answer(struct handoff_request *req, const vt_err *failure)
{
	char text[ANSWER_MAX];
	int n = failure ? snprintf(text, sizeof(text), "1 %s", failure->msg) : snprintf(text, sizeof(text), "0");
	if (send(req->conn, text, MIN((size_t)n, sizeof(text) - 1), MSG_NOSIGNAL) < 0) {
		/* the client went: nothing to tell */
	}
	close_request(req);
}

int handoff_call(const char *path, const char *op, const int *fds, unsigned nfds, vt_err *err)
{
	cleanup_close int sock = unix_connect(path, err);
	if (sock < 0)
		return -1;
	if (unix_send_fds(sock, op, strlen(op), fds, nfds) < 0)
		return vt_fail_errno(err, errno, "sending '%s' to %s", op, path);
	struct pollfd p = { .fd = sock, .events = POLLIN };
	int ready = poll(&p, 1, HANDOFF_TIMEOUT_MS);
	char answer[ANSWER_MAX + 1];
	ssize_t n = ready > 0 ? read(sock, answer, ANSWER_MAX) : -1;
	if (ready == 0)
		return vt_fail(err, "the VMM did not answer '%s' within %d s", op, HANDOFF_TIMEOUT_MS / 1000);
	if (n <= 0)
		return vt_fail_errno(err, n < 0 ? errno : EPIPE, "the VMM closed %s without an answer", path);
	answer[n] = 0;
	if (!strcmp(answer, "0"))
		return 0;
	return vt_fail(err, "%s", !strncmp(answer, "1 ", 2) ? answer + 2 : answer);
}
