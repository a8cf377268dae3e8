/* ACPI tables: build them, then read them back the way a guest does (RSDP -> XSDT -> tables, by
 * guest-physical address translated back into the buffer), with a parser written here from the
 * spec rather than from acpi.c, and check every field the guest relies on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/boot/acpi.h"

#define GPA 0xe0000ULL
#define BUF_SIZE 0x20000
#define CANARY 0xa5

static struct acpi_config base_config(unsigned ncpus)
{
	return (struct acpi_config){
		.ncpus = ncpus,
		.lapic_addr = 0xfee00000,
		.ioapic_addr = 0xfec00000,
		.sleep_ctl_port = 0x600,
		.sleep_sts_port = 0x601,
		.reset_port = 0x64,
		.reset_value = 0xfe,
		.com1_port = 0x3f8,
		.com1_irq = 4,
	};
}

static struct acpi_config pci_config(unsigned ncpus)
{
	struct acpi_config c = base_config(ncpus);
	c.ecam_base = 0xe0000000;
	c.pci_bus_start = 0;
	c.pci_bus_end = 15;
	c.mmio32_base = 0xc0000000;
	c.mmio32_size = 0x10000000;
	c.pci_io_base = 0x1000;
	c.pci_io_size = 0xf000;
	return c;
}

/* ---- Reading the guest's view ------------------------------------------------------------------ */

struct image {
	uint8_t *mem;
	size_t size;
	uint64_t gpa;
	uint64_t rsdp_gpa;
	size_t used;
};

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) { return rd16(p) | (uint32_t)rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;
	while (n--)
		s += *p++;
	return s;
}

static void build_at(struct image *img, const struct acpi_config *cfg, uint64_t gpa)
{
	img->size = BUF_SIZE;
	img->gpa = gpa;
	img->mem = malloc(img->size);
	assert_non_null(img->mem);
	memset(img->mem, CANARY, img->size);
	vt_err err = { 0 };
	int rc = acpi_build(cfg, img->mem, img->size, gpa, &img->rsdp_gpa, &img->used, &err);
	if (rc)
		fail_msg("acpi_build: %s", err.msg);
	assert_int_equal(img->rsdp_gpa, gpa);
	assert_true(img->used > 36 && img->used <= img->size);
	for (size_t i = img->used; i < img->size; i++)
		assert_int_equal(img->mem[i], CANARY);
}

static void build(struct image *img, const struct acpi_config *cfg)
{
	build_at(img, cfg, GPA);
}

/* Translate a guest-physical range back into the image; fails the test if it is not inside the
 * bytes acpi_build said it wrote. */
static const uint8_t *at_gpa(const struct image *img, uint64_t addr, size_t len)
{
	assert_true(addr >= img->gpa);
	assert_true(addr - img->gpa <= img->used && len <= img->used - (addr - img->gpa));
	return img->mem + (addr - img->gpa);
}

static const uint8_t *rsdp(const struct image *img)
{
	return at_gpa(img, img->rsdp_gpa, 36);
}

/* A table at addr: signature, length in bounds, checksum, OEM ID. */
static const uint8_t *table_at(const struct image *img, uint64_t addr, const char *sig)
{
	const uint8_t *h = at_gpa(img, addr, 36);
	assert_memory_equal(h, sig, 4);
	uint32_t len = rd32(h + 4);
	assert_true(len >= 36);
	const uint8_t *t = at_gpa(img, addr, len);
	assert_int_equal(sum(t, len), 0);
	assert_memory_equal(t + 10, "VIRTUS", 6);
	return t;
}

static const uint8_t *xsdt(const struct image *img)
{
	return table_at(img, rd64(rsdp(img) + 24), "XSDT");
}

static unsigned xsdt_count(const struct image *img)
{
	return (rd32(xsdt(img) + 4) - 36) / 8;
}

/* Follow the XSDT to the table with this signature; NULL if it lists none. */
static const uint8_t *find_table(const struct image *img, const char *sig)
{
	const uint8_t *x = xsdt(img);
	for (unsigned i = 0; i < xsdt_count(img); i++) {
		uint64_t addr = rd64(x + 36 + 8 * i);
		if (!memcmp(at_gpa(img, addr, 4), sig, 4))
			return table_at(img, addr, sig);
	}
	return NULL;
}

static const uint8_t *dsdt(const struct image *img)
{
	const uint8_t *fadt = find_table(img, "FACP");
	assert_non_null(fadt);
	return table_at(img, rd64(fadt + 140), "DSDT");
}

/* ---- A small AML reader (ACPI 6.0, 20.2) --------------------------------------------------------- */

struct span {
	const uint8_t *p;
	size_t len;
};

/* Decode the PkgLength at p (inside limit bytes) into the package's contents after the PkgLength
 * bytes; false if it is malformed or runs past limit. */
