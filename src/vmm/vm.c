#include "vmm/vm.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "lib/thread_role.h"
#include "lib/util.h"
#include "vmm/boot/acpi.h"
#include "vmm/layout.h"

#define KERNEL_MAX_SIZE (512 * MiB)
#define KVM_MAX_VCPUS_FALLBACK 4

static int open_kvm(vt_err *err)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	if (errno == ENOENT)
		return vt_fail(err, "no /dev/kvm: this host does not offer KVM (load kvm_intel/kvm_amd, or enable "
			       "virtualization in the firmware or for this VM)");
	if (errno == EACCES || errno == EPERM)
		return vt_fail(err, "no permission to open /dev/kvm: run as root or join the group that owns it (often 'kvm')");
	return vt_fail_errno(err, errno, "cannot open /dev/kvm");
}

static const struct { int cap; const char *name; } required_caps[] = {
	{ KVM_CAP_IRQCHIP, "IRQCHIP" },
	{ KVM_CAP_USER_MEMORY, "USER_MEMORY" },
	{ KVM_CAP_SET_TSS_ADDR, "SET_TSS_ADDR" },
	{ KVM_CAP_EXT_CPUID, "EXT_CPUID" },
	{ KVM_CAP_PIT2, "PIT2" },
	{ KVM_CAP_IMMEDIATE_EXIT, "IMMEDIATE_EXIT" },
};

static int check_kvm(int kvm_fd, vt_err *err)
{
	int version = ioctl(kvm_fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION)
		return vt_fail(err, "/dev/kvm speaks API version %d, virtus needs %d", version, KVM_API_VERSION);
	for (size_t i = 0; i < ARRAY_SIZE(required_caps); i++)
		if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0)
			return vt_fail(err, "this host's KVM lacks the %s capability that virtus needs", required_caps[i].name);
	return 0;
}

static unsigned kvm_max_vcpus(int kvm_fd)
{
	int n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (n <= 0)
		n = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	return n > 0 ? (unsigned)n : KVM_MAX_VCPUS_FALLBACK;
}

bool host_kvm_is_pvm(void)
{
	return access("/sys/module/kvm_pvm", F_OK) == 0;
}

static void set_irq_line(void *opaque, int level)
{
	struct vm *vm = opaque;
	struct kvm_irq_level irq = { .irq = IRQ_COM1, .level = (uint32_t)level };
	ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq);
}

void vm_press_power_button(struct vm *vm)
{
	/* an edge: the Generic Event Device's _EVT runs once per rising edge */
	struct kvm_irq_level irq = { .irq = GSI_POWER_BUTTON, .level = 1 };
	ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq);
	irq.level = 0;
	ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq);
}

static void platform_event(void *opaque, enum platform_event ev)
{
	vm_request_stop(opaque, ev == PLATFORM_POWEROFF ? VM_EXIT_POWEROFF : VM_EXIT_RESET);
}

static int setup_irqchip(struct vm *vm, vt_err *err)
{
	uint64_t identity = LAYOUT_IDENTITY_MAP;
	if (ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0)
		return vt_fail_errno(err, errno, "KVM_SET_IDENTITY_MAP_ADDR");
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)LAYOUT_TSS) < 0)
		return vt_fail_errno(err, errno, "KVM_SET_TSS_ADDR");
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return vt_fail_errno(err, errno, "KVM_CREATE_IRQCHIP");
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return vt_fail_errno(err, errno, "KVM_CREATE_PIT2");
	return 0;
}

/* No PMU for the guest (CPUID says so, cpuid.c), but on AMD Linux assumes the legacy counters exist and
 * probes them; a host KVM without a vPMU then logs "Unhandled WRMSR(0xc0010007)" for every boot. Denied
 * by a filter, the accesses fault in the guest (which then says the PMU is not available due to
 * virtualization) without reaching KVM's MSR code. Best effort: older kernels lack MSR filters. */
