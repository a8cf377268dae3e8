/* The network namespace a caller prepared, carried into a VM (cnet_vm_netns_attach), against the real kernel
 * (root only; skips otherwise). Everything happens in a network namespace of the test's own: a "container"
 * namespace with eth0 (a veth whose peer holds 10.77.0.1) stands for podman's. The shim's part runs in a
 * child, which plays the VMM too: it opens the tap as the VMM would and sends an ARP request for the peer
 * through it; the peer's kernel answers, and the answer must come back out of the tap. Then detach leaves
 * neither the tap nor the redirect, and neither does the release of a killed owner's record. A namespace
 * without an address, and a bad path, are checked too. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
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
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "container/net.h"
#include "container/net_int.h"

#define VNET_HDR 10   /* struct virtio_net_hdr before every frame on an IFF_VNET_HDR tap */

static pid_t inner;         /* holds the "container" namespace */
static char inner_path[64];

static pid_t hold_namespace(void)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (unshare(CLONE_NEWNET) < 0 || write(p[1], "r", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	char c;
	close(p[1]);                                /* a child that fails leaves EOF, not a wait forever */
	assert_int_equal(read(p[0], &c, 1), 1);
	close(p[0]);
	return pid;
}

static void must(int rc, const vt_err *err)
{
	if (rc < 0)
		fail_msg("%s", err->msg);
}

/* The test's own namespace with vh-test (10.77.0.1/24), whose peer is eth0 (10.77.0.2/24, default route
 * via 10.77.0.1) in the container namespace. */
static int setup(void **state)
{
	(void)state;
	if (geteuid() != 0)
		return 0;
	if (unshare(CLONE_NEWNET) < 0)
		return -1;
	inner = hold_namespace();
	snprintf(inner_path, sizeof(inner_path), "/proc/%d/ns/net", (int)inner);
	vt_err err;
	int ns = open(inner_path, O_RDONLY | O_CLOEXEC), nl = nl_open(&err);
	struct in_addr a, gw;
	inet_pton(AF_INET, "10.77.0.1", &a);
	must(nl_veth_create(nl, "vh-test", 0, "eth0", ns, &err), &err);
	must(nl_addr_add(nl, nl_link_index(nl, "vh-test", &err), a, 24, &err), &err);
	must(nl_link_up(nl, "vh-test", &err), &err);
	close(nl), close(ns);
	nl = nl_open_in_pid_netns(inner, &err);
	inet_pton(AF_INET, "10.77.0.2", &a);
	inet_pton(AF_INET, "10.77.0.1", &gw);
	must(nl_link_up(nl, "lo", &err), &err);
	must(nl_link_up(nl, "eth0", &err), &err);
	must(nl_addr_add(nl, nl_link_index(nl, "eth0", &err), a, 24, &err), &err);
	must(nl_route_default(nl, gw, &err), &err);
	close(nl);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (inner > 0) {
		kill(inner, SIGKILL);
		waitpid(inner, NULL, 0);
	}
	return 0;
}

/* An ARP request from mac/10.77.0.2 for 10.77.0.1, as the guest would send it. */
static size_t arp_request(uint8_t *f, const uint8_t mac[6])
{
	static const uint8_t head[] = { 0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1 };
	memset(f, 0, VNET_HDR);
	uint8_t *e = f + VNET_HDR;
	memset(e, 0xff, 6);
	memcpy(e + 6, mac, 6);
	memcpy(e + 12, head, sizeof(head));
	memcpy(e + 22, mac, 6);
	inet_pton(AF_INET, "10.77.0.2", e + 28);
	memset(e + 32, 0, 6);
	inet_pton(AF_INET, "10.77.0.1", e + 38);
	return VNET_HDR + 42;
}

/* The shim's part and the VMM's, in one child; its exit status says which step failed (0: none). */
static int shim_and_vmm(void)
{
	vt_err err = { 0 };
	struct cnet_vm_link l;
	if (cnet_vm_netns_attach(inner_path, NULL, &l, &err) < 0)
		return fprintf(stderr, "attach: %s\n", err.msg), 10;
	char addr[INET_ADDRSTRLEN], gw[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &l.addr, addr, sizeof(addr));
	inet_ntop(AF_INET, &l.gateway, gw, sizeof(gw));
	if (strcmp(l.ifname, "eth0") || strcmp(addr, "10.77.0.2") || l.prefix != 24 || strcmp(gw, "10.77.0.1") ||
	    strcmp(l.tap, CNET_VM_TAP))
		return fprintf(stderr, "found %s %s/%u via %s, tap %s\n", l.ifname, addr, l.prefix, gw, l.tap), 11;
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "eth0");
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || ioctl(s, SIOCGIFHWADDR, &ifr) < 0 || memcmp(ifr.ifr_hwaddr.sa_data, l.mac, 6))
		return 12;                                   /* the guest gets eth0's own MAC */
	int tap = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	ifr = (struct ifreq){ .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", l.tap);
	if (tap < 0 || ioctl(tap, TUNSETIFF, &ifr) < 0)
		return 13;
	uint8_t f[2048], req[64];
	size_t n = arp_request(req, l.mac);
	struct pollfd p = { .fd = tap, .events = POLLIN };
	bool answered = false;
	/* asked again every 200 ms for 5 s, as a guest would: frames sent before the new links are running
	 * (the kernel's link watch, up to a second) are dropped */
	for (int tries = 0; !answered && tries < 25; tries++) {
		if (write(tap, req, n) != (ssize_t)n)
			return 14;
		if (poll(&p, 1, 200) != 1)
			continue;
		ssize_t got = read(tap, f, sizeof(f));
		const uint8_t *e = f + VNET_HDR;
		uint8_t peer[4];
		inet_pton(AF_INET, "10.77.0.1", peer);
		answered = got >= VNET_HDR + 42 && e[12] == 0x08 && e[13] == 0x06 && e[21] == 2 &&
			   !memcmp(e + 28, peer, 4) && !memcmp(e, l.mac, 6);
	}
	if (!answered)
		return 15;                                   /* the peer's ARP reply did not come back */
	close(tap);
	cnet_vm_netns_detach(&l);
	int nl = nl_open(&err);
	if (nl < 0 || nl_link_index(nl, CNET_VM_TAP, &err) != 0)
		return 16;                                   /* the tap is still there */
	int eth0 = nl_link_index(nl, "eth0", &err);
	if (nl_tc_ingress(nl, eth0, true, &err) < 0)   /* possible only once the old one is gone */
		return fprintf(stderr, "%s\n", err.msg), 17;
	nl_tc_ingress(nl, eth0, false, &err);
	return 0;
}

