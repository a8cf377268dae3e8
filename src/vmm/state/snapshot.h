/* Snapshot and restore of a whole VM (docs/snapshot.md): the state file (state_file.h) holds the machine's
 * shape, the clock, the interrupt controllers and PIT, every vCPU and every device; guest memory is a
 * separate file (sparse: zero pages are holes) that a restore maps privately, so a large guest resumes at
 * once and reads its pages from the file as it touches them. Each part saves and loads its own sections;
 * a part without them cannot be snapshotted and says so before anything is written. */
#ifndef VIRTUS_SNAPSHOT_H
#define VIRTUS_SNAPSHOT_H

#include "lib/state_file.h"
#include "vmm/vm.h"

/* The machine a snapshot was taken of: a restore builds the same one. */
struct snapshot_machine {
	uint32_t ncpus;
	uint32_t flags;          /* reserved, 0 */
	uint64_t mem_size;
};

/* Whether vm can be snapshotted (every device has its state sections); an error names the one that has not. */
int vm_snapshot_supported(const struct vm *vm, vt_err *err);
/* The file name, in a snapshot's directory, that keeps disk k (--disk order) as it is at the checkpoint;
 * false if that disk is not frozen (read-only, or no such disk). */
bool vm_snapshot_disk_layer(struct vm *vm, unsigned k, char *name, size_t len);

/* Write the state file and the memory file (neither may exist). The VM must be paused. config: the VM's
 * devices as the caller describes them (api/vm_devices.h), kept as section "config" for the restore.
 * Then, in the same pause, every writable disk is frozen (blk_checkpoint): its image is kept in the state
 * file's directory (which must be named absolutely) under vm_snapshot_disk_layer's name, and the VM goes on
 * in a new overlay at the disk's path. On failure nothing is left and every disk is as before. */
int vm_snapshot_save(struct vm *vm, const char *state_path, const char *mem_path, const char *config, vt_err *err);
/* The same into files the caller made (new and empty: a jailed VMM is handed them, api/handoff.h): state_fd is
 * closed, mem_fd is not. A VM with a disk that a snapshot would freeze is refused (the layer is a new file
 * beside the disk's image). On failure the caller removes the files. */
int vm_snapshot_save_fds(struct vm *vm, int state_fd, int mem_fd, const char *config, vt_err *err);
/* The machine a state file describes (for building the VM to restore into), and its devices' configuration
 * (malloc()ed text). */
int vm_snapshot_read_machine(const char *state_path, struct snapshot_machine *m, char **config, vt_err *err);
/* Load every part's state into vm, built with cfg->restore_mem_path from the same machine, not started. */
int vm_snapshot_restore(struct vm *vm, const char *state_path, vt_err *err);

/* The state alone (no memory file), into any writer / from any reader: migration sends it. Save: the VM
 * paused and its devices frozen (vm_pci_freeze). Load: as vm_snapshot_restore. */
int vm_snapshot_save_state(struct vm *vm, struct state_writer *w, vt_err *err);
int vm_snapshot_load_state(struct vm *vm, const struct state_reader *r, vt_err *err);

int vcpu_state_save(struct vcpu *v, struct state_writer *w, vt_err *err);
int vcpu_state_load(struct vcpu *v, const struct state_reader *r, vt_err *err);

#endif
