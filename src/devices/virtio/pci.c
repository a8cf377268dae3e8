#include "devices/virtio/pci.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "lib/state_file.h"
#include "lib/util.h"

#define VIRTIO_PCI_VENDOR   0x1af4
#define VIRTIO_PCI_DEVICE0  0x1040
#define VIRTIO_PCI_REVISION 1      /* modern-only devices have revision >= 1 */
#define CLASS_OTHER         0xff0000
#define VIRTIO_CAP_LEN      16
#define VIRTIO_NOTIFY_CAP_LEN 20
#define ISR_QUEUE           1
#define ISR_CONFIG          2

/* ---- Interrupts (the transport's half of virtio.h) ------------------------------------------------ */

static void send_vector(struct virtio_transport *t, uint16_t vector)
{
	if (vector != VIRTIO_NO_VECTOR)
		msix_notify(&t->msix, vector);
}

void virtio_queue_interrupt(struct virtio_device *d, unsigned q, bool force)
{
	struct virtio_transport *t = d->transport;
	if (q >= d->nqueues || (!force && !virtq_should_notify(&t->vq[q])))
		return;
	t->isr |= ISR_QUEUE;
	t->q[q].interrupts++;
	send_vector(t, t->q[q].msix_vector);
}

void virtio_config_changed(struct virtio_device *d)
{
	struct virtio_transport *t = d->transport;
	t->config_generation++;
	t->isr |= ISR_CONFIG;
	send_vector(t, t->config_vector);
}

void virtio_mark_broken(struct virtio_device *d, const char *why)
{
	(void)why; /* a guest error: the driver learns it from the status, the host has nothing to do */
	struct virtio_transport *t = d->transport;
	if (t->status & VIRTIO_STATUS_NEEDS_RESET)
		return;
	t->status |= VIRTIO_STATUS_NEEDS_RESET;
	virtio_config_changed(d);
}

void virtio_queue_get_info(const struct virtio_device *d, unsigned q, struct virtio_queue_info *out)
{
	const struct vpci_queue *vq = &d->transport->q[q];
	*out = (struct virtio_queue_info){ .enabled = q < d->nqueues && vq->enabled, .size = vq->size, .desc = vq->desc,
					   .driver = vq->driver, .device = vq->device, .kick_fd = vq->kick_fd };
}

void virtio_queue_signal(struct virtio_device *d, unsigned q)
{
	struct virtio_transport *t = d->transport;
	pthread_mutex_lock(&t->lock);
	if (q < d->nqueues && t->q[q].enabled && (t->status & VIRTIO_STATUS_DRIVER_OK)) {
		t->isr |= ISR_QUEUE;
		t->q[q].interrupts++;
		send_vector(t, t->q[q].msix_vector);
	}
	pthread_mutex_unlock(&t->lock);
}

/* ---- Common configuration ------------------------------------------------------------------------- */

static uint64_t offered_features(const struct virtio_transport *t)
{
	return t->dev->features | (1ULL << VIRTIO_F_VERSION_1);
}

static struct vpci_queue *selected(struct virtio_transport *t)
{
	return t->queue_select < t->dev->nqueues ? &t->q[t->queue_select] : NULL;
}

static void reset_queue(struct virtio_transport *t, unsigned i)
{
	struct vpci_queue *q = &t->q[i];
	q->size = t->dev->queue_max[i];
	q->msix_vector = VIRTIO_NO_VECTOR;
	q->enabled = false;
	q->desc = q->driver = q->device = 0;
	q->pass_again = false;
	virtq_disable(&t->vq[i]);
}

static void reset_device(struct virtio_transport *t)
{
	if (t->dev->ops->reset)
		t->dev->ops->reset(t->dev);
	t->dfselect = t->gfselect = 0;
	t->driver_features = 0;
	t->dev->negotiated = 0;
	t->config_vector = VIRTIO_NO_VECTOR;
	t->queue_select = 0;
	t->status = 0;
	t->isr = 0;
	t->config_generation++;
	for (unsigned i = 0; i < t->dev->nqueues; i++)
		reset_queue(t, i);
}

static bool features_acceptable(const struct virtio_transport *t)
{
	return !(t->driver_features & ~offered_features(t)) && (t->driver_features & (1ULL << VIRTIO_F_VERSION_1));
}

/* Ask the device thread to look at every enabled queue: buffers may have been queued before DRIVER_OK. */
static void kick_enabled_queues(struct virtio_transport *t)
{
	uint64_t one = 1;
	for (unsigned i = 0; i < t->dev->nqueues; i++)
		if (t->q[i].enabled && t->q[i].kick_fd >= 0 && write(t->q[i].kick_fd, &one, sizeof(one)) < 0) {
			/* only fails on counter overflow: a kick is pending anyway */
		}
}