static bool try_pkg_contents(const uint8_t *p, size_t limit, struct span *out)
{
	if (limit < 1)
		return false;
	size_t follow = p[0] >> 6, total;
	if (follow == 0) {
		total = p[0] & 0x3f;
	} else {
		if ((p[0] & 0x30) || limit < 1 + follow) /* bits 4-5 are zero in the multi-byte form */
			return false;
		total = p[0] & 0x0f;
		for (size_t i = 1; i <= follow; i++)
			total |= (size_t)p[i] << (4 + 8 * (i - 1));
	}
	if (total < 1 + follow || total > limit)
		return false;
	*out = (struct span){ p + 1 + follow, total - 1 - follow };
	return true;
}

static struct span pkg_contents(const uint8_t *p, size_t limit)
{
	struct span s = { NULL, 0 };
	if (!try_pkg_contents(p, limit, &s))
		fail_msg("malformed PkgLength 0x%02x", p[0]);
	return s;
}

/* Decode an integer constant at p; sets *size to the bytes it occupies. */
static uint64_t aml_int(const uint8_t *p, size_t *size)
{
	switch (p[0]) {
	case 0x00: *size = 1; return 0;
	case 0x01: *size = 1; return 1;
	case 0x0a: *size = 2; return p[1];
	case 0x0b: *size = 3; return rd16(p + 1);
	case 0x0c: *size = 5; return rd32(p + 1);
	case 0x0e: *size = 9; return rd64(p + 1);
	}
	fail_msg("not an AML integer: opcode 0x%02x", p[0]);
	return 0;
}

static const uint8_t *find_bytes(struct span in, const void *needle, size_t n)
{
	for (size_t i = 0; i + n <= in.len; i++)
		if (!memcmp(in.p + i, needle, n))
			return in.p + i;
	return NULL;
}

/* The value of Name(seg, value) or Name(\\seg, value) inside in, or NULL. */
static const uint8_t *named_value(struct span in, const char seg[4])
{
	for (size_t i = 1; i + 4 < in.len; i++) {
		if (memcmp(in.p + i, seg, 4))
			continue;
		bool root = in.p[i - 1] == '\\';
		if (in.p[i - 1] == 0x08 || (root && i >= 2 && in.p[i - 2] == 0x08))
			return in.p + i + 4;
	}
	return NULL;
}

/* The contents (after the name) of an object with a PkgLength -- Device(seg) (0x5b 0x82) or
 * Scope(name) (0x10) -- inside in, or {NULL, 0}. */
static struct span object_body(struct span in, const uint8_t *op, size_t oplen, const char *name)
{
	size_t nlen = strlen(name);
	for (size_t i = 0; i + oplen < in.len; i++) {
		struct span body;
		if (memcmp(in.p + i, op, oplen) ||
		    !try_pkg_contents(in.p + i + oplen, in.len - i - oplen, &body))
			continue;
		if (body.len >= nlen && !memcmp(body.p, name, nlen))
			return (struct span){ body.p + nlen, body.len - nlen };
	}
	return (struct span){ NULL, 0 };
}

static struct span device_body(struct span in, const char seg[4])
{
	char name[5] = { 0 };
	memcpy(name, seg, 4);
	return object_body(in, (const uint8_t *)"\x5b\x82", 2, name);
}

static struct span scope_body(struct span in, const char *name)
{
	return object_body(in, (const uint8_t *)"\x10", 1, name);
}

static struct span dsdt_aml(const struct image *img)
{
	const uint8_t *d = dsdt(img);
	return (struct span){ d + 36, rd32(d + 4) - 36 };
}

/* Name(_CRS, Buffer(){...}) inside a device: the resource bytes, size checked against BufferSize. */
static struct span crs_bytes(struct span dev)
{
	const uint8_t *v = named_value(dev, "_CRS");
	assert_non_null(v);
	assert_int_equal(v[0], 0x11); /* BufferOp */
	struct span buf = pkg_contents(v + 1, dev.len - (size_t)(v + 1 - dev.p));
	size_t isz;
	uint64_t declared = aml_int(buf.p, &isz);
	assert_int_equal(declared, buf.len - isz);
	return (struct span){ buf.p + isz, buf.len - isz };
}

/* What a _CRS template describes, walked descriptor by descriptor up to its end tag. */
struct resources {
	unsigned nio, nirq, nbus, nmem;
	uint16_t io_min, io_max;
	uint8_t io_len;
	uint16_t irq_mask;
	uint16_t bus_min, bus_max;
	unsigned nio_win;
	uint16_t io_win_min, io_win_max, io_win_len;
	uint64_t mem_min[2], mem_len[2];
	bool mem_producer[2];
};

