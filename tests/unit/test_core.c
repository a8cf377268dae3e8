/* Guest-memory bounds checks, CPUID adjustment, size parsing, error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "lib/util.h"
#include "vmm/cpuid.h"
#include "vmm/guest_mem.h"
#include "vmm/layout.h"

static void guest_mem_bounds(void **state)
{
	(void)state;
	struct guest_mem m;
	uint8_t *base = (uint8_t *)0x10000000; /* never dereferenced */
	gmem_init_fixed(&m, base, 4 * GiB);  /* 3 GiB low + 1 GiB at 4 GiB */
	assert_int_equal(m.nregions, 2);
	assert_ptr_equal(gmem_ptr(&m, 0, 1), base);
	assert_ptr_equal(gmem_ptr(&m, 3 * GiB - 8, 8), base + 3 * GiB - 8);
	assert_null(gmem_ptr(&m, 3 * GiB - 8, 9));          /* runs into the MMIO hole */
	assert_null(gmem_ptr(&m, 3 * GiB, 1));              /* in the hole */
	assert_null(gmem_ptr(&m, LAYOUT_LAPIC, 4));
	assert_ptr_equal(gmem_ptr(&m, 4 * GiB, 4096), base + 3 * GiB);
	assert_ptr_equal(gmem_ptr(&m, 5 * GiB - 1, 1), base + 4 * GiB - 1);
	assert_null(gmem_ptr(&m, 5 * GiB - 1, 2));          /* past the end */
	assert_null(gmem_ptr(&m, 5 * GiB, 0));
	assert_null(gmem_ptr(&m, UINT64_MAX, 1));           /* no wrap-around */
	assert_null(gmem_ptr(&m, 4096, UINT64_MAX));
	assert_null(gmem_ptr(&m, UINT64_MAX - 4095, 8192));
	assert_ptr_equal(gmem_ptr(&m, 100, 0), base + 100); /* empty range inside RAM is fine */
	assert_int_equal(gmem_low_end(&m), 3 * GiB);
}

static void guest_mem_read_write(void **state)
{
	(void)state;
	static uint8_t ram[8 * 4096];
	struct guest_mem m;
	gmem_init_fixed(&m, ram, sizeof(ram));
	assert_int_equal(gmem_write(&m, 100, "abc", 3), 0);
	char out[4] = { 0 };
	assert_int_equal(gmem_read(&m, 100, out, 3), 0);
	assert_string_equal(out, "abc");
	assert_int_equal(gmem_write(&m, sizeof(ram) - 2, "abc", 3), -1);
	assert_int_equal(gmem_read(&m, sizeof(ram), out, 1), -1);
}

static void guest_mem_init_rejects(void **state)
{
	(void)state;
	struct guest_mem m;
	vt_err err;
	assert_int_equal(gmem_init(&m, 0, 0, &err), -1);
	assert_non_null(strstr(err.msg, "at least"));
	assert_int_equal(gmem_init(&m, 64 * MiB + 1, 0, &err), -1);
	assert_int_equal(gmem_init(&m, 1ULL << 50, 0, &err), -1); /* a petabyte: the host refuses */
	assert_non_null(strstr(err.msg, "cannot map"));
	assert_int_equal(gmem_init(&m, 64 * MiB, 0, &err), 0);
	assert_int_equal(m.ram_size, 64 * MiB);
	gmem_free(&m);
}

/* Whether the mapping at addr carries VmFlags "mg" (MADV_MERGEABLE) in /proc/self/smaps. */
static bool mapping_mergeable(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false, mg = false;
	unsigned long lo, hi;
	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = (unsigned long)addr >= lo && (unsigned long)addr < hi;
		else if (in && !strncmp(line, "VmFlags:", 8))
			mg = strstr(line, " mg") != NULL;
	}
	if (f)
		fclose(f);
	return mg;
}

/* KSM is off unless asked for: merged pages are a cross-VM side channel. */
static void guest_mem_mergeable_only_when_asked(void **state)
{
	(void)state;
	struct guest_mem m;
	vt_err err;
	assert_int_equal(gmem_init(&m, 64 * MiB, 0, &err), 0);
	assert_false(mapping_mergeable(m.mapping));
	gmem_free(&m);
	if (access("/sys/kernel/mm/ksm", F_OK) != 0) {
		assert_int_equal(gmem_init(&m, 64 * MiB, GMEM_MERGEABLE, &err), -1); /* asked for, impossible: said */
		assert_non_null(strstr(err.msg, "KSM"));
		return;
	}
	assert_int_equal(gmem_init(&m, 64 * MiB, GMEM_MERGEABLE, &err), 0);
	assert_true(mapping_mergeable(m.mapping));
	gmem_free(&m);
}

