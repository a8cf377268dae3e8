/* Guest RAM and the one bounds-checked way to reach it. Every guest-physical address that comes from the
 * guest or from a file goes through gmem_ptr(); a NULL answer is a guest (or input) error, never a crash. */
#ifndef VIRTUS_GUEST_MEM_H
#define VIRTUS_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define GMEM_MAX_REGIONS 2

struct gmem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
};

struct guest_mem {
	struct gmem_region region[GMEM_MAX_REGIONS];
	unsigned nregions;
	uint64_t ram_size;    /* total bytes of RAM */
	void *mapping;        /* one host mapping backing every region */
	size_t mapping_size;
	int fd;               /* GMEM_SHARED: the memfd behind the mapping (offset = hva - mapping), else -1 */
	/* For a migration: one bit per 4 KiB page of RAM (in RAM order, the regions one after the other) that the
	 * VMM itself wrote, which KVM's dirty log cannot see (devices), while track_user_writes is set (atomic).
	 * Allocated by the first migration, freed with the memory (a device may still be marking when the
	 * tracking stops). */
	uint64_t *user_dirty;
	bool track_user_writes;
};

/* GMEM_MERGEABLE: offer guest RAM to the host's KSM (MADV_MERGEABLE). Off unless asked for: merging pages
 * across VMs makes write timing reveal another guest's memory contents (a cross-VM side channel). */
#define GMEM_MERGEABLE 1u
/* GMEM_SHARED: RAM is a memfd mapped shared, so that another process (a vhost-user backend) can map it. */
#define GMEM_SHARED 2u

/* Map ram_size bytes of anonymous memory and lay it out below the MMIO hole and above 4 GiB. */
int gmem_init(struct guest_mem *m, uint64_t ram_size, unsigned flags, vt_err *err);
/* Guest RAM from a snapshot's memory file (ram_size bytes, the regions in order), mapped privately: pages
 * are read from the file when first touched, and the guest's writes never reach it. GMEM_SHARED is refused
 * (a vhost-user backend needs a memfd). */
int gmem_init_file(struct guest_mem *m, uint64_t ram_size, const char *path, unsigned flags, vt_err *err);
/* Describe existing host memory as guest RAM (tests: fake guest memory). */
void gmem_init_fixed(struct guest_mem *m, void *hva, uint64_t ram_size);
void gmem_free(struct guest_mem *m);

/* Host pointer for [gpa, gpa+len) if the whole range is RAM in a single region, else NULL. */
void *gmem_ptr(const struct guest_mem *m, uint64_t gpa, uint64_t len);

/* Copy in or out; -1 if the range is not wholly guest RAM. */
int gmem_read(const struct guest_mem *m, uint64_t gpa, void *dst, uint64_t len);
int gmem_write(const struct guest_mem *m, uint64_t gpa, const void *src, uint64_t len);

/* The VMM (a device) wrote [gpa, gpa+len): mark its pages for a running migration. Cheap when none runs. */
void gmem_mark_dirty(const struct guest_mem *m, uint64_t gpa, uint64_t len);
/* Where gpa is in RAM order (the offset a memory file and a migration use); -1 if it is not RAM. */
int64_t gmem_ram_offset(const struct guest_mem *m, uint64_t gpa);

/* End of RAM below the MMIO hole. */
uint64_t gmem_low_end(const struct guest_mem *m);

#endif
