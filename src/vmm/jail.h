/* `virtus vm run --jail`: the VMM process in its own namespaces, root directory, cgroup and unprivileged
 * ids. Complements the seccomp sandbox (sandbox.h): seccomp limits which calls a thread may make, the jail
 * limits what the allowed calls can reach.
 *
 * Shape (one supervisor, one jailed VMM):
 *   jail_run()  [the invoking process, stays outside as the supervisor]
 *     makes /run/virtus/<id> (empty) and cgroup virtus/<id> in every v1 controller hierarchy (cpuset
 *     excluded: it needs cpus/mems set first) or in the v2 tree; unshare(CLONE_NEWPID); fork.
 *     The child joins the cgroups before it runs a line of VMM code, then unshares mount, IPC, UTS and
 *     (without host networking) network namespaces, and mounts an empty tmpfs on the jail directory.
 *     The supervisor forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT, waits, then removes the directory and the
 *     cgroups (and the vsock socket, which the unprivileged VMM may not unlink): nothing is left behind.
 *   body(arg, jail) [the child: PID 1 of its PID namespace] builds the VM with the host's paths (kernel,
 *     initrd, disks, /dev/kvm, tap, the vsock listening socket: all opened before the jail closes), then
 *   jail_enter()  binds into the jail only what the VMM reaches by path while it runs (the vsock socket
 *     directory, /etc/resolv.conf for libslirp), makes the jail's root read-only, pivot_roots into it
 *     (or moves it over / and chroots where / is an initramfs, which cannot be pivoted), and switches
 *     to the unprivileged uid/gid with no supplementary groups, which drops every capability.
 *     Only then does the guest run (vm_start).
 *
 * A separate `virtus jail` front was not chosen: the VMM must open its devices and files before the jail
 * closes (pre-opened fds, no device nodes in the jail), which only the run command itself can do. */
#ifndef VIRTUS_JAIL_H
#define VIRTUS_JAIL_H

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "lib/err.h"

#define JAIL_DEFAULT_ID 65534 /* nobody / nogroup */
#define JAIL_MAX_BINDS 4
#define JAIL_MAX_CGROUPS 12
#define JAIL_MAX_SOCKETS 2

struct jail_config {
	uid_t uid;
	gid_t gid;
	bool new_netns;                        /* false when the VM uses the host's network (tap, user) */
	const char *bind[JAIL_MAX_BINDS];      /* absolute host paths, visible at the same path inside */
	bool bind_readonly[JAIL_MAX_BINDS];
	unsigned nbind;
	/* sockets the unprivileged VMM may not unlink (vsock), or may not outlive (--incoming's): the supervisor
	 * removes them after it */
	const char *remove_at_exit[JAIL_MAX_SOCKETS];
	unsigned nremove;
};

struct jail {
	const struct jail_config *cfg;
	char id[32];
	char root[64];                         /* /run/virtus/<id> */
	char cgroup[JAIL_MAX_CGROUPS][PATH_MAX / 4];
	unsigned ncgroups;
	bool cgroup_v2;                        /* cgroup[0] is the one v2 tree, else v1 hierarchies */
	pid_t child;                           /* host pid of the jailed VMM */
};

/* Run body(arg, jail) jailed and return its exit status (128+N if it died of signal N), or -1 with err
 * set if the jail could not be made (then nothing was left behind). Call before any thread exists. */
int jail_run(const struct jail_config *cfg, int (*body)(void *arg, struct jail *j), void *arg, vt_err *err);
/* In body, once every file and device is open and before the guest runs. */
int jail_enter(struct jail *j, vt_err *err);

#endif