static int in_child(int (*body)(void))
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(body());
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void frames_cross_both_ways_and_detach_leaves_nothing(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(in_child(shim_and_vmm), 0);
}

static char record[64];

/* A shim killed after it set up the namespace: it recorded, never detached. */
static int attach_and_die(void)
{
	vt_err err = { 0 };
	struct cnet_vm_link l;
	if (cnet_vm_netns_attach(inner_path, record, &l, &err) < 0)
		return fprintf(stderr, "%s\n", err.msg), 1;
	kill(getpid(), SIGKILL);
	return 2;
}

/* In the container namespace: 0 when neither the tap nor eth0's ingress qdisc is left. */
static int nothing_left(void)
{
	vt_err err = { 0 };
	int nl = nl_open_in_pid_netns(inner, &err);
	if (nl < 0 || nl_link_index(nl, CNET_VM_TAP, &err) != 0)
		return 1;
	int eth0 = nl_link_index(nl, "eth0", &err);
	if (nl_tc_ingress(nl, eth0, true, &err) < 0)
		return 2;
	nl_tc_ingress(nl, eth0, false, &err);
	return 0;
}

static void a_killed_owner_is_released_from_its_record(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(record, sizeof(record), "/tmp/virtus-vm-netns-test.%d", (int)getpid());
	assert_int_equal(in_child(attach_and_die), 128 + SIGKILL);
	vt_err err = { 0 };
	int nl = nl_open_in_pid_netns(inner, &err);
	assert_true(nl >= 0);
	assert_true(nl_link_index(nl, CNET_VM_TAP, &err) > 0);          /* left behind by the killed owner */
	close(nl);
	cnet_vm_netns_release(record);                                    /* from this (another) namespace */
	assert_int_equal(access(record, F_OK), -1);
	assert_int_equal(in_child(nothing_left), 0);
	cnet_vm_netns_release(record);                                    /* no record: nothing to do */
}