static void walk_resources(struct span crs, struct resources *r)
{
	memset(r, 0, sizeof(*r));
	size_t i = 0;
	for (;;) {
		assert_true(i < crs.len);
		const uint8_t *d = crs.p + i;
		if (d[0] == 0x79) { /* end tag: must be the last two bytes */
			assert_int_equal(i + 2, crs.len);
			return;
		}
		if (!(d[0] & 0x80)) { /* small descriptor */
			size_t len = d[0] & 7;
			assert_true(i + 1 + len <= crs.len);
			if ((d[0] >> 3) == 0x08) {
				assert_int_equal(len, 7);
				r->nio++;
				r->io_min = rd16(d + 2);
				r->io_max = rd16(d + 4);
				r->io_len = d[7];
			} else if ((d[0] >> 3) == 0x04) {
				r->nirq++;
				r->irq_mask = rd16(d + 1);
			}
			i += 1 + len;
			continue;
		}
		size_t len = rd16(d + 1);
		assert_true(i + 3 + len <= crs.len);
		if (d[0] == 0x88 && d[3] == 2) { /* WordBusNumber */
			assert_int_equal(len, 13);
			r->nbus++;
			r->bus_min = rd16(d + 8);
			r->bus_max = rd16(d + 10);
			assert_int_equal(rd16(d + 14), r->bus_max - r->bus_min + 1);
		} else if (d[0] == 0x88 && d[3] == 1) { /* WordIO */
			assert_int_equal(len, 13);
			r->nio_win++;
			r->io_win_min = rd16(d + 8);
			r->io_win_max = rd16(d + 10);
			r->io_win_len = rd16(d + 14);
		} else if ((d[0] == 0x87 || d[0] == 0x8a) && d[3] == 0 && r->nmem < 2) {
			bool q = d[0] == 0x8a;
			assert_int_equal(len, q ? 43 : 23);
			uint64_t min = q ? rd64(d + 14) : rd32(d + 10), max = q ? rd64(d + 22) : rd32(d + 14);
			uint64_t length = q ? rd64(d + 38) : rd32(d + 22);
			assert_int_equal(max - min + 1, length);
			r->mem_min[r->nmem] = min;
			r->mem_len[r->nmem] = length;
			r->mem_producer[r->nmem++] = !(d[4] & 1);
		}
		i += 3 + len;
	}
}

/* ---- RSDP and XSDT ----------------------------------------------------------------------------- */

static void test_rsdp(void **state)
{
	(void)state;
	struct acpi_config cfg = base_config(2);
	struct image img;
	build(&img, &cfg);
	const uint8_t *r = rsdp(&img);
	assert_memory_equal(r, "RSD PTR ", 8);
	assert_int_equal(sum(r, 20), 0);
	assert_int_equal(sum(r, 36), 0);
	assert_memory_equal(r + 9, "VIRTUS", 6);
	assert_int_equal(r[15], 2);
	assert_int_equal(rd32(r + 20), 36);
	assert_int_equal(img.rsdp_gpa % 16, 0);
	free(img.mem);
}

static void test_xsdt_lists_fadt_and_madt(void **state)
{
	(void)state;
	struct acpi_config cfg = base_config(2);
	struct image img;
	build(&img, &cfg);
	const uint8_t *x = xsdt(&img);
	assert_int_equal(x[8], 1);
	assert_int_equal(rd32(x + 4), 36 + 2 * 8);
	assert_int_equal(xsdt_count(&img), 2);
	assert_non_null(find_table(&img, "FACP"));
	assert_non_null(find_table(&img, "APIC"));
	assert_null(find_table(&img, "MCFG"));
	free(img.mem);
}

/* ---- FADT -------------------------------------------------------------------------------------- */

static void assert_gas_io8(const uint8_t *g, uint16_t port)
{
	assert_int_equal(g[0], 1); /* system I/O */
	assert_int_equal(g[1], 8); /* bit width */
	assert_int_equal(g[2], 0); /* bit offset */
	assert_int_equal(g[3], 1); /* byte access */
	assert_int_equal(rd64(g + 4), port);
}

static bool all_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

static void test_fadt(void **state)
{
	(void)state;
	struct acpi_config cfg = base_config(2);
	struct image img;
	build(&img, &cfg);
	const uint8_t *f = find_table(&img, "FACP");
	assert_non_null(f);
	assert_int_equal(rd32(f + 4), 276);
	assert_int_equal(f[8], 6);                       /* major revision */
	assert_int_equal(f[131], 0);                     /* minor revision: ACPI 6.0 */
	uint32_t flags = rd32(f + 112);
	assert_true(flags & (1u << 20));                 /* HW_REDUCED_ACPI */
	assert_true(flags & (1u << 10));                 /* RESET_REG_SUP */
	uint16_t boot = rd16(f + 109);
	assert_false(boot & (1u << 1));                  /* no 8042 */
	assert_false(boot & (1u << 0));                  /* no legacy devices */
	assert_true(boot & (1u << 2));                   /* VGA not present */
	assert_true(boot & (1u << 5));                   /* CMOS RTC not present */
	assert_gas_io8(f + 116, 0x64);                   /* RESET_REG */
	assert_int_equal(f[128], 0xfe);                  /* RESET_VALUE */
	assert_gas_io8(f + 244, 0x600);                  /* SLEEP_CONTROL_REG */
	assert_gas_io8(f + 256, 0x601);                  /* SLEEP_STATUS_REG */
	assert_memory_equal(f + 268, "VIRTUS", 6);       /* hypervisor vendor identity */
	/* No FACS, SCI, SMI, PM1/PM2/PM timer/GPE blocks, in either the 32-bit or the X_ form. */
	assert_int_equal(rd32(f + 36), 0);
	assert_int_equal(rd16(f + 46), 0);
	assert_true(all_zero(f + 48, 108 - 48));
	assert_true(all_zero(f + 132, 8));
	assert_true(all_zero(f + 148, 244 - 148));
	/* DSDT by both pointers, to the same table. */
	assert_int_equal(rd32(f + 40), rd64(f + 140));
	const uint8_t *d = dsdt(&img);
	assert_int_equal(d[8], 2);
	free(img.mem);
}

