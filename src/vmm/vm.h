/* A virtual machine: the KVM handles, guest memory, devices and vCPU threads. No global state: a test
 * can create several VMs in one process. */
#ifndef VIRTUS_VM_H
#define VIRTUS_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "block/raw.h"
#include "devices/bus.h"
#include "devices/platform.h"
#include "devices/serial.h"
#include "lib/err.h"
#include "vmm/boot/boot.h"
#include "vmm/guest_mem.h"
#include "vmm/vm_pci.h"

/* How a VM ended. Values are the process exit statuses `virtus vm run` uses. */
enum vm_exit {
	VM_RUNNING = -1,
	VM_EXIT_POWEROFF = 0,    /* ACPI S5 */
	VM_EXIT_ERROR = 1,       /* the VMM failed (setup, host error) */
	VM_EXIT_RESET = 3,       /* guest asked for a reboot: default policy is to exit */
	VM_EXIT_CRASH = 4,       /* triple fault, emulation failure, failed entry */
	VM_EXIT_INTERRUPTED = 130, /* stopped from the host (signal, console escape) */
};

#define VM_MAX_DISKS 8
#define VM_MAX_NETS 4
#define VM_MAX_FS 4

struct vm_config {
	const char *kernel_path;
	const void *kernel_data;  /* alternative to kernel_path: an image already in memory */
	size_t kernel_size;
	const char *initrd_path;  /* NULL: none */
	const char *cmdline;
	unsigned ncpus;
	uint64_t mem_size;
	bool ksm;                 /* guest RAM mergeable by the host's KSM (off: a cross-VM side channel) */
	int console_out_fd;       /* -1: discard guest serial output */
	FILE *diag;               /* where crash reports go; NULL: nowhere */
	bool rng;                 /* virtio-rng on PCI (and with it the PCI host bridge) */
	bool virtio_console;      /* the guest's console is virtio-console (hvc0), fed from console_out_fd's input */
	bool balloon;             /* virtio-balloon (its target can be changed while the VM runs) */
	uint64_t balloon_size;    /* its target: what it asks the guest for (at start, then as changed) */
	unsigned balloon_stats_s; /* > 0: its statistics queue, refreshed every this many seconds */
	unsigned ndisks;          /* virtio-blk devices on PCI, disk[0..ndisks) */
	struct vm_disk_config {
		const char *path;
		bool readonly;
		const char *serial;
		enum blk_format format;   /* AUTO: probed */
		bool overlay;         /* writes go to a throwaway qcow2 overlay, the image is never written */
		const char *layer;    /* in a snapshot's configuration: the file in its directory that keeps the
		                       * disk as it was (vm_snapshot_disk_layer); NULL: none */
		bool root_device;     /* the API's is_root_device: informational (the guest's cmdline picks its root) */
		unsigned pci_slot;    /* plugged in while the VM ran: its PCI slot (1..31), kept by snapshots and
		                       * migration; 0: placed in order with the devices given at start */
	} disk[VM_MAX_DISKS];
	uint32_t pci_reserved;    /* PCI slots left empty (bit n: slot n): devices were removed from them while
	                           * the VM ran, and the devices after them keep their places */
	unsigned nnets;           /* virtio-net devices on PCI, one per --net spec (net/net_opts.h) */
	const char *net[VM_MAX_NETS];
	const char *net_id[VM_MAX_NETS]; /* the interface's ID (the API's iface_id); NULL: ethN by position */
	unsigned net_slot[VM_MAX_NETS];  /* plugged in while the VM ran: its PCI slot, as a disk's pci_slot */
	uint64_t vsock_cid;       /* > 0: virtio-vsock with this guest CID, host side under vsock_path */
	const char *vsock_path;
	unsigned nfs;             /* virtio-fs devices served by vhost-user backends; guest RAM is then shared */
	struct vm_fs_config { char tag[40]; char socket[108]; } fs[VM_MAX_FS];
	bool cdrom;               /* a CD-ROM drive (virtio-scsi + MMC), its disc swapped while the VM runs */
	const char *cdrom_path;   /* the ISO image in it; NULL: empty */
	const char *restore_mem_path; /* a snapshot's memory file: RAM maps it privately, no kernel is loaded */
	bool incoming;            /* memory and state arrive by migration: no kernel is loaded */
};

#define VCPU_EXIT_REASONS 64

