/* ACPI table generation. Layout in the buffer (each table 8-byte aligned):
 *
 *     RSDP | DSDT | FADT | MADT | [MCFG] | XSDT
 *
 * The RSDP comes first so the guest finds it at the address the boot protocol hands over (and on
 * a 16-byte boundary for a legacy scan). The XSDT comes last because it lists the addresses of
 * the tables before it; the RSDP, which points at the XSDT, is filled in at the very end.
 * All multi-byte fields are written explicitly little-endian: no packed structs. */
#include "vmm/boot/acpi.h"

#include <stdio.h>
#include <string.h>

#include "lib/util.h"

/* ---- Byte writer ------------------------------------------------------------------------------ */

static bool fits(const struct acpi_buf *b, size_t off, size_t n)
{
	return off <= b->cap && n <= b->cap - off;
}

void acpi_put_bytes(struct acpi_buf *b, const void *p, size_t n)
{
	if (!b->overflow && fits(b, b->len, n))
		memcpy(b->data + b->len, p, n);
	else
		b->overflow = true;
	b->len += n;
}

void acpi_put_zeros(struct acpi_buf *b, size_t n)
{
	if (!b->overflow && fits(b, b->len, n))
		memset(b->data + b->len, 0, n);
	else
		b->overflow = true;
	b->len += n;
}

void acpi_put8(struct acpi_buf *b, uint8_t v)
{
	acpi_put_bytes(b, &v, 1);
}

void acpi_put16(struct acpi_buf *b, uint16_t v)
{
	uint8_t le[2] = { v, v >> 8 };
	acpi_put_bytes(b, le, sizeof(le));
}

void acpi_put32(struct acpi_buf *b, uint32_t v)
{
	acpi_put16(b, v);
	acpi_put16(b, v >> 16);
}

void acpi_put64(struct acpi_buf *b, uint64_t v)
{
	acpi_put32(b, v);
	acpi_put32(b, v >> 32);
}

void acpi_put_text(struct acpi_buf *b, const char *s, size_t n, char pad)
{
	size_t slen = strnlen(s, n);
	acpi_put_bytes(b, s, slen);
	for (size_t i = slen; i < n; i++)
		acpi_put8(b, (uint8_t)pad);
}

static void put_align(struct acpi_buf *b, size_t align)
{
	acpi_put_zeros(b, ALIGN_UP(b->len, align) - b->len);
}

/* Overwrite n bytes at off (already written); dropped if that range is not in the buffer. */
static void patch_bytes(struct acpi_buf *b, size_t off, const void *p, size_t n)
{
	if (!b->overflow && fits(b, off, n))
		memcpy(b->data + off, p, n);
}

static void patch32(struct acpi_buf *b, size_t off, uint32_t v)
{
	uint8_t le[4] = { v, v >> 8, v >> 16, v >> 24 };
	patch_bytes(b, off, le, sizeof(le));
}

/* Insert n bytes at off, shifting what follows: how a PkgLength lands in front of contents
 * that had to be written before their length was known. */
static void insert_bytes(struct acpi_buf *b, size_t off, const void *p, size_t n)
{
	if (!b->overflow && fits(b, b->len, n)) {
		memmove(b->data + off + n, b->data + off, b->len - off);
		memcpy(b->data + off, p, n);
	} else {
		b->overflow = true;
	}
	b->len += n;
}

uint8_t acpi_checksum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum += p[i];
	return sum;
}

/* Make the len bytes at off sum to zero by setting the byte at csum_off. */
static void fix_checksum(struct acpi_buf *b, size_t off, size_t len, size_t csum_off)
{
	if (b->overflow || !fits(b, off, len))
		return;
	b->data[csum_off] = 0;
	b->data[csum_off] = (uint8_t)-acpi_checksum(b->data + off, len);
}

/* ---- Table header and generic address --------------------------------------------------------- */

#define ACPI_CREATOR_ID       "VRTS"
#define ACPI_CREATOR_REVISION 1
#define ACPI_OEM_REVISION     1
#define HDR_LENGTH_OFF   4
#define HDR_CHECKSUM_OFF 9

size_t acpi_table_begin(struct acpi_buf *b, const char sig[4], uint8_t revision)
{
	size_t start = b->len;
	acpi_put_text(b, sig, 4, ' ');
	acpi_put32(b, 0); /* length: acpi_table_end */
	acpi_put8(b, revision);
	acpi_put8(b, 0);  /* checksum: acpi_table_end */
	acpi_put_text(b, ACPI_OEM_ID, 6, ' ');
	acpi_put_text(b, ACPI_OEM_TABLE_ID, 8, ' ');
	acpi_put32(b, ACPI_OEM_REVISION);
	acpi_put_text(b, ACPI_CREATOR_ID, 4, ' ');
	acpi_put32(b, ACPI_CREATOR_REVISION);
	return start;
}

void acpi_table_end(struct acpi_buf *b, size_t start)
{
	size_t len = b->len - start;
	patch32(b, start + HDR_LENGTH_OFF, (uint32_t)len);
	fix_checksum(b, start, len, start + HDR_CHECKSUM_OFF);
}

void acpi_put_gas(struct acpi_buf *b, uint8_t space, uint8_t bit_width, uint8_t access_size, uint64_t addr)
{
	acpi_put8(b, space);
	acpi_put8(b, bit_width);
	acpi_put8(b, 0); /* bit offset */
	acpi_put8(b, access_size);
	acpi_put64(b, addr);
}

static void put_gas_absent(struct acpi_buf *b)
{
	acpi_put_zeros(b, 12);
}

static void put_io_port8(struct acpi_buf *b, uint16_t port)
{
	acpi_put_gas(b, ACPI_GAS_SYSTEM_IO, 8, ACPI_GAS_ACCESS_BYTE, port);
}