static struct cpuid_table *table_with(void)
{
	static struct cpuid_table t;
	memset(&t, 0, sizeof(t));
	struct kvm_cpuid_entry2 e[] = {
		{ .function = 1, .eax = 0x806f8, .ebx = 0x00000800, .ecx = 0x7ffafbff, .edx = 0x0f8bfbff },
		{ .function = 4, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 0x1c004121 },
		{ .function = 4, .index = 3, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 0x1c03c163 },
		{ .function = 0xa, .eax = 0x07300402, .ebx = 0x5, .edx = 0x603 },
		{ .function = 0xb, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 1, .ebx = 2 },
		{ .function = 0xb, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 7, .ebx = 56 },
		{ .function = 0xb, .index = 2, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX },
		{ .function = KVM_CPUID_SIGNATURE },
		{ .function = KVM_CPUID_FEATURES, .eax = (1u << KVM_FEATURE_CLOCKSOURCE2) | (1u << KVM_FEATURE_PV_EOI) },
		{ .function = 0x80000001, .ecx = 0x75c237ff },   /* an AMD EPYC's, PerfCtrExtCore/NB/LLC set */
		{ .function = 0x80000008, .eax = 0x3030, .ecx = 0x7007 },
		{ .function = 0x80000022, .eax = 0x3, .ebx = 0x1026 },
	};
	memcpy(t.entries, e, sizeof(e));
	t.hdr.nent = ARRAY_SIZE(e);
	return &t;
}

static void cpuid_topology(void **state)
{
	(void)state;
	struct cpuid_table *t = table_with();
	cpuid_adjust(t, 2, 4);
	struct kvm_cpuid_entry2 *l1 = cpuid_find(t, 1, 0);
	assert_int_equal(l1->ebx >> 24, 2);            /* initial APIC ID = vCPU index */
	assert_int_equal((l1->ebx >> 16) & 0xff, 4);   /* logical processors */
	assert_int_equal(l1->ebx & 0xffff, 0x0800);    /* CLFLUSH size kept */
	assert_true(l1->ecx & (1u << 31));             /* hypervisor present */
	assert_true(l1->edx & (1u << 28));             /* HTT */
	assert_int_equal(cpuid_find(t, 4, 0)->eax >> 26, 3);          /* cores per package - 1 */
	assert_int_equal((cpuid_find(t, 4, 0)->eax >> 14) & 0xfff, 0); /* L1 is per core */
	assert_int_equal((cpuid_find(t, 4, 3)->eax >> 14) & 0xfff, 3); /* L3 shared by all */
	assert_int_equal(cpuid_find(t, 4, 3)->eax & 0x3fff, 0x0163);   /* cache description kept */
	struct kvm_cpuid_entry2 *smt = cpuid_find(t, 0xb, 0), *core = cpuid_find(t, 0xb, 1), *end = cpuid_find(t, 0xb, 2);
	assert_int_equal(smt->ebx, 1);
	assert_int_equal(smt->ecx >> 8, 1);
	assert_int_equal(core->eax, 2);                /* shift: 4 CPUs need 2 bits */
	assert_int_equal(core->ebx, 4);
	assert_int_equal(core->ecx >> 8, 2);
	assert_int_equal(core->edx, 2);                /* x2APIC ID */
	assert_int_equal(end->ecx >> 8, 0);
	assert_int_equal(cpuid_find(t, 0xa, 0)->eax, 0); /* no PMU */
	assert_int_equal(cpuid_find(t, 0x80000001, 0)->ecx, 0x75c237ff & ~((1u << 23) | (1u << 24) | (1u << 28)));
	assert_int_equal(cpuid_find(t, 0x80000022, 0)->eax, 0); /* no AMD PerfMonV2 */
	assert_int_equal(cpuid_find(t, 0x80000008, 0)->ecx & 0xff, 3);
	struct kvm_cpuid_entry2 *sig = cpuid_find(t, KVM_CPUID_SIGNATURE, 0);
	char s[13] = { 0 };
	memcpy(s, &sig->ebx, 4), memcpy(s + 4, &sig->ecx, 4), memcpy(s + 8, &sig->edx, 4);
	assert_string_equal(s, "KVMKVMKVM");
	assert_int_equal(sig->eax, KVM_CPUID_FEATURES);
	assert_true(cpuid_find(t, KVM_CPUID_FEATURES, 0)->eax & (1u << KVM_FEATURE_PV_EOI));
}

