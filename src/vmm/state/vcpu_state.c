/* A vCPU's state in a snapshot: what KVM holds for it, read and written in the order KVM needs (sregs
 * before MSRs, since EFER is in sregs; the LAPIC before the events and MSRs that depend on it, such as the
 * TSC deadline; CPUID was set when the vCPU was made, from the same configuration). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "lib/util.h"
#include "vmm/state/snapshot.h"

#define VCPU_STATE_VERSION 1
#define MAX_MSRS 512

struct msr_list {
	struct kvm_msrs hdr;
	struct kvm_msr_entry e[MAX_MSRS];
};

static void section_name(char *out, size_t len, unsigned index, const char *part)
{
	snprintf(out, len, "vcpu%u.%s", index, part);
}

/* The MSRs KVM says a VMM should save, read one by one where a batch stops at one it cannot read. */
static int read_msrs(struct vcpu *v, struct msr_list *m, vt_err *err)
{
	struct { struct kvm_msr_list hdr; uint32_t idx[MAX_MSRS]; } list = { .hdr.nmsrs = MAX_MSRS };
	if (ioctl(v->vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, &list) < 0)
		return vt_fail_errno(err, errno, "KVM_GET_MSR_INDEX_LIST");
	m->hdr.nmsrs = 0;
	for (uint32_t i = 0; i < list.hdr.nmsrs; i++) {
		struct { struct kvm_msrs hdr; struct kvm_msr_entry e; } one = { .hdr.nmsrs = 1, .e.index = list.idx[i] };
		if (ioctl(v->fd, KVM_GET_MSRS, &one) == 1)
			m->e[m->hdr.nmsrs++] = one.e;
	}
	return 0;
}

static int xsave_size(struct vcpu *v)
{
	int size = ioctl(v->vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	return size > (int)sizeof(struct kvm_xsave) ? size : (int)sizeof(struct kvm_xsave);
}

/* The fixed-size parts, in the order a restore sets them (XSAVE and the MSRs, of variable size, are placed
 * by hand: XSAVE after regs, the MSRs after sregs). One table serves both directions, so a part cannot be
 * saved and forgotten on restore. */
struct vcpu_fixed_state {
	struct kvm_regs regs;
	struct kvm_xcrs xcrs;
	struct kvm_sregs sregs;
	struct kvm_mp_state mp;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_debugregs dbg;
};

static const struct vcpu_part {
	const char *name;
	unsigned long get, set;
	size_t offset, size;
} fixed_parts[] = {
#define PART(name, field, get, set) { name, get, set, offsetof(struct vcpu_fixed_state, field), \
				      sizeof(((struct vcpu_fixed_state *)0)->field) }
	PART("regs", regs, KVM_GET_REGS, KVM_SET_REGS),
	PART("xcrs", xcrs, KVM_GET_XCRS, KVM_SET_XCRS),
	PART("sregs", sregs, KVM_GET_SREGS, KVM_SET_SREGS),
	PART("mpstate", mp, KVM_GET_MP_STATE, KVM_SET_MP_STATE),
	PART("lapic", lapic, KVM_GET_LAPIC, KVM_SET_LAPIC),
	PART("events", events, KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS),
	PART("debugregs", dbg, KVM_GET_DEBUGREGS, KVM_SET_DEBUGREGS),
#undef PART
};
#define PART_REGS 0
#define PART_SREGS 2

int vcpu_state_save(struct vcpu *v, struct state_writer *w, vt_err *err)
{
	struct vcpu_fixed_state st;
	int xs = xsave_size(v);
	cleanup_free struct msr_list *msrs = calloc(1, sizeof(*msrs));
	cleanup_free void *xsave = calloc(1, (size_t)xs);
	if (!msrs || !xsave)
		return vt_fail_errno(err, ENOMEM, "vCPU %u state", v->index);
	for (size_t i = 0; i < ARRAY_SIZE(fixed_parts); i++)
		if (ioctl(v->fd, fixed_parts[i].get, (uint8_t *)&st + fixed_parts[i].offset) < 0)
			return vt_fail_errno(err, errno, "vCPU %u: reading %s", v->index, fixed_parts[i].name);
	if (ioctl(v->fd, xs > (int)sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE, xsave) < 0)
		return vt_fail_errno(err, errno, "vCPU %u: reading xsave", v->index);
	if (read_msrs(v, msrs, err) < 0)
		return -1;
	char name[STATE_NAME_MAX + 1];
	for (size_t i = 0; i < ARRAY_SIZE(fixed_parts); i++) {
		section_name(name, sizeof(name), v->index, fixed_parts[i].name);
		state_put(w, name, VCPU_STATE_VERSION, (uint8_t *)&st + fixed_parts[i].offset, fixed_parts[i].size);
	}
	section_name(name, sizeof(name), v->index, "xsave");
	state_put(w, name, VCPU_STATE_VERSION, xsave, (uint64_t)xs);
	section_name(name, sizeof(name), v->index, "msrs");
	state_put(w, name, VCPU_STATE_VERSION, msrs, sizeof(msrs->hdr) + msrs->hdr.nmsrs * sizeof(msrs->e[0]));
	return 0;
}

