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
#include <sys/wait.h>
#include <unistd.h>

#include "container/net_int.h"
#include "lib/util.h"

static int join_tap(int nl, struct cnet_vm_link *l, vt_err *err)
{
	snprintf(l->tap, sizeof(l->tap), "%s", CNET_VM_TAP);
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

int cnet_vm_netns_attach(const char *path, struct cnet_vm_link *l, vt_err *err)
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
	if (nl_route_default_get(nl, l->ifindex, &l->gateway, err) < 0 || join_tap(nl, l, err) < 0) {
		cnet_vm_netns_detach(l);
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

/* The record: the namespace's path, the link's index and the tap's name, a line each. */
int cnet_vm_netns_record(const struct cnet_vm_link *l, const char *netns_path, const char *file, vt_err *err)
{
	char buf[PATH_MAX + 64];
	int n = snprintf(buf, sizeof(buf), "%s\n%d\n%s\n", netns_path, l->ifindex, l->tap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return vt_fail(err, "network namespace %s: the path is too long", netns_path);
	cleanup_close int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, buf, (size_t)n) < 0)
		return vt_fail_errno(err, errno, "cannot write %s", file);
	return 0;
}

static int read_record(const char *file, char *ns, size_t ns_len, struct cnet_vm_link *l)
{
	FILE *f = fopen(file, "re");
	if (!f)
		return -1;
	char line[32];
	int ok = fgets(ns, (int)ns_len, f) && fgets(line, sizeof(line), f) && fgets(l->tap, sizeof(l->tap), f);
	fclose(f);
	ns[strcspn(ns, "\n")] = 0;
	l->tap[strcspn(l->tap, "\n")] = 0;
	l->ifindex = ok ? atoi(line) : 0;
	return ok && *ns && l->ifindex > 0 && *l->tap ? 0 : -1;
}

void cnet_vm_netns_release(const char *file)
{
	char ns_path[PATH_MAX];
	struct cnet_vm_link l = { .ifindex = 0 };
	if (read_record(file, ns_path, sizeof(ns_path), &l) == 0) {
		pid_t pid = fork();           /* the caller stays in its own namespace */
		if (pid == 0) {
			int ns = open(ns_path, O_RDONLY | O_CLOEXEC);
			if (ns >= 0 && setns(ns, CLONE_NEWNET) == 0)
				cnet_vm_netns_detach(&l);
			_exit(0);
		}
		while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	unlink(file);
}
