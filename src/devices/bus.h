/* Port-I/O and MMIO dispatch: address ranges mapped to device handlers, one signature for both. */
#ifndef VIRTUS_BUS_H
#define VIRTUS_BUS_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/err.h"

/* addr is relative to the range base. For reads the handler fills data[0..len). */
typedef void (*io_handler_fn)(void *opaque, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

struct io_range {
	uint64_t base, len;
	io_handler_fn fn;
	void *opaque;
	const char *name;
	uint64_t accesses;    /* exit statistics, updated atomically */
};

#define BUS_MAX_RANGES 64
#define BUS_UNCLAIMED_SLOTS 8

/* Where unclaimed accesses went, for --stats: the first few distinct addresses. */
struct unclaimed_slot {
	uint64_t addr;   /* atomic; 0 = free (address 0 is counted in the total only) */
	uint64_t count;
};

struct io_bus {
	struct io_range range[BUS_MAX_RANGES]; /* sorted by base, non-overlapping */
	unsigned n;
	uint64_t unhandled;
	struct unclaimed_slot unclaimed[BUS_UNCLAIMED_SLOTS];
};

/* Registration happens before vCPUs run; lookups after that are lock-free. */
int bus_register(struct io_bus *bus, uint64_t base, uint64_t len, io_handler_fn fn, void *opaque,
		 const char *name, vt_err *err);
const struct io_range *bus_find(const struct io_bus *bus, uint64_t addr);
/* Dispatch one access. Unclaimed reads return all ones, unclaimed writes are dropped; returns false then. */
bool bus_dispatch(struct io_bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