/* ---- AML encoders ----------------------------------------------------------------------------- */

size_t aml_pkglen_size(size_t body)
{
	/* The encoded length counts its own bytes: 1 byte holds up to 63, then 4 more bits
	 * in the lead byte plus 8 per following byte. */
	if (body + 1 <= 0x3f)
		return 1;
	if (body + 2 <= 0xfff)
		return 2;
	if (body + 3 <= 0xfffff)
		return 3;
	return 4;
}

/* Encode the PkgLength for body bytes of contents; returns its size (1..4). */
static size_t pkglen_encode(size_t body, uint8_t out[4])
{
	size_t n = aml_pkglen_size(body);
	size_t total = body + n;
	if (n == 1) {
		out[0] = (uint8_t)total;
		return 1;
	}
	out[0] = (uint8_t)(((n - 1) << 6) | (total & 0x0f));
	for (size_t i = 1; i < n; i++)
		out[i] = (uint8_t)(total >> (4 + 8 * (i - 1)));
	return n;
}

static void aml_name_seg(struct acpi_buf *b, const char *seg, size_t len)
{
	acpi_put_bytes(b, seg, MIN(len, (size_t)4));
	for (size_t i = len; i < 4; i++)
		acpi_put8(b, '_');
}

void aml_name(struct acpi_buf *b, const char *path)
{
	if (*path == AML_ROOT_CHAR) {
		acpi_put8(b, AML_ROOT_CHAR);
		path++;
	}
	if (!*path) {
		acpi_put8(b, 0); /* NullName: the root itself */
		return;
	}
	size_t nsegs = 1;
	for (const char *p = path; *p; p++)
		nsegs += *p == '.';
	if (nsegs == 2)
		acpi_put8(b, AML_DUAL_NAME_PREFIX);
	else if (nsegs > 2) {
		acpi_put8(b, AML_MULTI_NAME_PREFIX);
		acpi_put8(b, (uint8_t)nsegs);
	}
	while (*path) {
		size_t len = strcspn(path, ".");
		aml_name_seg(b, path, len);
		path += len;
		if (*path == '.')
			path++;
	}
}

void aml_integer(struct acpi_buf *b, uint64_t v)
{
	if (v == 0) {
		acpi_put8(b, AML_ZERO_OP);
	} else if (v == 1) {
		acpi_put8(b, AML_ONE_OP);
	} else if (v <= UINT8_MAX) {
		acpi_put8(b, AML_BYTE_PREFIX);
		acpi_put8(b, (uint8_t)v);
	} else if (v <= UINT16_MAX) {
		acpi_put8(b, AML_WORD_PREFIX);
		acpi_put16(b, (uint16_t)v);
	} else if (v <= UINT32_MAX) {
		acpi_put8(b, AML_DWORD_PREFIX);
		acpi_put32(b, (uint32_t)v);
	} else {
		acpi_put8(b, AML_QWORD_PREFIX);
		acpi_put64(b, v);
	}
}

void aml_string(struct acpi_buf *b, const char *s)
{
	acpi_put8(b, AML_STRING_PREFIX);
	acpi_put_bytes(b, s, strlen(s) + 1);
}

static unsigned hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return (unsigned)(c - '0');
	if (c >= 'A' && c <= 'F')
		return (unsigned)(c - 'A' + 10);
	return (unsigned)(c - 'a' + 10);
}

uint32_t aml_eisaid_value(const char id[7])
{
	/* Three letters, 5 bits each ('A' = 1), then four hex digits; the first two bytes in
	 * memory are the letters, most significant first. */
	unsigned l1 = (unsigned)(id[0] - '@'), l2 = (unsigned)(id[1] - '@'), l3 = (unsigned)(id[2] - '@');
	uint8_t bytes[4] = {
		(uint8_t)((l1 << 2) | (l2 >> 3)),
		(uint8_t)(((l2 & 7) << 5) | l3),
		(uint8_t)((hex_digit(id[3]) << 4) | hex_digit(id[4])),
		(uint8_t)((hex_digit(id[5]) << 4) | hex_digit(id[6])),
	};
	return bytes[0] | (uint32_t)bytes[1] << 8 | (uint32_t)bytes[2] << 16 | (uint32_t)bytes[3] << 24;
}

void aml_eisaid(struct acpi_buf *b, const char id[7])
{
	acpi_put8(b, AML_DWORD_PREFIX);
	acpi_put32(b, aml_eisaid_value(id));
}

void aml_name_decl(struct acpi_buf *b, const char *path)
{
	acpi_put8(b, AML_NAME_OP);
	aml_name(b, path);
}

/* Objects with a PkgLength: begin writes the opcode and returns where the contents start. */
size_t aml_scope_begin(struct acpi_buf *b, const char *path)
{
	acpi_put8(b, AML_SCOPE_OP);
	size_t at = b->len;
	aml_name(b, path);
	return at;
}

size_t aml_device_begin(struct acpi_buf *b, const char *path)
{
	acpi_put8(b, AML_EXT_OP);
	acpi_put8(b, AML_DEVICE_OP);
	size_t at = b->len;
	aml_name(b, path);
	return at;
}

size_t aml_package_begin(struct acpi_buf *b, uint8_t nelems)
{
	acpi_put8(b, AML_PACKAGE_OP);
	size_t at = b->len;
	acpi_put8(b, nelems);
	return at;
}

size_t aml_method_begin(struct acpi_buf *b, const char *path, uint8_t nargs)
{
	acpi_put8(b, AML_METHOD_OP);
	size_t at = b->len;
	aml_name(b, path);
	acpi_put8(b, nargs & 7); /* MethodFlags: ArgCount in bits 0-2, NotSerialized, SyncLevel 0 */
	return at;
}

