/* vCPU creation, initial register state for each boot protocol, and the run loop. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "lib/thread_role.h"
#include "lib/util.h"
#include "vmm/cpuid.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

#define MSR_IA32_SYSENTER_CS   0x174
#define MSR_IA32_SYSENTER_ESP  0x175
#define MSR_IA32_SYSENTER_EIP  0x176
#define MSR_IA32_MISC_ENABLE   0x1a0
#define MSR_STAR               0xc0000081
#define MSR_LSTAR              0xc0000082
#define MSR_CSTAR              0xc0000083
#define MSR_SYSCALL_MASK       0xc0000084
#define MSR_KERNEL_GS_BASE     0xc0000102
#define MSR_IA32_TSC           0x10
#define MISC_ENABLE_FAST_STRING 0x1

#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_EXTINT 0x7
#define APIC_MODE_NMI    0x4

#define GDT_SEL_CODE32 0x08
#define GDT_SEL_CODE64 0x10
#define GDT_SEL_DATA   0x18

#define CR0_PE 0x1ULL
#define CR0_ET 0x10ULL
#define CR0_PG 0x80000000ULL
#define CR4_PAE 0x20ULL
#define EFER_LME 0x100ULL
#define EFER_LMA 0x400ULL

static int setup_cpuid(struct vcpu *v, vt_err *err)
{
	struct cpuid_table *t = malloc(sizeof(*t));
	if (!t)
		return vt_fail_errno(err, ENOMEM, "CPUID table");
	int rc = cpuid_get_supported(v->vm->kvm_fd, t, err);
	if (rc == 0) {
		cpuid_adjust(t, v->index, v->vm->ncpus);
		if (ioctl(v->fd, KVM_SET_CPUID2, &t->hdr) < 0)
			rc = vt_fail_errno(err, errno, "KVM_SET_CPUID2");
	}
	free(t);
	return rc;
}

static int setup_msrs(struct vcpu *v, vt_err *err)
{
	static const struct { uint32_t index; uint64_t value; } init[] = {
		{ MSR_IA32_SYSENTER_CS, 0 }, { MSR_IA32_SYSENTER_ESP, 0 }, { MSR_IA32_SYSENTER_EIP, 0 },
		{ MSR_STAR, 0 }, { MSR_CSTAR, 0 }, { MSR_KERNEL_GS_BASE, 0 }, { MSR_SYSCALL_MASK, 0 }, { MSR_LSTAR, 0 },
		{ MSR_IA32_TSC, 0 }, { MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING },
	};
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[ARRAY_SIZE(init)];
	} msrs = { .hdr.nmsrs = ARRAY_SIZE(init) };
	for (size_t i = 0; i < ARRAY_SIZE(init); i++)
		msrs.e[i] = (struct kvm_msr_entry){ .index = init[i].index, .data = init[i].value };
	int n = ioctl(v->fd, KVM_SET_MSRS, &msrs);
	if (n != (int)ARRAY_SIZE(init))
		return vt_fail(err, "KVM_SET_MSRS set %d of %zu MSRs", n, ARRAY_SIZE(init));
	return 0;
}

static int setup_fpu(struct vcpu *v, vt_err *err)
{
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
		return vt_fail_errno(err, errno, "KVM_SET_FPU");
	return 0;
}

static void set_lvt_mode(struct kvm_lapic_state *l, unsigned reg, uint32_t mode)
{
	uint32_t val;
	memcpy(&val, l->regs + reg, 4);
	val = (val & ~0x700u) | (mode << 8);
	memcpy(l->regs + reg, &val, 4);
}

/* LINT0 takes the legacy PIC (ExtINT), LINT1 is the NMI line, as firmware leaves them. */
static int setup_lapic(struct vcpu *v, vt_err *err)
{
	struct kvm_lapic_state l;
	if (ioctl(v->fd, KVM_GET_LAPIC, &l) < 0)
		return vt_fail_errno(err, errno, "KVM_GET_LAPIC");
	set_lvt_mode(&l, APIC_LVT0, APIC_MODE_EXTINT);
	set_lvt_mode(&l, APIC_LVT1, APIC_MODE_NMI);
	if (ioctl(v->fd, KVM_SET_LAPIC, &l) < 0)
		return vt_fail_errno(err, errno, "KVM_SET_LAPIC");
	return 0;
}