static void set_status(struct virtio_transport *t, uint8_t v)
{
	if (v == 0) {
		reset_device(t);
		return;
	}
	uint8_t old = t->status;
	/* 2.1.1: the driver never clears a status bit; only a reset (0) goes back. Keeping every bit already
	 * set means features accepted with FEATURES_OK can never be renegotiated under live queues. */
	v |= old;
	if ((v & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
		if (features_acceptable(t))
			t->dev->negotiated = t->driver_features;
		else
			v &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK; /* the driver reads it back and gives up */
	}
	if (!(v & VIRTIO_STATUS_FEATURES_OK))
		v &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
	v = (uint8_t)((v & ~VIRTIO_STATUS_NEEDS_RESET) | (old & VIRTIO_STATUS_NEEDS_RESET));
	t->status = v;
	if ((v & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK)) {
		if (t->dev->ops->activate && t->dev->ops->activate(t->dev) < 0)
			virtio_mark_broken(t->dev, "device activation failed");
		else
			kick_enabled_queues(t);
	}
}

static uint16_t checked_vector(const struct virtio_transport *t, uint32_t v)
{
	return v < t->msix.nvectors ? (uint16_t)v : VIRTIO_NO_VECTOR;
}

static void enable_queue(struct virtio_transport *t, unsigned i)
{
	struct vpci_queue *q = &t->q[i];
	struct virtq *vq = &t->vq[i];
	virtq_disable(vq);
	vq->size = q->size;
	vq->desc_gpa = q->desc, vq->avail_gpa = q->driver, vq->used_gpa = q->device;
	vq->event_idx = t->driver_features & (1ULL << VIRTIO_F_EVENT_IDX);
	vq->indirect = t->driver_features & (1ULL << VIRTIO_F_INDIRECT_DESC);
	vq->mem = t->mem;
	q->enabled = true;
	if (virtq_init(vq) < 0) {
		vq->broken = true;
		virtio_mark_broken(t->dev, "queue rings outside guest memory");
	}
}

struct field { uint8_t off, size; };

static const struct field common_fields[] = {
	{ VPCI_DFSELECT, 4 }, { VPCI_DF, 4 }, { VPCI_GFSELECT, 4 }, { VPCI_GF, 4 }, { VPCI_MSIX_CONFIG, 2 },
	{ VPCI_NUM_QUEUES, 2 }, { VPCI_STATUS, 1 }, { VPCI_CFG_GEN, 1 }, { VPCI_Q_SELECT, 2 }, { VPCI_Q_SIZE, 2 },
	{ VPCI_Q_MSIX, 2 }, { VPCI_Q_ENABLE, 2 }, { VPCI_Q_NOFF, 2 }, { VPCI_Q_DESC, 8 }, { VPCI_Q_DRIVER, 8 },
	{ VPCI_Q_DEVICE, 8 },
};

/* The field an access hits: whole fields only, or a dword half of a 64-bit one. NULL otherwise. */
static const struct field *find_field(uint64_t off, uint32_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(common_fields); i++) {
		const struct field *f = &common_fields[i];
		if (off == f->off && len == f->size)
			return f;
		if (f->size == 8 && len == 4 && (off == f->off || off == f->off + 4u))
			return f;
	}
	return NULL;
}

static uint32_t feature_window(uint64_t features, uint32_t select)
{
	return select < 2 ? (uint32_t)(features >> (32 * select)) : 0;
}

static uint64_t read_field(struct virtio_transport *t, unsigned off)
{
	struct vpci_queue *q = selected(t);
	switch (off) {
	case VPCI_DFSELECT: return t->dfselect;
	case VPCI_DF: return feature_window(offered_features(t), t->dfselect);
	case VPCI_GFSELECT: return t->gfselect;
	case VPCI_GF: return feature_window(t->driver_features, t->gfselect);
	case VPCI_MSIX_CONFIG: return t->config_vector;
	case VPCI_NUM_QUEUES: return t->dev->nqueues;
	case VPCI_STATUS: return t->status;
	case VPCI_CFG_GEN: return t->config_generation;
	case VPCI_Q_SELECT: return t->queue_select;
	}
	if (!q)
		return 0; /* queue_size 0: no such queue */
	switch (off) {
	case VPCI_Q_SIZE: return q->size;
	case VPCI_Q_MSIX: return q->msix_vector;
	case VPCI_Q_ENABLE: return q->enabled;
	case VPCI_Q_NOFF: return q->index;
	case VPCI_Q_DESC: return q->desc;
	case VPCI_Q_DRIVER: return q->driver;
	case VPCI_Q_DEVICE: return q->device;
	}
	return 0;
}

static void write_driver_features(struct virtio_transport *t, uint32_t v)
{
	if ((t->status & VIRTIO_STATUS_FEATURES_OK) || t->gfselect >= 2)
		return; /* features are frozen once accepted */
	unsigned shift = 32 * t->gfselect;
	t->driver_features = (t->driver_features & ~(0xffffffffULL << shift)) | ((uint64_t)v << shift);
}

static void write_queue_size(struct vpci_queue *q, uint16_t max, uint64_t v)
{
	if (v && v <= max && !(v & (v - 1)))
		q->size = (uint16_t)v; /* split rings are powers of two; anything else keeps the old size */
}