static void deny_pmu_msrs(struct vm *vm)
{
	static const uint8_t deny[2] = { 0 }; /* a clear bit denies the MSR */
	struct kvm_msr_filter f = {
		.flags = KVM_MSR_FILTER_DEFAULT_ALLOW,
		.ranges = {
			{ .flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE, .base = 0xc0010000, .nmsrs = 8,
			  .bitmap = (uint8_t *)deny },  /* K7 PERFEVTSEL0-3, PERFCTR0-3 */
			{ .flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE, .base = 0xc0010200, .nmsrs = 12,
			  .bitmap = (uint8_t *)deny },  /* PerfCtrExtCore counters 0-5 */
		},
	};
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_MSR_FILTER) > 0)
		ioctl(vm->vm_fd, KVM_X86_SET_MSR_FILTER, &f);
}

static int setup_memory(struct vm *vm, const struct vm_config *cfg, vt_err *err)
{
	uint64_t size = cfg->mem_size;
	unsigned flags = (cfg->ksm ? GMEM_MERGEABLE : 0) | (cfg->nfs > 0 ? GMEM_SHARED : 0);
	int rc = cfg->restore_mem_path ? gmem_init_file(&vm->mem, size, cfg->restore_mem_path, flags, err)
				       : gmem_init(&vm->mem, size, flags, err);
	if (rc < 0)
		return -1;
	for (unsigned i = 0; i < vm->mem.nregions; i++) {
		const struct gmem_region *r = &vm->mem.region[i];
		struct kvm_userspace_memory_region slot = {
			.slot = i, .guest_phys_addr = r->gpa, .memory_size = r->size, .userspace_addr = (uintptr_t)r->hva,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			return vt_fail_errno(err, errno, "cannot give %llu MiB of memory to KVM", (unsigned long long)(size / MiB));
	}
	return 0;
}

static int setup_platform_devices(struct vm *vm, int console_out_fd, vt_err *err)
{
	uart_init(&vm->uart, console_out_fd, set_irq_line, vm);
	vm->platform = (struct platform_dev){ .notify = platform_event, .opaque = vm };
	if (bus_register(&vm->pio, PORT_COM1, 8, uart_io, &vm->uart, "serial", err) < 0 ||
	    bus_register(&vm->pio, PORT_I8042_DATA, 5, i8042_io, &vm->platform, "i8042", err) < 0 ||
	    bus_register(&vm->pio, PORT_ACPI_SLEEP_CTL, 2, acpi_sleep_io, &vm->platform, "acpi-sleep", err) < 0)
		return -1;
	return 0;
}

static int setup_acpi(struct vm *vm, uint64_t *rsdp, vt_err *err)
{
	struct acpi_config cfg = {
		.ncpus = vm->ncpus,
		.lapic_addr = LAYOUT_LAPIC,
		.ioapic_addr = LAYOUT_IOAPIC,
		.sleep_ctl_port = PORT_ACPI_SLEEP_CTL,
		.sleep_sts_port = PORT_ACPI_SLEEP_STS,
		.reset_port = PORT_I8042_CMD,
		.reset_value = I8042_CMD_RESET,
		.com1_port = PORT_COM1,
		.com1_irq = IRQ_COM1,
		.power_button_gsi = GSI_POWER_BUTTON,
	};
	vm_pci_describe(vm, &cfg);
	uint8_t *buf = gmem_ptr(&vm->mem, LAYOUT_ACPI_START, LAYOUT_ACPI_SIZE);
	size_t used;
	if (acpi_build(&cfg, buf, LAYOUT_ACPI_SIZE, LAYOUT_ACPI_START, rsdp, &used, err) < 0)
		return vt_err_prefix(err, "building ACPI tables");
	return 0;
}

/* Linux reboots a hardware-reduced ACPI machine without EFI by jumping to the BIOS reset vector. There is
 * no BIOS, so put there what the jump means on real hardware: pulse the reset line. The bytes decode the
 * same in real and protected mode: mov al, 0xfe; out 0x64, al; 1: hlt; jmp 1b. */
static int write_reset_vector(struct vm *vm, vt_err *err)
{
	static const uint8_t stub[] = { 0xb0, I8042_CMD_RESET, 0xe6, PORT_I8042_CMD, 0xf4, 0xeb, 0xfd };
	if (gmem_write(&vm->mem, LAYOUT_RESET_VECTOR, stub, sizeof(stub)) < 0)
		return vt_fail(err, "guest memory too small for the reset vector");
	return 0;
}

static int load_kernel(struct vm *vm, const struct vm_config *cfg, vt_err *err)
{
	cleanup_free void *kernel = NULL, *initrd = NULL;
	size_t kernel_size = cfg->kernel_size, initrd_size = 0;
	const char *kernel_name = cfg->kernel_path ? cfg->kernel_path : "kernel";
	if (!cfg->kernel_data && read_file(cfg->kernel_path, KERNEL_MAX_SIZE, &kernel, &kernel_size, err) < 0)
		return vt_err_prefix(err, "kernel");
	if (cfg->initrd_path && read_file(cfg->initrd_path, vm->mem.ram_size, &initrd, &initrd_size, err) < 0) {
		if (err && strstr(err->msg, "too large"))
			return vt_fail(err, "initrd %s is larger than guest memory (%llu MiB); give the guest more --memory",
				       cfg->initrd_path, (unsigned long long)(vm->mem.ram_size / MiB));
		return vt_err_prefix(err, "initrd");
	}
	struct boot_params_in in = {
		.kernel = cfg->kernel_data ? cfg->kernel_data : kernel, .kernel_size = kernel_size,
		.initrd = initrd, .initrd_size = initrd_size,
		.cmdline = cfg->cmdline ? cfg->cmdline : "",
	};
	if (setup_acpi(vm, &in.rsdp_gpa, err) < 0 || write_reset_vector(vm, err) < 0)
		return -1;
	if (boot_load(&vm->mem, &in, &vm->boot, err) < 0)
		return vt_err_prefix(err, "%s", kernel_name);
	return 0;
}

static int validate_config(const struct vm_config *cfg, unsigned max_vcpus, vt_err *err)
{
	if (cfg->ncpus == 0)
		return vt_fail(err, "--cpus must be at least 1");
	if (cfg->ncpus > max_vcpus)
		return vt_fail(err, "--cpus %u exceeds this host's KVM limit of %u vCPUs", cfg->ncpus, max_vcpus);
	if (cfg->ncpus > 255)
		return vt_fail(err, "--cpus %u exceeds virtus' limit of 255 vCPUs (xAPIC)", cfg->ncpus);
	if (!cfg->kernel_path && !cfg->kernel_data && !cfg->restore_mem_path && !cfg->incoming)
		return vt_fail(err, "no kernel given");
	return 0;
}

static int vm_build(struct vm *vm, const struct vm_config *cfg, vt_err *err)
{
	if ((vm->kvm_fd = open_kvm(err)) < 0 || check_kvm(vm->kvm_fd, err) < 0)
		return -1;
	if (validate_config(cfg, kvm_max_vcpus(vm->kvm_fd), err) < 0)
		return -1;
	vm->ncpus = cfg->ncpus;
	int run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0)
		return vt_fail_errno(err, errno, "KVM_GET_VCPU_MMAP_SIZE");
	vm->run_size = (size_t)run_size;
	do
		vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	while (vm->vm_fd < 0 && errno == EINTR);
	if (vm->vm_fd < 0)
		return vt_fail_errno(err, errno, "KVM_CREATE_VM");
	if ((vm->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0)
		return vt_fail_errno(err, errno, "eventfd");
	if (setup_irqchip(vm, err) < 0 || setup_memory(vm, cfg, err) < 0)
		return -1;
	deny_pmu_msrs(vm);
	if (setup_platform_devices(vm, cfg->console_out_fd, err) < 0 || vm_pci_setup(vm, cfg, err) < 0 ||
	    (!cfg->restore_mem_path && !cfg->incoming && load_kernel(vm, cfg, err) < 0))
		return -1;
	vm->vcpus = calloc(vm->ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return vt_fail_errno(err, ENOMEM, "allocating vCPUs");
	for (unsigned i = 0; i < vm->ncpus; i++)
		vm->vcpus[i].fd = -1;
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (vcpu_create(vm, i, err) < 0)
			return -1;
	if (cfg->restore_mem_path || cfg->incoming)
		return 0; /* the snapshot's or migration's state replaces the boot state (vm_snapshot_load_state) */
	return vcpu_setup_boot_regs(&vm->vcpus[0], &vm->boot, err);
}

bool vm_config_wants_pci(const struct vm_config *cfg)
{
	return cfg->rng || cfg->virtio_console || cfg->balloon || cfg->ndisks || cfg->nnets || cfg->vsock_cid ||
	       cfg->nfs || cfg->cdrom;
}

unsigned vm_thread_roles(const struct vm_config *cfg)
{
	unsigned roles = 1u << THREAD_MAIN | 1u << THREAD_VCPU;
	/* With a PCI bus, the devices' event loop; and disks' worker pools (io_uring refused, a qcow2 image), which
	 * a disk plugged in while the VM runs may start too. */
	if (vm_config_wants_pci(cfg))
		roles |= 1u << THREAD_DEVICE | 1u << THREAD_IO_WORKER;
	for (unsigned i = 0; i < cfg->nnets; i++)
		if (!strncmp(cfg->net[i], "user", 4))
			roles |= 1u << THREAD_SLIRP;
	return roles;
}

int vm_create(const struct vm_config *cfg, struct vm **out, vt_err *err)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return vt_fail_errno(err, ENOMEM, "allocating the VM");
	vm->create_ns = now_ns();
	vm->kvm_fd = vm->vm_fd = vm->stop_fd = -1;
	vm->exit = VM_RUNNING;
	vm->diag = cfg->diag;
	vm->pvm = host_kvm_is_pvm();
	pthread_mutex_init(&vm->pause.lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->pause.changed, &ca);
	pthread_condattr_destroy(&ca);
	if (vm_build(vm, cfg, err) < 0) {
		vm_destroy(vm);
		return -1;
	}
	*out = vm;
	return 0;
}

int vm_add_pio(struct vm *vm, uint16_t port, uint16_t len, io_handler_fn fn, void *opaque, const char *name, vt_err *err)
{
	return bus_register(&vm->pio, port, len, fn, opaque, name, err);
}

int vm_add_mmio(struct vm *vm, uint64_t addr, uint64_t len, io_handler_fn fn, void *opaque, const char *name, vt_err *err)
{
	return bus_register(&vm->mmio, addr, len, fn, opaque, name, err);
}

static void kick_signal_handler(int sig)
{
	(void)sig; /* only here to interrupt KVM_RUN with EINTR */
}

int vm_start(struct vm *vm, vt_err *err)
{
	struct sigaction sa = { .sa_handler = kick_signal_handler };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL); /* process-wide, idempotent: every VM uses the same no-op kick */
	vm->start_ns = now_ns();
	if (vm_pci_start(vm, err) < 0)
		return -1;
	for (unsigned i = 0; i < vm->ncpus; i++) {
		int rc = pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i]);
		if (rc) {
			vm_request_stop(vm, VM_EXIT_ERROR);
			return vt_fail_errno(err, rc, "cannot start vCPU thread %u", i);
		}
		vm->vcpus[i].thread_started = true;
	}
	return 0;
}

