/* Generated ACPI tables (ACPI 6.0 layouts) for an x86-64 virtus microVM.
 *
 * The guest sees one hardware-reduced platform: RSDP -> XSDT -> { FADT -> DSDT, MADT, [MCFG] }.
 * Hardware-reduced means no PM1/GPE blocks, no SCI and no FACS: Linux powers off by writing
 * (SLP_TYP << 2) | SLP_EN to the FADT sleep control register (SLP_TYP 5 = S5, soft off), and
 * "reboot=acpi" resets through the FADT reset register. IAPC_BOOT_ARCH says: no legacy devices,
 * no 8042, VGA not present, CMOS RTC not present. The DSDT is AML written with the small
 * encoders below, so a new device is a new function that appends its objects (see acpi.c,
 * "DSDT devices"), and a new table is a new row in acpi.c's xsdt_tables[]. */
#ifndef VIRTUS_ACPI_H
#define VIRTUS_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

struct acpi_config {
	unsigned ncpus;          /* local APIC IDs 0..ncpus-1, all enabled; 1..255 */
	uint64_t lapic_addr;     /* 0xfee00000; must be below 4 GiB (MADT field is 32-bit) */
	uint64_t ioapic_addr;    /* 0xfec00000; IOAPIC id = ncpus (must not clash with LAPIC ids), GSI base 0 */
	uint16_t sleep_ctl_port; /* FADT SLEEP_CONTROL_REG, 8-bit system-I/O GAS; must be non-zero */
	uint16_t sleep_sts_port; /* FADT SLEEP_STATUS_REG, 8-bit system-I/O GAS; must be non-zero */
	uint16_t reset_port;     /* FADT RESET_REG (system I/O) + RESET_VALUE; RESET_REG_SUP flag set; non-zero */
	uint8_t  reset_value;
	uint16_t com1_port;      /* 0x3f8: described in the DSDT as PNP0501 with its IRQ; 0 = no serial device */
	uint8_t  com1_irq;       /* 4; an ISA IRQ, 0..15 */
	/* The power button: with power_button_gsi != 0 the DSDT has \_SB.PWRB (PNP0C0C) and a Generic Event
	 * Device \_SB.GED0 (ACPI0013) whose interrupt (this GSI, edge, active high) runs its _EVT, which
	 * notifies PWRB with 0x80 (pressed). A hardware-reduced platform has no fixed power button: this
	 * is how it signals one (ACPI 6.0 section 5.6.9). */
	uint8_t  power_button_gsi;

	/* PCI Express (optional). With ecam_base != 0 the tables gain an MCFG (segment 0, buses
	 * pci_bus_start..pci_bus_end, base = address of bus 0's config space as the MCFG defines it),
	 * a PCI host bridge \_SB.PCI0 (PNP0A08, compatible PNP0A03) whose _CRS offers the bus range
	 * and the 32-bit memory window, and a motherboard-resource device (PNP0C02) that reserves the
	 * ECAM window (Linux trusts an MCFG only if its window is reserved here or in the e820 map;
	 * reserving it in e820 too is the VMM's part). The config ports
	 * 0xcf8-0xcff are deliberately not in the bridge's _CRS. */
	uint64_t ecam_base;      /* 1 MiB aligned; 0 = no PCI */
	uint8_t  pci_bus_start;
	uint8_t  pci_bus_end;    /* >= pci_bus_start */
	uint64_t mmio32_base;    /* window for BARs; must end at or below 4 GiB */
	uint64_t mmio32_size;    /* 0 = no memory window in the bridge's _CRS */
	uint32_t pci_io_base;    /* I/O port window for BARs (WordIO producer in the bridge's _CRS); */
	uint32_t pci_io_size;    /* 0 = none. Must end at or below 0x10000 and leave out 0xcf8-0xcff */

	/* ACPI PCI hot-plug of bus 0 (needs PCI and the power button's GED). With pci_hotplug_port != 0, each slot
	 * 1..31 is a device \_SB.PCI0.Snn (_ADR, _SUN, and _EJ0, which writes the slot's bit to PCEJ), PCI0 has
	 * the registers (PCIU, PCID, PCEJ: devices/pci_hotplug.h) and a method PSCN that notifies the slots they
	 * name, and GED0's interrupt pci_hotplug_gsi (edge) runs _Exx, which calls PSCN. */
	uint16_t pci_hotplug_port;
	uint8_t  pci_hotplug_gsi;
};