static void write_queue_field(struct virtio_transport *t, unsigned off, uint64_t v)
{
	struct vpci_queue *q = selected(t);
	if (!q || q->enabled)
		return; /* a live queue's configuration is fixed until reset */
	switch (off) {
	case VPCI_Q_SIZE: write_queue_size(q, t->dev->queue_max[q->index], v); break;
	case VPCI_Q_MSIX: q->msix_vector = checked_vector(t, (uint32_t)v); break;
	case VPCI_Q_ENABLE: if (v == 1) enable_queue(t, q->index); break;
	case VPCI_Q_DESC: q->desc = v; break;
	case VPCI_Q_DRIVER: q->driver = v; break;
	case VPCI_Q_DEVICE: q->device = v; break;
	}
}

static void write_field(struct virtio_transport *t, unsigned off, uint64_t v)
{
	switch (off) {
	case VPCI_DFSELECT: t->dfselect = (uint32_t)v; break;
	case VPCI_GFSELECT: t->gfselect = (uint32_t)v; break;
	case VPCI_GF: write_driver_features(t, (uint32_t)v); break;
	case VPCI_MSIX_CONFIG: t->config_vector = checked_vector(t, (uint32_t)v); break;
	case VPCI_STATUS: set_status(t, (uint8_t)v); break;
	case VPCI_Q_SELECT: t->queue_select = (uint16_t)v; break;
	default: write_queue_field(t, off, v); break;
	}
}

static void common_io(struct virtio_transport *t, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	const struct field *f = find_field(off, len);
	if (!f) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	unsigned shift = (unsigned)(off - f->off) * 8;
	uint64_t mask = len == 8 ? ~0ULL : (1ULL << (8 * len)) - 1;
	uint64_t cur = read_field(t, f->off);
	if (!is_write) {
		uint64_t v = (cur >> shift) & mask;
		for (uint32_t i = 0; i < len; i++)
			data[i] = (uint8_t)(v >> (8 * i));
		return;
	}
	uint64_t v = 0;
	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)data[i] << (8 * i);
	write_field(t, f->off, (cur & ~(mask << shift)) | (v << shift));
}

/* ---- The rest of BAR 0 ---------------------------------------------------------------------------- */

static void kick(struct virtio_transport *t, unsigned q);

static void notify_io(struct virtio_transport *t, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	if (!is_write) {
		memset(data, 0xff, len);
		return;
	}
	unsigned q = (unsigned)(off / VPCI_NOTIFY_MULT);
	if (q >= t->dev->nqueues)
		return;
	__atomic_add_fetch(&t->q[q].trapped_kicks, 1, __ATOMIC_RELAXED);
	uint64_t one = 1;
	if (t->q[q].kick_fd < 0)
		kick(t, q); /* no device thread (tests): handle it here */
	else if (write(t->q[q].kick_fd, &one, sizeof(one)) < 0) {
		/* counter overflow only: a kick is pending anyway */
	}
}

static void device_cfg_io(struct virtio_transport *t, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	const struct virtio_device_ops *ops = t->dev->ops;
	if (off + len > t->dev->config_len || len > 8) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	if (is_write) {
		if (ops->config_write)
			ops->config_write(t->dev, (uint32_t)off, data, len);
	} else if (ops->config_read) {
		ops->config_read(t->dev, (uint32_t)off, data, len);
	} else {
		memset(data, 0, len);
	}
}

static void isr_io(struct virtio_transport *t, uint64_t off, uint8_t *data, uint32_t len, bool is_write)
{
	if (is_write)
		return;
	memset(data, 0, len);
	if (off == 0) {
		data[0] = t->isr;
		t->isr = 0; /* reading the ISR acknowledges it */
	}
}

void virtio_pci_bar_io(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct virtio_transport *t = opaque;
	uint64_t off = PCI_BAR_OFFSET(addr);
	if (PCI_BAR_OF(addr) == VPCI_PIO_BAR && off < t->pci.bar[VPCI_PIO_BAR].size && len && len <= 4) {
		notify_io(t, off, data, len, is_write);
		return;
	}
	if (PCI_BAR_OF(addr) != VPCI_BAR || off >= VPCI_BAR_SIZE || len == 0 || len > 8) {
		if (!is_write && len <= 8)
			memset(data, 0xff, len);
		return;
	}
	if (off >= VPCI_MSIX_PBA_OFF) {
		msix_pba_io(&t->msix, off - VPCI_MSIX_PBA_OFF, data, len, is_write);
		return;
	}
	if (off >= VPCI_MSIX_TABLE_OFF) {
		msix_table_io(&t->msix, off - VPCI_MSIX_TABLE_OFF, data, len, is_write);
		return;
	}
	if (off >= VPCI_NOTIFY_OFF) {
		notify_io(t, off - VPCI_NOTIFY_OFF, data, len, is_write);
		return;
	}
	pthread_mutex_lock(&t->lock);
	if (off >= VPCI_DEVICE_OFF)
		device_cfg_io(t, off - VPCI_DEVICE_OFF, data, len, is_write);
	else if (off >= VPCI_ISR_OFF)
		isr_io(t, off - VPCI_ISR_OFF, data, len, is_write);
	else if (off < VPCI_COMMON_LEN)
		common_io(t, off, data, len, is_write);
	else if (!is_write)
		memset(data, 0xff, len);
	pthread_mutex_unlock(&t->lock);
}