static void test_fadt_above_4g_uses_x_dsdt_only(void **state)
{
	(void)state;
	struct acpi_config cfg = base_config(1);
	struct image img;
	build_at(&img, &cfg, 0x100000000ULL);
	const uint8_t *f = find_table(&img, "FACP");
	assert_non_null(f);
	assert_int_equal(rd32(f + 40), 0);
	assert_true(rd64(f + 140) > 0x100000000ULL);
	dsdt(&img);
	free(img.mem);
}

/* ---- DSDT -------------------------------------------------------------------------------------- */

static void test_dsdt_s5_package(void **state)
{
	(void)state;
	struct acpi_config cfg = base_config(2);
	struct image img;
	build(&img, &cfg);
	struct span aml = dsdt_aml(&img);
	const uint8_t *v = named_value(aml, "_S5_");
	assert_non_null(v);
	assert_int_equal(v[0], 0x12); /* PackageOp */
	struct span pkg = pkg_contents(v + 1, aml.len - (size_t)(v + 1 - aml.p));
	assert_true(pkg.len >= 2);
	uint8_t nelems = pkg.p[0];
	assert_true(nelems >= 1);
	size_t off = 1, sz;
	uint64_t first = aml_int(pkg.p + off, &sz);
	assert_int_equal(first, 5);
	for (unsigned i = 1; i < nelems; i++) { /* every element an integer, all inside the package */
		off += sz;
		assert_true(off < pkg.len);
		aml_int(pkg.p + off, &sz);
	}
	assert_int_equal(off + sz, pkg.len);
	free(img.mem);
}

static void test_dsdt_com1(void **state)
{
	(void)state;
	struct acpi_config cfg = base_config(2);
	struct image img;
	build(&img, &cfg);
	struct span aml = dsdt_aml(&img);
	/* EisaId("PNP0501") compressed: 'P','N','P' in 5-bit letters, then 0x05 0x01. */
	static const uint8_t pnp0501[] = { 0x0c, 0x41, 0xd0, 0x05, 0x01 };
	assert_non_null(find_bytes(aml, pnp0501, sizeof(pnp0501)));
	struct span sb = scope_body(aml, "\\_SB_"); /* the devices live in Scope(\_SB) */
	assert_non_null(sb.p);
	struct span com1 = device_body(sb, "COM1");
	assert_non_null(com1.p);
	const uint8_t *hid = named_value(com1, "_HID");
	assert_non_null(hid);
	assert_memory_equal(hid, pnp0501, sizeof(pnp0501));
	assert_non_null(named_value(com1, "_UID"));
	struct resources r;
	walk_resources(crs_bytes(com1), &r);
	assert_int_equal(r.nio, 1);
	assert_int_equal(r.io_min, 0x3f8);
	assert_int_equal(r.io_max, 0x3f8);
	assert_int_equal(r.io_len, 8);
	assert_int_equal(r.nirq, 1);
	assert_int_equal(r.irq_mask, 1u << 4);
	free(img.mem);
}

static void test_dsdt_without_com1(void **state)
{
	(void)state;
	struct acpi_config cfg = base_config(1);
	cfg.com1_port = 0;
	struct image img;
	build(&img, &cfg);
	assert_null(device_body(dsdt_aml(&img), "COM1").p);
	assert_non_null(named_value(dsdt_aml(&img), "_S5_"));
	free(img.mem);
}

static void write_table(const char *dir, const char *name, const uint8_t *t)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s.dat", dir, name);
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(t, 1, rd32(t + 4), f), rd32(t + 4));
	assert_int_equal(fclose(f), 0);
}

/* ACPICA's disassembler reads every table back: a second opinion on the table layouts and on
 * the whole AML grammar, from a parser that is not ours. */
