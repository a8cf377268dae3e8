/* The VMM's seccomp sandbox: one allow-list per kind of thread (lib/thread_role.h).
 *
 * Contract:
 *  - sandbox_prepare() runs once per process, on the main thread, before vm_create() (which starts the
 *    libslirp thread and the block I/O workers). It compiles every role's filter to BPF, installs the
 *    SIGSYS reporter and hooks thread_role_enter(). Nothing is confined yet.
 *  - Each VMM thread calls thread_role_enter(ROLE) before its first guest-facing work; the hook sets
 *    PR_SET_NO_NEW_PRIVS and loads that role's precompiled filter (one syscall: nothing to allocate, so
 *    nothing that can fail halfway). A thread that cannot be confined ends the process: it never runs
 *    unconfined.
 *  - The main thread confines itself with sandbox_enter_main() once vm_start() has started every thread
 *    (filters are inherited by threads created afterwards). Its list lets it start threads, never
 *    processes: a disk plugged into the running VM starts its worker pool, whose threads confine
 *    themselves further to their own role's list.
 *  - A system call outside the caller's list ends the whole VMM with SIGSYS after one line on stderr that
 *    names the call and the thread kind (SANDBOX_ON). SANDBOX_LOG allows it and has the kernel log it
 *    (dmesg: "audit: type=1326 ... comm=virtus-dev ... syscall=N"), to find what a new host needs.
 *
 * What it does not cover: io_uring operations run in kernel workers that seccomp does not see, so the
 * block engine restricts its ring to the opcodes it uses (block/uring.c); file descriptors opened during
 * setup stay usable within each list's calls. */
#ifndef VIRTUS_SANDBOX_H
#define VIRTUS_SANDBOX_H

#include <sys/types.h>

#include "lib/err.h"
#include "lib/thread_role.h"

enum sandbox_mode {
	SANDBOX_OFF,   /* debugging only: no filters, no no_new_privs */
	SANDBOX_ON,    /* the default */
	SANDBOX_LOG,   /* filters that only log violations (kernel log) */
};

/* What `virtus vm run` uses without --seccomp. AddressSanitizer builds log instead of trapping: LeakSanitizer's
 * check at exit stops the world with clone and ptrace and reads /proc, which no list allows; the release
 * build (the nested suite's) traps. */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_DEFAULT SANDBOX_LOG
#else
#define SANDBOX_DEFAULT SANDBOX_ON
#endif

/* "on", "off", "log" -> mode; -1 if none of them. */
int sandbox_parse_mode(const char *s, enum sandbox_mode *mode);
/* The unprivileged ids a jail (vmm/jail.h) switches the process to after the threads started: glibc makes
 * every thread switch (setresuid/setresgid/setgroups on each), so each list allows exactly that switch. */
struct sandbox_ids {
	uid_t uid;
	gid_t gid;
};
#define SANDBOX_ROLE(r) (1u << (r))
#define SANDBOX_ALL_ROLES ((1u << THREAD_ROLES) - 1)
/* roles: the thread roles that will run (SANDBOX_ROLE bits; vm_thread_roles() for a VM): only their filters
 * are compiled (each costs ~0.2 ms here), and a thread of another role ends the process. jail_ids: NULL when
 * the process keeps its ids. */
int sandbox_prepare(enum sandbox_mode mode, unsigned roles, const struct sandbox_ids *jail_ids, vt_err *err);
/* Confine the calling (main) thread; a no-op when the sandbox is off. */
void sandbox_enter_main(void);

/* Test-only: VIRTUS_SANDBOX_TEST_VIOLATION=ROLE (vcpu, device, io, slirp, main) in the environment makes
 * that role's thread call socket(AF_NETLINK) right after it is confined, so a test can see a real VMM
 * thread die of a forbidden call. Read by sandbox_prepare; harmless (a closed socket) when logging. */
#define SANDBOX_TEST_ENV "VIRTUS_SANDBOX_TEST_VIOLATION"

#endif