void aml_notify(struct acpi_buf *b, const char *path, uint64_t value)
{
	acpi_put8(b, AML_NOTIFY_OP);
	aml_name(b, path);
	aml_integer(b, value);
}

size_t aml_buffer_begin(struct acpi_buf *b)
{
	acpi_put8(b, AML_BUFFER_OP);
	return b->len;
}

void aml_end(struct acpi_buf *b, size_t at)
{
	uint8_t enc[4];
	size_t n = pkglen_encode(b->len - at, enc);
	insert_bytes(b, at, enc, n);
}

void aml_op_region(struct acpi_buf *b, const char *name, uint8_t space, uint64_t offset, uint64_t len)
{
	acpi_put8(b, AML_EXT_OP);
	acpi_put8(b, AML_OP_REGION_OP);
	aml_name(b, name);
	acpi_put8(b, space);
	aml_integer(b, offset);
	aml_integer(b, len);
}

size_t aml_field_begin(struct acpi_buf *b, const char *region, uint8_t flags)
{
	acpi_put8(b, AML_EXT_OP);
	acpi_put8(b, AML_FIELD_OP);
	size_t at = b->len;
	aml_name(b, region);
	acpi_put8(b, flags);
	return at;
}

void aml_field_unit(struct acpi_buf *b, const char *name, uint8_t bits)
{
	aml_name_seg(b, name, strlen(name));
	acpi_put8(b, bits & 0x3f); /* the width is a PkgLength of its own value: one byte up to 63 bits */
}

size_t aml_if_local_and_begin(struct acpi_buf *b, unsigned local, uint64_t mask)
{
	acpi_put8(b, AML_IF_OP);
	size_t at = b->len;
	acpi_put8(b, AML_AND_OP);
	acpi_put8(b, (uint8_t)(AML_LOCAL0_OP + (local & 7)));
	aml_integer(b, mask);
	acpi_put8(b, 0); /* Target: NullName, the result only tested */
	return at;
}

void aml_store_name_to_local(struct acpi_buf *b, const char *name, unsigned local)
{
	acpi_put8(b, AML_STORE_OP);
	aml_name(b, name);
	acpi_put8(b, (uint8_t)(AML_LOCAL0_OP + (local & 7)));
}

void aml_store_int_to_name(struct acpi_buf *b, uint64_t value, const char *name)
{
	acpi_put8(b, AML_STORE_OP);
	aml_integer(b, value);
	aml_name(b, name);
}

void aml_call0(struct acpi_buf *b, const char *path)
{
	aml_name(b, path);
}

void aml_buffer_end(struct acpi_buf *b, size_t at)
{
	uint8_t size_enc[9];
	struct acpi_buf sz = { size_enc, sizeof(size_enc), 0, false };
	aml_integer(&sz, b->len - at);
	insert_bytes(b, at, size_enc, sz.len);
	aml_end(b, at);
}

/* ---- Resource descriptors --------------------------------------------------------------------- */

#define RES_IO_PORT      0x47 /* small item 0x08, 7 bytes */
#define RES_IRQ_NOFLAGS  0x22 /* small item 0x04, 2 bytes */
#define RES_END_TAG      0x79 /* small item 0x0f, 1 byte */
#define RES_DWORD_ADDR   0x87
#define RES_WORD_ADDR    0x88
#define RES_QWORD_ADDR   0x8a
#define RES_EXT_IRQ      0x89
#define RES_EXT_IRQ_CONSUMER 0x01
#define RES_EXT_IRQ_EDGE     0x02
#define RES_TYPE_MEMORY  0
#define RES_TYPE_IO      1
#define RES_TYPE_BUS     2
#define RES_FLAG_CONSUMER 0x01
#define RES_FLAG_MIN_FIXED 0x04
#define RES_FLAG_MAX_FIXED 0x08
#define RES_MEM_READ_WRITE 0x01 /* non-cacheable, read/write, memory range */
#define RES_IO_ENTIRE_RANGE 0x03 /* both ISA and non-ISA addresses */

void acpi_res_io(struct acpi_buf *b, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	acpi_put8(b, RES_IO_PORT);
	acpi_put8(b, 1); /* decodes 16 address bits */
	acpi_put16(b, min);
	acpi_put16(b, max);
	acpi_put8(b, align);
	acpi_put8(b, len);
}

void acpi_res_irq(struct acpi_buf *b, uint16_t irq_mask)
{
	acpi_put8(b, RES_IRQ_NOFLAGS);
	acpi_put16(b, irq_mask);
}

/* Address space descriptor header shared by the Word/DWord/QWord forms. */
static void put_addr_desc_head(struct acpi_buf *b, uint8_t tag, uint16_t body_len, uint8_t type,
                               bool producer, uint8_t type_flags)
{
	acpi_put8(b, tag);
	acpi_put16(b, body_len);
	acpi_put8(b, type);
	acpi_put8(b, (producer ? 0 : RES_FLAG_CONSUMER) | RES_FLAG_MIN_FIXED | RES_FLAG_MAX_FIXED);
	acpi_put8(b, type_flags);
}

void acpi_res_bus_range(struct acpi_buf *b, uint16_t min, uint16_t max)
{
	put_addr_desc_head(b, RES_WORD_ADDR, 13, RES_TYPE_BUS, true, 0);
	acpi_put16(b, 0);   /* granularity */
	acpi_put16(b, min);
	acpi_put16(b, max);
	acpi_put16(b, 0);   /* translation offset */
	acpi_put16(b, (uint16_t)(max - min + 1));
}

void acpi_res_io_window(struct acpi_buf *b, uint16_t base, uint32_t size)
{
	put_addr_desc_head(b, RES_WORD_ADDR, 13, RES_TYPE_IO, true, RES_IO_ENTIRE_RANGE);
	acpi_put16(b, 0);
	acpi_put16(b, base);
	acpi_put16(b, (uint16_t)(base + size - 1));
	acpi_put16(b, 0);
	acpi_put16(b, (uint16_t)size); /* 0x10000 (all ports) does not fit: min/max still say it */
}