static void test_tables_iasl_disassembles(void **state)
{
	(void)state;
	if (system("command -v iasl >/dev/null 2>&1") != 0)
		fail_msg("iasl not found: install acpica-tools (scripts/deps does)");
	struct acpi_config cfg = pci_config(4);
	cfg.power_button_gsi = 5;
	cfg.pci_hotplug_port = 0x610;
	cfg.pci_hotplug_gsi = 6;
	struct image img;
	build(&img, &cfg);
	const char *names[] = { "dsdt", "facp", "apic", "mcfg", "xsdt" };
	const uint8_t *tables[] = { dsdt(&img), find_table(&img, "FACP"), find_table(&img, "APIC"),
	                            find_table(&img, "MCFG"), xsdt(&img) };
	char dir[] = "/tmp/virtus-acpi-XXXXXX";
	assert_non_null(mkdtemp(dir));
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
		write_table(dir, names[i], tables[i]);
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
	         "cd %s && for t in dsdt facp apic mcfg xsdt; do iasl -d $t.dat >>log 2>&1 || exit 1; done; "
	         "! grep -qi -e error -e warning -e invalid *.dsl log && "
	         "grep -q 'Name (\\\\_S5, Package' dsdt.dsl && grep -q 'EisaId (\"PNP0501\")' dsdt.dsl && "
	         "grep -q 'EisaId (\"PNP0A08\")' dsdt.dsl && grep -q 'Hardware Reduced (V5) : 1' facp.dsl && "
	         /* the power button: a GED whose edge interrupt at GSI 5 runs _EVT, which notifies PWRB */
	         "grep -q 'EisaId (\"PNP0C0C\")' dsdt.dsl && grep -q '_HID, \"ACPI0013\"' dsdt.dsl && "
	         "grep -q 'Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive' dsdt.dsl && "
	         "grep -qx ' *0x00000005,' dsdt.dsl && grep -q 'Method (_EVT, 1, NotSerialized)' dsdt.dsl && "
	         "grep -q 'Notify (\\\\_SB.PWRB, 0x80)' dsdt.dsl && "
	         "[ $(grep -c 'Processor Enabled : 1' apic.dsl) -eq 4 ] && grep -q 'Base Address : 00000000E0000000' mcfg.dsl && "
	         /* PCI hot-plug: the registers, 31 ejectable slots, the scan method and the GED's second interrupt */
	         "grep -q 'OperationRegion (PHPR, SystemIO, 0x0610, 0x0C)' dsdt.dsl && "
	         "grep -q 'Field (PHPR, DWordAcc, NoLock, WriteAsZeros)' dsdt.dsl && "
	         "[ $(grep -c 'Method (_EJ0, 1, NotSerialized)' dsdt.dsl) -eq 31 ] && "
	         "grep -q 'Device (S1F)' dsdt.dsl && grep -q 'Name (_ADR, 0x001F0000)' dsdt.dsl && "
	         "grep -q 'PCEJ = 0x80000000' dsdt.dsl && grep -q 'Local0 = PCIU' dsdt.dsl && "
	         "grep -q 'If ((Local0 & 0x20))' dsdt.dsl && grep -q 'Notify (S05, One)' dsdt.dsl && "
	         "grep -q 'Notify (S05, 0x03)' dsdt.dsl && grep -qx ' *0x00000006,' dsdt.dsl && "
	         "grep -q 'Method (_E06, 0, NotSerialized)' dsdt.dsl && grep -q '\\\\_SB.PCI0.PSCN ()' dsdt.dsl",
	         dir);
	int rc = system(cmd);
	if (rc != 0) { /* show what iasl said before the evidence goes */
		snprintf(cmd, sizeof(cmd), "cat %s/log >&2", dir);
		(void)!system(cmd);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(rc, 0);
	free(img.mem);
}

/* ---- MADT -------------------------------------------------------------------------------------- */

static void check_madt(unsigned ncpus)
{
	struct acpi_config cfg = base_config(ncpus);
	struct image img;
	build(&img, &cfg);
	const uint8_t *m = find_table(&img, "APIC");
	assert_non_null(m);
	assert_int_equal(m[8], 4);
	assert_int_equal(rd32(m + 36), 0xfee00000);
	uint32_t len = rd32(m + 4);
	unsigned nlapic = 0, nioapic = 0, noverride = 0, nnmi = 0;
	bool seen[256] = { false };
	size_t off = 44;
	while (off < len) {
		const uint8_t *e = m + off;
		assert_true(off + 2 <= len && e[1] >= 2 && off + e[1] <= len);
		switch (e[0]) {
		case 0:
			assert_int_equal(e[1], 8);
			assert_int_equal(e[2], e[3]); /* UID = APIC ID */
			assert_true(e[3] < ncpus);
			assert_false(seen[e[3]]);
			seen[e[3]] = true;
			assert_int_equal(rd32(e + 4) & 1, 1); /* enabled */
			nlapic++;
			break;
		case 1:
			assert_int_equal(e[1], 12);
			assert_int_equal(e[2], ncpus);
			assert_int_equal(rd32(e + 4), 0xfec00000);
			assert_int_equal(rd32(e + 8), 0);
			nioapic++;
			break;
		case 2:
			assert_int_equal(e[1], 10);
			assert_int_equal(e[2], 0);
			assert_int_equal(e[3], 0);
			assert_int_equal(rd32(e + 4), 2);
			assert_int_equal(rd16(e + 8), 0x0005);
			noverride++;
			break;
		case 4:
			assert_int_equal(e[1], 6);
			assert_int_equal(e[2], 0xff);
			assert_int_equal(e[5], 1);
			nnmi++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", e[0]);
		}
		off += e[1];
	}
	assert_int_equal(off, len);
	assert_int_equal(nlapic, ncpus);
	assert_int_equal(nioapic, 1);
	assert_int_equal(noverride, 1);
	assert_int_equal(nnmi, 1);
	assert_int_equal(len, 44 + 8 * ncpus + 12 + 10 + 6);
	free(img.mem);
}

