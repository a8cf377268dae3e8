/* Live migration (contract and stream format in migration.h). */
#include "vmm/state/migration.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "lib/state_file.h"
#include "lib/util.h"

#define MAGIC "VIRTUSMG"
#define STREAM_VERSION 1
#define PAGE 4096ULL
#define STEP_BYTES (8ULL << 20)   /* one step's pages: the control loop's other work waits at most this long */
#define MESSAGE_MAX 1024

enum record_type { REC_MACHINE = 1, REC_PAGES = 2, REC_STATE = 3, REC_END = 4, REC_CONFIG = 5 };
#define CONFIG_MAX (64u << 10)

/* x86-64 only, so the wire's little-endian is the host's. */
struct record {
	uint32_t type, count;
	uint64_t arg;
};

const char *migration_phase_name(enum migration_phase p)
{
	switch (p) {
	case MIGRATION_NONE: return "none";
	case MIGRATION_ACTIVE: return "active";
	case MIGRATION_COMPLETED: return "completed";
	case MIGRATION_FAILED: return "failed";
	}
	return "?";
}

static uint64_t words_for(uint64_t bits)
{
	return (bits + 63) / 64;
}

/* Host address of RAM page `page` (RAM order). Region sizes are whole pages (checked at start). */
static uint8_t *ram_page(const struct guest_mem *mem, uint64_t page)
{
	uint64_t off = page * PAGE;
	for (unsigned i = 0; i < mem->nregions; i++) {
		if (off < mem->region[i].size)
			return mem->region[i].hva + off;
		off -= mem->region[i].size;
	}
	return NULL;
}

static bool page_is_zero(const uint8_t *p)
{
	static const uint8_t zero[PAGE];
	return !memcmp(p, zero, PAGE);
}

