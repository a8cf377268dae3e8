/* Container networking against the real kernel (root only; skips otherwise). A "container" is a forked child
 * in a new network namespace that answers every TCP connection on port 80 with its name. Checked from the
 * host: its address, a published port on 127.0.0.1 and on the host's own address, the nftables rules keyed
 * by its id, two containers reaching each other, the host's loopback-only service out of reach, detach and
 * gc after a crash removing rules, veth and lease, and a taken port refused by name. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <nftables/libnftables.h>

#include "container/net.h"

#define LEASE_DIR "/run/virtus-net/leases"

struct ctr {
	char id[64];
	pid_t pid;
	struct cnet_lease lease;
	struct cnet_config cfg;
	struct cnet_port ports[2];
};

static char store[64];
/* What a failed test left running, for the group teardown: ids to detach, container pids to kill. */
static char started_ids[16][64];
static pid_t started_pids[16];
static size_t n_started;
static char record_made[200]; /* the container record gc_after_crash makes, removed by teardown too */

/* The container's body: a namespace of its own and a TCP server on port 80 answering its name. */
static void serve(const char *name, int ready_fd)
{
	if (unshare(CLONE_NEWNET) < 0)
		_exit(1);
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(80) };
	int one = 1;
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 16) < 0)
		_exit(1);
	if (write(ready_fd, "r", 1) != 1)
		_exit(1);
	for (;;) {
		int c = accept(s, NULL, NULL);
		if (c < 0)
			continue;
		if (write(c, name, strlen(name)) < 0) {
			/* the client went away */
		}
		close(c);
	}
}

static pid_t spawn_ctr(const char *name)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Like a real container's exec: no copies of the host's port reservations. */
		close(p[0]);
		if (p[1] > 3)
			close_range(3, (unsigned)p[1] - 1, 0);
		close_range((unsigned)p[1] + 1, ~0u, 0);
		serve(name, p[1]);
	}
	close(p[1]);
	char c;
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	return pid;
}

static void kill_ctr(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* Connect to addr:port (1 s at most) and return what the server says, "" on failure. */
static const char *fetch(const char *addr, unsigned port, char *buf, size_t cap)
{
	buf[0] = '\0';
	int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, addr, &sa.sin_addr);
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
		goto out;
	struct pollfd pfd = { .fd = s, .events = POLLIN };
	size_t n = 0;
	while (n + 1 < cap && poll(&pfd, 1, 1000) == 1) {
		ssize_t r = read(s, buf + n, cap - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
out:
	close(s);
	return buf;
}

/* fetch(), from inside the network namespace of pid. */
static const char *fetch_from(pid_t pid, const char *addr, unsigned port, char *buf, size_t cap)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t child = fork();
	if (child == 0) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
		int ns = open(path, O_RDONLY);
		if (ns < 0 || setns(ns, CLONE_NEWNET) < 0)
			_exit(1);
		char b[128];
		fetch(addr, port, b, sizeof(b));
		if (write(p[1], b, strlen(b)) < 0)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	ssize_t n = read(p[0], buf, cap - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(p[0]);
	waitpid(child, NULL, 0);
	return buf;
}

static char *nft_list(void)
{
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	nft_ctx_buffer_output(ctx);
	nft_ctx_buffer_error(ctx);
	char *out = NULL;
	if (nft_run_cmd_from_buffer(ctx, "list table ip virtus") == 0)
		out = strdup(nft_ctx_get_output_buffer(ctx));
	else
		out = strdup("");
	nft_ctx_free(ctx);
	return out;
}

static bool rules_of(const char *id)
{
	char needle[128];
	snprintf(needle, sizeof(needle), "comment \"virtus:%s\"", id);
	char *l = nft_list();
	bool found = strstr(l, needle) != NULL;
	free(l);
	return found;
}

static bool lease_of(const char *id)
{
	DIR *d = opendir(LEASE_DIR);
	if (!d)
		return false;
	bool found = false;
	struct dirent *e;
	while (!found && (e = readdir(d))) {
		char path[300], buf[4096] = "";
		snprintf(path, sizeof(path), LEASE_DIR "/%s", e->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);
		buf[n] = '\0';
		fclose(f);
		char line[80];
		snprintf(line, sizeof(line), "\n%s\n", id);
		found = strstr(buf, line) != NULL;
	}
	closedir(d);
	return found;
}

static bool veth_of(const char *id)
{
	char name[16];
	cnet_veth_name(id, name);
	return if_nametoindex(name) != 0;
}

/* A host address that is not loopback nor the bridge's, or "" when the host has none. */
static void host_address(char out[INET_ADDRSTRLEN])
{
	struct ifaddrs *ifa, *i;
	out[0] = '\0';
	if (getifaddrs(&ifa) < 0)
		return;
	for (i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET || strcmp(i->ifa_name, "lo") == 0 ||
		    strcmp(i->ifa_name, "virtus0") == 0 || out[0])
			continue;
		inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, out, INET_ADDRSTRLEN);
	}
	freeifaddrs(ifa);
}