/* Every vCPU thread publishes itself, then checks `stopping` (or a pause), then enters KVM_RUN. A thread not
 * yet published will see the flag; a published one is inside or about to enter KVM_RUN: immediate_exit
 * covers "about to", the signal covers "inside". */
void vm_kick_vcpus(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (v->run)
			__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	}
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		if (__atomic_load_n(&v->self_published, __ATOMIC_SEQ_CST) && !pthread_equal(v->self, pthread_self()))
			pthread_kill(v->self, SIGUSR1);
	}
}

void vm_request_stop(struct vm *vm, enum vm_exit why)
{
	int expected = VM_RUNNING;
	__atomic_compare_exchange_n(&vm->exit, &expected, (int)why, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	if (__atomic_exchange_n(&vm->stopping, true, __ATOMIC_SEQ_CST))
		return;
	vm_kick_vcpus(vm);
	pthread_mutex_lock(&vm->pause.lock); /* wake paused vCPUs (and a pausing controller) to end */
	pthread_cond_broadcast(&vm->pause.changed);
	pthread_mutex_unlock(&vm->pause.lock);
	uint64_t one = 1;
	if (write(vm->stop_fd, &one, sizeof(one)) < 0) {
		/* eventfd writes only fail on counter overflow; the stop flag is already set */
	}
}

/* Join a stopping vCPU thread, re-sending the kick every 100 ms: a stop must never hang on a lost wakeup. */
static void join_vcpu(struct vcpu *v)
{
	for (;;) {
		struct timespec deadline;
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_nsec += 100 * 1000 * 1000;
		if (deadline.tv_nsec >= 1000000000L)
			deadline.tv_sec++, deadline.tv_nsec -= 1000000000L;
		if (pthread_timedjoin_np(v->thread, NULL, &deadline) != ETIMEDOUT)
			return;
		if (__atomic_load_n(&v->self_published, __ATOMIC_SEQ_CST))
			pthread_kill(v->self, SIGUSR1);
	}
}

enum vm_exit vm_wait(struct vm *vm)
{
	uint64_t v;
	while (read(vm->stop_fd, &v, sizeof(v)) < 0 && errno == EINTR)
		;
	for (unsigned i = 0; i < vm->ncpus; i++) {
		if (vm->vcpus[i].thread_started) {
			join_vcpu(&vm->vcpus[i]);
			vm->vcpus[i].thread_started = false;
		}
	}
	return (enum vm_exit)__atomic_load_n(&vm->exit, __ATOMIC_SEQ_CST);
}

void vm_destroy(struct vm *vm)
{
	if (!vm)
		return;
	if (vm->vcpus) {
		for (unsigned i = 0; i < vm->ncpus; i++)
			if (vm->vcpus[i].thread_started) {
				vm_request_stop(vm, VM_EXIT_INTERRUPTED);
				vm_wait(vm);
				break;
			}
		for (unsigned i = 0; i < vm->ncpus; i++)
			vcpu_destroy(&vm->vcpus[i]);
		free(vm->vcpus);
	}
	vm_pci_destroy(vm);
	uart_destroy(&vm->uart);
	gmem_free(&vm->mem);
	if (vm->stop_fd >= 0)
		close(vm->stop_fd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	pthread_cond_destroy(&vm->pause.changed);
	pthread_mutex_destroy(&vm->pause.lock);
	free(vm);
}

const char *vm_exit_name(enum vm_exit e)
{
	switch (e) {
	case VM_EXIT_POWEROFF: return "guest powered off";
	case VM_EXIT_RESET: return "guest requested a reboot";
	case VM_EXIT_CRASH: return "guest crashed";
	case VM_EXIT_ERROR: return "VMM error";
	case VM_EXIT_INTERRUPTED: return "stopped from the host";
	default: return "running";
	}
}

void vm_print_stats(const struct vm *vm, FILE *f)
{
	uint64_t total[VCPU_EXIT_REASONS] = { 0 }, all = 0;
	for (unsigned i = 0; i < vm->ncpus; i++)
		for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++)
			total[r] += vm->vcpus[i].exits[r];
	fprintf(f, "virtus: exit statistics (%u vCPUs, %.3f s)\n", vm->ncpus, (double)(now_ns() - vm->start_ns) / 1e9);
	uint64_t first = __atomic_load_n(&vm->first_exit_ns, __ATOMIC_RELAXED);
	if (first)
		fprintf(f, "  setup %.3f ms, first guest exit %.3f ms after VM creation began\n",
			(double)(vm->start_ns - vm->create_ns) / 1e6, (double)(first - vm->create_ns) / 1e6);
	for (unsigned r = 0; r < VCPU_EXIT_REASONS; r++) {
		if (!total[r])
			continue;
		all += total[r];
		fprintf(f, "  %-16s %10llu\n", kvm_exit_name(r), (unsigned long long)total[r]);
	}
	fprintf(f, "  %-16s %10llu\n", "total", (unsigned long long)all);
	vm_pci_print_stats(vm, f);
	const struct io_bus *buses[] = { &vm->pio, &vm->mmio };
	const char *kinds[] = { "pio", "mmio" };
	for (unsigned b = 0; b < 2; b++) {
		for (unsigned i = 0; i < buses[b]->n; i++)
			if (buses[b]->range[i].accesses)
				fprintf(f, "  %-4s %-11s %10llu\n", kinds[b], buses[b]->range[i].name,
					(unsigned long long)buses[b]->range[i].accesses);
		if (buses[b]->unhandled)
			fprintf(f, "  %-4s %-11s %10llu\n", kinds[b], "unclaimed", (unsigned long long)buses[b]->unhandled);
		for (unsigned i = 0; i < BUS_UNCLAIMED_SLOTS; i++)
			if (buses[b]->unclaimed[i].count)
				fprintf(f, "       at 0x%-8llx %10llu\n", (unsigned long long)buses[b]->unclaimed[i].addr,
					(unsigned long long)buses[b]->unclaimed[i].count);
	}
}