int vcpu_create(struct vm *vm, unsigned index, vt_err *err)
{
	struct vcpu *v = &vm->vcpus[index];
	v->vm = vm;
	v->index = index;
	v->self_published = false;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (v->fd < 0)
		return vt_fail_errno(err, errno, "KVM_CREATE_VCPU %u", index);
	void *run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (run == MAP_FAILED)
		return vt_fail_errno(err, errno, "mapping vCPU %u's kvm_run", index);
	v->run = run;
	if (setup_cpuid(v, err) < 0 || setup_msrs(v, err) < 0 || setup_fpu(v, err) < 0 || setup_lapic(v, err) < 0)
		return vt_err_prefix(err, "vCPU %u", index);
	return 0;
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, v->vm->run_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

/* GDT entries: flat 4 GiB segments. */
static const uint64_t boot_gdt[] = {
	0,
	0x00cf9b000000ffffULL, /* 0x08: 32-bit code */
	0x00af9b000000ffffULL, /* 0x10: 64-bit code */
	0x00cf93000000ffffULL, /* 0x18: data */
};

static struct kvm_segment flat_segment(uint16_t selector, uint8_t type, bool code64)
{
	return (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = selector, .type = type,
		.present = 1, .dpl = 0, .db = code64 ? 0 : 1, .s = 1, .l = code64, .g = 1,
	};
}

/* Identity-map the first 4 GiB with 2 MiB pages: the 64-bit boot protocol needs the kernel, boot_params
 * and command line mapped 1:1. */
static int write_page_tables(struct guest_mem *m, vt_err *err)
{
	uint64_t *pml4 = gmem_ptr(m, LAYOUT_PML4, 4096);
	uint64_t *pdpt = gmem_ptr(m, LAYOUT_PDPT, 4096);
	uint64_t *pd = gmem_ptr(m, LAYOUT_PD, 4 * 4096);
	if (!pml4 || !pdpt || !pd)
		return vt_fail(err, "guest memory too small for boot page tables");
	memset(pml4, 0, 4096);
	memset(pdpt, 0, 4096);
	pml4[0] = LAYOUT_PDPT | 0x3;
	for (uint64_t i = 0; i < 4; i++)
		pdpt[i] = (LAYOUT_PD + i * 4096) | 0x3;
	for (uint64_t i = 0; i < 4 * 512; i++)
		pd[i] = (i << 21) | 0x83; /* present, writable, 2 MiB page */
	return 0;
}

static void set_segments(struct kvm_sregs *s, bool long_mode)
{
	s->cs = long_mode ? flat_segment(GDT_SEL_CODE64, 0xb, true) : flat_segment(GDT_SEL_CODE32, 0xb, false);
	s->ds = s->es = s->fs = s->gs = s->ss = flat_segment(GDT_SEL_DATA, 0x3, false);
	s->gdt.base = LAYOUT_GDT;
	s->gdt.limit = sizeof(boot_gdt) - 1;
	/* A usable TR is required for entry on VMX even though nothing uses it. */
	s->tr = (struct kvm_segment){ .limit = 0x67, .type = 0xb, .present = 1 };
	s->ldt = (struct kvm_segment){ .limit = 0xffff, .type = 0x2, .present = 1 };
}

int vcpu_setup_boot_regs(struct vcpu *v, const struct boot_entry *boot, vt_err *err)
{
	struct guest_mem *m = &v->vm->mem;
	if (gmem_write(m, LAYOUT_GDT, boot_gdt, sizeof(boot_gdt)) < 0)
		return vt_fail(err, "guest memory too small for the GDT");
	struct kvm_sregs s;
	if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return vt_fail_errno(err, errno, "KVM_GET_SREGS");
	struct kvm_regs r = { .rflags = 0x2, .rip = boot->entry };
	bool long_mode = boot->mode == BOOT_MODE_LINUX64;
	set_segments(&s, long_mode);
	if (long_mode) {
		if (write_page_tables(m, err) < 0)
			return -1;
		s.cr3 = LAYOUT_PML4;
		s.cr4 = CR4_PAE;
		s.cr0 = CR0_PE | CR0_ET | CR0_PG;
		s.efer = EFER_LME | EFER_LMA;
		r.rsi = boot->arg;
	} else {
		s.cr0 = CR0_PE | CR0_ET;
		s.cr4 = 0;
		s.efer = 0;
		r.rbx = boot->arg;
	}
	if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0)
		return vt_fail_errno(err, errno, "KVM_SET_SREGS");
	if (ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		return vt_fail_errno(err, errno, "KVM_SET_REGS");
	return 0;
}

static const char *const exit_names[] = {
	[KVM_EXIT_UNKNOWN] = "unknown", [KVM_EXIT_EXCEPTION] = "exception", [KVM_EXIT_IO] = "io",
	[KVM_EXIT_HYPERCALL] = "hypercall", [KVM_EXIT_DEBUG] = "debug", [KVM_EXIT_HLT] = "hlt",
	[KVM_EXIT_MMIO] = "mmio", [KVM_EXIT_IRQ_WINDOW_OPEN] = "irq-window", [KVM_EXIT_SHUTDOWN] = "shutdown",
	[KVM_EXIT_FAIL_ENTRY] = "fail-entry", [KVM_EXIT_INTR] = "intr", [KVM_EXIT_SET_TPR] = "set-tpr",
	[KVM_EXIT_TPR_ACCESS] = "tpr-access", [KVM_EXIT_NMI] = "nmi", [KVM_EXIT_INTERNAL_ERROR] = "internal-error",
	[KVM_EXIT_SYSTEM_EVENT] = "system-event", [KVM_EXIT_IOAPIC_EOI] = "ioapic-eoi",
	[KVM_EXIT_X86_RDMSR] = "rdmsr", [KVM_EXIT_X86_WRMSR] = "wrmsr",
};

const char *kvm_exit_name(unsigned reason)
{
	if (reason < ARRAY_SIZE(exit_names) && exit_names[reason])
		return exit_names[reason];
	return "other";
}

void vcpu_dump(struct vcpu *v, FILE *f)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	if (!f || ioctl(v->fd, KVM_GET_REGS, &r) < 0 || ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return;
	fprintf(f, "vCPU %u registers:\n"
		"  rip %016llx  rsp %016llx  rflags %08llx\n"
		"  rax %016llx  rbx %016llx  rcx %016llx  rdx %016llx\n"
		"  rsi %016llx  rdi %016llx  rbp %016llx\n"
		"  cr0 %016llx  cr2 %016llx  cr3 %016llx  cr4 %016llx  efer %llx\n"
		"  cs %04x base %llx l=%u db=%u  ss %04x  ds %04x\n",
		v->index, r.rip, r.rsp, r.rflags, r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp,
		s.cr0, s.cr2, s.cr3, s.cr4, s.efer, s.cs.selector, s.cs.base, s.cs.l, s.cs.db, s.ss.selector, s.ds.selector);
}

static const char pvm_note[] =
	"virtus: note: this host's KVM is nested PVM, which emulates guest kernel-mode code and cannot run an "
	"unmodified Linux kernel; run Linux guests in the nested test bed (see docs/testbed.md)\n";

static void report_crash(struct vcpu *v, const char *what)
{
	FILE *f = v->vm->diag;
	if (f) {
		fprintf(f, "virtus: vCPU %u: %s\n", v->index, what);
		vcpu_dump(v, f);
	}
	vm_request_stop(v->vm, VM_EXIT_CRASH);
}

static void handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint64_t bytes = (uint64_t)run->io.size * run->io.count;
	if (run->io.data_offset > v->vm->run_size || bytes > v->vm->run_size - run->io.data_offset) {
		report_crash(v, "KVM reported port I/O data outside kvm_run");
		return;
	}
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool out = run->io.direction == KVM_EXIT_IO_OUT;
	for (uint32_t i = 0; i < run->io.count; i++)
		bus_dispatch(&v->vm->pio, run->io.port, data + (size_t)i * run->io.size, run->io.size, out);
}

