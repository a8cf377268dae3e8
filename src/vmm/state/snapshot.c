/* Snapshot and restore of a VM (contract in snapshot.h). */
#include "vmm/state/snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/virtio/virtio.h"
#include "lib/util.h"
#include "vmm/vm_pci.h"

#define MACHINE_VERSION 2 /* 2: devices on PCI (section pci) */
#define CLOCK_VERSION 1
#define IRQCHIP_VERSION 1
#define PIT_VERSION 1
#define MEMORY_VERSION 1
#define CONFIG_VERSION 1
#define PAGE 4096

/* What the memory file holds: the RAM regions one after the other, in guest-physical order. */
struct memory_section {
	uint64_t ram_size;
	uint64_t page_size;
};

int vm_snapshot_supported(const struct vm *vm, vt_err *err)
{
	return vm_pci_snapshot_supported(vm, err);
}

/* ---- Memory: runs of non-zero pages written where they belong, zero pages left as holes ------------- */

static bool page_is_zero(const uint8_t *p)
{
	static const uint8_t zero[PAGE];
	return !memcmp(p, zero, PAGE);
}

/* Guest memory into the new, empty file fd (what = its name in messages): zero pages stay holes. */
static int write_memory(const struct guest_mem *m, int fd, const char *what, vt_err *err)
{
	uint64_t file_off = 0;
	for (unsigned i = 0; i < m->nregions; i++) {
		const struct gmem_region *r = &m->region[i];
		for (uint64_t off = 0; off < r->size;) {
			if (page_is_zero(r->hva + off)) {
				off += PAGE;
				continue;
			}
			uint64_t end = off + PAGE;
			while (end < r->size && !page_is_zero(r->hva + end))
				end += PAGE;
			for (uint64_t done = off; done < end;) {
				ssize_t n = pwrite(fd, r->hva + done, end - done, (off_t)(file_off + done));
				if (n < 0 && errno == EINTR)
					continue;
				if (n <= 0)
					return vt_fail_errno(err, n < 0 ? errno : EIO, "writing %s", what);
				done += (uint64_t)n;
			}
			off = end;
		}
		file_off += r->size;
	}
	if (ftruncate(fd, (off_t)file_off) < 0 || fdatasync(fd) < 0)
		return vt_fail_errno(err, errno, "finishing %s", what);
	return 0;
}

/* ---- The VM-wide parts ------------------------------------------------------------------------------ */

static int save_machine(struct vm *vm, struct state_writer *w, vt_err *err)
{
	struct snapshot_machine mach = { .ncpus = vm->ncpus, .mem_size = vm->mem.ram_size };
	struct memory_section mem = { .ram_size = vm->mem.ram_size, .page_size = PAGE };
	struct kvm_clock_data clock = { 0 };
	struct kvm_pit_state2 pit;
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &clock) < 0)
		return vt_fail_errno(err, errno, "KVM_GET_CLOCK");
	if (ioctl(vm->vm_fd, KVM_GET_PIT2, &pit) < 0)
		return vt_fail_errno(err, errno, "KVM_GET_PIT2");
	state_put(w, "machine", MACHINE_VERSION, &mach, sizeof(mach));
	state_put(w, "memory", MEMORY_VERSION, &mem, sizeof(mem));
	/* only the clock value: the flags and host time of the reading mean nothing to another process */
	state_put(w, "clock", CLOCK_VERSION, &clock.clock, sizeof(clock.clock));
	for (uint32_t chip = 0; chip < 3; chip++) { /* PIC master, PIC slave, IOAPIC */
		struct kvm_irqchip c = { .chip_id = chip };
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &c) < 0)
			return vt_fail_errno(err, errno, "KVM_GET_IRQCHIP %u", chip);
		char name[16];
		snprintf(name, sizeof(name), "irqchip%u", chip);
		state_put(w, name, IRQCHIP_VERSION, &c, sizeof(c));
	}
	state_put(w, "pit", PIT_VERSION, &pit, sizeof(pit));
	return 0;
}

