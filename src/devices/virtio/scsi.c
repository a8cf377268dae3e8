/* virtio-scsi with one CD-ROM drive (contract in scsi.h). Three queues (virtio 1.x 5.6.2): control (task
 * management and asynchronous-notification requests), event (buffers the driver lends for hot-plug events:
 * this controller's one unit never comes or goes, so they stay lent) and one request queue.
 *
 * Every command completes before the next is taken: a READ is one preadv of at most 1 MiB (the max_sectors
 * advertised) from the ISO, straight into the guest's buffers, on the device thread. So a task-management
 * request finds nothing to abort, and a snapshot finds nothing in flight.
 *
 * Threading: queue_notify and reset run under the transport lock; insert and eject take it. */
#include "devices/virtio/scsi.h"

#include <endian.h>
#include <errno.h>
#include <linux/virtio_scsi.h>
#include <stdlib.h>
#include <string.h>

#include "devices/scsi_cd.h"
#include "devices/virtio/pci.h"
#include "lib/iov.h"
#include "lib/state_file.h"
#include "lib/util.h"

#define SCSI_CONTROLQ    0
#define SCSI_EVENTQ      1
#define SCSI_REQUESTQ    2
#define SCSI_QUEUE_SIZE  128
#define SCSI_CDB_MAX     32     /* bytes of a CDB the drive looks at (the longest MMC uses is 12) */
#define SCSI_SENSE_MAX   256    /* largest sense_size the driver may set (Linux sets 96) */
#define SCSI_CDB_LIMIT   256    /* largest cdb_size the driver may set (Linux sets 32) */

/* Request and response framing (virtio 1.x 5.6.6): fixed parts before the CDB and before the sense data. */
#define REQ_FIXED        19     /* lun[8], id le64, task_attr, prio, crn */
#define RESP_FIXED       12     /* sense_len le32, residual le32, status_qualifier le16, status, response */
#define TMF_REQ_LEN      24     /* type le32, subtype le32, lun[8], id le64 */
#define AN_REQ_LEN       16     /* type le32, lun[8], event_requested le32 */
#define AN_RESP_LEN      5      /* event_actual le32, response */
#define TMF_FUNCTION_COMPLETE 0 /* virtio 1.x 5.6.6.2: the TMF response when the function is done */

/* Config space (struct virtio_scsi_config): offsets of the two fields the driver may write. */
#define CFG_SENSE_SIZE   20
#define CFG_CDB_SIZE     24
#define CFG_LEN          36

#define VSCSI_STATE_VERSION 1

struct vscsi {
	struct virtio_device dev;       /* first: ops get this pointer */
	struct scsi_cd *cd;
	uint32_t cdb_size, sense_size;  /* as the driver set them (defaults 32, 96) */
	uint8_t config[CFG_LEN];
	struct virtq_chain chain;       /* scratch, ~16 KiB: off the loop thread's stack */
	struct iovec datain[VIRTQ_MAX_SEGS];
};

struct vscsi_state {
	struct scsi_cd_state cd;
	uint32_t cdb_size, sense_size;
};