/* ---- Kicks ---------------------------------------------------------------------------------------- */

bool virtio_queue_live(const struct virtio_device *d, unsigned q)
{
	const struct virtio_transport *t = d->transport;
	return q < d->nqueues && (t->status & VIRTIO_STATUS_DRIVER_OK) && !(t->status & VIRTIO_STATUS_NEEDS_RESET) &&
	       t->q[q].enabled && virtq_usable(&t->vq[q]);
}

void virtio_queue_reschedule(struct virtio_device *d, unsigned q)
{
	struct vpci_queue *vq = &d->transport->q[q];
	vq->deferred_passes++;
	if (vq->kick_fd < 0) {
		vq->pass_again = true; /* no loop (tests): kick() runs the next pass itself */
		return;
	}
	uint64_t one = 1;
	if (write(vq->kick_fd, &one, sizeof(one)) < 0) {
		/* counter overflow only: a pass is pending anyway */
	}
}

static void kick(struct virtio_transport *t, unsigned q)
{
	pthread_mutex_lock(&t->lock);
	do {
		t->q[q].pass_again = false;
		if (virtio_queue_live(t->dev, q))
			t->dev->ops->queue_notify(t->dev, q);
	} while (t->q[q].pass_again);
	pthread_mutex_unlock(&t->lock);
}

/* Event-loop callback for a queue's kick eventfd; the counter says how many kicks were coalesced. */
static void on_kick(void *arg)
{
	struct vpci_queue *q = arg;
	uint64_t n;
	if (read(q->kick_fd, &n, sizeof(n)) != sizeof(n))
		return;
	__atomic_add_fetch(&q->kicks, n, __ATOMIC_RELAXED); /* includes the device's own deferred passes */
	kick(q->t, q->index);
}

/* Put each queue's ioeventfd of one notify area (BAR 0's or the I/O BAR's) at area + its offset; area 0
 * takes them away. */
static void move_kicks(struct virtio_transport *t, bool port, uint64_t area)
{
	for (unsigned i = 0; i < t->dev->nqueues; i++) {
		struct vpci_queue *q = &t->q[i];
		uint64_t *at = port ? &q->kick_port : &q->kick_gpa;
		uint64_t want = area ? area + (uint64_t)i * VPCI_NOTIFY_MULT : 0;
		if (want == *at)
			continue;
		if (*at)
			t->host.ioeventfd(t->host.opaque, *at, port, q->kick_fd, false);
		*at = 0;
		if (want && t->host.ioeventfd(t->host.opaque, want, port, q->kick_fd, true) == 0)
			*at = want;
	}
}

/* The ioeventfds follow their BAR: they belong at a notify area only while the BAR decodes. */
static void bar_moved(struct pci_device *d, unsigned bar, uint64_t addr, bool decoding)
{
	struct virtio_transport *t = (struct virtio_transport *)d; /* pci is the first member */
	if (!t->host.ioeventfd)
		return;
	uint64_t base = decoding ? addr : 0;
	if (bar == VPCI_BAR)
		move_kicks(t, false, base ? base + VPCI_NOTIFY_OFF : 0);
	else if (bar == VPCI_PIO_BAR)
		move_kicks(t, true, base);
}

/* ---- The PCI configuration access window (VIRTIO_PCI_CAP_PCI_CFG) ---------------------------------- */

static bool overlaps(unsigned off, unsigned len, unsigned start, unsigned end)
{
	return off < end && off + len > start;
}

/* The BAR access the window's bar/offset/length fields select, if it is one the device serves: BAR 0 or
 * the I/O BAR, 1, 2 or 4 bytes, naturally aligned, inside the BAR. Anything else is ignored (reads give
 * zeros). */
static bool window_target(const struct virtio_transport *t, uint64_t *addr, uint32_t *len)
{
	const uint8_t *cap = t->pci.cfg + t->pci_cfg_cap;
	uint32_t off = pci_get(cap + VPCI_CFGCAP_OFFSET, 4);
	unsigned bar = cap[VPCI_CFGCAP_BAR];
	*len = pci_get(cap + VPCI_CFGCAP_LENGTH, 4);
	if ((bar != VPCI_BAR && bar != VPCI_PIO_BAR) || (*len != 1 && *len != 2 && *len != 4) || off % *len ||
	    off >= t->pci.bar[bar].size)
		return false;
	*addr = PCI_BAR_ADDR(bar, off);
	return true;
}