/* Lay out RSDP, XSDT, FADT, DSDT, MADT (and MCFG if configured) in buf, which the guest sees at
 * guest-physical address gpa (16-byte aligned, as the RSDP must be). Returns 0 and sets
 * *rsdp_gpa (== gpa, RSDP first) and *used (bytes written); -1 with err set if the config is invalid
 * (ncpus 0 or > 255, ...) or buf is too small. Never writes past buf+size. */
int acpi_build(const struct acpi_config *cfg, uint8_t *buf, size_t size, uint64_t gpa,
               uint64_t *rsdp_gpa, size_t *used, vt_err *err);

/* Sum of the bytes modulo 256: a valid ACPI table (or RSDP range) sums to 0. */
uint8_t acpi_checksum(const void *data, size_t len);

/* ---- Byte writer shared by the table and AML encoders -----------------------------------------
 * Appends into a fixed buffer and never writes past it: once something does not fit, `overflow`
 * is set and later writes are dropped, but `len` keeps counting, so the caller learns the size it
 * would have needed. */
struct acpi_buf {
	uint8_t *data;
	size_t cap;
	size_t len;
	bool overflow;
};

void acpi_put8(struct acpi_buf *b, uint8_t v);
void acpi_put16(struct acpi_buf *b, uint16_t v);
void acpi_put32(struct acpi_buf *b, uint32_t v);
void acpi_put64(struct acpi_buf *b, uint64_t v);
void acpi_put_bytes(struct acpi_buf *b, const void *p, size_t n);
void acpi_put_zeros(struct acpi_buf *b, size_t n);
/* Fixed-width text field (signature, OEM ID): copies s, pads with pad to n bytes. */
void acpi_put_text(struct acpi_buf *b, const char *s, size_t n, char pad);

/* ---- System description tables --------------------------------------------------------------- */
#define ACPI_OEM_ID        "VIRTUS"
#define ACPI_OEM_TABLE_ID  "VIRTUSVM"
#define ACPI_HEADER_LEN    36

/* Start a table: writes the 36-byte header with length and checksum left for acpi_table_end.
 * Returns the table's offset in b. */
size_t acpi_table_begin(struct acpi_buf *b, const char sig[4], uint8_t revision);
/* Fill in the length and checksum of the table that starts at offset start. */
void acpi_table_end(struct acpi_buf *b, size_t start);

/* Generic Address Structure (12 bytes). */
#define ACPI_GAS_SYSTEM_MEMORY 0
#define ACPI_GAS_SYSTEM_IO     1
#define ACPI_GAS_ACCESS_BYTE   1
void acpi_put_gas(struct acpi_buf *b, uint8_t space, uint8_t bit_width, uint8_t access_size, uint64_t addr);

/* ---- AML encoders (ACPI 6.0 chapter 20) --------------------------------------------------------
 * Objects with a PkgLength (Scope, Device, Package, Buffer) are written as
 *     size_t at = aml_scope_begin(b, "\\_SB_");  ...contents...;  aml_end(b, at);
 * aml_end measures the contents and inserts the PkgLength in front of them (nesting works). */
#define AML_ZERO_OP      0x00
#define AML_ONE_OP       0x01
#define AML_NAME_OP      0x08
#define AML_BYTE_PREFIX  0x0a
#define AML_WORD_PREFIX  0x0b
#define AML_DWORD_PREFIX 0x0c
#define AML_STRING_PREFIX 0x0d
#define AML_QWORD_PREFIX 0x0e
#define AML_SCOPE_OP     0x10
#define AML_BUFFER_OP    0x11
#define AML_PACKAGE_OP   0x12
#define AML_METHOD_OP    0x14
#define AML_LOCAL0_OP    0x60
#define AML_STORE_OP     0x70
#define AML_AND_OP       0x7b
#define AML_NOTIFY_OP    0x86
#define AML_IF_OP        0xa0
#define AML_OP_REGION_OP 0x80 /* after AML_EXT_OP */
#define AML_FIELD_OP     0x81 /* after AML_EXT_OP */
#define AML_EXT_OP       0x5b
#define AML_DEVICE_OP    0x82 /* after AML_EXT_OP */
#define AML_ROOT_CHAR    '\\'
#define AML_DUAL_NAME_PREFIX  0x2e
#define AML_MULTI_NAME_PREFIX 0x2f