void acpi_res_mem32(struct acpi_buf *b, bool producer, uint32_t base, uint32_t size)
{
	put_addr_desc_head(b, RES_DWORD_ADDR, 23, RES_TYPE_MEMORY, producer, RES_MEM_READ_WRITE);
	acpi_put32(b, 0);
	acpi_put32(b, base);
	acpi_put32(b, base + size - 1);
	acpi_put32(b, 0);
	acpi_put32(b, size);
}

void acpi_res_mem64(struct acpi_buf *b, bool producer, uint64_t base, uint64_t size)
{
	put_addr_desc_head(b, RES_QWORD_ADDR, 43, RES_TYPE_MEMORY, producer, RES_MEM_READ_WRITE);
	acpi_put64(b, 0);
	acpi_put64(b, base);
	acpi_put64(b, base + size - 1);
	acpi_put64(b, 0);
	acpi_put64(b, size);
}

void acpi_res_ext_irq_edge(struct acpi_buf *b, uint32_t gsi)
{
	acpi_put8(b, RES_EXT_IRQ);
	acpi_put16(b, 6);    /* flags, count, one 32-bit interrupt number */
	acpi_put8(b, RES_EXT_IRQ_CONSUMER | RES_EXT_IRQ_EDGE); /* active high, exclusive, not wake capable */
	acpi_put8(b, 1);
	acpi_put32(b, gsi);
}

void acpi_res_end_tag(struct acpi_buf *b)
{
	acpi_put8(b, RES_END_TAG);
	acpi_put8(b, 0); /* checksum 0: "treat as valid" */
}

/* ---- DSDT devices ------------------------------------------------------------------------------
 * Each function appends one device (or nothing, if the config does not ask for it) inside
 * Scope(\_SB). A new device is a new function in dsdt_sb_devices[]. */

#define ECAM_BYTES_PER_BUS (1ULL * MiB)

static void dsdt_com1(struct acpi_buf *b, const struct acpi_config *cfg)
{
	if (!cfg->com1_port)
		return;
	size_t dev = aml_device_begin(b, "COM1");
	aml_name_decl(b, "_HID");
	aml_eisaid(b, "PNP0501");
	aml_name_decl(b, "_UID");
	aml_integer(b, 1);
	aml_name_decl(b, "_CRS");
	size_t crs = aml_buffer_begin(b);
	acpi_res_io(b, cfg->com1_port, cfg->com1_port, 1, 8);
	acpi_res_irq(b, (uint16_t)(1u << cfg->com1_irq));
	acpi_res_end_tag(b);
	aml_buffer_end(b, crs);
	aml_end(b, dev);
}

static bool pci_enabled(const struct acpi_config *cfg)
{
	return cfg->ecam_base != 0;
}

static bool pci_hotplug_enabled(const struct acpi_config *cfg)
{
	return pci_enabled(cfg) && cfg->power_button_gsi && cfg->pci_hotplug_port;
}

/* Device(PWRB) is the button; GED0's interrupt calls its _EVT with the GSI, and _EVT notifies PWRB. */
static void dsdt_power_button(struct acpi_buf *b, const struct acpi_config *cfg)
{
	if (!cfg->power_button_gsi)
		return;
	size_t dev = aml_device_begin(b, "PWRB");
	aml_name_decl(b, "_HID");
	aml_eisaid(b, "PNP0C0C");
	aml_name_decl(b, "_UID");
	aml_integer(b, 0);
	aml_end(b, dev);

	dev = aml_device_begin(b, "GED0");
	aml_name_decl(b, "_HID");
	aml_string(b, "ACPI0013");
	aml_name_decl(b, "_UID");
	aml_integer(b, 0);
	aml_name_decl(b, "_CRS");
	size_t crs = aml_buffer_begin(b);
	acpi_res_ext_irq_edge(b, cfg->power_button_gsi);
	if (pci_hotplug_enabled(cfg))
		acpi_res_ext_irq_edge(b, cfg->pci_hotplug_gsi);
	acpi_res_end_tag(b);
	aml_buffer_end(b, crs);
	/* Linux's GED runs _Exx (edge, xx the GSI in hex) when it exists, else _EVT(GSI) */
	size_t evt = aml_method_begin(b, "_EVT", 1);
	aml_notify(b, "\\_SB_.PWRB", 0x80); /* "button pressed" (ACPI 6.0 table 5-176) */
	aml_end(b, evt);
	if (pci_hotplug_enabled(cfg)) {
		char name[5];
		snprintf(name, sizeof(name), "_E%02X", cfg->pci_hotplug_gsi);
		size_t m = aml_method_begin(b, name, 0);
		aml_call0(b, "\\_SB_.PCI0.PSCN");
		aml_end(b, m);
	}
	aml_end(b, dev);
}


#define PCI_HOTPLUG_SLOTS 32 /* bus 0's; slot 0 is the host bridge */
#define ACPI_NOTIFY_DEVICE_CHECK 1
#define ACPI_NOTIFY_EJECT_REQUEST 3

static void slot_name(char out[5], unsigned slot)
{
	snprintf(out, 5, "S%02X", slot);
}

/* Device(Snn) { Name(_ADR, nn << 16) Name(_SUN, nn) Method(_EJ0, 1) { Store(1 << nn, PCEJ) } }: Linux's
 * acpiphp makes each an ejectable slot (it has _ADR and _EJ0) named by _SUN. */
