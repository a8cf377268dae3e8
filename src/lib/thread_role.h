/* What each long-lived thread of the VMM is for, announced by the thread itself before it does its job.
 *
 * The VMM's sandbox (vmm/sandbox.h) gives every kind of thread its own seccomp allow-list. The threads are
 * started in several layers (vCPUs and the device loop in vmm/, I/O workers in block/, the libslirp thread
 * in net/), and a backend must not know the VMM: so each thread only calls thread_role_enter() with its
 * role, and whoever owns the process (the `virtus vm run` command, through the sandbox) decides what that
 * means. With no hook set (tests, tools) it only records the role. */
#ifndef VIRTUS_THREAD_ROLE_H
#define VIRTUS_THREAD_ROLE_H

enum thread_role {
	THREAD_MAIN,        /* console pump, signals, wait, teardown */
	THREAD_VCPU,        /* KVM_RUN and the port/MMIO handlers that run on exits */
	THREAD_DEVICE,      /* the device event loop: virtio queues, tap, vsock sockets, disk completions */
	THREAD_IO_WORKER,   /* block worker pool: positioned reads and writes on open images */
	THREAD_SLIRP,       /* libslirp's poll loop (third-party code: host sockets) */
	THREAD_ROLES
};

/* Called by a thread before its first guest-facing work; runs the process's hook, if any. */
void thread_role_enter(enum thread_role role);
/* The role this thread announced; THREAD_MAIN if none (async-signal-safe). */
enum thread_role thread_role_current(void);
const char *thread_role_name(enum thread_role role);

/* Set once per process before any VMM thread starts (the hook must not fail: it ends the process if it
 * cannot do its job, since a thread that should be confined must never run unconfined). */
typedef void (*thread_role_hook)(enum thread_role role);
void thread_role_set_hook(thread_role_hook hook);

#endif