/* The record names the namespace by path; once that path names another namespace (a /proc/PID path whose
 * PID was reused), release must leave that one alone. */
static void a_record_of_another_namespace_is_not_applied(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(record, sizeof(record), "/tmp/virtus-vm-netns-test.%d", (int)getpid());
	assert_int_equal(in_child(attach_and_die), 128 + SIGKILL);
	/* the same path and link, but the identity of another namespace (this one's) */
	char buf[512];
	FILE *f = fopen(record, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *last = strrchr(buf, '\n');
	assert_non_null(last);
	*last = 0;
	last = strrchr(buf, '\n');
	assert_non_null(last);
	struct stat other;
	assert_int_equal(stat("/proc/self/ns/net", &other), 0);
	snprintf(last + 1, sizeof(buf) - (size_t)(last + 1 - buf), "%llu %llu\n", (unsigned long long)other.st_dev,
		 (unsigned long long)other.st_ino);
	f = fopen(record, "w");
	assert_non_null(f);
	fputs(buf, f);
	fclose(f);
	cnet_vm_netns_release(record);
	assert_int_equal(access(record, F_OK), -1);
	vt_err err = { 0 };
	int nl = nl_open_in_pid_netns(inner, &err);
	assert_true(nl >= 0);
	assert_true(nl_link_index(nl, CNET_VM_TAP, &err) > 0);          /* untouched */
	struct cnet_vm_link l = { .ifindex = nl_link_index(nl, "eth0", &err) };
	snprintf(l.tap, sizeof(l.tap), "%s", CNET_VM_TAP);
	close(nl);
	int home;
	assert_int_equal(netns_enter_pid(inner, &home, &err), 0);
	cnet_vm_netns_detach(&l);                                         /* the test's own cleanup */
	netns_return(home);
	assert_int_equal(in_child(nothing_left), 0);
}

/* The record comes before the tap: a tap that cannot be made (/dev/net/tun hidden in a mount namespace of
 * the child's own) fails the attach with the reason, and leaves neither the record nor a redirect. */
static int tap_refused(void)
{
	vt_err err = { 0 };
	struct cnet_vm_link l;
	if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("/dev/null", "/dev/net/tun", NULL, MS_BIND, NULL) < 0)
		return 20;
	if (cnet_vm_netns_attach(inner_path, record, &l, &err) != -1)
		return 21;
	if (!strstr(err.msg, inner_path) || !strstr(err.msg, CNET_VM_TAP))
		return fprintf(stderr, "%s\n", err.msg), 22;
	return access(record, F_OK) == 0 ? 23 : 0;
}

static void a_failed_attach_leaves_no_record(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(record, sizeof(record), "/tmp/virtus-vm-netns-test.%d", (int)getpid());
	assert_int_equal(in_child(tap_refused), 0);
	assert_int_equal(in_child(nothing_left), 0);
}

static int empty_namespace(void)
{
	pid_t other = hold_namespace();
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)other);
	vt_err err = { 0 };
	struct cnet_vm_link l;
	int rc = cnet_vm_netns_attach(path, NULL, &l, &err);
	kill(other, SIGKILL);
	waitpid(other, NULL, 0);
	return rc == 0 && !l.tap[0] ? 0 : 1;
}

static int bad_path(void)
{
	vt_err err = { 0 };
	struct cnet_vm_link l;
	return cnet_vm_netns_attach("/nonexistent/netns", NULL, &l, &err) == -1 && strstr(err.msg, "/nonexistent/netns") ? 0 : 1;
}

static void no_link_is_loopback_only_and_a_bad_path_is_named(void **state)
{
	(void)state;
	if (geteuid() != 0)
		skip();
	assert_int_equal(in_child(empty_namespace), 0);
	assert_int_equal(in_child(bad_path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(frames_cross_both_ways_and_detach_leaves_nothing),
		cmocka_unit_test(no_link_is_loopback_only_and_a_bad_path_is_named),
		cmocka_unit_test(a_killed_owner_is_released_from_its_record),
		cmocka_unit_test(a_record_of_another_namespace_is_not_applied),
		cmocka_unit_test(a_failed_attach_leaves_no_record),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