static void dsdt_hotplug_slot(struct acpi_buf *b, unsigned slot)
{
	char name[5];
	slot_name(name, slot);
	size_t dev = aml_device_begin(b, name);
	aml_name_decl(b, "_ADR");
	aml_integer(b, (uint64_t)slot << 16);
	aml_name_decl(b, "_SUN");
	aml_integer(b, slot);
	size_t ej0 = aml_method_begin(b, "_EJ0", 1);
	aml_store_int_to_name(b, 1ULL << slot, "PCEJ");
	aml_end(b, ej0);
	aml_end(b, dev);
}

/* Method(PSCN) { Store(PCIU, Local0) Store(PCID, Local1) If (And(Local0, 1 << nn)) { Notify(Snn, 1) } ...
 * If (And(Local1, 1 << nn)) { Notify(Snn, 3) } ... }: each register read once (the read clears it). */
static void dsdt_hotplug_scan(struct acpi_buf *b)
{
	size_t m = aml_method_begin(b, "PSCN", 0);
	aml_store_name_to_local(b, "PCIU", 0);
	aml_store_name_to_local(b, "PCID", 1);
	for (unsigned local = 0; local < 2; local++)
		for (unsigned slot = 1; slot < PCI_HOTPLUG_SLOTS; slot++) {
			char name[5];
			slot_name(name, slot);
			size_t at = aml_if_local_and_begin(b, local, 1ULL << slot);
			aml_notify(b, name, local == 0 ? ACPI_NOTIFY_DEVICE_CHECK : ACPI_NOTIFY_EJECT_REQUEST);
			aml_end(b, at);
		}
	aml_end(b, m);
}

static void dsdt_pci_hotplug(struct acpi_buf *b, const struct acpi_config *cfg)
{
	aml_op_region(b, "PHPR", ACPI_GAS_SYSTEM_IO, cfg->pci_hotplug_port, 12);
	size_t f = aml_field_begin(b, "PHPR", AML_FIELD_DWORD_ACC | AML_FIELD_WRITE_AS_ZEROS);
	aml_field_unit(b, "PCIU", 32);
	aml_field_unit(b, "PCID", 32);
	aml_field_unit(b, "PCEJ", 32);
	aml_end(b, f);
	for (unsigned slot = 1; slot < PCI_HOTPLUG_SLOTS; slot++)
		dsdt_hotplug_slot(b, slot);
	dsdt_hotplug_scan(b);
}

static void dsdt_pci_host(struct acpi_buf *b, const struct acpi_config *cfg)
{
	if (!pci_enabled(cfg))
		return;
	size_t dev = aml_device_begin(b, "PCI0");
	aml_name_decl(b, "_HID");
	aml_eisaid(b, "PNP0A08"); /* PCI Express root bridge */
	aml_name_decl(b, "_CID");
	aml_eisaid(b, "PNP0A03"); /* ...compatible with a PCI root bridge */
	aml_name_decl(b, "_UID");
	aml_integer(b, 0);
	aml_name_decl(b, "_SEG");
	aml_integer(b, 0);
	aml_name_decl(b, "_BBN");
	aml_integer(b, cfg->pci_bus_start);
	aml_name_decl(b, "_CRS");
	size_t crs = aml_buffer_begin(b);
	acpi_res_bus_range(b, cfg->pci_bus_start, cfg->pci_bus_end);
	if (cfg->pci_io_size)
		acpi_res_io_window(b, (uint16_t)cfg->pci_io_base, cfg->pci_io_size);
	if (cfg->mmio32_size)
		acpi_res_mem32(b, true, (uint32_t)cfg->mmio32_base, (uint32_t)cfg->mmio32_size);
	acpi_res_end_tag(b);
	aml_buffer_end(b, crs);
	if (pci_hotplug_enabled(cfg))
		dsdt_pci_hotplug(b, cfg);
	aml_end(b, dev);
}

/* Linux trusts an MCFG region only if it is reserved: in the e820 map (the VMM's part) or, as here,
 * as a motherboard resource. */
static void dsdt_ecam_reservation(struct acpi_buf *b, const struct acpi_config *cfg)
{
	if (!pci_enabled(cfg))
		return;
	uint64_t base = cfg->ecam_base + cfg->pci_bus_start * ECAM_BYTES_PER_BUS;
	uint64_t size = (cfg->pci_bus_end - cfg->pci_bus_start + 1ULL) * ECAM_BYTES_PER_BUS;
	size_t dev = aml_device_begin(b, "MRES");
	aml_name_decl(b, "_HID");
	aml_eisaid(b, "PNP0C02");
	aml_name_decl(b, "_UID");
	aml_integer(b, 0);
	aml_name_decl(b, "_CRS");
	size_t crs = aml_buffer_begin(b);
	acpi_res_mem64(b, false, base, size);
	acpi_res_end_tag(b);
	aml_buffer_end(b, crs);
	aml_end(b, dev);
}

typedef void (*dsdt_device_fn)(struct acpi_buf *b, const struct acpi_config *cfg);
static const dsdt_device_fn dsdt_sb_devices[] = { dsdt_com1, dsdt_power_button, dsdt_pci_host, dsdt_ecam_reservation };

/* \_S5: the soft-off sleep type. Linux offers ACPI poweroff only if it exists; in hardware-reduced
 * mode it writes (SLP_TYPa << 2) | SLP_EN to the sleep control register. */
#define ACPI_SLP_TYP_S5 5

static void dsdt_sleep_states(struct acpi_buf *b)
{
	aml_name_decl(b, "\\_S5_");
	size_t pkg = aml_package_begin(b, 2);
	aml_integer(b, ACPI_SLP_TYP_S5); /* SLP_TYPa */
	aml_integer(b, 0);               /* SLP_TYPb: unused without PM1b */
	aml_end(b, pkg);
}

#define DSDT_REVISION 2 /* 64-bit AML integers */