/* The driver wrote pci_cfg_data: perform the selected BAR write with its first `length` bytes. */
static void window_write(struct virtio_transport *t)
{
	uint64_t addr;
	uint32_t len;
	uint8_t data[4];
	if (!window_target(t, &addr, &len))
		return;
	memcpy(data, t->pci.cfg + t->pci_cfg_cap + VPCI_CFGCAP_DATA, sizeof(data));
	virtio_pci_bar_io(t, addr, data, len, true);
}

/* The driver is about to read pci_cfg_data: perform the selected BAR read into it. */
static void window_read(struct pci_device *d, unsigned off, unsigned len)
{
	struct virtio_transport *t = (struct virtio_transport *)d; /* pci is the first member */
	unsigned data_at = t->pci_cfg_cap + VPCI_CFGCAP_DATA;
	if (!overlaps(off, len, data_at, data_at + 4))
		return;
	uint8_t data[4] = { 0 };
	uint64_t addr;
	uint32_t n;
	if (window_target(t, &addr, &n))
		virtio_pci_bar_io(t, addr, data, n, false);
	memcpy(d->cfg + data_at, data, sizeof(data));
}

static void cfg_written(struct pci_device *d, unsigned off, unsigned len)
{
	struct virtio_transport *t = (struct virtio_transport *)d;
	if (overlaps(off, len, t->msix.cap + 2, t->msix.cap + 4))
		msix_control_written(&t->msix);
	unsigned data_at = t->pci_cfg_cap + VPCI_CFGCAP_DATA;
	if (overlaps(off, len, data_at, data_at + 4))
		window_write(t);
}

static const struct pci_device_ops virtio_pci_ops = { .bar_io = virtio_pci_bar_io, .bar_moved = bar_moved };

/* ---- Construction --------------------------------------------------------------------------------- */

static int add_virtio_cap(struct pci_device *d, uint8_t type, unsigned bar, uint32_t off, uint32_t len, vt_err *err)
{
	bool notify = type == VPCI_CAP_NOTIFY;
	unsigned at = pci_device_add_cap(d, PCI_CAP_ID_VENDOR, notify ? VIRTIO_NOTIFY_CAP_LEN : VIRTIO_CAP_LEN);
	if (!at)
		return vt_fail(err, "%s: PCI config space full", d->name);
	d->cfg[at + 2] = notify ? VIRTIO_NOTIFY_CAP_LEN : VIRTIO_CAP_LEN;
	d->cfg[at + 3] = type;
	d->cfg[at + 4] = (uint8_t)bar;
	pci_put(d->cfg + at + 8, 4, off);
	pci_put(d->cfg + at + 12, 4, len);
	if (notify)
		pci_put(d->cfg + at + 16, 4, VPCI_NOTIFY_MULT);
	return 0;
}

/* VIRTIO_PCI_CAP_PCI_CFG: bar, offset, length and data are the driver's to write (virtio 1.x 4.1.4.9). */
static int add_window_cap(struct virtio_transport *t, vt_err *err)
{
	struct pci_device *d = &t->pci;
	unsigned at = pci_device_add_cap(d, PCI_CAP_ID_VENDOR, VPCI_CFGCAP_LEN);
	if (!at)
		return vt_fail(err, "%s: PCI config space full", d->name);
	d->cfg[at + 2] = VPCI_CFGCAP_LEN;
	d->cfg[at + 3] = VPCI_CAP_PCI_CFG;
	d->wmask[at + VPCI_CFGCAP_BAR] = 0xff;
	memset(d->wmask + at + VPCI_CFGCAP_OFFSET, 0xff, VPCI_CFGCAP_LEN - VPCI_CFGCAP_OFFSET);
	t->pci_cfg_cap = at;
	d->cfg_reading = window_read;
	return 0;
}

static int check_device(const struct virtio_device *dev, vt_err *err)
{
	if (dev->nqueues == 0 || dev->nqueues > VIRTIO_MAX_QUEUES)
		return vt_fail(err, "%s: %u queues (1..%d supported)", dev->name, dev->nqueues, VIRTIO_MAX_QUEUES);
	if (dev->config_len > VPCI_DEVICE_MAX)
		return vt_fail(err, "%s: config space of %u bytes is too large", dev->name, dev->config_len);
	for (unsigned i = 0; i < dev->nqueues; i++)
		if (!dev->queue_max[i] || dev->queue_max[i] > VIRTQ_MAX_SIZE || (dev->queue_max[i] & (dev->queue_max[i] - 1)))
			return vt_fail(err, "%s: queue %u size %u is not a power of two", dev->name, i, dev->queue_max[i]);
	if (!dev->ops || !dev->ops->queue_notify)
		return vt_fail(err, "%s: no queue_notify handler", dev->name);
	if (!dev->snapshot_refusal && (!dev->ops->state_save || !dev->ops->state_load))
		return vt_fail(err, "%s: neither snapshot state handlers nor a reason why it has none", dev->name);
	return 0;
}

