/* The guest's physical memory map, shared by the bzImage (e820 table) and PVH (memmap) paths. */
#ifndef VIRTUS_E820_H
#define VIRTUS_E820_H

#include <stdint.h>

#include "vmm/guest_mem.h"

#define E820_RAM      1
#define E820_RESERVED 2

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

#define E820_MAX_BUILT 8

/* Fill out[] (at least E820_MAX_BUILT entries) for the RAM in m; returns the number of entries. */
unsigned e820_build(const struct guest_mem *m, struct e820_entry *out);

#endif