static size_t emit_dsdt(struct acpi_buf *b, const struct acpi_config *cfg)
{
	size_t start = acpi_table_begin(b, "DSDT", DSDT_REVISION);
	dsdt_sleep_states(b);
	size_t sb = aml_scope_begin(b, "\\_SB_");
	for (size_t i = 0; i < ARRAY_SIZE(dsdt_sb_devices); i++)
		dsdt_sb_devices[i](b, cfg);
	aml_end(b, sb);
	acpi_table_end(b, start);
	return start;
}

/* ---- FADT (ACPI 6.0, 5.2.9) -------------------------------------------------------------------- */

#define FADT_REVISION       6
#define FADT_MINOR_REVISION 0
#define FADT_RESET_REG_SUP  (1u << 10)
#define FADT_HW_REDUCED     (1u << 20)
/* IA-PC boot architecture: no LEGACY_DEVICES, no 8042 (the i8042 exists only for its reset
 * line), and VGA Not Present so the guest does not probe VGA ports that nothing decodes. */
#define FADT_BOOT_VGA_NOT_PRESENT (1u << 2)
/* No CMOS RTC: without this flag Linux probes ports 0x70/0x71 and spins on the update-in-progress bit
 * (measured: 40,000 exits and 2.6 s of a nested boot). The wall clock comes from kvmclock. */
#define FADT_BOOT_CMOS_RTC_NOT_PRESENT (1u << 5)
#define FADT_HYPERVISOR_ID  "VIRTUS"

struct build_ctx {
	const struct acpi_config *cfg;
	struct acpi_buf *b;
	uint64_t gpa;      /* guest address of b->data[0] */
	uint64_t dsdt_gpa;
};

static uint64_t gpa_of(const struct build_ctx *c, size_t off)
{
	return c->gpa + off;
}

/* FADT fields up to and including the flags, for hardware-reduced ACPI: no FACS, no SMI command
 * port, no SCI, no PM1/PM2/PM timer/GPE blocks, no C-states. */
static void fadt_legacy_fields(struct acpi_buf *b, uint64_t dsdt_gpa)
{
	acpi_put32(b, 0);                                               /* FIRMWARE_CTRL */
	acpi_put32(b, dsdt_gpa <= UINT32_MAX ? (uint32_t)dsdt_gpa : 0); /* DSDT */
	acpi_put8(b, 0);                                                /* reserved (INT_MODEL) */
	acpi_put8(b, 0);                                                /* Preferred_PM_Profile */
	acpi_put16(b, 0);                                               /* SCI_INT */
	acpi_put32(b, 0);                                               /* SMI_CMD */
	acpi_put_zeros(b, 4);   /* ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT */
	acpi_put_zeros(b, 32);  /* PM1a/b_EVT, PM1a/b_CNT, PM2_CNT, PM_TMR, GPE0, GPE1 blocks */
	acpi_put_zeros(b, 8);   /* their lengths, GPE1_BASE, CST_CNT */
	acpi_put_zeros(b, 8);   /* P_LVL2/3_LAT, FLUSH_SIZE, FLUSH_STRIDE */
	acpi_put_zeros(b, 5);   /* DUTY_OFFSET, DUTY_WIDTH, DAY/MON_ALRM, CENTURY */
	acpi_put16(b, FADT_BOOT_VGA_NOT_PRESENT | FADT_BOOT_CMOS_RTC_NOT_PRESENT); /* IAPC_BOOT_ARCH */
	acpi_put8(b, 0);                                                /* reserved */
	acpi_put32(b, FADT_HW_REDUCED | FADT_RESET_REG_SUP);            /* Flags */
}

static size_t emit_fadt(const struct build_ctx *c)
{
	struct acpi_buf *b = c->b;
	const struct acpi_config *cfg = c->cfg;
	size_t start = acpi_table_begin(b, "FACP", FADT_REVISION);
	fadt_legacy_fields(b, c->dsdt_gpa);
	put_io_port8(b, cfg->reset_port);          /* RESET_REG */
	acpi_put8(b, cfg->reset_value);            /* RESET_VALUE */
	acpi_put16(b, 0);                          /* ARM_BOOT_ARCH */
	acpi_put8(b, FADT_MINOR_REVISION);
	acpi_put64(b, 0);                          /* X_FIRMWARE_CTRL */
	acpi_put64(b, c->dsdt_gpa);                /* X_DSDT */
	for (int i = 0; i < 8; i++)                /* X_PM1a/b_EVT, X_PM1a/b_CNT, X_PM2_CNT, */
		put_gas_absent(b);                 /* X_PM_TMR, X_GPE0, X_GPE1 */
	put_io_port8(b, cfg->sleep_ctl_port);      /* SLEEP_CONTROL_REG */
	put_io_port8(b, cfg->sleep_sts_port);      /* SLEEP_STATUS_REG */
	acpi_put_text(b, FADT_HYPERVISOR_ID, 8, ' ');
	acpi_table_end(b, start);
	return start;
}

/* ---- MADT (ACPI 6.0 errata A, 5.2.12) ---------------------------------------------------------- */

#define MADT_REVISION          4
#define MADT_LAPIC             0
#define MADT_IOAPIC            1
#define MADT_INT_OVERRIDE      2
#define MADT_LAPIC_NMI         4
#define MADT_LAPIC_ENABLED     1
#define MADT_ALL_PROCESSORS    0xff
#define MPS_INTI_EDGE_HIGH     0x0005 /* polarity 01 active high, trigger 01 edge */
#define ISA_TIMER_IRQ          0
#define ISA_TIMER_GSI          2      /* the PIT is wired to IOAPIC pin 2 */
#define LINT1                  1

static void madt_lapic(struct acpi_buf *b, uint8_t id)
{
	acpi_put8(b, MADT_LAPIC);
	acpi_put8(b, 8);
	acpi_put8(b, id); /* ACPI processor UID */
	acpi_put8(b, id); /* APIC ID */
	acpi_put32(b, MADT_LAPIC_ENABLED);
}