/* The I/O BAR's size: the notify area rounded up to a power of two (4 ports at least). */
static uint64_t notify_ports(unsigned nqueues)
{
	uint64_t ports = 4;
	while (ports < (uint64_t)nqueues * VPCI_NOTIFY_MULT)
		ports *= 2;
	return ports;
}

static int build_pci_function(struct virtio_transport *t, vt_err *err)
{
	struct pci_device *d = &t->pci;
	struct virtio_device *dev = t->dev;
	pci_device_init(d, VIRTIO_PCI_VENDOR, VIRTIO_PCI_DEVICE0 + dev->id, CLASS_OTHER, VIRTIO_PCI_VENDOR,
			VIRTIO_PCI_DEVICE0 + dev->id, dev->name);
	d->cfg[PCI_REVISION_ID] = VIRTIO_PCI_REVISION;
	d->ops = &virtio_pci_ops;
	d->opaque = t;
	d->cfg_written = cfg_written;
	uint32_t notify_len = dev->nqueues * VPCI_NOTIFY_MULT;
	if (pci_device_add_bar(d, VPCI_BAR, VPCI_BAR_SIZE, false, err) < 0 ||
	    pci_device_add_io_bar(d, VPCI_PIO_BAR, notify_ports(dev->nqueues), err) < 0)
		return -1;
	/* The capabilities before MSI-X sit where they did before the I/O BAR came (a snapshot's config space is
	 * put back as it was saved); the notify capability there now names the I/O BAR, BAR 0's comes last. */
	if (add_virtio_cap(d, VPCI_CAP_COMMON, VPCI_BAR, VPCI_COMMON_OFF, VPCI_COMMON_LEN, err) < 0 ||
	    add_virtio_cap(d, VPCI_CAP_NOTIFY, VPCI_PIO_BAR, 0, notify_len, err) < 0 ||
	    add_virtio_cap(d, VPCI_CAP_ISR, VPCI_BAR, VPCI_ISR_OFF, 4, err) < 0)
		return -1;
	if (dev->config_len && add_virtio_cap(d, VPCI_CAP_DEVICE, VPCI_BAR, VPCI_DEVICE_OFF, dev->config_len, err) < 0)
		return -1;
	if (add_window_cap(t, err) < 0)
		return -1;
	if (msix_init(&t->msix, d, dev->nqueues + 1, VPCI_BAR, VPCI_MSIX_TABLE_OFF, VPCI_MSIX_PBA_OFF,
		      t->host.msix_ops, t->host.msix_opaque, err) < 0)
		return -1;
	return add_virtio_cap(d, VPCI_CAP_NOTIFY, VPCI_BAR, VPCI_NOTIFY_OFF, notify_len, err);
}