static void test_madt_1(void **state) { (void)state; check_madt(1); }
static void test_madt_2(void **state) { (void)state; check_madt(2); }
static void test_madt_8(void **state) { (void)state; check_madt(8); }
static void test_madt_255(void **state) { (void)state; check_madt(255); }

/* ---- PCI: MCFG and the host bridge ------------------------------------------------------------- */

static void test_mcfg_and_pci_host_bridge(void **state)
{
	(void)state;
	struct acpi_config cfg = pci_config(2);
	struct image img;
	build(&img, &cfg);
	assert_int_equal(xsdt_count(&img), 3);
	const uint8_t *mc = find_table(&img, "MCFG");
	assert_non_null(mc);
	assert_int_equal(rd32(mc + 4), 60);
	assert_int_equal(mc[8], 1);
	assert_int_equal(rd64(mc + 44), 0xe0000000);
	assert_int_equal(rd16(mc + 52), 0);
	assert_int_equal(mc[54], 0);
	assert_int_equal(mc[55], 15);

	struct span pci = device_body(dsdt_aml(&img), "PCI0");
	assert_non_null(pci.p);
	static const uint8_t pnp0a08[] = { 0x0c, 0x41, 0xd0, 0x0a, 0x08 };
	static const uint8_t pnp0a03[] = { 0x0c, 0x41, 0xd0, 0x0a, 0x03 };
	assert_memory_equal(named_value(pci, "_HID"), pnp0a08, sizeof(pnp0a08));
	assert_memory_equal(named_value(pci, "_CID"), pnp0a03, sizeof(pnp0a03));
	size_t sz;
	assert_int_equal(aml_int(named_value(pci, "_BBN"), &sz), 0);
	assert_int_equal(aml_int(named_value(pci, "_SEG"), &sz), 0);
	struct resources r;
	walk_resources(crs_bytes(pci), &r);
	assert_int_equal(r.nbus, 1);
	assert_int_equal(r.bus_min, 0);
	assert_int_equal(r.bus_max, 15);
	assert_int_equal(r.nmem, 1);
	assert_int_equal(r.mem_min[0], 0xc0000000);
	assert_int_equal(r.mem_len[0], 0x10000000);
	assert_true(r.mem_producer[0]);
	assert_int_equal(r.nio, 0); /* 0xcf8-0xcff stays out of the bridge's resources */
	assert_int_equal(r.nio_win, 1);
	assert_int_equal(r.io_win_min, 0x1000);
	assert_int_equal(r.io_win_max, 0xffff);
	assert_int_equal(r.io_win_len, 0xf000);

	/* The ECAM window is reserved as a motherboard resource, or Linux ignores the MCFG. */
	struct span mres = device_body(dsdt_aml(&img), "MRES");
	assert_non_null(mres.p);
	static const uint8_t pnp0c02[] = { 0x0c, 0x41, 0xd0, 0x0c, 0x02 };
	assert_memory_equal(named_value(mres, "_HID"), pnp0c02, sizeof(pnp0c02));
	walk_resources(crs_bytes(mres), &r);
	assert_int_equal(r.nmem, 1);
	assert_int_equal(r.mem_min[0], 0xe0000000);
	assert_int_equal(r.mem_len[0], 16 * 0x100000);
	assert_false(r.mem_producer[0]);
	free(img.mem);
}

/* I/O windows that end right below or start right above the config ports are accepted. */
static void check_io_window(uint32_t base, uint32_t size)
{
	struct acpi_config cfg = pci_config(1);
	cfg.pci_io_base = base;
	cfg.pci_io_size = size;
	struct image img;
	build(&img, &cfg);
	struct resources r;
	walk_resources(crs_bytes(device_body(dsdt_aml(&img), "PCI0")), &r);
	assert_int_equal(r.nio_win, 1);
	assert_int_equal(r.io_win_min, base);
	assert_int_equal(r.io_win_max, base + size - 1);
	free(img.mem);
}

static void test_pci_io_window_edges(void **state)
{
	(void)state;
	check_io_window(0, 0xcf8);
	check_io_window(0xd00, 0xf300);
}

static void test_no_pci_without_ecam(void **state)
{
	(void)state;
	struct acpi_config cfg = base_config(2);
	cfg.mmio32_base = 0xc0000000;
	cfg.mmio32_size = 0x10000000;
	struct image img;
	build(&img, &cfg);
	assert_null(find_table(&img, "MCFG"));
	assert_null(device_body(dsdt_aml(&img), "PCI0").p);
	assert_null(device_body(dsdt_aml(&img), "MRES").p);
	free(img.mem);
}

/* ---- Errors and bounds ------------------------------------------------------------------------- */

static int try_build(const struct acpi_config *cfg, uint8_t *buf, size_t size, uint64_t gpa, vt_err *err)
{
	uint64_t rsdp_gpa = 0;
	size_t used = 0;
	return acpi_build(cfg, buf, size, gpa, &rsdp_gpa, &used, err);
}

static void expect_config_error(const struct acpi_config *cfg, const char *words)
{
	uint8_t *buf = malloc(BUF_SIZE);
	assert_non_null(buf);
	vt_err err = { 0 };
	assert_int_equal(try_build(cfg, buf, BUF_SIZE, GPA, &err), -1);
	if (!strstr(err.msg, words))
		fail_msg("error \"%s\" does not mention \"%s\"", err.msg, words);
	free(buf);
}