/* Size in bytes of the PkgLength encoding for a package whose contents are body bytes long. */
size_t aml_pkglen_size(size_t body);
/* Name string: "\\_SB_.PCI0", "COM1", "_HID"; segments shorter than 4 are padded with '_'. */
void aml_name(struct acpi_buf *b, const char *path);
/* Smallest encoding of an integer constant (ZeroOp, OneOp, Byte/Word/DWord/QWordConst). */
void aml_integer(struct acpi_buf *b, uint64_t v);
void aml_string(struct acpi_buf *b, const char *s);
/* EisaId("PNP0501") -> its 32-bit compressed form as a DWordConst. */
void aml_eisaid(struct acpi_buf *b, const char id[7]);
uint32_t aml_eisaid_value(const char id[7]);
/* Name(path, ...) where the value follows: call an encoder right after. */
void aml_name_decl(struct acpi_buf *b, const char *path);

size_t aml_scope_begin(struct acpi_buf *b, const char *path);
size_t aml_device_begin(struct acpi_buf *b, const char *path);
size_t aml_package_begin(struct acpi_buf *b, uint8_t nelems);
/* Method(path, nargs, NotSerialized) { ...contents... }: close with aml_end. */
size_t aml_method_begin(struct acpi_buf *b, const char *path, uint8_t nargs);
/* Notify(path, value) */
void aml_notify(struct acpi_buf *b, const char *path, uint64_t value);
void aml_end(struct acpi_buf *b, size_t at);
/* OperationRegion(name, space, offset, len) */
void aml_op_region(struct acpi_buf *b, const char *name, uint8_t space, uint64_t offset, uint64_t len);
/* Field(region, flags) { ...aml_field_unit()... }: close with aml_end. */
size_t aml_field_begin(struct acpi_buf *b, const char *region, uint8_t flags);
void aml_field_unit(struct acpi_buf *b, const char *name, uint8_t bits);
#define AML_FIELD_DWORD_ACC      0x03
#define AML_FIELD_WRITE_AS_ZEROS 0x40
/* If (And (LocalN, mask)) { ...contents... }: close with aml_end. */
size_t aml_if_local_and_begin(struct acpi_buf *b, unsigned local, uint64_t mask);
/* Store (name, LocalN) and Store (value, name) */
void aml_store_name_to_local(struct acpi_buf *b, const char *name, unsigned local);
void aml_store_int_to_name(struct acpi_buf *b, uint64_t value, const char *name);
/* A call of a method without arguments, as a statement. */
void aml_call0(struct acpi_buf *b, const char *path);
/* Buffer whose declared size is that of its contents (as ResourceTemplate produces): close it
 * with aml_buffer_end, which inserts the BufferSize as well as the PkgLength. */
size_t aml_buffer_begin(struct acpi_buf *b);
void aml_buffer_end(struct acpi_buf *b, size_t at);

/* Resource descriptors for _CRS (ACPI 6.0 section 6.4). End a template with acpi_res_end_tag. */
void acpi_res_io(struct acpi_buf *b, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
void acpi_res_irq(struct acpi_buf *b, uint16_t irq_mask); /* IRQNoFlags: edge, active high */
/* Interrupt(ResourceConsumer, Edge, ActiveHigh, Exclusive) { gsi }: the extended interrupt descriptor */
void acpi_res_ext_irq_edge(struct acpi_buf *b, uint32_t gsi);
void acpi_res_bus_range(struct acpi_buf *b, uint16_t min, uint16_t max); /* WordBusNumber, producer */
void acpi_res_io_window(struct acpi_buf *b, uint16_t base, uint32_t size); /* WordIO, producer */
void acpi_res_mem32(struct acpi_buf *b, bool producer, uint32_t base, uint32_t size); /* DWordMemory */
void acpi_res_mem64(struct acpi_buf *b, bool producer, uint64_t base, uint64_t size); /* QWordMemory */
void acpi_res_end_tag(struct acpi_buf *b);

#endif