static void madt_ioapic(struct acpi_buf *b, uint8_t id, uint32_t addr, uint32_t gsi_base)
{
	acpi_put8(b, MADT_IOAPIC);
	acpi_put8(b, 12);
	acpi_put8(b, id);
	acpi_put8(b, 0);
	acpi_put32(b, addr);
	acpi_put32(b, gsi_base);
}

static void madt_override(struct acpi_buf *b, uint8_t isa_irq, uint32_t gsi, uint16_t flags)
{
	acpi_put8(b, MADT_INT_OVERRIDE);
	acpi_put8(b, 10);
	acpi_put8(b, 0); /* bus: ISA */
	acpi_put8(b, isa_irq);
	acpi_put32(b, gsi);
	acpi_put16(b, flags);
}

static void madt_lapic_nmi(struct acpi_buf *b, uint8_t uid, uint16_t flags, uint8_t lint)
{
	acpi_put8(b, MADT_LAPIC_NMI);
	acpi_put8(b, 6);
	acpi_put8(b, uid);
	acpi_put16(b, flags);
	acpi_put8(b, lint);
}

static size_t emit_madt(const struct build_ctx *c)
{
	struct acpi_buf *b = c->b;
	const struct acpi_config *cfg = c->cfg;
	size_t start = acpi_table_begin(b, "APIC", MADT_REVISION);
	acpi_put32(b, (uint32_t)cfg->lapic_addr);
	acpi_put32(b, 0); /* flags: no PCAT_COMPAT, hardware-reduced mode uses no 8259 */
	for (unsigned i = 0; i < cfg->ncpus; i++)
		madt_lapic(b, (uint8_t)i);
	madt_ioapic(b, (uint8_t)cfg->ncpus, (uint32_t)cfg->ioapic_addr, 0);
	madt_override(b, ISA_TIMER_IRQ, ISA_TIMER_GSI, MPS_INTI_EDGE_HIGH);
	madt_lapic_nmi(b, MADT_ALL_PROCESSORS, MPS_INTI_EDGE_HIGH, LINT1);
	acpi_table_end(b, start);
	return start;
}

/* ---- MCFG (PCI Firmware Specification 3.0, 4.1.2) --------------------------------------------- */

#define MCFG_REVISION 1

static size_t emit_mcfg(const struct build_ctx *c)
{
	struct acpi_buf *b = c->b;
	size_t start = acpi_table_begin(b, "MCFG", MCFG_REVISION);
	acpi_put_zeros(b, 8);           /* reserved */
	acpi_put64(b, c->cfg->ecam_base);
	acpi_put16(b, 0);               /* PCI segment group */
	acpi_put8(b, c->cfg->pci_bus_start);
	acpi_put8(b, c->cfg->pci_bus_end);
	acpi_put32(b, 0);               /* reserved */
	acpi_table_end(b, start);
	return start;
}

/* ---- XSDT and RSDP ----------------------------------------------------------------------------- */

#define XSDT_REVISION 1
#define RSDP_REVISION 2
#define RSDP_V1_LEN   20
#define RSDP_LEN      36

/* Tables the XSDT lists, in order. A new table is a new row. */
struct xsdt_entry {
	bool (*wanted)(const struct acpi_config *cfg);
	size_t (*emit)(const struct build_ctx *c);
};

static bool always(const struct acpi_config *cfg)
{
	(void)cfg;
	return true;
}

static const struct xsdt_entry xsdt_tables[] = {
	{ always, emit_fadt },
	{ always, emit_madt },
	{ pci_enabled, emit_mcfg },
};

static size_t emit_xsdt(const struct build_ctx *c, const size_t *tables, size_t n)
{
	size_t start = acpi_table_begin(c->b, "XSDT", XSDT_REVISION);
	for (size_t i = 0; i < n; i++)
		acpi_put64(c->b, gpa_of(c, tables[i]));
	acpi_table_end(c->b, start);
	return start;
}

/* The RSDP lives at offset 0: written last, once the XSDT's address is known. */
static void emit_rsdp(struct acpi_buf *b, uint64_t xsdt_gpa)
{
	if (b->overflow)
		return;
	struct acpi_buf r = { b->data, b->cap, 0, false };
	acpi_put_text(&r, "RSD PTR ", 8, ' ');
	acpi_put8(&r, 0); /* checksum over the first 20 bytes */
	acpi_put_text(&r, ACPI_OEM_ID, 6, ' ');
	acpi_put8(&r, RSDP_REVISION);
	acpi_put32(&r, 0); /* RsdtAddress: no RSDT, the XSDT is enough for ACPI 2.0+ guests */
	acpi_put32(&r, RSDP_LEN);
	acpi_put64(&r, xsdt_gpa);
	acpi_put8(&r, 0); /* extended checksum over all 36 bytes */
	acpi_put_zeros(&r, 3);
	fix_checksum(&r, 0, RSDP_V1_LEN, 8);
	fix_checksum(&r, 0, RSDP_LEN, 32);
}

/* ---- Validation and the entry point ------------------------------------------------------------ */

static int check_cpu_config(const struct acpi_config *cfg, vt_err *err)
{
	if (cfg->ncpus < 1 || cfg->ncpus > 255)
		return vt_fail(err, "ACPI: vCPU count %u out of range 1..255", cfg->ncpus);
	if (cfg->lapic_addr > UINT32_MAX || cfg->ioapic_addr > UINT32_MAX)
		return vt_fail(err, "ACPI: local APIC (0x%llx) and IOAPIC (0x%llx) must be below 4 GiB",
		               (unsigned long long)cfg->lapic_addr, (unsigned long long)cfg->ioapic_addr);
	return 0;
}