static void cpuid_single_cpu(void **state)
{
	(void)state;
	struct cpuid_table *t = table_with();
	cpuid_adjust(t, 0, 1);
	assert_int_equal(cpuid_find(t, 1, 0)->ebx >> 24, 0);
	assert_int_equal(cpuid_find(t, 0xb, 1)->eax, 0);
	assert_int_equal(cpuid_find(t, 0xb, 1)->ebx, 1);
	assert_int_equal(cpuid_find(t, 4, 0)->eax >> 26, 0);
	assert_null(cpuid_find(t, 0x12345, 0));
}

/* The TSC-deadline bit joins leaf 1's other bits; a table without leaf 1 stays as it was. */
static void cpuid_tsc_deadline(void **state)
{
	(void)state;
	struct cpuid_table *t = table_with();
	uint32_t ecx = cpuid_find(t, 1, 0)->ecx;
	cpuid_offer_tsc_deadline(t);
	assert_int_equal(cpuid_find(t, 1, 0)->ecx, ecx | (1u << 24));
	struct cpuid_table empty = { .hdr.nent = 0 };
	cpuid_offer_tsc_deadline(&empty);
	assert_int_equal(empty.hdr.nent, 0);
}

static void sizes(void **state)
{
	(void)state;
	uint64_t v;
	vt_err err;
	assert_int_equal(parse_size("512M", &v, &err), 0);
	assert_int_equal(v, 512 * MiB);
	assert_int_equal(parse_size("2G", &v, &err), 0);
	assert_int_equal(v, 2 * GiB);
	assert_int_equal(parse_size("2GiB", &v, &err), 0);
	assert_int_equal(parse_size("64k", &v, &err), 0);
	assert_int_equal(v, 64 * KiB);
	assert_int_equal(parse_size("4096", &v, &err), 0);
	assert_int_equal(v, 4096);
	const char *bad[] = { "", "0", "0M", "-1G", "12X", "1 G", "G", "1GG", "99999999999999999999", "17179869184G", NULL };
	for (const char **b = bad; *b; b++) {
		assert_int_equal(parse_size(*b, &v, &err), -1);
		assert_non_null(strstr(err.msg, "size"));
	}
	assert_int_equal(parse_uint("7", 1, 8, &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(parse_uint("0", 1, 8, &v), -1);
	assert_int_equal(parse_uint("9", 1, 8, &v), -1);
	assert_int_equal(parse_uint("3x", 1, 8, &v), -1);
	assert_int_equal(parse_uint("-3", 0, 8, &v), -1);
}

static void error_prefix(void **state)
{
	(void)state;
	vt_err err;
	assert_int_equal(vt_fail(&err, "bad %s", "thing"), -1);
	assert_int_equal(vt_err_prefix(&err, "loading %d", 7), -1);
	assert_string_equal(err.msg, "loading 7: bad thing");
	char long_prefix[2 * VT_ERR_MSG_MAX];
	memset(long_prefix, 'p', sizeof(long_prefix) - 1);
	long_prefix[sizeof(long_prefix) - 1] = 0;
	vt_err_prefix(&err, "%s", long_prefix); /* truncates, never overflows */
	assert_int_equal(strlen(err.msg), VT_ERR_MSG_MAX - 1);
	vt_fail_errno(&err, 2, "open %s", "x");
	assert_string_equal(err.msg, "open x: No such file or directory");
	assert_int_equal(vt_fail(NULL, "ignored"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(guest_mem_bounds),
		cmocka_unit_test(guest_mem_read_write),
		cmocka_unit_test(guest_mem_init_rejects),
		cmocka_unit_test(guest_mem_mergeable_only_when_asked),
		cmocka_unit_test(cpuid_topology),
		cmocka_unit_test(cpuid_single_cpu),
		cmocka_unit_test(cpuid_tsc_deadline),
		cmocka_unit_test(sizes),
		cmocka_unit_test(error_prefix),
	};
	return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