static void ctr_start_mode(struct ctr *c, enum cnet_mode mode, const char *name, const char *port_spec,
			   bool expect_ok, vt_err *err)
{
	snprintf(c->id, sizeof(c->id), "cnetlive-%d-%s", (int)getpid(), name);
	c->cfg = (struct cnet_config){ .mode = mode, .ports = c->ports };
	if (port_spec) {
		assert_int_equal(cnet_parse_port(port_spec, &c->ports[0], err), 0);
		c->cfg.n_ports = 1;
	}
	int rc = cnet_prepare(store, c->id, &c->cfg, &c->lease, err);
	if (!expect_ok) {
		assert_int_equal(rc, -1);
		c->pid = 0;
		return;
	}
	if (rc < 0)
		fail_msg("prepare: %s", err->msg);
	c->pid = spawn_ctr(name);
	if (n_started < 16) {
		snprintf(started_ids[n_started], 64, "%s", c->id);
		started_pids[n_started++] = c->pid;
	}
	if (cnet_attach(store, c->id, &c->cfg, c->pid, &c->lease, err) < 0)
		fail_msg("attach: %s", err->msg);
}

static void ctr_start(struct ctr *c, const char *name, const char *port_spec, bool expect_ok, vt_err *err)
{
	ctr_start_mode(c, CNET_BRIDGE, name, port_spec, expect_ok, err);
}

static bool port_free(unsigned port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int one = 1; /* a connection in TIME_WAIT does not make the port taken */
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	bool ok = bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(s);
	return ok;
}

static int listen_loopback(unsigned port)
{
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s, 4), 0);
	return s;
}

static void ctr_stop(struct ctr *c)
{
	vt_err err;
	if (cnet_detach(store, c->id, &c->lease, &err) < 0)
		fail_msg("detach: %s", err.msg);
	if (c->pid)
		kill_ctr(c->pid);
}

static int setup(void **state)
{
	(void)state;
	if (geteuid() != 0)
		return 0;
	snprintf(store, sizeof(store), "/tmp/cnet-live.%d", (int)getpid());
	mkdir(store, 0700);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < n_started; i++) {
		struct cnet_lease l = { .n_port_fds = 0 };
		vt_err err;
		cnet_detach(store, started_ids[i], &l, &err);
		kill(started_pids[i], SIGKILL);
		waitpid(started_pids[i], NULL, 0);
	}
	if (record_made[0]) {
		char dir[220];
		rmdir(record_made);
		snprintf(dir, sizeof(dir), "%s/containers", store);
		rmdir(dir);
	}
	if (store[0])
		rmdir(store);
	return 0;
}

static void bridge_publish_and_reach(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	vt_err err = { 0 };
	struct ctr a, b;
	char buf[128], host[INET_ADDRSTRLEN];
	ctr_start(&a, "alpha", "28480:80", true, &err);
	ctr_start(&b, "beta", "127.0.0.1:28481:80", true, &err);
	assert_string_equal(a.lease.gateway, b.lease.gateway);
	assert_string_not_equal(a.lease.addr, b.lease.addr);
	assert_string_equal(fetch(a.lease.addr, 80, buf, sizeof(buf)), "alpha");
	assert_string_equal(fetch("127.0.0.1", 28480, buf, sizeof(buf)), "alpha");
	assert_string_equal(fetch("127.0.0.1", 28481, buf, sizeof(buf)), "beta");
	host_address(host);
	if (host[0]) {
		assert_string_equal(fetch(host, 28480, buf, sizeof(buf)), "alpha");
		assert_string_equal(fetch(host, 28481, buf, sizeof(buf)), ""); /* published on 127.0.0.1 only */
	}
	/* containers reach each other by address */
	assert_string_equal(fetch_from(b.pid, a.lease.addr, 80, buf, sizeof(buf)), "alpha");
	assert_string_equal(fetch_from(a.pid, b.lease.addr, 80, buf, sizeof(buf)), "beta");
	assert_true(rules_of(a.id) && rules_of(b.id) && lease_of(a.id) && veth_of(a.id));

	ctr_stop(&a);
	assert_false(rules_of(a.id));
	assert_false(lease_of(a.id));
	assert_false(veth_of(a.id));
	assert_true(rules_of(b.id)); /* only a's went */
	assert_string_equal(fetch("127.0.0.1", 28481, buf, sizeof(buf)), "beta");
	ctr_stop(&b);
	assert_false(rules_of(b.id) || lease_of(b.id) || veth_of(b.id));
	/* detach again: nothing left, nothing fails */
	assert_int_equal(cnet_detach(store, b.id, &b.lease, &err), 0);
}

static void bridge_no_host_loopback(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(28482) };
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s, 4), 0);
	vt_err err = { 0 };
	struct ctr a;
	char buf[128];
	ctr_start(&a, "gamma", NULL, true, &err);
	/* the gateway's port is closed; the loopback-only listener cannot be reached through it */
	int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	(void)c;
	close(c);
	assert_string_equal(fetch_from(a.pid, a.lease.gateway, 28482, buf, sizeof(buf)), "");
	struct pollfd pfd = { .fd = s, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 0), 0); /* no connection arrived */
	ctr_stop(&a);
	close(s);
}

