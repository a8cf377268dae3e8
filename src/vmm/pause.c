/* Pausing a running VM: every vCPU thread leaves KVM_RUN at its next exit and waits in vcpu_park until a
 * resume or a stop. The kick is the same as a stop's (immediate_exit for a thread about to enter KVM_RUN,
 * SIGUSR1 for one inside), so a vCPU halted in the kernel parks too. */
#include <errno.h>
#include <sys/ioctl.h>
#include <time.h>

#include "vmm/vm.h"

#define PAUSE_REKICK_NS (100 * 1000 * 1000) /* a lost kick is re-sent: a pause must never hang */

static bool stopping(struct vm *vm)
{
	return __atomic_load_n(&vm->stopping, __ATOMIC_SEQ_CST);
}

int vm_pause(struct vm *vm, vt_err *err)
{
	pthread_mutex_lock(&vm->pause.lock);
	__atomic_store_n(&vm->pause.requested, true, __ATOMIC_SEQ_CST);
	while (vm->pause.parked < vm->ncpus && !stopping(vm)) {
		vm_kick_vcpus(vm);
		struct timespec deadline;
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_nsec += PAUSE_REKICK_NS;
		if (deadline.tv_nsec >= 1000000000L)
			deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
		pthread_cond_timedwait(&vm->pause.changed, &vm->pause.lock, &deadline);
	}
	bool stopped = vm->pause.parked < vm->ncpus;
	pthread_mutex_unlock(&vm->pause.lock);
	if (stopped)
		return vt_fail(err, "the VM stopped while it was being paused");
	return 0;
}

void vm_pause_at_start(struct vm *vm)
{
	__atomic_store_n(&vm->pause.requested, true, __ATOMIC_SEQ_CST);
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause.lock);
	__atomic_store_n(&vm->pause.requested, false, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&vm->pause.changed);
	pthread_mutex_unlock(&vm->pause.lock);
}

bool vm_is_paused(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause.lock);
	bool paused = vm->pause.requested && vm->pause.parked == vm->ncpus;
	pthread_mutex_unlock(&vm->pause.lock);
	return paused;
}

void vcpu_park(struct vcpu *v)
{
	struct vm *vm = v->vm;
	/* An exit to userspace may leave KVM an instruction to finish (a port read's data): a KVM_RUN with
	 * immediate_exit completes it without running the guest, so the state a snapshot reads is whole. */
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	while (ioctl(v->fd, KVM_RUN, 0) == 0)
		;
	pthread_mutex_lock(&vm->pause.lock);
	vm->pause.parked++;
	pthread_cond_broadcast(&vm->pause.changed);
	while (vm->pause.requested && !stopping(vm))
		pthread_cond_wait(&vm->pause.changed, &vm->pause.lock);
	vm->pause.parked--;
	pthread_mutex_unlock(&vm->pause.lock);
	/* The kick's immediate_exit would end the next KVM_RUN at once. A stop racing with this sets stopping
	 * before its own immediate_exit, and the loop checks stopping after this store: it is never lost. */
	__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}
