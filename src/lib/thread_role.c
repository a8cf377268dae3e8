#include "lib/thread_role.h"

/* Per-process by nature: the hook is the process owner's policy for all of its threads. Written once
 * before the threads start, read-only afterwards. */
static thread_role_hook role_hook;
static __thread enum thread_role current_role = THREAD_MAIN;

void thread_role_set_hook(thread_role_hook hook)
{
	__atomic_store_n(&role_hook, hook, __ATOMIC_RELEASE);
}

void thread_role_enter(enum thread_role role)
{
	current_role = role;
	thread_role_hook hook = __atomic_load_n(&role_hook, __ATOMIC_ACQUIRE);
	if (hook)
		hook(role);
}

enum thread_role thread_role_current(void)
{
	return current_role;
}

const char *thread_role_name(enum thread_role role)
{
	switch (role) {
	case THREAD_MAIN: return "main";
	case THREAD_VCPU: return "vCPU";
	case THREAD_DEVICE: return "device event loop";
	case THREAD_IO_WORKER: return "block I/O worker";
	case THREAD_SLIRP: return "libslirp";
	default: return "unknown";
	}
}
