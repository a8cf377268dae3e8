/* VM isolation through the OCI runtime: the guest takes the place of the link a caller put in the container's
 * network namespace (contract in net.h). Frames the link receives go out of the tap to the guest, frames the
 * guest sends go out of the link, both by tc (u32 match-all, mirred egress redirect): nothing of the
 * namespace's own stack is on the path, and the peer sees the link's MAC and address as before. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "container/net_int.h"
#include "lib/util.h"

static int join_tap(int nl, struct cnet_vm_link *l, vt_err *err)
{
	if (nl_link_del(nl, l->tap, err) < 0 || cnet_make_tap(l->tap, err) < 0)
		return -1;
	int tap = nl_link_index(nl, l->tap, err);
	if (tap <= 0)
		return tap < 0 ? -1 : vt_fail(err, "tap %s vanished", l->tap);
	if (nl_link_up(nl, l->tap, err) < 0 || nl_tc_ingress(nl, l->ifindex, true, err) < 0 ||
	    nl_tc_ingress(nl, tap, true, err) < 0 || nl_tc_redirect(nl, l->ifindex, tap, err) < 0 ||
	    nl_tc_redirect(nl, tap, l->ifindex, err) < 0)
		return -1;
	return 0;
}

/* The record: the namespace's path, the link's index, the tap's name, and the namespace's identity (device
 * and inode of its nsfs file: a /proc/PID/ns/net path may name another namespace once PID is reused), a line
 * each. */
static int write_record(const struct cnet_vm_link *l, const char *netns_path, const char *file, vt_err *err)
{
	struct stat st;
	if (stat(netns_path, &st) < 0)
		return vt_fail_errno(err, errno, "network namespace %s", netns_path);
	char buf[PATH_MAX + 96];
	int n = snprintf(buf, sizeof(buf), "%s\n%d\n%s\n%llu %llu\n", netns_path, l->ifindex, l->tap,
			 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return vt_fail(err, "network namespace %s: the path is too long", netns_path);
	cleanup_close int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, buf, (size_t)n) < 0)
		return vt_fail_errno(err, errno, "cannot write %s", file);
	return 0;
}

int cnet_vm_netns_attach(const char *path, const char *record, struct cnet_vm_link *l, vt_err *err)
{
	memset(l, 0, sizeof(*l));
	cleanup_close int ns = open(path, O_RDONLY | O_CLOEXEC);
	if (ns < 0)
		return vt_fail_errno(err, errno, "network namespace %s", path);
	if (setns(ns, CLONE_NEWNET) < 0)
		return vt_fail_errno(err, errno, "cannot enter the network namespace %s", path);
	cleanup_close int nl = nl_open(err);
	if (nl < 0)
		return -1;
	struct nl_link_info link;
	int found = nl_link_find_ipv4(nl, &link, &l->addr, &l->prefix, err);
	if (found != 0)
		return found < 0 ? vt_err_prefix(err, "network namespace %s", path) : 0;
	l->ifindex = link.index;
	memcpy(l->ifname, link.name, sizeof(l->ifname));
	memcpy(l->mac, link.mac, sizeof(l->mac));
	if (nl_route_default_get(nl, l->ifindex, &l->gateway, err) < 0)
		return vt_err_prefix(err, "network namespace %s", path);
	/* recorded before anything is made: an owner killed at any point after leaves nothing unrecorded */
	snprintf(l->tap, sizeof(l->tap), "%s", CNET_VM_TAP);
	if (record && write_record(l, path, record, err) < 0) {
		l->tap[0] = 0;
		return -1;
	}
	if (join_tap(nl, l, err) < 0) {
		cnet_vm_netns_detach(l);
		if (record)
			unlink(record);
		return vt_err_prefix(err, "network namespace %s", path);
	}
	return 0;
}

void cnet_vm_netns_detach(struct cnet_vm_link *l)
{
	if (!l->tap[0])
		return;
	vt_err ignored;
	cleanup_close int nl = nl_open(&ignored);
	if (nl >= 0) {
		nl_link_del(nl, l->tap, &ignored);
		nl_tc_ingress(nl, l->ifindex, false, &ignored);
	}
	l->tap[0] = 0;
}

struct record {
	char ns_path[PATH_MAX];
	unsigned long long dev, ino;
	struct cnet_vm_link link;
};

static int read_record(const char *file, struct record *r)
{
	FILE *f = fopen(file, "re");
	if (!f)
		return -1;
	char index[32], id[64];
	int ok = fgets(r->ns_path, sizeof(r->ns_path), f) && fgets(index, sizeof(index), f) &&
		 fgets(r->link.tap, sizeof(r->link.tap), f) && fgets(id, sizeof(id), f) &&
		 sscanf(id, "%llu %llu", &r->dev, &r->ino) == 2;
	fclose(f);
	r->ns_path[strcspn(r->ns_path, "\n")] = 0;
	r->link.tap[strcspn(r->link.tap, "\n")] = 0;
	r->link.ifindex = ok ? atoi(index) : 0;
	return ok && *r->ns_path && r->link.ifindex > 0 && *r->link.tap ? 0 : -1;
}

/* In a child, so that the caller stays in its own namespace. */
static void release_in_child(struct record *r)
{
	pid_t pid = fork();
	if (pid == 0) {
		struct stat st;
		int ns = open(r->ns_path, O_RDONLY | O_CLOEXEC);
		if (ns >= 0 && fstat(ns, &st) == 0 && st.st_dev == r->dev && st.st_ino == r->ino &&
		    setns(ns, CLONE_NEWNET) == 0)
			cnet_vm_netns_detach(&r->link);
		_exit(0);
	}
	while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

void cnet_vm_netns_release(const char *file)
{
	struct record r = { .dev = 0 };
	if (read_record(file, &r) == 0)
		release_in_child(&r);
	unlink(file);
}