struct vcpu {
	struct vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;         /* joined by the creator */
	bool thread_started;      /* creator-side bookkeeping only */
	pthread_t self;           /* published by the thread itself before its first KVM_RUN ... */
	bool self_published;      /* ... so a stop can always find it (atomic) */
	uint64_t exits[VCPU_EXIT_REASONS];
};

struct vm {
	int kvm_fd, vm_fd;
	size_t run_size;
	unsigned ncpus;
	struct guest_mem mem;
	struct io_bus pio, mmio;
	struct uart8250 uart;
	struct platform_dev platform;
	struct vm_pci pci;        /* PCI bus and virtio devices; pci.enabled only if one is configured */
	struct vcpu *vcpus;
	struct boot_entry boot;
	FILE *diag;
	bool pvm;                 /* the host's KVM is nested PVM (read at creation: a vCPU thread may not look) */
	int stop_fd;              /* eventfd: readable once the VM has stopped */
	int exit;                 /* enum vm_exit, first writer wins (atomic) */
	bool stopping;            /* atomic */
	uint64_t create_ns;       /* vm_create entered */
	uint64_t start_ns;        /* vCPU threads started */
	uint64_t first_exit_ns;   /* the guest's first exit to userspace (atomic; 0 until then) */
	struct vm_pause {
		pthread_mutex_t lock;
		pthread_cond_t changed;   /* a vCPU parked or left, a resume, a stop */
		bool requested;           /* written under lock, read atomically by vCPU threads */
		unsigned parked;          /* vCPU threads waiting in their park (under lock) */
	} pause;
};

/* The kinds of thread a VM built from cfg runs (1 << enum thread_role, lib/thread_role.h): the sandbox
 * prepares a filter for each. */
unsigned vm_thread_roles(const struct vm_config *cfg);
/* Whether cfg has a PCI device (and so the PCI bus, its device thread and I/O workers). */
bool vm_config_wants_pci(const struct vm_config *cfg);
/* Open KVM, build the machine, load the kernel. Nothing runs yet. */
int vm_create(const struct vm_config *cfg, struct vm **out, vt_err *err);
/* Extra devices (tests, later virtio): call before vm_start. */
int vm_add_pio(struct vm *vm, uint16_t port, uint16_t len, io_handler_fn fn, void *opaque, const char *name, vt_err *err);
int vm_add_mmio(struct vm *vm, uint64_t addr, uint64_t len, io_handler_fn fn, void *opaque, const char *name, vt_err *err);
int vm_start(struct vm *vm, vt_err *err);
/* Ask every vCPU to stop; the first reason recorded wins. Safe from any thread. */
void vm_request_stop(struct vm *vm, enum vm_exit why);
/* Make every vCPU leave KVM_RUN (after setting the flag that tells it why). */
void vm_kick_vcpus(struct vm *vm);
/* Pause: every vCPU stops at its next exit and waits; returns once all wait (devices keep running: queued
 * I/O completes, a pause does not lose it). Idempotent. Resume lets them go on. One controlling thread
 * calls these (the VMM's main thread); a stop wakes a paused VM to end it. */
int vm_pause(struct vm *vm, vt_err *err);
void vm_resume(struct vm *vm);
bool vm_is_paused(struct vm *vm);
/* Before vm_start: the vCPUs park before they run the guest (a restore that is not to resume yet). */
void vm_pause_at_start(struct vm *vm);
/* Called by a vCPU thread when a pause is requested: waits until resumed or stopped. */
void vcpu_park(struct vcpu *v);
/* Press the ACPI power button (a Generic Event Device interrupt): a guest with ACPI button support (Linux:
 * the button driver, then systemd-logind or acpid) shuts down and powers off. Safe from any thread. */
void vm_press_power_button(struct vm *vm);
/* Block until the VM stops, join the vCPU threads, return why it stopped. */
enum vm_exit vm_wait(struct vm *vm);
void vm_destroy(struct vm *vm);

void vm_print_stats(const struct vm *vm, FILE *f);
const char *vm_exit_name(enum vm_exit e);

/* vcpu.c */
int vcpu_create(struct vm *vm, unsigned index, vt_err *err);
int vcpu_setup_boot_regs(struct vcpu *v, const struct boot_entry *boot, vt_err *err);
void *vcpu_thread(void *arg);
void vcpu_destroy(struct vcpu *v);
void vcpu_dump(struct vcpu *v, FILE *f);
const char *kvm_exit_name(unsigned reason);

/* Whether this host's KVM is PVM (guest kernel code emulated): used to explain failures. */
bool host_kvm_is_pvm(void);

#endif