static void taken_port_refused(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(28483) };
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s, 4), 0);
	vt_err err = { 0 };
	struct ctr a, b;
	ctr_start(&a, "delta", "28483:80", false, &err);
	assert_string_equal(err.msg, "port 28483/tcp on 0.0.0.0 is already in use");
	assert_false(lease_of(a.id));
	close(s);
	/* a port one container holds is refused to the next */
	ctr_start(&a, "delta", "28484:80/udp", true, &err);
	ctr_start(&b, "epsilon", "28484:80/udp", false, &err);
	assert_string_equal(err.msg, "port 28484/udp on 0.0.0.0 is already in use");
	assert_false(lease_of(b.id));
	ctr_stop(&a);
}

/* A monitor that dies without detaching (kill -9): the next gc removes its rules, veth and lease once its
 * container record is gone, and keeps them while the record exists; meanwhile its port, no longer held,
 * goes to the next container that asks (its stale rule deleted). */
static void gc_after_crash(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	struct ctr a;
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t monitor = fork();
	if (monitor == 0) {
		vt_err err;
		ctr_start(&a, "zeta", "28485:80", true, &err);
		if (write(p[1], &a, sizeof(a)) != sizeof(a))
			_exit(1);
		pause();
	}
	close(p[1]);
	assert_int_equal(read(p[0], &a, sizeof(a)), sizeof(a));
	close(p[0]);
	kill(monitor, SIGKILL);
	waitpid(monitor, NULL, 0);
	char record[200];
	snprintf(record, sizeof(record), "%s/containers", store);
	mkdir(record, 0700);
	snprintf(record, sizeof(record), "%s/containers/%s", store, a.id);
	mkdir(record, 0700);
	snprintf(record_made, sizeof(record_made), "%s", record);
	vt_err err = { 0 };
	assert_int_equal(cnet_gc(store, &err), 0);
	assert_true(rules_of(a.id) && lease_of(a.id) && veth_of(a.id)); /* the record still exists */
	/* the dead container's port is free: a new container takes it, and the stale rule goes */
	struct ctr k;
	char buf[64];
	ctr_start(&k, "kappa", "28485:80", true, &err);
	assert_string_equal(fetch("127.0.0.1", 28485, buf, sizeof(buf)), "kappa");
	assert_false(rules_of(a.id));
	ctr_stop(&k);
	rmdir(record);
	snprintf(record, sizeof(record), "%s/containers", store);
	rmdir(record);
	if (cnet_gc(store, &err) < 0)
		fail_msg("gc: %s", err.msg);
	assert_false(lease_of(a.id));
	assert_false(veth_of(a.id));
	kill_ctr(a.pid);
}

/* slirp: -p on 127.0.0.1 and the host's address, the host's loopback out of reach unless asked for, and
 * the host port free again after detach. */
static void slirp_publish(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	vt_err err = { 0 };
	struct ctr a;
	char buf[128], host[INET_ADDRSTRLEN];
	int lo = listen_loopback(28487);
	ctr_start_mode(&a, CNET_SLIRP, "eta", "28486:80", true, &err);
	assert_string_equal(a.lease.addr, "10.0.2.100");
	assert_non_null(a.lease.slirp);
	assert_false(port_free(28486));
	assert_string_equal(fetch("127.0.0.1", 28486, buf, sizeof(buf)), "eta");
	host_address(host);
	if (host[0])
		assert_string_equal(fetch(host, 28486, buf, sizeof(buf)), "eta");
	/* 10.0.2.2 is the host, but not its loopback */
	fetch_from(a.pid, "10.0.2.2", 28487, buf, sizeof(buf));
	struct pollfd pfd = { .fd = lo, .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 200), 0);
	ctr_stop(&a);
	assert_true(port_free(28486));

	struct ctr b;
	snprintf(b.id, sizeof(b.id), "cnetlive-%d-iota", (int)getpid());
	b.cfg = (struct cnet_config){ .mode = CNET_SLIRP, .host_loopback = true };
	assert_int_equal(cnet_prepare(store, b.id, &b.cfg, &b.lease, &err), 0);
	b.pid = spawn_ctr("iota");
	if (cnet_attach(store, b.id, &b.cfg, b.pid, &b.lease, &err) < 0)
		fail_msg("attach: %s", err.msg);
	fetch_from(b.pid, "10.0.2.2", 28487, buf, sizeof(buf));
	assert_int_equal(poll(&pfd, 1, 1000), 1); /* asked for: the connection arrives */
	ctr_stop(&b);
	close(lo);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bridge_publish_and_reach),
		cmocka_unit_test(bridge_no_host_loopback),
		cmocka_unit_test(taken_port_refused),
		cmocka_unit_test(gc_after_crash),
		cmocka_unit_test(slirp_publish),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