static void test_rejects_bad_cpu_counts(void **state)
{
	(void)state;
	struct acpi_config cfg = base_config(0);
	expect_config_error(&cfg, "vCPU count 0");
	cfg.ncpus = 256;
	expect_config_error(&cfg, "vCPU count 256");
}

static void test_rejects_bad_configs(void **state)
{
	(void)state;
	struct acpi_config cfg = base_config(1);
	cfg.sleep_ctl_port = 0;
	expect_config_error(&cfg, "sleep");
	cfg = base_config(1);
	cfg.com1_irq = 16;
	expect_config_error(&cfg, "IRQ 16");
	cfg = base_config(1);
	cfg.power_button_gsi = cfg.com1_irq;
	expect_config_error(&cfg, "power button GSI");
	cfg = base_config(1);
	cfg.power_button_gsi = 24;
	expect_config_error(&cfg, "power button GSI 24");
	cfg = base_config(1);
	cfg.lapic_addr = 0x100000000ULL;
	expect_config_error(&cfg, "4 GiB");
	cfg = pci_config(1);
	cfg.ecam_base = 0xe0080000;
	expect_config_error(&cfg, "aligned");
	cfg = pci_config(1);
	cfg.pci_bus_start = 2, cfg.pci_bus_end = 1;
	expect_config_error(&cfg, "bus range");
	cfg = pci_config(1);
	cfg.mmio32_base = 0xf0000000, cfg.mmio32_size = 0x20000000;
	expect_config_error(&cfg, "4 GiB");
	cfg = pci_config(1);
	cfg.pci_io_base = 0xc00, cfg.pci_io_size = 0x100;
	expect_config_error(&cfg, "config ports");
	cfg = pci_config(1);
	cfg.pci_io_base = 0xcff, cfg.pci_io_size = 1;
	expect_config_error(&cfg, "config ports");
	cfg = pci_config(1);
	cfg.pci_io_base = 0x1000, cfg.pci_io_size = 0xf001;
	expect_config_error(&cfg, "past port 0xffff");

	uint8_t buf[64];
	vt_err err = { 0 };
	cfg = base_config(1);
	assert_int_equal(try_build(&cfg, buf, sizeof(buf), GPA + 8, &err), -1);
	assert_non_null(strstr(err.msg, "16-byte"));
	assert_int_equal(acpi_build(NULL, buf, sizeof(buf), GPA, NULL, NULL, &err), -1);
}

/* Size the tables with a roomy buffer, then hand over exactly that size (works) and every smaller
 * size (fails, naming the size needed, and never touches a byte at or past buf+size). */
static void check_sizes(const struct acpi_config *cfg)
{
	struct image img;
	build(&img, cfg);
	size_t need = img.used;
	const size_t slack = 64;
	uint8_t *area = malloc(need + slack);
	assert_non_null(area);
	for (size_t size = 0; size <= need; size++) {
		memset(area, CANARY, need + slack);
		vt_err err = { 0 };
		int rc = try_build(cfg, area, size, GPA, &err);
		if (size == need) {
			assert_int_equal(rc, 0);
			assert_memory_equal(area, img.mem, need);
		} else {
			assert_int_equal(rc, -1);
			char want[64];
			snprintf(want, sizeof(want), "need %zu bytes", need);
			if (!strstr(err.msg, want))
				fail_msg("error \"%s\" does not say \"%s\"", err.msg, want);
		}
		for (size_t i = size; i < need + slack; i++)
			if (area[i] != CANARY)
				fail_msg("buffer of %zu bytes: byte %zu past its end was written", size, i);
	}
	free(area);
	free(img.mem);
}

static void test_buffer_too_small(void **state)
{
	(void)state;
	struct acpi_config cfg = base_config(8);
	check_sizes(&cfg);
	cfg = pci_config(255);
	check_sizes(&cfg);
}

/* One byte short, in a heap block of exactly that size: ASan catches any write past the end. */
static void test_one_byte_short_exact_allocation(void **state)
{
	(void)state;
	struct acpi_config cfg = base_config(255);
	struct image img;
	build(&img, &cfg);
	uint8_t *buf = malloc(img.used - 1);
	assert_non_null(buf);
	vt_err err = { 0 };
	assert_int_equal(try_build(&cfg, buf, img.used - 1, GPA, &err), -1);
	assert_non_null(strstr(err.msg, "buffer"));
	free(buf);
	free(img.mem);
}

/* ---- AML encoders ------------------------------------------------------------------------------ */

static size_t encode(void (*fn)(struct acpi_buf *, uint64_t), uint64_t v, uint8_t *out, size_t cap)
{
	struct acpi_buf b = { out, cap, 0, false };
	fn(&b, v);
	assert_false(b.overflow);
	return b.len;
}

