/* Guest-physical memory map of an x86-64 virtus VM. One place for every fixed address, so the boot
 * loaders, the ACPI tables and the e820 map cannot disagree. */
#ifndef VIRTUS_LAYOUT_H
#define VIRTUS_LAYOUT_H

#include "lib/util.h"

/* Low memory: boot structures written by the VMM before the first instruction. */
#define LAYOUT_GDT            0x0500ULL   /* 4 descriptors: null, code32, code64, data */
#define LAYOUT_PVH_START_INFO 0x6000ULL   /* hvm_start_info, its memory map and module list (one page) */
#define LAYOUT_ZERO_PAGE      0x7000ULL   /* Linux boot_params */
#define LAYOUT_PML4           0x9000ULL   /* identity page tables for the 64-bit boot protocol */
#define LAYOUT_PDPT           0xa000ULL
#define LAYOUT_PD             0xb000ULL   /* 4 pages: 4 GiB with 2 MiB pages */
#define LAYOUT_CMDLINE        0x20000ULL
#define LAYOUT_CMDLINE_MAX    0x10000ULL  /* upper bound; the kernel's cmdline_size is the real limit */
#define LAYOUT_EBDA_START     0x9fc00ULL
#define LAYOUT_ACPI_START     0xe0000ULL  /* RSDP and tables, inside the legacy BIOS area */
#define LAYOUT_ACPI_SIZE      0x10000ULL
#define LAYOUT_RESET_VECTOR   0xffff0ULL  /* F000:FFF0, where a CPU reset (and Linux's BIOS reboot) starts */
#define LAYOUT_HIMEM_START    0x100000ULL /* where the kernel is loaded */

/* Above RAM below 4 GiB: a hole for device MMIO. RAM beyond it continues at 4 GiB. */
#define LAYOUT_MMIO_HOLE      (3ULL * GiB)
#define LAYOUT_PCI_MMIO       (3ULL * GiB)  /* PCI BAR window: 512 MiB, up to the ECAM window */
#define LAYOUT_PCI_MMIO_SIZE  (512ULL * MiB)
#define LAYOUT_PCI_ECAM       0xe0000000ULL /* PCI config space, 1 MiB per bus: room for 256, ACPI offers bus 0 */
#define LAYOUT_PCI_ECAM_SIZE  (256ULL * MiB)
#define LAYOUT_IOAPIC         0xfec00000ULL
#define LAYOUT_LAPIC          0xfee00000ULL
#define LAYOUT_IDENTITY_MAP   0xfffbc000ULL /* KVM_SET_IDENTITY_MAP_ADDR: one page */
#define LAYOUT_TSS            0xfffbd000ULL /* KVM_SET_TSS_ADDR: three pages */
#define LAYOUT_HIGH_RAM       (4ULL * GiB)

/* Platform I/O ports. */
#define PORT_COM1             0x3f8
#define IRQ_COM1              4
#define GSI_POWER_BUTTON      5           /* the Generic Event Device's interrupt (ACPI power button) */
#define GSI_PCI_HOTPLUG       6           /* its second one: a PCI slot's device came or should go */
#define PORT_I8042_DATA       0x60
#define PORT_I8042_CMD        0x64
#define PORT_ACPI_SLEEP_CTL   0x600
#define PORT_ACPI_SLEEP_STS   0x601
#define PORT_PCI_HOTPLUG      0x610       /* 12 ports: PCIU, PCID, PCEJ (devices/pci_hotplug.h) */
#define PORT_PCI_CONF1        0xcf8       /* address 0xcf8, data 0xcfc-0xcff */
#define PORT_PCI_IO_BARS      0x1000      /* I/O BAR window (ACPI _CRS): 128 ports per PCI slot */
#define PORT_PCI_IO_BARS_SIZE 0x1000

#define VM_MIN_MEMORY         (4ULL * MiB)

#endif
