/* The snapshot state file (format in state_file.h). */
#include "lib/state_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"

#define MAGIC "VIRTUSST"
#define HEADER_LEN 16
#define SECTION_HEADER_LEN 40
#define END_NAME "end"

static uint64_t pad8(uint64_t n)
{
	return (n + 7) & ~7ULL;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void buffer_bytes(struct state_writer *w, const void *data, uint64_t len)
{
	if (w->len + len > STATE_FILE_MAX) {
		w->failed = true;
		vt_fail(&w->err, "the snapshot state exceeds %u MiB", STATE_FILE_MAX >> 20);
		return;
	}
	if (w->len + len > w->cap) {
		size_t cap = MAX(w->cap * 2, (size_t)(w->len + len));
		uint8_t *b = realloc(w->buf, cap);
		if (!b) {
			w->failed = true;
			vt_fail_errno(&w->err, ENOMEM, "the snapshot state");
			return;
		}
		w->buf = b, w->cap = cap;
	}
	if (len)
		memcpy(w->buf + w->len, data, len);
	w->len += len;
	w->off += len;
}

static void writer_bytes(struct state_writer *w, const void *data, uint64_t len)
{
	if (w->failed)
		return;
	if (w->fd < 0) {
		buffer_bytes(w, data, len);
		return;
	}
	if (write_all(w->fd, data, len) < 0) {
		w->failed = true;
		vt_fail_errno(&w->err, errno, "writing the snapshot state");
		return;
	}
	w->off += len;
}

static void write_header(struct state_writer *w)
{
	uint8_t h[HEADER_LEN] = { 0 };
	memcpy(h, MAGIC, 8);
	put_le32(h + 8, STATE_FORMAT_VERSION);
	writer_bytes(w, h, sizeof(h));
}

int state_writer_open(struct state_writer *w, const char *path, vt_err *err)
{
	*w = (struct state_writer){ .fd = -1 };
	w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0)
		return vt_fail_errno(err, errno, "cannot create %s", path);
	write_header(w);
	return 0;
}

void state_writer_open_fd(struct state_writer *w, int fd)
{
	*w = (struct state_writer){ .fd = fd };
	write_header(w);
}

void state_writer_open_memory(struct state_writer *w)
{
	*w = (struct state_writer){ .fd = -1 };
	write_header(w);
}

int state_writer_take(struct state_writer *w, uint8_t **data, size_t *len, vt_err *err)
{
	state_put(w, END_NAME, 1, NULL, 0);
	if (w->failed) {
		state_writer_abort(w);
		return vt_fail(err, "%s", w->err.msg);
	}
	*data = w->buf, *len = w->len;
	w->buf = NULL;
	return 0;
}

void state_put(struct state_writer *w, const char *name, uint32_t version, const void *data, uint64_t len)
{
	if (strlen(name) > STATE_NAME_MAX) {
		w->failed = true;
		vt_fail(&w->err, "snapshot section name '%s' is too long", name);
		return;
	}
	uint8_t h[SECTION_HEADER_LEN] = { 0 };
	memcpy(h, name, strlen(name));
	put_le32(h + 24, version);
	put_le64(h + 32, len);
	static const uint8_t zeros[8];
	writer_bytes(w, h, sizeof(h));
	writer_bytes(w, data, len);
	writer_bytes(w, zeros, pad8(len) - len);
}

int state_writer_finish(struct state_writer *w, vt_err *err)
{
	state_put(w, END_NAME, 1, NULL, 0);
	if (!w->failed && fsync(w->fd) < 0) {
		w->failed = true;
		vt_fail_errno(&w->err, errno, "flushing the snapshot state");
	}
	close(w->fd);
	w->fd = -1;
	if (w->failed)
		return vt_fail(err, "%s", w->err.msg);
	return 0;
}

void state_writer_abort(struct state_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	free(w->buf);
	w->buf = NULL;
}

static int parse_sections(struct state_reader *r, const char *path, vt_err *err)
{
	uint64_t off = HEADER_LEN;
	size_t cap = 0;
	for (;;) {
		if (r->size - off < SECTION_HEADER_LEN)
			return vt_fail(err, "%s: cut short (no end section)", path);
		const uint8_t *h = r->file + off;
		uint64_t len = get_le64(h + 32);
		if (len > r->size - off - SECTION_HEADER_LEN || pad8(len) > r->size - off - SECTION_HEADER_LEN)
			return vt_fail(err, "%s: a section runs past the end of the file", path);
		if (memchr(h, 0, 24) == NULL)
			return vt_fail(err, "%s: a section name is not terminated", path);
		if (r->n == cap) {
			cap = cap ? 2 * cap : 64;
			struct state_section *s = realloc(r->sect, cap * sizeof(*s));
			if (!s)
				return vt_fail_errno(err, ENOMEM, "%s", path);
			r->sect = s;
		}
		struct state_section *s = &r->sect[r->n++];
		memcpy(s->name, h, 24);
		s->version = get_le32(h + 24);
		s->data = h + SECTION_HEADER_LEN;
		s->len = len;
		off += SECTION_HEADER_LEN + pad8(len);
		if (!strcmp(s->name, END_NAME))
			return 0;
	}
}

int state_reader_open(struct state_reader *r, const char *path, vt_err *err)
{
	void *data;
	size_t size;
	*r = (struct state_reader){ 0 };
	if (read_file(path, STATE_FILE_MAX, &data, &size, err) < 0)
		return -1;
	return state_reader_open_memory(r, data, size, path, err);
}

int state_reader_open_memory(struct state_reader *r, void *data, size_t size, const char *path, vt_err *err)
{
	*r = (struct state_reader){ .file = data, .size = size };
	if (r->size < HEADER_LEN || memcmp(r->file, MAGIC, 8)) {
		state_reader_close(r);
		return vt_fail(err, "%s is not a virtus snapshot state file", path);
	}
	uint32_t version = get_le32(r->file + 8);
	if (version != STATE_FORMAT_VERSION) {
		state_reader_close(r);
		return vt_fail(err, "%s has snapshot format %u; this virtus reads format %u", path, version, STATE_FORMAT_VERSION);
	}
	if (parse_sections(r, path, err) < 0) {
		state_reader_close(r);
		return -1;
	}
	return 0;
}

const struct state_section *state_find(const struct state_reader *r, const char *name, uint32_t version, vt_err *err)
{
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->sect[i].name, name))
			continue;
		if (r->sect[i].version != version) {
			vt_fail(err, "snapshot section %s has version %u; this virtus reads version %u", name,
				r->sect[i].version, version);
			return NULL;
		}
		return &r->sect[i];
	}
	vt_fail(err, "the snapshot has no %s section (it is from another machine configuration)", name);
	return NULL;
}

int state_get(const struct state_reader *r, const char *name, uint32_t version, void *out, uint64_t len, vt_err *err)
{
	const struct state_section *s = state_find(r, name, version, err);
	if (!s)
		return -1;
	if (s->len != len)
		return vt_fail(err, "snapshot section %s has %llu bytes, expected %llu", name, (unsigned long long)s->len,
			       (unsigned long long)len);
	memcpy(out, s->data, len);
	return 0;
}

void state_reader_close(struct state_reader *r)
{
	free(r->file);
	free(r->sect);
	*r = (struct state_reader){ 0 };
}