static void test_aml_integer_forms(void **state)
{
	(void)state;
	uint8_t out[16];
	assert_int_equal(encode(aml_integer, 0, out, sizeof(out)), 1);
	assert_int_equal(out[0], 0x00);
	assert_int_equal(encode(aml_integer, 1, out, sizeof(out)), 1);
	assert_int_equal(out[0], 0x01);
	assert_int_equal(encode(aml_integer, 5, out, sizeof(out)), 2);
	assert_memory_equal(out, "\x0a\x05", 2);
	assert_int_equal(encode(aml_integer, 0x3f8, out, sizeof(out)), 3);
	assert_memory_equal(out, "\x0b\xf8\x03", 3);
	assert_int_equal(encode(aml_integer, 0xfec00000, out, sizeof(out)), 5);
	assert_memory_equal(out, "\x0c\x00\x00\xc0\xfe", 5);
	assert_int_equal(encode(aml_integer, 0x100000000ULL, out, sizeof(out)), 9);
	assert_memory_equal(out, "\x0e\x00\x00\x00\x00\x01\x00\x00\x00", 9);
}

static void test_aml_names_and_eisaid(void **state)
{
	(void)state;
	uint8_t out[32];
	struct acpi_buf b = { out, sizeof(out), 0, false };
	aml_name(&b, "\\_SB");
	assert_int_equal(b.len, 5);
	assert_memory_equal(out, "\\_SB_", 5);
	b.len = 0;
	aml_name(&b, "\\_SB_.PCI0");
	assert_int_equal(b.len, 10);
	assert_memory_equal(out, "\\\x2e_SB_PCI0", 10);
	b.len = 0;
	aml_name(&b, "_SB_.PCI0.COM1");
	assert_int_equal(b.len, 14);
	assert_memory_equal(out, "\x2f\x03_SB_PCI0COM1", 14);
	assert_int_equal(aml_eisaid_value("PNP0501"), 0x0105d041);
	assert_int_equal(aml_eisaid_value("PNP0A08"), 0x080ad041);
	assert_int_equal(aml_eisaid_value("PNP0A03"), 0x030ad041);
}

/* A package whose contents are n bytes: the decoded PkgLength must cover exactly them. */
static void check_pkglen(size_t n)
{
	size_t cap = n + 16;
	uint8_t *out = malloc(cap);
	assert_non_null(out);
	struct acpi_buf b = { out, cap, 0, false };
	size_t at = aml_package_begin(&b, 0);
	acpi_put_zeros(&b, n - 1); /* NumElements byte + n-1 = n bytes of contents */
	aml_end(&b, at);
	assert_false(b.overflow);
	assert_int_equal(out[0], 0x12);
	struct span body = pkg_contents(out + 1, b.len - 1);
	assert_int_equal(body.len, n);
	assert_int_equal(1 + aml_pkglen_size(n) + n, b.len);
	free(out);
}

static void test_aml_pkglen_boundaries(void **state)
{
	(void)state;
	static const size_t sizes[] = { 1, 61, 62, 63, 64, 200, 4092, 4093, 4094, 70000, 1048573, 1048574 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		check_pkglen(sizes[i]);
	assert_int_equal(aml_pkglen_size(62), 1);
	assert_int_equal(aml_pkglen_size(63), 2);
	assert_int_equal(aml_pkglen_size(4093), 2);
	assert_int_equal(aml_pkglen_size(4094), 3);
	assert_int_equal(aml_pkglen_size(1048574), 4);
}

static void test_checksum_helper(void **state)
{
	(void)state;
	uint8_t data[] = { 0x10, 0x20, 0xd0 };
	assert_int_equal(acpi_checksum(data, sizeof(data)), 0);
	data[0] = 0x11;
	assert_int_equal(acpi_checksum(data, sizeof(data)), 1);
	assert_int_equal(acpi_checksum(data, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rsdp),
		cmocka_unit_test(test_xsdt_lists_fadt_and_madt),
		cmocka_unit_test(test_fadt),
		cmocka_unit_test(test_fadt_above_4g_uses_x_dsdt_only),
		cmocka_unit_test(test_dsdt_s5_package),
		cmocka_unit_test(test_dsdt_com1),
		cmocka_unit_test(test_dsdt_without_com1),
		cmocka_unit_test(test_tables_iasl_disassembles),
		cmocka_unit_test(test_madt_1),
		cmocka_unit_test(test_madt_2),
		cmocka_unit_test(test_madt_8),
		cmocka_unit_test(test_madt_255),
		cmocka_unit_test(test_mcfg_and_pci_host_bridge),
		cmocka_unit_test(test_pci_io_window_edges),
		cmocka_unit_test(test_no_pci_without_ecam),
		cmocka_unit_test(test_rejects_bad_cpu_counts),
		cmocka_unit_test(test_rejects_bad_configs),
		cmocka_unit_test(test_buffer_too_small),
		cmocka_unit_test(test_one_byte_short_exact_allocation),
		cmocka_unit_test(test_aml_integer_forms),
		cmocka_unit_test(test_aml_names_and_eisaid),
		cmocka_unit_test(test_aml_pkglen_boundaries),
		cmocka_unit_test(test_checksum_helper),
	};
	return cmocka_run_group_tests_name("acpi", tests, NULL, NULL);
}
