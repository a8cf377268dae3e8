/* A snapshot's state file: named, versioned sections that each part of the machine writes and reads itself
 * (the vCPUs, the interrupt controllers and clock, every device). One format for snapshot, restore and,
 * later, migration's final state. Layout (little-endian; docs/snapshot.md):
 *
 *   header   "VIRTUSST"  u32 format version  u32 0
 *   section  char name[24] (NUL-padded)  u32 version  u32 0  u64 length  bytes, padded to 8
 *   ...      the last section is named "end", length 0
 *
 * The reader reads the whole file (it is small: memory is a separate file) and checks every section header
 * before anything is applied; a part asks for its section by name, version and exact length, so a file
 * from another format, version or machine is refused with a message naming what differs. */
#ifndef VIRTUS_LIB_STATE_FILE_H
#define VIRTUS_LIB_STATE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define STATE_FORMAT_VERSION 1
#define STATE_NAME_MAX 23
#define STATE_FILE_MAX (64u << 20)

struct state_writer {
	int fd;                 /* -1: into buf (state_writer_open_memory) */
	uint8_t *buf;
	size_t len, cap;
	uint64_t off;
	bool failed;
	vt_err err;      /* the first failure, reported by state_writer_finish */
};

/* Create path (it must not exist) and write the header. */
int state_writer_open(struct state_writer *w, const char *path, vt_err *err);
/* The same on a new, empty file the caller opened for writing (the writer owns fd from then on). */
void state_writer_open_fd(struct state_writer *w, int fd);
/* The same into memory (migration sends it): state_writer_take ends it and hands over the bytes (free()). */
void state_writer_open_memory(struct state_writer *w);
int state_writer_take(struct state_writer *w, uint8_t **data, size_t *len, vt_err *err);
/* Append a section; a failure is remembered and reported by finish (so a save is a plain list of puts). */
void state_put(struct state_writer *w, const char *name, uint32_t version, const void *data, uint64_t len);
/* Write the end section, flush to disk, close; 0 only if every put succeeded. */
int state_writer_finish(struct state_writer *w, vt_err *err);
/* Close without finishing (an error elsewhere); the caller removes the file. */
void state_writer_abort(struct state_writer *w);

struct state_section {
	char name[STATE_NAME_MAX + 1];
	uint32_t version;
	const uint8_t *data;
	uint64_t len;
};

struct state_reader {
	uint8_t *file;
	size_t size;
	struct state_section *sect;
	size_t n;
};

/* Read and check the whole file: header, format version, every section's bounds, the end section. */
int state_reader_open(struct state_reader *r, const char *path, vt_err *err);
/* The same for bytes in memory (malloc()ed; the reader owns them, also on failure); what names them in errors. */
int state_reader_open_memory(struct state_reader *r, void *data, size_t size, const char *what, vt_err *err);
/* Copy the section `name` into out: it must exist with this version and exactly len bytes. */
int state_get(const struct state_reader *r, const char *name, uint32_t version, void *out, uint64_t len, vt_err *err);
/* The section `name` of this version and any length, or NULL with err set. */
const struct state_section *state_find(const struct state_reader *r, const char *name, uint32_t version, vt_err *err);
void state_reader_close(struct state_reader *r);

#endif