static int check_port_config(const struct acpi_config *cfg, vt_err *err)
{
	if (!cfg->sleep_ctl_port || !cfg->sleep_sts_port)
		return vt_fail(err, "ACPI: sleep control and status ports must be set (poweroff needs them)");
	if (!cfg->reset_port)
		return vt_fail(err, "ACPI: reset port must be set");
	if (cfg->com1_port && cfg->com1_irq > 15)
		return vt_fail(err, "ACPI: COM1 IRQ %u is not an ISA IRQ (0..15)", cfg->com1_irq);
	if (cfg->power_button_gsi && (cfg->power_button_gsi > 23 || (cfg->com1_port && cfg->power_button_gsi == cfg->com1_irq) ||
				      cfg->power_button_gsi == 2))
		return vt_fail(err, "ACPI: power button GSI %u is not a free IOAPIC pin (1..23, not COM1's, not 2)",
			       cfg->power_button_gsi);
	return 0;
}

#define PCI_CONFIG_PORTS_FIRST 0xcf8
#define PCI_CONFIG_PORTS_LAST  0xcff
#define IO_PORT_SPACE          0x10000

/* The config-mechanism ports belong to the host bridge itself, never to a BAR window. */
static int check_pci_io_window(const struct acpi_config *cfg, vt_err *err)
{
	uint64_t base = cfg->pci_io_base, size = cfg->pci_io_size;
	if (!size)
		return 0;
	if (base >= IO_PORT_SPACE || size > IO_PORT_SPACE - base)
		return vt_fail(err, "ACPI: PCI I/O window 0x%llx+0x%llx runs past port 0xffff",
		               (unsigned long long)base, (unsigned long long)size);
	if (base <= PCI_CONFIG_PORTS_LAST && base + size > PCI_CONFIG_PORTS_FIRST)
		return vt_fail(err, "ACPI: PCI I/O window 0x%llx+0x%llx overlaps the config ports 0xcf8-0xcff",
		               (unsigned long long)base, (unsigned long long)size);
	return 0;
}

static int check_pci_mmio32_window(const struct acpi_config *cfg, vt_err *err)
{
	uint64_t base = cfg->mmio32_base, size = cfg->mmio32_size;
	if (size && (size > UINT32_MAX || base > 4 * GiB || size > 4 * GiB - base))
		return vt_fail(err, "ACPI: 32-bit MMIO window 0x%llx+0x%llx must end at or below 4 GiB",
		               (unsigned long long)base, (unsigned long long)size);
	return 0;
}

static int check_pci_config(const struct acpi_config *cfg, vt_err *err)
{
	if (!pci_enabled(cfg))
		return 0;
	if (cfg->ecam_base % ECAM_BYTES_PER_BUS)
		return vt_fail(err, "ACPI: ECAM base 0x%llx is not 1 MiB aligned",
		               (unsigned long long)cfg->ecam_base);
	if (cfg->pci_bus_end < cfg->pci_bus_start)
		return vt_fail(err, "ACPI: PCI bus range %u..%u is empty", cfg->pci_bus_start, cfg->pci_bus_end);
	uint64_t ecam_end = cfg->pci_bus_end + 1ULL;
	if (cfg->ecam_base > UINT64_MAX - ecam_end * ECAM_BYTES_PER_BUS)
		return vt_fail(err, "ACPI: ECAM window at 0x%llx wraps around", (unsigned long long)cfg->ecam_base);
	return check_pci_mmio32_window(cfg, err) || check_pci_io_window(cfg, err) ? -1 : 0;
}

static int check_placement(uint8_t *buf, size_t size, uint64_t gpa, vt_err *err)
{
	if (!buf && size)
		return vt_fail(err, "ACPI: no buffer");
	if (gpa % 16)
		return vt_fail(err, "ACPI: table address 0x%llx is not 16-byte aligned (the RSDP must be)",
		               (unsigned long long)gpa);
	if (gpa > UINT64_MAX - size)
		return vt_fail(err, "ACPI: table area at 0x%llx wraps around", (unsigned long long)gpa);
	return 0;
}

static void emit_all(struct build_ctx *c)
{
	struct acpi_buf *b = c->b;
	size_t tables[ARRAY_SIZE(xsdt_tables)];
	size_t n = 0;

	acpi_put_zeros(b, RSDP_LEN); /* filled in last */
	put_align(b, 16);
	c->dsdt_gpa = gpa_of(c, emit_dsdt(b, c->cfg));
	for (size_t i = 0; i < ARRAY_SIZE(xsdt_tables); i++) {
		if (!xsdt_tables[i].wanted(c->cfg))
			continue;
		put_align(b, 8);
		tables[n++] = xsdt_tables[i].emit(c);
	}
	put_align(b, 8);
	size_t xsdt = emit_xsdt(c, tables, n);
	emit_rsdp(b, gpa_of(c, xsdt));
}

int acpi_build(const struct acpi_config *cfg, uint8_t *buf, size_t size, uint64_t gpa,
               uint64_t *rsdp_gpa, size_t *used, vt_err *err)
{
	if (!cfg || !rsdp_gpa || !used)
		return vt_fail(err, "ACPI: missing config or output argument");
	if (check_cpu_config(cfg, err) || check_port_config(cfg, err) || check_pci_config(cfg, err) ||
	    check_placement(buf, size, gpa, err))
		return -1;

	struct acpi_buf b = { buf, size, 0, false };
	struct build_ctx c = { .cfg = cfg, .b = &b, .gpa = gpa };
	emit_all(&c);
	if (b.overflow)
		return vt_fail(err, "ACPI: tables need %zu bytes but the buffer holds %zu", b.len, size);
	*rsdp_gpa = gpa;
	*used = b.len;
	return 0;
}
