/* Guest CPUID: what KVM supports, adjusted so the guest sees the right topology and KVM's PV features. */
#ifndef VIRTUS_CPUID_H
#define VIRTUS_CPUID_H

#include <linux/kvm.h>
#include <stdint.h>

#include "lib/err.h"

#define CPUID_MAX_ENTRIES 256

#define KVM_CPUID_SIGNATURE 0x40000000
#define KVM_CPUID_FEATURES  0x40000001
#define KVM_FEATURE_CLOCKSOURCE2  3
#define KVM_FEATURE_STEAL_TIME    5
#define KVM_FEATURE_PV_EOI        6
#define KVM_FEATURE_PV_UNHALT     7

/* struct kvm_cpuid2 followed by its entries. */
struct cpuid_table {
	struct kvm_cpuid2 hdr;
	struct kvm_cpuid_entry2 entries[CPUID_MAX_ENTRIES];
};

/* What KVM supports, plus the TSC-deadline timer where KVM emulates one (below). */
int cpuid_get_supported(int kvm_fd, struct cpuid_table *t, vt_err *err);
/* Leaf 1 ECX bit 24. KVM_GET_SUPPORTED_CPUID leaves it out before Linux 6.15 even where the in-kernel LAPIC
 * emulates the timer (KVM_CAP_TSC_DEADLINE_TIMER; QEMU and Firecracker set it themselves), so on such hosts
 * the guest fell back to the LAPIC's one-shot mode, which it calibrates at boot and arms through TMICT;
 * KVM's exit fast path takes TSC-deadline writes, not TMICT's. */
void cpuid_offer_tsc_deadline(struct cpuid_table *t);

/* Rewrite t in place for vCPU `index` of `ncpus`: APIC IDs, core counts (leaves 1, 4, 0xB, 0x1F,
 * 0x80000008, 0x8000001E), the hypervisor bit, the KVM signature leaf, no PMU. Pure: no ioctls. */
void cpuid_adjust(struct cpuid_table *t, unsigned index, unsigned ncpus);

struct kvm_cpuid_entry2 *cpuid_find(struct cpuid_table *t, uint32_t function, uint32_t index);

#endif