static int load_machine(struct vm *vm, const struct state_reader *r, vt_err *err)
{
	struct kvm_pit_state2 pit;
	for (uint32_t chip = 0; chip < 3; chip++) {
		struct kvm_irqchip c;
		char name[16];
		snprintf(name, sizeof(name), "irqchip%u", chip);
		if (state_get(r, name, IRQCHIP_VERSION, &c, sizeof(c), err) < 0)
			return -1;
		if (c.chip_id != chip)
			return vt_fail(err, "snapshot section %s describes chip %u", name, c.chip_id);
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &c) < 0)
			return vt_fail_errno(err, errno, "KVM_SET_IRQCHIP %u", chip);
	}
	if (state_get(r, "pit", PIT_VERSION, &pit, sizeof(pit), err) < 0)
		return -1;
	if (ioctl(vm->vm_fd, KVM_SET_PIT2, &pit) < 0)
		return vt_fail_errno(err, errno, "KVM_SET_PIT2");
	return 0;
}

/* Last, after the vCPUs' TSCs: the guest's clock goes on from where the snapshot stopped it, never
 * backwards and without a jump over the time the snapshot lay on disk (an NTP client catches up). */
static int load_clock(struct vm *vm, const struct state_reader *r, vt_err *err)
{
	struct kvm_clock_data clock = { 0 };
	if (state_get(r, "clock", CLOCK_VERSION, &clock.clock, sizeof(clock.clock), err) < 0)
		return -1;
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0)
		return vt_fail_errno(err, errno, "KVM_SET_CLOCK");
	return 0;
}

/* ---- Whole VM --------------------------------------------------------------------------------------- */

int vm_snapshot_save_state(struct vm *vm, struct state_writer *w, vt_err *err)
{
	int rc = save_machine(vm, w, err);
	for (unsigned i = 0; rc == 0 && i < vm->ncpus; i++)
		rc = vcpu_state_save(&vm->vcpus[i], w, err);
	if (rc == 0)
		rc = uart_state_save(&vm->uart, w);
	if (rc == 0)
		rc = vm_pci_state_save(vm, w, err);
	return rc;
}

/* ---- Disks: frozen in the snapshot's directory, the VM going on in new overlays ------------------------ */

bool vm_snapshot_disk_layer(struct vm *vm, unsigned k, char *name, size_t len)
{
	struct virtio_device *d = vm_pci_disk(vm, k);
	if (!d || !virtio_blk_writable_image(d))
		return false;
	snprintf(name, len, "disk%u.%s", k, blk_format_name(virtio_blk_format(d)));
	return true;
}

/* Every layer's path is named before the first disk changes format (the name says the format). */
static int checkpoint_disks(struct vm *vm, const char *state_path, vt_err *err)
{
	const char *slash = strrchr(state_path, '/');
	char name[32], path[VM_MAX_DISKS][PATH_MAX];
	bool frozen[VM_MAX_DISKS] = { false };
	unsigned n = 0;
	for (; n < VM_MAX_DISKS && vm_pci_disk(vm, n); n++) {
		frozen[n] = vm_snapshot_disk_layer(vm, n, name, sizeof(name));
		snprintf(path[n], sizeof(path[n]), "%.*s/%s", slash ? (int)(slash - state_path) : 0, state_path, name);
		if (frozen[n] && state_path[0] != '/')
			return vt_fail(err, "the snapshot's path must be absolute: its disks' overlays name their backing files");
	}
	for (unsigned k = 0; k < n; k++) {
		if (!frozen[k] || virtio_blk_checkpoint(vm_pci_disk(vm, k), path[k], err) == 0)
			continue;
		while (k-- > 0)
			if (frozen[k])
				virtio_blk_checkpoint_undo(vm_pci_disk(vm, k), path[k], &(vt_err){ 0 });
		return -1;
	}
	return 0;
}

/* ---- Whole VM (file) -------------------------------------------------------------------------------- */

/* The state into w (which it ends), the memory into mem_fd, then the disks frozen beside state_path (NULL: the
 * caller checked that there is none to freeze). The VM paused; its devices frozen meanwhile. */
static int save_into(struct vm *vm, struct state_writer *w, int mem_fd, const char *mem_name, const char *state_path,
		     const char *config, vt_err *err)
{
	if (vm_pci_freeze(vm, err) < 0) {
		state_writer_abort(w);
		return -1;
	}
	state_put(w, "config", CONFIG_VERSION, config, strlen(config) + 1);
	int rc = vm_snapshot_save_state(vm, w, err);
	if (rc < 0)
		state_writer_abort(w);
	else if ((rc = state_writer_finish(w, err)) == 0)
		/* still frozen: no device writes guest memory while it is copied */
		rc = write_memory(&vm->mem, mem_fd, mem_name, err);
	if (rc == 0 && state_path)
		rc = checkpoint_disks(vm, state_path, err);
	vm_pci_thaw(vm);
	return rc;
}

