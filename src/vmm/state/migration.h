/* Live migration (docs/migration.md): pre-copy over one connected stream socket.
 *
 * The source sends every non-zero page of RAM while the guest runs, then, pass after pass, the pages dirtied
 * meanwhile (KVM's dirty log for the guest's writes, guest_mem's user_dirty bitmap for the devices'), until
 * what is left can be sent within the downtime limit at the bandwidth the last pass saw (or after
 * MIGRATION_MAX_PASSES). Then it pauses the vCPUs, freezes the devices, sends the last pages and the state
 * (the snapshot's sections, vm_snapshot_save_state) and waits for the destination's answer: on OK its devices
 * retire and the VM ends here; on anything else (an error message, a closed connection, no answer within
 * MIGRATION_ANSWER_S) the source thaws and resumes: nothing is lost.
 *
 * The source side is a state machine stepped by the VMM's control loop whenever the socket can take more,
 * so the API and the console stay served while memory moves (the last pass is one step: the guest is paused
 * then anyway). The destination side is plain blocking reads, before its VM runs.
 *
 * Stream (little-endian): "VIRTUSMG" u32 version u32 0, then records of u32 type, u32 count, u64 arg:
 *   MACHINE  count = bytes of struct snapshot_machine that follow
 *   CONFIG   count = bytes of the devices' configuration (api/vm_devices.h, NUL-terminated) that follow
 *   PAGES    arg = RAM offset of the first page, count = pages (<= MIGRATION_RECORD_PAGES) that follow
 *   STATE    arg = bytes of a state file that follow
 *   END      nothing follows; the destination answers one byte 'K', or 'E', u32 length and a message.
 * After 'K' the source gives up its disks' locks, sends 'G' and retires; the destination takes the locks and
 * runs the guest only once it has the 'G'. So a
 * broken connection at the end leaves the guest running in exactly one place (the source, which resumes
 * when it cannot send the 'G'), unless the 'G' is lost after the source's write succeeded: then neither
 * runs it, which a shared disk survives (two running copies would not). */
#ifndef VIRTUS_MIGRATION_H
#define VIRTUS_MIGRATION_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/err.h"
#include "vmm/state/snapshot.h"
#include "vmm/vm.h"

#define MIGRATION_DEFAULT_DOWNTIME_MS 300
#define MIGRATION_MAX_DOWNTIME_MS 60000
#define MIGRATION_MAX_PASSES 30
#define MIGRATION_RECORD_PAGES 256
#define MIGRATION_ANSWER_S 60

enum migration_phase { MIGRATION_NONE, MIGRATION_ACTIVE, MIGRATION_COMPLETED, MIGRATION_FAILED };

struct migration_progress {
	enum migration_phase phase;
	unsigned pass;               /* 1: the first, whole pass */
	uint64_t ram_bytes;
	uint64_t sent_bytes;         /* page bytes sent so far */
	uint64_t remaining_bytes;    /* dirty when the last pass ended */
	uint64_t dirty_bytes_s;      /* how fast the guest dirtied memory during the last pass */
	uint64_t bandwidth_bytes_s;  /* what the last pass sent per second */
	uint64_t total_ms;           /* from the start (so far, or to the end) */
	uint64_t downtime_ms;        /* once ended: from the pause to the destination's answer */
	char error[512];             /* MIGRATION_FAILED: why */
};

const char *migration_phase_name(enum migration_phase p);

/* ---- Source ---- */
struct migration_out;
/* Begin sending vm over fd (connected; taken over): dirty logging starts, the header and machine go out.
 * The VM must be running, snapshottable and not migrating. */
int migration_out_start(struct vm *vm, int fd, unsigned downtime_ms, const char *config, struct migration_out **out,
			vt_err *err);
int migration_out_fd(const struct migration_out *m);
/* Send the next part (called when the socket is writable); true once the migration has ended (progress
 * says how). After COMPLETED the VM is paused with its devices retired: the caller ends it. */
bool migration_out_step(struct migration_out *m);
void migration_out_progress(const struct migration_out *m, struct migration_progress *p);
void migration_out_free(struct migration_out *m);

/* ---- Destination ---- */
/* The stream's header, machine and devices' configuration (malloc()ed): what vm_create must build. */
int migration_in_machine(int fd, struct snapshot_machine *m, char **config, vt_err *err);
/* Pages into vm's memory and the state into vm, up to END; vm built from the machine, not started. */
int migration_in_receive(struct vm *vm, int fd, vt_err *err);
/* Everything arrived and loaded: tell the source, and wait for its go. 0: run the guest now. */
int migration_in_commit(struct vm *vm, int fd, vt_err *err);
/* Tell the source why this destination cannot take the VM (it resumes). */
void migration_in_refuse(int fd, const vt_err *err);

#endif