static int set_part(struct vcpu *v, const struct state_reader *r, const char *part, unsigned long req, void *buf,
		    uint64_t len, vt_err *err)
{
	char name[STATE_NAME_MAX + 1];
	section_name(name, sizeof(name), v->index, part);
	if (state_get(r, name, VCPU_STATE_VERSION, buf, len, err) < 0)
		return -1;
	if (ioctl(v->fd, req, buf) < 0)
		return vt_fail_errno(err, errno, "vCPU %u: restoring %s", v->index, part);
	return 0;
}

#define MSR_IA32_TSC_DEADLINE 0x6e0

/* Set the MSRs in m that are (deadline: true) or are not (false) the TSC deadline. KVM ignores a TSC
 * deadline written while the LAPIC timer is not in TSC-deadline mode, so that one waits until the LAPIC is
 * restored: set before it, the guest's next timer interrupt would never come. */
static int put_msrs(struct vcpu *v, const struct msr_list *all, bool deadline, vt_err *err)
{
	cleanup_free struct msr_list *m = calloc(1, sizeof(*m));
	if (!m)
		return vt_fail_errno(err, ENOMEM, "MSRs");
	for (uint32_t i = 0; i < all->hdr.nmsrs; i++)
		if ((all->e[i].index == MSR_IA32_TSC_DEADLINE) == deadline)
			m->e[m->hdr.nmsrs++] = all->e[i];
	int n = ioctl(v->fd, KVM_SET_MSRS, m);
	if (n != (int)m->hdr.nmsrs)
		return vt_fail(err, "vCPU %u: KVM refused MSR 0x%x (restored %d of %u): the snapshot is from another host?",
			       v->index, n >= 0 && (uint32_t)n < m->hdr.nmsrs ? m->e[n].index : 0, n, m->hdr.nmsrs);
	return 0;
}

static int set_msrs(struct vcpu *v, const struct state_reader *r, bool deadline, vt_err *err)
{
	char name[STATE_NAME_MAX + 1];
	section_name(name, sizeof(name), v->index, "msrs");
	const struct state_section *s = state_find(r, name, VCPU_STATE_VERSION, err);
	if (!s)
		return -1;
	cleanup_free struct msr_list *m = calloc(1, sizeof(*m));
	if (!m)
		return vt_fail_errno(err, ENOMEM, "MSRs");
	if (s->len < sizeof(m->hdr) || s->len > sizeof(*m))
		return vt_fail(err, "snapshot section %s has a bad size", name);
	memcpy(m, s->data, s->len);
	if (m->hdr.nmsrs > MAX_MSRS || s->len != sizeof(m->hdr) + m->hdr.nmsrs * sizeof(m->e[0]))
		return vt_fail(err, "snapshot section %s does not hold the MSRs it counts", name);
	return put_msrs(v, m, deadline, err);
}

int vcpu_state_load(struct vcpu *v, const struct state_reader *r, vt_err *err)
{
	struct vcpu_fixed_state st;
	int xs = xsave_size(v);
	cleanup_free void *xsave = calloc(1, (size_t)xs);
	if (!xsave)
		return vt_fail_errno(err, ENOMEM, "vCPU %u state", v->index);
	for (size_t i = 0; i < ARRAY_SIZE(fixed_parts); i++) {
		const struct vcpu_part *p = &fixed_parts[i];
		if (set_part(v, r, p->name, p->set, (uint8_t *)&st + p->offset, p->size, err) < 0)
			return -1;
		if (i == PART_REGS && set_part(v, r, "xsave", KVM_SET_XSAVE, xsave, (uint64_t)xs, err) < 0)
			return -1;
		if (i == PART_SREGS && set_msrs(v, r, false, err) < 0) /* EFER (in sregs) first */
			return -1;
	}
	return set_msrs(v, r, true, err); /* the TSC deadline, after the LAPIC */
}