static int setup_kicks(struct virtio_transport *t, vt_err *err)
{
	for (unsigned i = 0; i < t->dev->nqueues; i++) {
		struct vpci_queue *q = &t->q[i];
		if (!t->host.watch)
			continue;
		if ((q->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
			return vt_fail_errno(err, errno, "%s: eventfd", t->dev->name);
		if (t->dev->external_queues)
			continue;
		if (t->host.watch(t->host.watch_opaque, q->kick_fd, on_kick, q, err) < 0)
			return -1;
	}
	return 0;
}

int virtio_pci_create(struct virtio_device *dev, const struct guest_mem *mem, const struct virtio_pci_host *host,
		      struct virtio_transport **out, vt_err *err)
{
	if (check_device(dev, err) < 0)
		return -1;
	struct virtio_transport *t = calloc(1, sizeof(*t));
	if (!t)
		return vt_fail_errno(err, ENOMEM, "%s", dev->name);
	t->dev = dev;
	t->host = *host;
	t->mem = mem;
	pthread_mutex_init(&t->lock, NULL);
	dev->transport = t;
	dev->vq = t->vq;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		t->q[i] = (struct vpci_queue){ .kick_fd = -1, .t = t, .index = i };
	if (build_pci_function(t, err) < 0 || setup_kicks(t, err) < 0) {
		virtio_pci_destroy(t);
		return -1;
	}
	reset_device(t);
	*out = t;
	return 0;
}

void virtio_pci_unplugged(struct virtio_transport *t)
{
	for (unsigned i = 0; i < t->dev->nqueues && t->host.unwatch; i++)
		if (t->q[i].kick_fd >= 0 && !t->dev->external_queues)
			t->host.unwatch(t->host.watch_opaque, t->q[i].kick_fd);
	pthread_mutex_lock(&t->lock);
	reset_device(t);
	pthread_mutex_unlock(&t->lock);
}

void virtio_pci_destroy(struct virtio_transport *t)
{
	if (!t)
		return;
	if (t->host.ioeventfd) {
		move_kicks(t, false, 0);
		move_kicks(t, true, 0);
	}
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++)
		if (t->q[i].kick_fd >= 0)
			close(t->q[i].kick_fd);
	if (t->msix.pci)
		msix_destroy(&t->msix);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* ---- Snapshot state ------------------------------------------------------------------------------------ */

#define TRANSPORT_STATE_VERSION 1

struct queue_state {
	uint64_t desc, driver, device;
	uint16_t size, msix_vector;
	uint16_t last_avail, used_idx, signalled_used;
	uint8_t enabled, signalled_valid, broken;
	uint8_t pad[5];
};

struct transport_state {
	struct pci_function_state pci;
	uint32_t device_id, nqueues;      /* what the device is: checked, not loaded */
	uint64_t offered;
	uint64_t driver_features, negotiated;
	uint32_t dfselect, gfselect;
	uint16_t config_vector, queue_select;
	uint8_t status, config_generation, isr, pad;
	struct queue_state q[VIRTIO_MAX_QUEUES];
};

void virtio_pci_lock(struct virtio_transport *t)
{
	pthread_mutex_lock(&t->lock);
}

void virtio_pci_unlock(struct virtio_transport *t)
{
	pthread_mutex_unlock(&t->lock);
}

bool virtio_pci_quiesced(struct virtio_transport *t)
{
	return !t->dev->ops->quiesced || t->dev->ops->quiesced(t->dev);
}

static void save_queue(const struct vpci_queue *q, const struct virtq *vq, struct queue_state *s)
{
	*s = (struct queue_state){
		.desc = q->desc, .driver = q->driver, .device = q->device, .size = q->size, .msix_vector = q->msix_vector,
		.last_avail = vq->last_avail, .used_idx = vq->used_idx, .signalled_used = vq->signalled_used,
		.enabled = q->enabled, .signalled_valid = vq->signalled_valid, .broken = vq->broken,
	};
}

/* A zeroed state for device d (NULL with err if d cannot be snapshotted) and the name of its own section. */
static struct transport_state *new_state(const struct virtio_device *d, const char *name, char *dev_name, vt_err *err)
{
	if (d->snapshot_refusal)
		return vt_fail(err, "%s", d->snapshot_refusal), NULL;
	struct transport_state *s = calloc(1, sizeof(*s));
	if (!s)
		return vt_fail_errno(err, ENOMEM, "%s state", d->name), NULL;
	snprintf(dev_name, STATE_NAME_MAX + 1, "%s.dev", name);
	return s;
}

int virtio_pci_state_save(struct virtio_transport *t, struct state_writer *w, const char *name, vt_err *err)
{
	struct virtio_device *d = t->dev;
	char dev_name[STATE_NAME_MAX + 1];
	struct transport_state *s = new_state(d, name, dev_name, err);
	if (!s)
		return -1;
	s->device_id = d->id, s->nqueues = d->nqueues, s->offered = offered_features(t);
	s->driver_features = t->driver_features, s->negotiated = d->negotiated;
	s->dfselect = t->dfselect, s->gfselect = t->gfselect;
	s->config_vector = t->config_vector, s->queue_select = t->queue_select;
	s->status = t->status, s->config_generation = t->config_generation, s->isr = t->isr;
	pci_function_state_get(&t->pci, &t->msix, &s->pci);
	for (unsigned i = 0; i < d->nqueues; i++)
		save_queue(&t->q[i], &t->vq[i], &s->q[i]);
	d->ops->state_save(d, w, dev_name);
	state_put(w, name, TRANSPORT_STATE_VERSION, s, sizeof(*s));
	free(s);
	return 0;
}

static int check_transport_state(const struct virtio_transport *t, const struct transport_state *s, const char *name,
				  vt_err *err)
{
	const struct virtio_device *d = t->dev;
	if (s->device_id != d->id || s->nqueues != d->nqueues)
		return vt_fail(err, "snapshot section %s: the snapshot has virtio device %u with %u queues there, this VM "
				    "has %s with %u", name, s->device_id, s->nqueues, d->name, d->nqueues);
	if (s->offered != offered_features(t))
		return vt_fail(err, "snapshot section %s: the snapshot's %s offered features 0x%llx, this one offers 0x%llx "
				    "(its options differ: read-only, offloads, ...)", name, d->name,
			       (unsigned long long)s->offered, (unsigned long long)offered_features(t));
	if ((s->driver_features & ~s->offered) || (s->negotiated & ~s->offered))
		return vt_fail(err, "snapshot section %s: negotiated features that were not offered", name);
	for (unsigned i = 0; i < d->nqueues; i++) {
		const struct queue_state *q = &s->q[i];
		if (!q->size || q->size > d->queue_max[i] || (q->size & (q->size - 1)))
			return vt_fail(err, "snapshot section %s: queue %u has size %u", name, i, q->size);
	}
	return 0;
}

static void load_queue(struct virtio_transport *t, unsigned i, const struct queue_state *s)
{
	struct vpci_queue *q = &t->q[i];
	q->size = s->size;
	q->msix_vector = checked_vector(t, s->msix_vector);
	q->desc = s->desc, q->driver = s->driver, q->device = s->device;
	if (!s->enabled)
		return;
	enable_queue(t, i); /* checks the rings against guest memory again, as the driver's enable did */
	struct virtq *vq = &t->vq[i];
	vq->last_avail = s->last_avail;
	vq->used_idx = s->used_idx;
	vq->signalled_used = s->signalled_used;
	vq->signalled_valid = s->signalled_valid;
	vq->broken |= s->broken != 0;
}

/* An active device goes on as after DRIVER_OK; a spurious interrupt per queue covers one that was still
 * on its way when the state was taken (a driver finds nothing new and returns). */
static void resume_device(struct virtio_transport *t)
{
	if (!(t->status & VIRTIO_STATUS_DRIVER_OK) || (t->status & VIRTIO_STATUS_NEEDS_RESET))
		return;
	if (t->dev->ops->activate && t->dev->ops->activate(t->dev) < 0) {
		virtio_mark_broken(t->dev, "device activation failed");
		return;
	}
	for (unsigned i = 0; i < t->dev->nqueues; i++)
		if (t->q[i].enabled)
			virtio_queue_interrupt(t->dev, i, true);
	kick_enabled_queues(t);
}

int virtio_pci_state_load(struct virtio_transport *t, const struct state_reader *r, const char *name, vt_err *err)
{
	struct virtio_device *d = t->dev;
	char dev_name[STATE_NAME_MAX + 1];
	struct transport_state *s = new_state(d, name, dev_name, err);
	if (!s)
		return -1;
	int rc = -1;
	pthread_mutex_lock(&t->lock);
	if (state_get(r, name, TRANSPORT_STATE_VERSION, s, sizeof(*s), err) < 0 || check_transport_state(t, s, name, err) < 0)
		goto out;
	reset_device(t);
	if (pci_function_state_set(&t->pci, &t->msix, &s->pci, err) < 0)
		goto out;
	t->dfselect = s->dfselect, t->gfselect = s->gfselect;
	t->driver_features = s->driver_features;
	d->negotiated = s->negotiated;
	t->config_vector = checked_vector(t, s->config_vector);
	t->queue_select = s->queue_select;
	t->status = s->status, t->config_generation = s->config_generation, t->isr = s->isr;
	for (unsigned i = 0; i < d->nqueues; i++)
		load_queue(t, i, &s->q[i]);
	if (d->ops->state_load(d, r, dev_name, err) < 0)
		goto out;
	resume_device(t);
	rc = 0;
out:
	if (rc < 0)
		reset_device(t);
	pthread_mutex_unlock(&t->lock);
	free(s);
	return rc;
}

void virtio_pci_retire(struct virtio_transport *t)
{
	for (unsigned i = 0; i < t->dev->nqueues; i++)
		virtq_disable(&t->vq[i]);
}

unsigned virtio_pci_counters(struct virtio_transport *t, struct virtio_counter *out)
{
	if (!t->dev->ops->counters)
		return 0;
	pthread_mutex_lock(&t->lock);
	unsigned n = t->dev->ops->counters(t->dev, out);
	pthread_mutex_unlock(&t->lock);
	return MIN(n, VIRTIO_MAX_COUNTERS);
}

void virtio_pci_queue_counters(struct virtio_transport *t, unsigned q, struct virtio_queue_counters *out)
{
	const struct vpci_queue *vq = &t->q[q];
	uint64_t kicks = __atomic_load_n(&vq->kicks, __ATOMIC_RELAXED), deferred;
	pthread_mutex_lock(&t->lock);   /* interrupts and deferred passes are counted under it */
	out->interrupts = vq->interrupts;
	deferred = vq->deferred_passes;
	pthread_mutex_unlock(&t->lock);
	out->kicks = kicks - MIN(kicks, deferred);
	out->trapped_kicks = __atomic_load_n(&vq->trapped_kicks, __ATOMIC_RELAXED);
}

void virtio_pci_print_stats(struct virtio_transport *t, FILE *f)
{
	for (unsigned i = 0; i < t->dev->nqueues; i++) {
		const struct vpci_queue *q = &t->q[i];
		uint64_t kicks = __atomic_load_n(&q->kicks, __ATOMIC_RELAXED);
		uint64_t deferred = __atomic_load_n(&q->deferred_passes, __ATOMIC_RELAXED);
		fprintf(f, "  %s queue %u: %llu kicks (%llu of them trapped as exits, the rest ioeventfd), %llu interrupts, "
			"%llu passes deferred\n", t->dev->name, i, (unsigned long long)(kicks - MIN(kicks, deferred)),
			(unsigned long long)__atomic_load_n(&q->trapped_kicks, __ATOMIC_RELAXED), (unsigned long long)q->interrupts,
			(unsigned long long)deferred);
		struct virtq_positions p;
		if (virtq_positions(&t->vq[i], &p))
			fprintf(f, "    ring: driver's avail idx %u, device at %u, used idx %u; used_event %u, avail_event %u\n",
				p.avail_idx, p.last_avail, p.used_idx, p.used_event, p.avail_event);
	}
}
