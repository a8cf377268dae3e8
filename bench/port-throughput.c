/* sink PORT: accept connections; count each one's bytes to EOF, reply with the count (8 bytes, decimal
 * text + newline), exit after the first non-empty one. src ADDR PORT BYTES: send BYTES, half-close, read the
 * reply; print "BYTES_SENT COUNT_REPLIED SECONDS"; exit 1 if there is no reply. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static char buf[1 << 18];
int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "sink")) {
		int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
		setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(l, (void *)&a, sizeof a) || listen(l, 4)) { perror("sink: bind/listen"); return 1; }
		for (;;) {
			int c = accept(l, 0, 0);
			if (c < 0) { perror("sink: accept"); return 1; }
			long long n = 0; ssize_t r;
			while ((r = read(c, buf, sizeof buf)) > 0) n += r;
			int k = snprintf(buf, 64, "%lld\n", n);
			if (write(c, buf, k) < 0) {}
			close(c);
			if (n > 0) { printf("%lld\n", n); return 0; }
		}
	}
	if (argc == 5 && !strcmp(argv[1], "src")) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[3]))};
		inet_pton(AF_INET, argv[2], &a.sin_addr);
		long long want = atoll(argv[4]), sent = 0;
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (connect(s, (void *)&a, sizeof a)) return 1;
		while (sent < want) {
			size_t k = want - sent < (long long)sizeof buf ? (size_t)(want - sent) : sizeof buf;
			ssize_t w = write(s, buf, k);
			if (w <= 0) return 1;
			sent += w;
		}
		shutdown(s, SHUT_WR);
		char rep[64]; ssize_t r, got = 0;
		while (got < 63 && (r = read(s, rep + got, 63 - got)) > 0) got += r;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (got <= 0) return 1;
		rep[got] = 0;
		printf("%lld %lld %.6f\n", sent, atoll(rep), (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
		return 0;
	}
	fprintf(stderr, "usage: tp sink PORT | tp src ADDR PORT BYTES\n");
	return 2;
}
