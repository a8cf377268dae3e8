/* Address leases of the bridge: one file per address under /run/virtus-net/leases, made with O_EXCL under
 * one flock, holding "STORE_ROOT\nID\nPID STARTTIME\n". The holder (pid and its start time, so a reused pid
 * does not count) is who is responsible for the lease; see net.h for when one is reclaimed. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container/net_int.h"
#include "lib/util.h"

/* Not under /run/virtus: that directory belongs to the VMM's jails (and must be empty when none runs). */
#define NET_DIR CNET_RUN_DIR
#define LEASE_DIR NET_DIR "/leases"

struct lease_rec {
	char store[PATH_MAX];
	char id[256];
	long pid;
	unsigned long long start;
};

static unsigned long long proc_start_time(long pid)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* the command name may hold spaces */
	if (!p)
		return 0;
	unsigned long long start = 0;
	/* after ")": state is field 3, starttime field 22 */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
		   &start) != 1)
		return 0;
	return start;
}

static bool holder_alive(const struct lease_rec *r)
{
	return r->pid > 0 && proc_start_time(r->pid) == r->start;
}

static int lock_net_dir(vt_err *err)
{
	if (mkdir_on_tmpfs(NET_DIR, 0755) < 0 ||
	    (mkdir(LEASE_DIR, 0755) < 0 && errno != EEXIST))
		return vt_fail_errno(err, errno, "creating %s", LEASE_DIR);
	int fd = open(NET_DIR "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return vt_fail_errno(err, errno, "opening %s/lock", NET_DIR);
	if (flock(fd, LOCK_EX) < 0) {
		int e = errno;
		close(fd);
		return vt_fail_errno(err, e, "locking %s/lock", NET_DIR);
	}
	return fd;
}

static int write_rec(const char *path, const struct lease_rec *r, int flags, vt_err *err)
{
	cleanup_close int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0644);
	if (fd < 0)
		return errno == EEXIST ? 1 : vt_fail_errno(err, errno, "creating %s", path);
	char buf[PATH_MAX + 400];
	int n = snprintf(buf, sizeof(buf), "%s\n%s\n%ld %llu\n", r->store, r->id, r->pid, r->start);
	if (write_all(fd, buf, (size_t)n) < 0)
		return vt_fail_errno(err, errno, "writing %s", path);
	return 0;
}

static bool read_rec(const char *path, struct lease_rec *r)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool ok = fgets(r->store, sizeof(r->store), f) && fgets(r->id, sizeof(r->id), f) &&
		  fscanf(f, "%ld %llu", &r->pid, &r->start) == 2;
	fclose(f);
	if (!ok)
		return false;
	r->store[strcspn(r->store, "\n")] = '\0';
	r->id[strcspn(r->id, "\n")] = '\0';
	return true;
}

static void me_as_holder(struct lease_rec *r)
{
	r->pid = (long)getpid();
	r->start = proc_start_time(r->pid);
}

int cnet_lease_take(const char *store_root, const char *id, struct in_addr subnet, unsigned prefix,
		    struct in_addr gw, struct in_addr *out, vt_err *err)
{
	cleanup_close int lock = lock_net_dir(err);
	if (lock < 0)
		return -1;
	struct lease_rec r = { 0 };
	snprintf(r.store, sizeof(r.store), "%s", store_root);
	snprintf(r.id, sizeof(r.id), "%s", id);
	me_as_holder(&r);
	uint32_t base = ntohl(subnet.s_addr), size = prefix >= 31 ? 0 : (1u << (32 - prefix));
	for (uint32_t host = 1; host + 1 < size; host++) {
		struct in_addr a = { htonl(base + host) };
		if (a.s_addr == gw.s_addr)
			continue;
		char path[128], ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &a, ip, sizeof(ip));
		snprintf(path, sizeof(path), LEASE_DIR "/%s", ip);
		int rc = write_rec(path, &r, O_EXCL, err);
		if (rc < 0)
			return -1;
		if (rc == 0) {
			*out = a;
			return 0;
		}
	}
	return vt_fail(err, "no free address left in the bridge's subnet");
}

/* Apply fn to every lease (under the lock); fn returns true to remove the lease file. */
static int for_each_lease(bool (*fn)(const struct lease_rec *, void *), void *opaque, vt_err *err)
{
	cleanup_close int lock = lock_net_dir(err);
	if (lock < 0)
		return -1;
	DIR *d = opendir(LEASE_DIR);
	if (!d)
		return vt_fail_errno(err, errno, "opening %s", LEASE_DIR);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[PATH_MAX];
		struct lease_rec r;
		snprintf(path, sizeof(path), LEASE_DIR "/%s", e->d_name);
		if (read_rec(path, &r) && fn(&r, opaque))
			unlink(path);
	}
	closedir(d);
	return 0;
}

static bool match_id(const struct lease_rec *r, void *opaque)
{
	return strcmp(r->id, (const char *)opaque) == 0;
}

int cnet_lease_set_holder(const char *id, vt_err *err)
{
	cleanup_close int lock = lock_net_dir(err);
	if (lock < 0)
		return -1;
	DIR *d = opendir(LEASE_DIR);
	if (!d)
		return vt_fail_errno(err, errno, "opening %s", LEASE_DIR);
	struct dirent *e;
	int rc = 0;
	while ((e = readdir(d)) && rc == 0) {
		char path[PATH_MAX];
		struct lease_rec r;
		snprintf(path, sizeof(path), LEASE_DIR "/%s", e->d_name);
		if (e->d_name[0] == '.' || !read_rec(path, &r) || strcmp(r.id, id) != 0)
			continue;
		me_as_holder(&r);
		rc = write_rec(path, &r, O_TRUNC, err);
	}
	closedir(d);
	return rc;
}

int cnet_lease_drop(const char *id, vt_err *err)
{
	return for_each_lease(match_id, (void *)id, err);
}

struct gc_state {
	char (*ids)[256];
	size_t n, cap;
};

static bool record_exists(const struct lease_rec *r)
{
	char path[PATH_MAX + 300];
	snprintf(path, sizeof(path), "%s/containers/%s", r->store, r->id);
	return access(path, F_OK) == 0;
}

static bool collect_dead(const struct lease_rec *r, void *opaque)
{
	struct gc_state *g = opaque;
	if (holder_alive(r) || record_exists(r) || g->n == g->cap)
		return false;
	snprintf(g->ids[g->n++], 256, "%s", r->id);
	return false; /* the lease file goes last, after its rules and veth */
}

int cnet_lease_gc(const char *store_root, int (*reclaim)(const char *id, vt_err *err), vt_err *err)
{
	char ids[64][256];
	(void)store_root; /* leases are host-wide: each names its own store */
	struct gc_state g = { .ids = ids, .cap = ARRAY_SIZE(ids) };
	if (for_each_lease(collect_dead, &g, err) < 0)
		return -1;
	for (size_t i = 0; i < g.n; i++) {
		if (reclaim(ids[i], err) < 0)
			return vt_err_prefix(err, "cleaning up after container %s", ids[i]);
	}
	return 0;
}