static int check_saveable(struct vm *vm, vt_err *err)
{
	if (vm_snapshot_supported(vm, err) < 0)
		return -1;
	if (!vm_is_paused(vm))
		return vt_fail(err, "the VM must be paused for a snapshot");
	return 0;
}

int vm_snapshot_save(struct vm *vm, const char *state_path, const char *mem_path, const char *config, vt_err *err)
{
	if (check_saveable(vm, err) < 0)
		return -1;
	struct state_writer w;
	if (state_writer_open(&w, state_path, err) < 0)
		return -1;
	cleanup_close int mem_fd = open(mem_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	int rc = mem_fd < 0 ? vt_fail_errno(err, errno, "cannot create %s", mem_path) : 0;
	if (rc < 0)
		state_writer_abort(&w);
	else if ((rc = save_into(vm, &w, mem_fd, mem_path, state_path, config, err)) < 0)
		unlink(mem_path);
	if (rc < 0)
		unlink(state_path);
	return rc;
}

int vm_snapshot_save_fds(struct vm *vm, int state_fd, int mem_fd, const char *config, vt_err *err)
{
	char name[32];
	if (check_saveable(vm, err) < 0) {
		close(state_fd);
		return -1;
	}
	for (unsigned k = 0; k < VM_MAX_DISKS && vm_pci_disk(vm, k); k++) {
		if (vm_snapshot_disk_layer(vm, k, name, sizeof(name))) {
			close(state_fd);
			return vt_fail(err, "disk %u is writable: a snapshot freezes it in a new file beside its image, which "
				       "a VMM given only the snapshot's files cannot make (a jailed VMM's disks must be read-only "
				       "for a snapshot)", k + 1);
		}
	}
	struct state_writer w;
	state_writer_open_fd(&w, state_fd);
	return save_into(vm, &w, mem_fd, "the memory file", NULL, config, err);
}

int vm_snapshot_read_machine(const char *state_path, struct snapshot_machine *m, char **config, vt_err *err)
{
	struct state_reader r;
	const struct state_section *s;
	*config = NULL;
	if (state_reader_open(&r, state_path, err) < 0)
		return -1;
	int rc = state_get(&r, "machine", MACHINE_VERSION, m, sizeof(*m), err);
	if (rc == 0 && !(s = state_find(&r, "config", CONFIG_VERSION, err)))
		rc = -1;
	else if (rc == 0 && (!s->len || s->data[s->len - 1] || !(*config = strdup((const char *)s->data))))
		rc = vt_fail(err, "%s: its config section is not a string", state_path);
	state_reader_close(&r);
	return rc;
}

int vm_snapshot_load_state(struct vm *vm, const struct state_reader *r, vt_err *err)
{
	struct snapshot_machine mach;
	struct memory_section mem;
	if (state_get(r, "machine", MACHINE_VERSION, &mach, sizeof(mach), err) < 0 ||
	    state_get(r, "memory", MEMORY_VERSION, &mem, sizeof(mem), err) < 0)
		return -1;
	if (mach.ncpus != vm->ncpus || mach.mem_size != vm->mem.ram_size || mem.ram_size != vm->mem.ram_size)
		return vt_fail(err, "the snapshot is of a machine with %u vCPUs and %llu MiB, this one has %u and %llu MiB",
			       mach.ncpus, (unsigned long long)(mach.mem_size >> 20), vm->ncpus,
			       (unsigned long long)(vm->mem.ram_size >> 20));
	if (vm_snapshot_supported(vm, err) < 0 || load_machine(vm, r, err) < 0)
		return -1;
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (vcpu_state_load(&vm->vcpus[i], r, err) < 0)
			return -1;
	if (uart_state_load(&vm->uart, r, err) < 0 || vm_pci_state_load(vm, r, err) < 0 || load_clock(vm, r, err) < 0)
		return -1;
	return 0;
}

int vm_snapshot_restore(struct vm *vm, const char *state_path, vt_err *err)
{
	struct state_reader r;
	if (state_reader_open(&r, state_path, err) < 0)
		return -1;
	int rc = vm_snapshot_load_state(vm, &r, err);
	state_reader_close(&r);
	return rc;
}
