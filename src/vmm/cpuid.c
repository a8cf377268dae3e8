#include "vmm/cpuid.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "lib/util.h"

#define CPUID_1_ECX_TSC_DEADLINE (1u << 24)

int cpuid_get_supported(int kvm_fd, struct cpuid_table *t, vt_err *err)
{
	memset(t, 0, sizeof(*t));
	t->hdr.nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, &t->hdr) < 0)
		return vt_fail_errno(err, errno, "KVM_GET_SUPPORTED_CPUID");
	if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0)
		cpuid_offer_tsc_deadline(t);
	return 0;
}

void cpuid_offer_tsc_deadline(struct cpuid_table *t)
{
	struct kvm_cpuid_entry2 *e = cpuid_find(t, 1, 0);
	if (e)
		e->ecx |= CPUID_1_ECX_TSC_DEADLINE;
}

struct kvm_cpuid_entry2 *cpuid_find(struct cpuid_table *t, uint32_t function, uint32_t index)
{
	for (uint32_t i = 0; i < t->hdr.nent; i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];
		bool indexed = e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
		if (e->function == function && (!indexed || e->index == index))
			return e;
	}
	return NULL;
}

/* CPUID 0x80000001 ECX: PerfCtrExtCore (23), PerfCtrExtNB (24), PerfCtrExtLLC (28). */
#define AMD_PERFCTR_EXT_BITS ((1u << 23) | (1u << 24) | (1u << 28))

static unsigned bits_for(unsigned n)
{
	unsigned b = 0;
	while ((1u << b) < n)
		b++;
	return b;
}

/* Leaves 0xB and 0x1F: level 0 = SMT (one thread per core), level 1 = cores, then the end marker. */
static void adjust_ext_topology(struct kvm_cpuid_entry2 *e, unsigned index, unsigned ncpus)
{
	e->edx = index;
	switch (e->index) {
	case 0:
		e->eax = 0, e->ebx = 1, e->ecx = (1u << 8) | 0;
		break;
	case 1:
		e->eax = bits_for(ncpus), e->ebx = ncpus, e->ecx = (2u << 8) | 1;
		break;
	default:
		e->eax = 0, e->ebx = 0, e->ecx = e->index;
		break;
	}
}

static void adjust_entry(struct kvm_cpuid_entry2 *e, unsigned index, unsigned ncpus)
{
	switch (e->function) {
	case 1:
		e->ebx = (e->ebx & 0x0000ffffu) | (index << 24) | ((ncpus & 0xff) << 16);
		e->ecx |= 1u << 31;                 /* running under a hypervisor */
		if (ncpus > 1)
			e->edx |= 1u << 28;         /* HTT: the count in EBX[23:16] is valid */
		break;
	case 4: {
		unsigned level = (e->eax >> 5) & 7;
		unsigned sharing = level >= 3 ? ncpus - 1 : 0;
		e->eax = (e->eax & 0x3fffu) | (MIN(ncpus - 1, 63u) << 26) | ((sharing & 0xfff) << 14);
		break;
	}
	case 0xa:
		e->eax = e->ebx = e->ecx = e->edx = 0; /* no PMU: nothing the guest could use cheaply */
		break;
	case 0xb:
	case 0x1f:
		adjust_ext_topology(e, index, ncpus);
		break;
	case 0x80000001:
		e->ecx &= ~AMD_PERFCTR_EXT_BITS;    /* no PMU on AMD either: no extended counters */
		break;
	case 0x80000022:
		e->eax = e->ebx = e->ecx = e->edx = 0; /* AMD PerfMonV2 */
		break;
	case 0x80000008:
		e->ecx = (e->ecx & ~0xf0ffu) | ((ncpus - 1) & 0xff);
		break;
	case 0x8000001e:
		e->eax = index, e->ebx = index & 0xff, e->ecx = 0;
		break;
	case KVM_CPUID_SIGNATURE:
		e->eax = KVM_CPUID_FEATURES;
		memcpy(&e->ebx, "KVMK", 4), memcpy(&e->ecx, "VMKV", 4), memcpy(&e->edx, "M\0\0\0", 4);
		break;
	default:
		break;
	}
}

void cpuid_adjust(struct cpuid_table *t, unsigned index, unsigned ncpus)
{
	for (uint32_t i = 0; i < t->hdr.nent; i++)
		adjust_entry(&t->entries[i], index, ncpus);
}
