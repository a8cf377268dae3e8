/* KVM tests with tiny guests on the host's /dev/kvm, in-process: serial output, PIO/MMIO dispatch,
 * reset and crash reporting, SMP, and two VMs at once in one process (no global VM state). */
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/util.h"
#include "vmm/layout.h"
#include "vmm/vm.h"

static char guest_dir[PATH_MAX];

static const char *guest(const char *name)
{
	static __thread char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s.elf", guest_dir, name);
	return path;
}

static bool kvm_usable(void)
{
	int fd = open("/dev/kvm", O_RDWR);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

struct captured {
	int pipe[2];
	char text[4096];
};

static struct vm *make_vm(const char *name, unsigned ncpus, const char *cmdline, struct captured *cap)
{
	if (cap)
		assert_int_equal(pipe2(cap->pipe, O_CLOEXEC), 0);
	struct vm_config cfg = {
		.kernel_path = guest(name), .cmdline = cmdline ? cmdline : "", .ncpus = ncpus, .mem_size = 16 * MiB,
		.console_out_fd = cap ? cap->pipe[1] : -1, .diag = stderr,
	};
	struct vm *vm = NULL;
	vt_err err;
	if (vm_create(&cfg, &vm, &err) < 0)
		fail_msg("vm_create(%s): %s", name, err.msg);
	return vm;
}

static enum vm_exit run_to_end(struct vm *vm)
{
	vt_err err;
	if (vm_start(vm, &err) < 0)
		fail_msg("vm_start: %s", err.msg);
	return vm_wait(vm);
}

static const char *collect(struct captured *cap)
{
	close(cap->pipe[1]);
	ssize_t n = read(cap->pipe[0], cap->text, sizeof(cap->text) - 1);
	cap->text[n > 0 ? n : 0] = '\0';
	close(cap->pipe[0]);
	return cap->text;
}

static void serial_output_reaches_console(void **state)
{
	(void)state;
	struct captured cap;
	struct vm *vm = make_vm("hello", 1, NULL, &cap);
	assert_int_equal(run_to_end(vm), VM_EXIT_POWEROFF);
	vm_destroy(vm);
	assert_string_equal(collect(&cap), "virtus-test: hello from the guest\n");
}

#define MAX_ACCESSES 32
struct access {
	uint64_t off;
	uint32_t len;
	bool write;
	uint64_t value;
};
struct recorder {
	struct access log[MAX_ACCESSES];
	unsigned n;
	uint64_t read_value;
};

static void record(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	struct recorder *r = opaque;
	uint64_t v = 0;
	if (is_write)
		memcpy(&v, data, len);
	else
		memcpy(data, &r->read_value, len), v = r->read_value;
	if (r->n < MAX_ACCESSES)
		r->log[r->n++] = (struct access){ off, len, is_write, v };
}

static void expect(const struct recorder *r, unsigned i, uint64_t off, uint32_t len, bool write, uint64_t value)
{
	assert_true(i < r->n);
	assert_int_equal(r->log[i].off, off);
	assert_int_equal(r->log[i].len, len);
	assert_int_equal(r->log[i].write, write);
	assert_int_equal(r->log[i].value, value);
}

static void pio_and_mmio_dispatch(void **state)
{
	(void)state;
	struct recorder pio = { .read_value = 0xc0ffee11 }, mmio = { .read_value = 0x600df00d };
	vt_err err;
	struct vm *vm = make_vm("io", 1, NULL, NULL);
	assert_int_equal(vm_add_pio(vm, 0x510, 16, record, &pio, "test-pio", &err), 0);
	assert_int_equal(vm_add_mmio(vm, 0xd0000000, 32, record, &mmio, "test-mmio", &err), 0);
	assert_int_equal(vm_add_pio(vm, 0x3fc, 2, record, &pio, "overlaps-serial", &err), -1);
	assert_int_equal(run_to_end(vm), VM_EXIT_POWEROFF);
	vm_destroy(vm);

	assert_int_equal(pio.n, 10);
	expect(&pio, 0, 0, 1, true, 0x5a);
	expect(&pio, 1, 0, 2, true, 0xbeef);
	expect(&pio, 2, 0, 4, true, 0x12345678);
	const char *s = "virt!";
	for (unsigned i = 0; i < 5; i++) /* rep outsb: one dispatch per element */
		expect(&pio, 3 + i, 4, 1, true, (uint8_t)s[i]);
	expect(&pio, 8, 8, 4, false, 0xc0ffee11);
	expect(&pio, 9, 12, 4, true, 0xc0ffee11); /* the guest saw what the device returned */

	assert_int_equal(mmio.n, 3);
	expect(&mmio, 0, 0, 4, true, 0xa5a5f00d);
	expect(&mmio, 1, 8, 4, false, 0x600df00d);
	expect(&mmio, 2, 16, 4, true, 0x600df00d);
}

static const struct io_range *find_range(const struct io_bus *bus, const char *name)
{
	for (unsigned i = 0; i < bus->n; i++)
		if (!strcmp(bus->range[i].name, name))
			return &bus->range[i];
	return NULL;
}

/* --rng: the guest finds the device through conf1, and 1000 kicks by MMIO write (BAR 0) and 1000 by port
 * write (BAR 2, the I/O BAR) reach the device thread through the ioeventfds without one exit to userspace.
 * The guest's TSC ticks per kick of each kind are printed (not judged: a test is no benchmark). */
static void pci_rng_kicks_without_exits(void **state)
{
	(void)state;
	struct recorder pio = { 0 };
	struct vm_config cfg = { .kernel_path = guest("pci"), .cmdline = "", .ncpus = 1, .mem_size = 16 * MiB,
				 .console_out_fd = -1, .diag = stderr, .rng = true };
	struct vm *vm = NULL;
	vt_err err;
	if (vm_create(&cfg, &vm, &err) < 0)
		fail_msg("vm_create: %s", err.msg);
	assert_int_equal(vm_add_pio(vm, 0x510, 16, record, &pio, "test-pio", &err), 0);
	assert_int_equal(run_to_end(vm), VM_EXIT_POWEROFF);
	assert_int_equal(pio.n, 6);
	expect(&pio, 0, 0, 4, true, 0x10441af4);  /* virtio-rng, modern */
	expect(&pio, 1, 0, 4, true, 0xc0000000);  /* BAR 0 at the start of the window */
	expect(&pio, 3, 0, 4, true, (PORT_PCI_IO_BARS + 1 * PORT_PCI_IO_BARS_SIZE / PCI_MAX_SLOTS) | PCI_BAR_IO);
	expect(&pio, 5, 0, 4, true, 1);           /* num_queues through the BAR */
	printf("# guest TSC ticks per kick: %.0f by MMIO write, %.0f by port write\n", (double)pio.log[2].value / 1000.0,
	       (double)pio.log[4].value / 1000.0);
	const struct vpci_queue *q = &vm->pci.virtio[0].t->q[0];
	for (int i = 0; i < 100 && __atomic_load_n(&q->kicks, __ATOMIC_RELAXED) < 2000; i++)
		usleep(10000); /* the device thread counts them */
	assert_int_equal(__atomic_load_n(&q->kicks, __ATOMIC_RELAXED), 2000);
	assert_int_equal(q->trapped_kicks, 0);
	assert_int_equal(find_range(&vm->mmio, "pci-bars")->accesses, 1);
	vm_destroy(vm);
}

static void reset_and_crash_statuses(void **state)
{
	(void)state;
	struct captured cap;
	struct vm *vm = make_vm("reset", 1, NULL, &cap);
	assert_int_equal(run_to_end(vm), VM_EXIT_RESET);
	vm_destroy(vm);
	assert_string_equal(collect(&cap), "virtus-test: resetting\n");

	vm = make_vm("triple", 1, NULL, NULL);
	assert_int_equal(run_to_end(vm), VM_EXIT_CRASH);
	vm_destroy(vm);
}

static void smp_vcpus_all_run(void **state)
{
	(void)state;
	for (unsigned n = 1; n <= 4; n *= 2) {
		char cmdline[4] = { (char)('0' + n), 0 };
		struct captured cap;
		struct vm *vm = make_vm("smp", n, cmdline, &cap);
		assert_int_equal(run_to_end(vm), VM_EXIT_POWEROFF);
		vm_destroy(vm);
		char want[32];
		snprintf(want, sizeof(want), "smp: %u cpus up\n", n);
		assert_string_equal(collect(&cap), want);
	}
}

static void two_vms_in_one_process(void **state)
{
	(void)state;
	struct captured a, b;
	struct vm *va = make_vm("smp", 2, "2", &a), *vb = make_vm("hello", 1, NULL, &b);
	vt_err err;
	assert_int_equal(vm_start(va, &err), 0);
	assert_int_equal(vm_start(vb, &err), 0);
	assert_int_equal(vm_wait(vb), VM_EXIT_POWEROFF);
	assert_int_equal(vm_wait(va), VM_EXIT_POWEROFF);
	vm_destroy(va);
	vm_destroy(vb);
	assert_string_equal(collect(&a), "smp: 2 cpus up\n");
	assert_string_equal(collect(&b), "virtus-test: hello from the guest\n");
}

static void stop_from_host(void **state)
{
	(void)state;
	/* smp with a count that never arrives spins in the guest; the host stops it. */
	struct vm *vm = make_vm("smp", 2, "9", NULL);
	vt_err err;
	assert_int_equal(vm_start(vm, &err), 0);
	usleep(20000);
	vm_request_stop(vm, VM_EXIT_INTERRUPTED);
	assert_int_equal(vm_wait(vm), VM_EXIT_INTERRUPTED);
	vm_destroy(vm);
}

static uint32_t spin_counter(struct vm *vm)
{
	uint32_t v;
	assert_int_equal(gmem_read(&vm->mem, 0x7f00, &v, sizeof(v)), 0);
	return __atomic_load_n(&v, __ATOMIC_RELAXED);
}

/* Waits up to 2 s for the spinning guest's counter to move past `past`. */
static bool counter_moves_past(struct vm *vm, uint32_t past)
{
	for (int i = 0; i < 200; i++, usleep(10000))
		if (spin_counter(vm) != past)
			return true;
	return false;
}

static void pause_freezes_and_resume_continues(void **state)
{
	(void)state;
	/* vCPU 0 counts; vCPU 1 waits in the kernel for a SIPI that never comes: both must park. */
	struct vm *vm = make_vm("spin", 2, NULL, NULL);
	vt_err err;
	assert_int_equal(vm_start(vm, &err), 0);
	assert_true(counter_moves_past(vm, 0));
	assert_false(vm_is_paused(vm));
	for (int round = 0; round < 3; round++) {
		assert_int_equal(vm_pause(vm, &err), 0);
		assert_true(vm_is_paused(vm));
		assert_int_equal(vm_pause(vm, &err), 0); /* idempotent */
		uint32_t frozen = spin_counter(vm);
		usleep(50000);
		assert_int_equal(spin_counter(vm), frozen);
		vm_resume(vm);
		assert_true(counter_moves_past(vm, frozen));
		assert_false(vm_is_paused(vm));
	}
	/* A stop ends a paused VM. */
	assert_int_equal(vm_pause(vm, &err), 0);
	vm_request_stop(vm, VM_EXIT_INTERRUPTED);
	assert_int_equal(vm_wait(vm), VM_EXIT_INTERRUPTED);
	assert_int_not_equal(vm_pause(vm, &err), 0);
	vm_destroy(vm);
}

static int check_kvm(void **state)
{
	(void)state;
	if (!kvm_usable()) {
		print_message("no usable /dev/kvm\n");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	(void)argc;
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = '\0';
	snprintf(guest_dir, sizeof(guest_dir), "%s/guests", dirname(self));
	(void)argv;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(serial_output_reaches_console),
		cmocka_unit_test(pio_and_mmio_dispatch),
		cmocka_unit_test(pci_rng_kicks_without_exits),
		cmocka_unit_test(reset_and_crash_statuses),
		cmocka_unit_test(smp_vcpus_all_run),
		cmocka_unit_test(two_vms_in_one_process),
		cmocka_unit_test(stop_from_host),
		cmocka_unit_test(pause_freezes_and_resume_continues),
	};
	return cmocka_run_group_tests_name("kvm", tests, check_kvm, NULL);
}