/* MSG_NOSIGNAL: a peer that hung up is an error to report, not a SIGPIPE that ends the VMM. */
static int send_iov(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++, n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int send_bytes(int fd, const void *data, size_t len)
{
	struct iovec iov = { (void *)data, len };
	return send_iov(fd, &iov, 1);
}

static int send_record(int fd, uint32_t type, uint32_t count, uint64_t arg, const void *data, size_t len)
{
	struct record rec = { .type = type, .count = count, .arg = arg };
	struct iovec iov[2] = { { &rec, sizeof(rec) }, { (void *)data, len } };
	return send_iov(fd, iov, len ? 2 : 1);
}

/* ---- Source ------------------------------------------------------------------------------------------ */

struct migration_out {
	struct vm *vm;
	int fd;
	unsigned downtime_ms;
	bool was_paused;            /* a failure leaves the VM as it found it */
	uint64_t npages;
	uint64_t *send;             /* the pages of this pass */
	uint64_t *slot_log;         /* KVM_GET_DIRTY_LOG's bitmap for one region */
	uint64_t cursor;            /* next page this pass looks at */
	uint64_t start_ns, pass_start_ns, pass_sent;
	struct migration_progress p;
};

static int set_dirty_logging(struct vm *vm, bool on, vt_err *err)
{
	for (unsigned i = 0; i < vm->mem.nregions; i++) {
		const struct gmem_region *r = &vm->mem.region[i];
		struct kvm_userspace_memory_region slot = {
			.slot = i, .flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0, .guest_phys_addr = r->gpa,
			.memory_size = r->size, .userspace_addr = (uintptr_t)r->hva,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			return vt_fail_errno(err, errno, "turning KVM's dirty page log %s", on ? "on" : "off");
	}
	return 0;
}

/* Devices mark what they write only while this is on (gmem_mark_dirty). */
static void track_user_writes(struct vm *vm, bool on)
{
	__atomic_store_n(&vm->mem.track_user_writes, on, __ATOMIC_RELEASE);
}

static void set_page(uint64_t *bits, uint64_t page)
{
	bits[page / 64] |= 1ULL << (page % 64);
}

/* Add to m->send every page written since the last call: KVM's log of each region (read and cleared by
 * the ioctl) and the devices' bitmap (taken word by word). */
static int collect_dirty(struct migration_out *m, vt_err *err)
{
	struct vm *vm = m->vm;
	uint64_t base = 0;
	for (unsigned i = 0; i < vm->mem.nregions; i++) {
		uint64_t pages = vm->mem.region[i].size / PAGE;
		memset(m->slot_log, 0, words_for(pages) * 8);
		struct kvm_dirty_log log = { .slot = i, .dirty_bitmap = m->slot_log };
		if (ioctl(vm->vm_fd, KVM_GET_DIRTY_LOG, &log) < 0)
			return vt_fail_errno(err, errno, "KVM_GET_DIRTY_LOG");
		for (uint64_t w = 0; w < words_for(pages); w++)
			for (uint64_t bits = m->slot_log[w]; bits; bits &= bits - 1)
				set_page(m->send, base + w * 64 + (uint64_t)__builtin_ctzll(bits));
		base += pages;
	}
	for (uint64_t w = 0; w < words_for(m->npages); w++)
		m->send[w] |= __atomic_exchange_n(&vm->mem.user_dirty[w], 0, __ATOMIC_RELAXED);
	return 0;
}

static uint64_t count_pages(const struct migration_out *m)
{
	uint64_t n = 0;
	for (uint64_t w = 0; w < words_for(m->npages); w++)
		n += (uint64_t)__builtin_popcountll(m->send[w]);
	return n;
}

static bool next_page(struct migration_out *m, uint64_t *page)
{
	for (uint64_t p = m->cursor; p < m->npages;) {
		uint64_t bits = m->send[p / 64] >> (p % 64);
		if (bits) {
			*page = p + (uint64_t)__builtin_ctzll(bits);
			return true;
		}
		p = (p / 64 + 1) * 64;
	}
	return false;
}

/* One PAGES record of consecutive pages to send from the cursor on (the first pass skips zero pages: the
 * destination's memory starts zeroed). 1: sent, 0: the pass is over, -1: the stream failed. */
static int send_next_run(struct migration_out *m, bool skip_zero, vt_err *err)
{
	struct iovec iov[1 + MIGRATION_RECORD_PAGES];
	uint64_t first;
	for (;;) {
		if (!next_page(m, &first)) {
			m->cursor = m->npages;
			return 0;
		}
		m->send[first / 64] &= ~(1ULL << (first % 64));
		m->cursor = first + 1;
		if (!skip_zero || !page_is_zero(ram_page(&m->vm->mem, first)))
			break;
	}
	unsigned n = 1;
	iov[1] = (struct iovec){ ram_page(&m->vm->mem, first), PAGE };
	while (n < MIGRATION_RECORD_PAGES && first + n < m->npages) {
		uint64_t p = first + n;
		if (!(m->send[p / 64] & (1ULL << (p % 64))))
			break;
		uint8_t *hva = ram_page(&m->vm->mem, p);
		if (skip_zero && page_is_zero(hva))
			break;
		m->send[p / 64] &= ~(1ULL << (p % 64));
		iov[1 + n++] = (struct iovec){ hva, PAGE };
	}
	m->cursor = first + n;
	struct record rec = { .type = REC_PAGES, .count = n, .arg = first * PAGE };
	iov[0] = (struct iovec){ &rec, sizeof(rec) };
	if (send_iov(m->fd, iov, (int)n + 1) < 0)
		return vt_fail_errno(err, errno, "sending memory to the destination");
	m->pass_sent += n * PAGE;
	m->p.sent_bytes += n * PAGE;
	return 1;
}

/* Send the pass's pages from the cursor on, at most budget bytes: 0 the pass is over, 1 the budget is spent,
 * -1 the stream failed. */
static int send_pass(struct migration_out *m, bool skip_zero, uint64_t budget, vt_err *err)
{
	uint64_t start = m->p.sent_bytes;
	int rc;
	while ((rc = send_next_run(m, skip_zero, err)) == 1)
		if (m->p.sent_bytes - start >= budget)
			return 1;
	return rc;
}

static void stop_tracking(struct migration_out *m)
{
	vt_err ignored;
	track_user_writes(m->vm, false);
	set_dirty_logging(m->vm, false, &ignored);
}

/* The connection goes at once: a destination waiting on it learns now, not when the next migration starts. */
static void fail(struct migration_out *m, const vt_err *err)
{
	stop_tracking(m);
	close(m->fd);
	m->fd = -1;
	m->p.phase = MIGRATION_FAILED;
	m->p.total_ms = (now_ns() - m->start_ns) / 1000000;
	snprintf(m->p.error, sizeof(m->p.error), "%s", err->msg);
}

/* The destination's answer (to END, or a refusal it sent early): 0 for OK, else err says why. */
static int read_answer(int fd, int timeout_ms, vt_err *err)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int rc = poll(&pfd, 1, timeout_ms);
	if (rc <= 0)
		return vt_fail(err, "the destination did not answer within %d s", timeout_ms / 1000);
	uint8_t kind;
	if (read_all(fd, &kind, 1) < 0)
		return vt_fail(err, "the destination closed the connection without an answer (see its log)");
	if (kind == 'K')
		return 0;
	uint32_t len;
	char msg[MESSAGE_MAX + 1];
	if (kind != 'E' || read_all(fd, &len, sizeof(len)) < 0 || len > MESSAGE_MAX || read_all(fd, msg, len) < 0)
		return vt_fail(err, "the destination's answer is malformed");
	msg[len] = 0;
	return vt_fail(err, "the destination refused the VM: %s", msg);
}

static int send_state(struct migration_out *m, vt_err *err)
{
	struct state_writer w;
	uint8_t *data;
	size_t len;
	state_writer_open_memory(&w);
	if (vm_snapshot_save_state(m->vm, &w, err) < 0) {
		state_writer_abort(&w);
		return -1;
	}
	if (state_writer_take(&w, &data, &len, err) < 0)
		return -1;
	int rc = send_record(m->fd, REC_STATE, 0, len, data, len);
	free(data);
	if (rc < 0 || send_record(m->fd, REC_END, 0, 0, NULL, 0) < 0)
		return vt_fail_errno(err, errno, "sending the machine's state to the destination");
	return 0;
}

/* The destination has everything: give up the disks' locks and tell it to go. A source that cannot say so
 * keeps the guest (and takes its locks back: nobody else can have them, the destination waits for the go). */
static int let_go(struct migration_out *m, vt_err *err)
{
	vm_pci_unlock_disks(m->vm);
	if (send_bytes(m->fd, "G", 1) == 0)
		return 0;
	vt_fail_errno(err, errno, "confirming to the destination");
	vt_err relock;
	if (vm_pci_lock_disks(m->vm, &relock) < 0)
		fprintf(stderr, "virtus: %s\n", relock.msg);
	return -1;
}

/* The guest stops here: the last dirty pages, the state, the destination's word. On OK the devices retire
 * (the destination owns the rings now) and the VM stays paused for the caller to end; otherwise it goes on. */
static void final_pass(struct migration_out *m)
{
	vt_err err;
	uint64_t t0 = now_ns();
	int rc;
	if (vm_pause(m->vm, &err) < 0) {
		fail(m, &err);
		return;
	}
	if (vm_pci_freeze(m->vm, &err) < 0) {
		if (!m->was_paused)
			vm_resume(m->vm);
		fail(m, &err);
		return;
	}
	m->cursor = 0;
	rc = collect_dirty(m, &err);
	if (rc == 0)
		rc = send_pass(m, false, UINT64_MAX, &err);
	if (rc == 0)
		rc = send_state(m, &err);
	if (rc == 0)
		rc = read_answer(m->fd, MIGRATION_ANSWER_S * 1000, &err);
	if (rc == 0)
		rc = let_go(m, &err);
	track_user_writes(m->vm, false); /* frozen: no device is marking */
	if (rc == 0)
		vm_pci_retire(m->vm);
	vm_pci_thaw(m->vm);
	if (rc < 0) {
		if (!m->was_paused)
			vm_resume(m->vm);
		fail(m, &err);
		return;
	}
	stop_tracking(m);
	m->p.downtime_ms = (now_ns() - t0) / 1000000;
	m->p.total_ms = (now_ns() - m->start_ns) / 1000000;
	m->p.remaining_bytes = 0;
	m->p.phase = MIGRATION_COMPLETED;
}

/* A pass ended: measure it, and either start the next or, when what is dirty now fits the downtime limit at
 * this pass's bandwidth (or the passes are used up), end with the final one. */
static int end_of_pass(struct migration_out *m, vt_err *err)
{
	uint64_t now = now_ns(), dt = MAX(now - m->pass_start_ns, 1ULL);
	if (collect_dirty(m, err) < 0)
		return -1;
	uint64_t dirty = count_pages(m) * PAGE;
	if (m->pass_sent >= (1ULL << 20) || !m->p.bandwidth_bytes_s)
		m->p.bandwidth_bytes_s = m->pass_sent * 1000000000ULL / dt;
	m->p.dirty_bytes_s = dirty * 1000000000ULL / dt;
	m->p.remaining_bytes = dirty;
	uint64_t need_ms = m->p.bandwidth_bytes_s ? dirty * 1000 / m->p.bandwidth_bytes_s : UINT64_MAX;
	if (need_ms <= m->downtime_ms || m->p.pass >= MIGRATION_MAX_PASSES) {
		final_pass(m);
		return 0;
	}
	m->p.pass++;
	m->cursor = 0;
	m->pass_start_ns = now;
	m->pass_sent = 0;
	return 0;
}

/* The destination says nothing until END unless it refuses the VM (another machine, a device it cannot
 * build): then its message is the failure's reason. */
static int check_refusal(struct migration_out *m, vt_err *err)
{
	struct pollfd pfd = { .fd = m->fd, .events = POLLIN };
	if (poll(&pfd, 1, 0) <= 0)
		return 0;
	if (read_answer(m->fd, 1000, err) == 0)
		return vt_fail(err, "the destination answered before the migration ended");
	return -1;
}

bool migration_out_step(struct migration_out *m)
{
	vt_err err;
	if (m->p.phase != MIGRATION_ACTIVE)
		return true;
	int rc = check_refusal(m, &err);
	if (rc == 0 && (rc = send_pass(m, m->p.pass == 1, STEP_BYTES, &err)) < 0 && check_refusal(m, &err) == 0) {
		/* the send failed, and the destination said nothing: the send's error stands */
	}
	if (rc == 0)
		rc = end_of_pass(m, &err);
	if (rc < 0)
		fail(m, &err);
	m->p.total_ms = (now_ns() - m->start_ns) / 1000000;
	return m->p.phase != MIGRATION_ACTIVE;
}

static int check_regions(const struct guest_mem *mem, vt_err *err)
{
	for (unsigned i = 0; i < mem->nregions; i++)
		if (mem->region[i].size % PAGE)
			return vt_fail(err, "guest memory region %u is not a whole number of pages", i);
	return 0;
}

static int send_header(struct migration_out *m, const char *config, vt_err *err)
{
	uint8_t h[16] = { 0 };
	memcpy(h, MAGIC, 8);
	uint32_t version = STREAM_VERSION;
	memcpy(h + 8, &version, 4);
	struct snapshot_machine mach = { .ncpus = m->vm->ncpus, .mem_size = m->vm->mem.ram_size };
	size_t clen = strlen(config) + 1;
	if (clen > CONFIG_MAX)
		return vt_fail(err, "the VM's configuration is too long to send");
	if (send_bytes(m->fd, h, sizeof(h)) < 0 || send_record(m->fd, REC_MACHINE, sizeof(mach), 0, &mach, sizeof(mach)) < 0 ||
	    send_record(m->fd, REC_CONFIG, (uint32_t)clen, 0, config, clen) < 0)
		return vt_fail_errno(err, errno, "sending to the destination");
	return 0;
}

int migration_out_start(struct vm *vm, int fd, unsigned downtime_ms, const char *config, struct migration_out **out,
			vt_err *err)
{
	if (vm_snapshot_supported(vm, err) < 0 || check_regions(&vm->mem, err) < 0) {
		close(fd);
		return -1;
	}
	struct migration_out *m = calloc(1, sizeof(*m));
	uint64_t npages = vm->mem.ram_size / PAGE, largest = 0;
	for (unsigned i = 0; i < vm->mem.nregions; i++)
		largest = MAX(largest, vm->mem.region[i].size / PAGE);
	if (m) {
		m->send = calloc(words_for(npages), 8);
		m->slot_log = calloc(words_for(largest), 8);
	}
	if (!vm->mem.user_dirty)
		vm->mem.user_dirty = calloc(words_for(npages), 8); /* the VM's for good: see guest_mem.h */
	if (!m || !m->send || !m->slot_log || !vm->mem.user_dirty) {
		migration_out_free(m);
		close(fd);
		return vt_fail_errno(err, ENOMEM, "migration bitmaps");
	}
	*m = (struct migration_out){ .vm = vm, .fd = fd, .downtime_ms = downtime_ms, .was_paused = vm_is_paused(vm),
				     .npages = npages, .send = m->send, .slot_log = m->slot_log, .start_ns = now_ns() };
	m->pass_start_ns = m->start_ns;
	m->p = (struct migration_progress){ .phase = MIGRATION_ACTIVE, .pass = 1, .ram_bytes = vm->mem.ram_size };
	memset(vm->mem.user_dirty, 0, words_for(npages) * 8);
	for (uint64_t p = 0; p < npages; p++)
		set_page(m->send, p);
	track_user_writes(vm, true);
	if (set_dirty_logging(vm, true, err) < 0 || send_header(m, config, err) < 0) {
		stop_tracking(m);
		migration_out_free(m);
		return -1;
	}
	*out = m;
	return 0;
}

int migration_out_fd(const struct migration_out *m)
{
	return m->fd;
}

void migration_out_progress(const struct migration_out *m, struct migration_progress *p)
{
	*p = m->p;
}

void migration_out_free(struct migration_out *m)
{
	if (!m)
		return;
	if (m->p.phase == MIGRATION_ACTIVE)
		stop_tracking(m);
	if (m->fd >= 0)
		close(m->fd);
	free(m->send);
	free(m->slot_log);
	free(m);
}

/* ---- Destination ------------------------------------------------------------------------------------- */

static int read_record(int fd, struct record *rec, vt_err *err)
{
	if (read_all(fd, rec, sizeof(*rec)) < 0)
		return vt_fail_errno(err, errno, "the migration stream ended early");
	return 0;
}

int migration_in_machine(int fd, struct snapshot_machine *mach, char **config, vt_err *err)
{
	uint8_t h[16];
	struct record rec;
	uint32_t version;
	if (read_all(fd, h, sizeof(h)) < 0)
		return vt_fail_errno(err, errno, "reading the migration stream's header");
	memcpy(&version, h + 8, 4);
	if (memcmp(h, MAGIC, 8))
		return vt_fail(err, "the connection is not a virtus migration stream");
	if (version != STREAM_VERSION)
		return vt_fail(err, "the source sends migration stream version %u; this virtus reads version %u", version,
			       STREAM_VERSION);
	if (read_record(fd, &rec, err) < 0)
		return -1;
	if (rec.type != REC_MACHINE || rec.count != sizeof(*mach))
		return vt_fail(err, "the migration stream does not begin with the machine");
	if (read_all(fd, mach, sizeof(*mach)) < 0 || read_record(fd, &rec, err) < 0)
		return vt_fail_errno(err, errno, "the migration stream ended early");
	if (rec.type != REC_CONFIG || !rec.count || rec.count > CONFIG_MAX)
		return vt_fail(err, "the migration stream does not carry the VM's configuration after its machine");
	char *text = malloc(rec.count);
	if (!text)
		return vt_fail_errno(err, ENOMEM, "the VM's configuration");
	if (read_all(fd, text, rec.count) < 0 || text[rec.count - 1]) {
		free(text);
		return vt_fail(err, "the migration stream's configuration is cut short or not a string");
	}
	*config = text;
	return 0;
}

static int receive_pages(struct vm *vm, int fd, const struct record *rec, vt_err *err)
{
	uint64_t npages = vm->mem.ram_size / PAGE;
	if (!rec->count || rec->count > MIGRATION_RECORD_PAGES || rec->arg % PAGE || rec->arg / PAGE > npages ||
	    rec->count > npages - rec->arg / PAGE)
		return vt_fail(err, "the migration stream sent %u pages at 0x%llx, outside the machine's %llu MiB",
			       rec->count, (unsigned long long)rec->arg, (unsigned long long)(vm->mem.ram_size >> 20));
	for (uint32_t i = 0; i < rec->count; i++)
		if (read_all(fd, ram_page(&vm->mem, rec->arg / PAGE + i), PAGE) < 0)
			return vt_fail_errno(err, errno, "the migration stream ended early");
	return 0;
}

static int receive_state(struct vm *vm, int fd, const struct record *rec, vt_err *err)
{
	struct state_reader r;
	if (rec->arg > STATE_FILE_MAX)
		return vt_fail(err, "the migration stream's state is %llu bytes", (unsigned long long)rec->arg);
	void *data = malloc(rec->arg ? rec->arg : 1);
	if (!data)
		return vt_fail_errno(err, ENOMEM, "the migration's state");
	if (read_all(fd, data, rec->arg) < 0) {
		free(data);
		return vt_fail_errno(err, errno, "the migration stream ended early");
	}
	if (state_reader_open_memory(&r, data, rec->arg, "the migration's state", err) < 0)
		return -1;
	int rc = vm_snapshot_load_state(vm, &r, err);
	state_reader_close(&r);
	return rc;
}

int migration_in_receive(struct vm *vm, int fd, vt_err *err)
{
	if (check_regions(&vm->mem, err) < 0)
		return -1;
	bool have_state = false;
	for (;;) {
		struct record rec;
		if (read_record(fd, &rec, err) < 0)
			return -1;
		switch (rec.type) {
		case REC_PAGES:
			if (receive_pages(vm, fd, &rec, err) < 0)
				return -1;
			break;
		case REC_STATE:
			if (have_state)
				return vt_fail(err, "the migration stream sent the state twice");
			if (receive_state(vm, fd, &rec, err) < 0)
				return -1;
			have_state = true;
			break;
		case REC_END:
			if (!have_state)
				return vt_fail(err, "the migration stream ended without the machine's state");
			return 0;
		default:
			return vt_fail(err, "the migration stream has a record of unknown type %u", rec.type);
		}
	}
}

#define LOCK_WAIT_MS 5000

/* The source lets go of the disks just before its go; a lock still held a moment later is waited for. */
static int take_disks(struct vm *vm, vt_err *err)
{
	for (int waited = 0;; waited += 20) {
		if (vm_pci_lock_disks(vm, err) == 0)
			return 0;
		if (waited >= LOCK_WAIT_MS)
			return vt_err_prefix(err, "after the migration");
		struct timespec t = { 0, 20000000 };
		nanosleep(&t, NULL);
	}
}

int migration_in_commit(struct vm *vm, int fd, vt_err *err)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	uint8_t go;
	if (send_bytes(fd, "K", 1) < 0)
		return vt_fail_errno(err, errno, "answering the source");
	if (poll(&pfd, 1, MIGRATION_ANSWER_S * 1000) <= 0 || read_all(fd, &go, 1) < 0 || go != 'G')
		return vt_fail(err, "the source did not confirm the migration (it keeps running the VM)");
	return take_disks(vm, err);
}

#define REFUSE_DRAIN_MS 5000

/* The message, then what the source still sends is read and dropped until it hangs up (or a while): a
 * socket closed with unread data would reset the connection, and the message with it. */
void migration_in_refuse(int fd, const vt_err *err)
{
	uint32_t len = (uint32_t)MIN(strlen(err->msg), (size_t)MESSAGE_MAX);
	struct iovec iov[3] = { { "E", 1 }, { &len, sizeof(len) }, { (void *)err->msg, len } };
	if (send_iov(fd, iov, 3) < 0)
		return; /* the source is gone: it resumes or has already */
	shutdown(fd, SHUT_WR);
	uint64_t end = now_ns() + REFUSE_DRAIN_MS * 1000000ULL;
	char sink[4096];
	for (uint64_t now; (now = now_ns()) < end;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		if (poll(&pfd, 1, (int)((end - now) / 1000000) + 1) <= 0 || read(fd, sink, sizeof(sink)) <= 0)
			return;
	}
}