static void handle_internal_error(struct vcpu *v)
{
	char what[128];
	snprintf(what, sizeof(what), "KVM internal error, suberror %u%s", v->run->internal.suberror,
		 v->run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ? " (instruction emulation failed)" : "");
	report_crash(v, what);
	if (v->vm->diag && v->run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION && v->vm->pvm)
		fputs(pvm_note, v->vm->diag);
}

static void handle_system_event(struct vcpu *v)
{
	switch (v->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN: vm_request_stop(v->vm, VM_EXIT_POWEROFF); break;
	case KVM_SYSTEM_EVENT_RESET: vm_request_stop(v->vm, VM_EXIT_RESET); break;
	default: report_crash(v, "guest reported a crash (system event)"); break;
	}
}

/* Returns false when the loop must end. */
static bool handle_exit(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	char what[96];
	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		handle_io(v);
		return true;
	case KVM_EXIT_MMIO:
		bus_dispatch(&v->vm->mmio, run->mmio.phys_addr, run->mmio.data, MIN(run->mmio.len, 8u), run->mmio.is_write);
		return true;
	case KVM_EXIT_SHUTDOWN:
		report_crash(v, "triple fault (KVM_EXIT_SHUTDOWN): the guest reset the CPU after an unhandled exception");
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(what, sizeof(what), "VM entry failed, hardware reason 0x%llx",
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		report_crash(v, what);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		handle_internal_error(v);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		handle_system_event(v);
		return false;
	default:
		snprintf(what, sizeof(what), "unexpected exit reason %u (%s)", run->exit_reason, kvm_exit_name(run->exit_reason));
		report_crash(v, what);
		return false;
	}
}

void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	thread_role_enter(THREAD_VCPU);
	sigset_t kick;
	sigemptyset(&kick);
	sigaddset(&kick, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &kick, NULL);
	v->self = pthread_self();
	__atomic_store_n(&v->self_published, true, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&vm->stopping, __ATOMIC_SEQ_CST)) {
		if (__atomic_load_n(&vm->pause.requested, __ATOMIC_SEQ_CST)) {
			vcpu_park(v);
			continue;
		}
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			if (vm->diag)
				fprintf(vm->diag, "virtus: vCPU %u: KVM_RUN failed: %s\n", v->index, strerror(errno));
			vm_request_stop(vm, VM_EXIT_ERROR);
			break;
		}
		if (!__atomic_load_n(&vm->first_exit_ns, __ATOMIC_RELAXED)) {
			uint64_t zero = 0;
			__atomic_compare_exchange_n(&vm->first_exit_ns, &zero, now_ns(), false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
		}
		unsigned reason = v->run->exit_reason;
		uint64_t *count = &v->exits[reason < VCPU_EXIT_REASONS ? reason : 0];
		__atomic_store_n(count, *count + 1, __ATOMIC_RELAXED);   /* one writer; GET /metrics reads it */
		if (!handle_exit(v))
			break;
	}
	return NULL;
}