static struct vscsi *to_vscsi(struct virtio_device *d)
{
	return (struct vscsi *)d;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void build_config(struct vscsi *s)
{
	uint8_t *c = s->config;
	memset(c, 0, sizeof(s->config));
	put_le32(c + 0, 1);                                  /* num_queues: request queues */
	put_le32(c + 4, SCSI_QUEUE_SIZE - 2);                /* seg_max */
	put_le32(c + 8, SCSI_CD_MAX_TRANSFER / 512);         /* max_sectors */
	put_le32(c + 12, SCSI_QUEUE_SIZE);                   /* cmd_per_lun */
	put_le32(c + 16, sizeof(struct virtio_scsi_event));  /* event_info_size */
	put_le32(c + CFG_SENSE_SIZE, s->sense_size);
	put_le32(c + CFG_CDB_SIZE, s->cdb_size);
	/* max_channel, max_target and max_lun stay 0: one unit, 0:0:0 */
}

static void scsi_config_read(struct virtio_device *d, uint32_t off, uint8_t *data, uint32_t len)
{
	memcpy(data, to_vscsi(d)->config + off, len);
}

/* Only sense_size and cdb_size are the driver's to set (5.6.4), as whole 32-bit writes; a size beyond what
 * this device handles is clamped, so a request's framing can never be made to overflow. */
static void scsi_config_write(struct virtio_device *d, uint32_t off, const uint8_t *data, uint32_t len)
{
	struct vscsi *s = to_vscsi(d);
	uint32_t v;
	if (len != 4 || (off != CFG_SENSE_SIZE && off != CFG_CDB_SIZE))
		return;
	memcpy(&v, data, 4);
	v = le32toh(v);
	if (off == CFG_SENSE_SIZE)
		s->sense_size = MIN(v, SCSI_SENSE_MAX);
	else
		s->cdb_size = MIN(v, SCSI_CDB_LIMIT);
	build_config(s);
}

/* The LUN field (5.6.6.1): byte 0 is 1, byte 1 the target, bytes 2-3 the LUN in the flat addressing
 * format. -1: a target this controller does not have. */
static int64_t decode_lun(const uint8_t lun[8])
{
	if (lun[0] != 1 || lun[1] != 0)
		return -1;
	return ((lun[2] & 0x3f) << 8) | lun[3];
}

static void write_response(struct vscsi *s, const struct iovec *wr, unsigned nwr, uint8_t response,
			   const struct scsi_cd_result *res, uint64_t datain_len)
{
	uint8_t hdr[RESP_FIXED + SCSI_CD_SENSE_LEN] = { 0 };
	uint32_t sense_len = res ? MIN(res->sense_len, s->sense_size) : 0;
	put_le32(hdr, sense_len);
	put_le32(hdr + 4, res ? (uint32_t)(datain_len - res->data_len) : 0);
	hdr[10] = res ? res->status : 0;
	hdr[11] = response;
	if (sense_len)
		memcpy(hdr + RESP_FIXED, res->sense, sense_len);
	iov_zero(wr, nwr, 0, RESP_FIXED + s->sense_size);
	iov_from_buf(wr, nwr, 0, hdr, RESP_FIXED + sense_len);
}

/* One command: returns the bytes written into the chain. */
static uint32_t run_command(struct vscsi *s, const struct virtq_chain *c)
{
	const struct iovec *wr = c->iov + c->nread;
	uint64_t req_len = REQ_FIXED + s->cdb_size, resp_len = RESP_FIXED + s->sense_size;
	if (c->write_len < resp_len)
		return 0;                          /* nowhere to answer: the chain goes back untouched */
	uint64_t datain_len = c->write_len - resp_len;
	if (c->read_len < req_len) {
		write_response(s, wr, c->nwrite, VIRTIO_SCSI_S_FAILURE, NULL, 0);
		return (uint32_t)resp_len;
	}
	uint8_t lun[8], cdb[SCSI_CDB_MAX] = { 0 };
	unsigned cdb_len = MIN(s->cdb_size, SCSI_CDB_MAX);
	iov_to_buf(c->iov, c->nread, 0, lun, sizeof(lun));
	iov_to_buf(c->iov, c->nread, REQ_FIXED, cdb, cdb_len);
	int64_t unit = decode_lun(lun);
	if (unit < 0) {
		write_response(s, wr, c->nwrite, VIRTIO_SCSI_S_BAD_TARGET, NULL, 0);
		return (uint32_t)resp_len;
	}
	unsigned nd = iov_slice(wr, c->nwrite, resp_len, datain_len, s->datain, VIRTQ_MAX_SEGS);
	struct scsi_cd_result res;
	scsi_cd_exec(s->cd, (uint64_t)unit, cdb, cdb_len, s->datain, nd, datain_len, &res);
	write_response(s, wr, c->nwrite, VIRTIO_SCSI_S_OK, &res, datain_len);
	return (uint32_t)(resp_len + res.data_len);
}

/* Task management finds nothing to abort (every command completed before the next was taken): it is
 * "complete". Asynchronous notification: no events are offered. */
static uint32_t run_control(const struct virtq_chain *c)
{
	const struct iovec *wr = c->iov + c->nread;
	uint32_t type;
	if (iov_to_buf(c->iov, c->nread, 0, &type, 4) < 4)
		return 0;
	type = le32toh(type);
	if (type == VIRTIO_SCSI_T_TMF && c->read_len >= TMF_REQ_LEN && c->write_len >= 1) {
		uint8_t response = TMF_FUNCTION_COMPLETE;
		iov_from_buf(wr, c->nwrite, 0, &response, 1);
		return 1;
	}
	if ((type == VIRTIO_SCSI_T_AN_QUERY || type == VIRTIO_SCSI_T_AN_SUBSCRIBE) && c->read_len >= AN_REQ_LEN &&
	    c->write_len >= AN_RESP_LEN) {
		uint8_t resp[AN_RESP_LEN] = { 0, 0, 0, 0, VIRTIO_SCSI_S_OK };
		iov_from_buf(wr, c->nwrite, 0, resp, sizeof(resp));
		return AN_RESP_LEN;
	}
	return 0;                                  /* malformed: returned with nothing written */
}

static void scsi_queue_notify(struct virtio_device *d, unsigned q)
{
	struct vscsi *s = to_vscsi(d);
	if (q == SCSI_EVENTQ)
		return;                            /* lent buffers wait for an event that never comes */
	struct virtio_pass pass = virtio_pass_begin(d, q);
	int rc;
	while ((rc = virtio_pass_pop(&pass, &s->chain)) == 1) {
		uint32_t used = q == SCSI_REQUESTQ ? run_command(s, &s->chain) : run_control(&s->chain);
		virtq_push(&d->vq[q], s->chain.head, used);
	}
	if (rc == 0)
		virtio_queue_interrupt(d, q, false);
}

static void scsi_reset(struct virtio_device *d)
{
	struct vscsi *s = to_vscsi(d);
	s->cdb_size = VIRTIO_SCSI_CDB_DEFAULT_SIZE;
	s->sense_size = VIRTIO_SCSI_SENSE_DEFAULT_SIZE;
	build_config(s);
}

static void scsi_state_save(struct virtio_device *d, struct state_writer *w, const char *name)
{
	struct vscsi *s = to_vscsi(d);
	struct vscsi_state st = { .cdb_size = s->cdb_size, .sense_size = s->sense_size };
	scsi_cd_get_state(s->cd, &st.cd);
	state_put(w, name, VSCSI_STATE_VERSION, &st, sizeof(st));
}

static int scsi_state_load(struct virtio_device *d, const struct state_reader *r, const char *name, vt_err *err)
{
	struct vscsi *s = to_vscsi(d);
	struct vscsi_state st;
	if (state_get(r, name, VSCSI_STATE_VERSION, &st, sizeof(st), err) < 0)
		return -1;
	if (st.cdb_size > SCSI_CDB_LIMIT || st.sense_size > SCSI_SENSE_MAX)
		return vt_fail(err, "snapshot section %s: CDB or sense size out of range", name);
	if (scsi_cd_set_state(s->cd, &st.cd, err) < 0)
		return vt_err_prefix(err, "snapshot section %s", name);
	s->cdb_size = st.cdb_size;
	s->sense_size = st.sense_size;
	build_config(s);
	return 0;
}

static const struct virtio_device_ops scsi_ops = {
	.config_read = scsi_config_read,
	.config_write = scsi_config_write,
	.reset = scsi_reset,
	.queue_notify = scsi_queue_notify,
	.state_save = scsi_state_save,
	.state_load = scsi_state_load,
};

int virtio_scsi_cd_create(const char *path, struct virtio_device **out, vt_err *err)
{
	struct vscsi *s = calloc(1, sizeof(*s));
	if (!s)
		return vt_fail_errno(err, ENOMEM, "virtio-scsi");
	if (scsi_cd_create(&s->cd, err) < 0) {
		free(s);
		return -1;
	}
	if (path) {
		struct scsi_cd_medium m;
		if (scsi_cd_medium_open(path, &m, err) < 0 || scsi_cd_insert(s->cd, &m, false, err) < 0) {
			scsi_cd_medium_close(&m);
			virtio_scsi_cd_destroy(&s->dev);
			return -1;
		}
	}
	scsi_reset(&s->dev);
	struct virtio_device *d = &s->dev;
	d->id = VIRTIO_ID_SCSI;
	d->features = (1ULL << VIRTIO_F_EVENT_IDX) | (1ULL << VIRTIO_F_INDIRECT_DESC);
	d->nqueues = 3;
	for (unsigned q = 0; q < d->nqueues; q++)
		d->queue_max[q] = SCSI_QUEUE_SIZE;
	d->config_len = CFG_LEN;
	d->ops = &scsi_ops;
	d->name = "virtio-scsi";
	*out = d;
	return 0;
}

void virtio_scsi_cd_destroy(struct virtio_device *d)
{
	if (!d)
		return;
	struct vscsi *s = to_vscsi(d);
	scsi_cd_destroy(s->cd);
	free(s);
}

int virtio_scsi_cd_insert(struct virtio_device *d, const char *path, bool force, vt_err *err)
{
	struct scsi_cd_medium m;
	if (scsi_cd_medium_open(path, &m, err) < 0)
		return -1;
	pthread_mutex_lock(&d->transport->lock);
	int rc = scsi_cd_insert(to_vscsi(d)->cd, &m, force, err);
	pthread_mutex_unlock(&d->transport->lock);
	scsi_cd_medium_close(&m);                  /* after a refusal: the drive did not take it */
	return rc;
}

int virtio_scsi_cd_eject(struct virtio_device *d, bool force, vt_err *err)
{
	pthread_mutex_lock(&d->transport->lock);
	int rc = scsi_cd_eject(to_vscsi(d)->cd, force, err);
	pthread_mutex_unlock(&d->transport->lock);
	return rc;
}

void virtio_scsi_cd_status(struct virtio_device *d, struct virtio_scsi_cd_status *st)
{
	pthread_mutex_lock(&d->transport->lock);
	const struct scsi_cd *cd = to_vscsi(d)->cd;
	*st = (struct virtio_scsi_cd_status){ .medium = scsi_cd_has_medium(cd), .locked = scsi_cd_locked(cd),
					      .tray_open = scsi_cd_tray_open(cd) };
	pthread_mutex_unlock(&d->transport->lock);
}
