#include "vmm/boot/e820.h"

#include "vmm/layout.h"

unsigned e820_build(const struct guest_mem *m, struct e820_entry *out)
{
	unsigned n = 0;
	uint64_t low_end = gmem_low_end(m);
	out[n++] = (struct e820_entry){ 0, LAYOUT_EBDA_START, E820_RAM };
	/* EBDA and the BIOS area hold the ACPI tables: reserved so the kernel never reuses them. */
	out[n++] = (struct e820_entry){ LAYOUT_EBDA_START, LAYOUT_HIMEM_START - LAYOUT_EBDA_START, E820_RESERVED };
	if (low_end > LAYOUT_HIMEM_START)
		out[n++] = (struct e820_entry){ LAYOUT_HIMEM_START, low_end - LAYOUT_HIMEM_START, E820_RAM };
	for (unsigned i = 1; i < m->nregions; i++)
		out[n++] = (struct e820_entry){ m->region[i].gpa, m->region[i].size, E820_RAM };
	return n;
}
