/* A vCPU's state in a snapshot: what KVM holds for it, read and written in the order KVM needs (sregs
 * before MSRs, since EFER is in sregs; the LAPIC before the events and MSRs that depend on it, such as the
 * TSC deadline; CPUID was set when the vCPU was made, from the same configuration). */
#include <errno.h>
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

int vcpu_state_save(struct vcpu *v, struct state_writer *w, vt_err *err)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	struct kvm_debugregs dbg;
	int xs = xsave_size(v);
	cleanup_free struct msr_list *msrs = calloc(1, sizeof(*msrs));
	cleanup_free void *xsave = calloc(1, (size_t)xs);
	if (!msrs || !xsave)
		return vt_fail_errno(err, ENOMEM, "vCPU %u state", v->index);
	unsigned long xsave_req = xs > (int)sizeof(struct kvm_xsave) ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;
	struct { unsigned long req; void *arg; const char *what; } gets[] = {
		{ KVM_GET_REGS, &regs, "KVM_GET_REGS" }, { KVM_GET_SREGS, &sregs, "KVM_GET_SREGS" },
		{ xsave_req, xsave, "KVM_GET_XSAVE" }, { KVM_GET_XCRS, &xcrs, "KVM_GET_XCRS" },
		{ KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC" }, { KVM_GET_VCPU_EVENTS, &events, "KVM_GET_VCPU_EVENTS" },
		{ KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE" }, { KVM_GET_DEBUGREGS, &dbg, "KVM_GET_DEBUGREGS" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(gets); i++)
		if (ioctl(v->fd, gets[i].req, gets[i].arg) < 0)
			return vt_fail_errno(err, errno, "vCPU %u: %s", v->index, gets[i].what);
	if (read_msrs(v, msrs, err) < 0)
		return -1;
	char name[STATE_NAME_MAX + 1];
	struct { const char *part; const void *data; uint64_t len; } parts[] = {
		{ "regs", &regs, sizeof(regs) }, { "sregs", &sregs, sizeof(sregs) }, { "xsave", xsave, (uint64_t)xs },
		{ "xcrs", &xcrs, sizeof(xcrs) }, { "msrs", msrs, sizeof(msrs->hdr) + msrs->hdr.nmsrs * sizeof(msrs->e[0]) },
		{ "mpstate", &mp, sizeof(mp) }, { "lapic", &lapic, sizeof(lapic) }, { "events", &events, sizeof(events) },
		{ "debugregs", &dbg, sizeof(dbg) },
	};
	for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
		section_name(name, sizeof(name), v->index, parts[i].part);
		state_put(w, name, VCPU_STATE_VERSION, parts[i].data, parts[i].len);
	}
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

static int set_msrs(struct vcpu *v, const struct state_reader *r, vt_err *err)
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
	if (s->len != sizeof(m->hdr) + m->hdr.nmsrs * sizeof(m->e[0]))
		return vt_fail(err, "snapshot section %s does not hold the MSRs it counts", name);
	int n = ioctl(v->fd, KVM_SET_MSRS, m);
	if (n != (int)m->hdr.nmsrs)
		return vt_fail(err, "vCPU %u: KVM refused MSR 0x%x (restored %d of %u): the snapshot is from another host?",
			       v->index, n >= 0 && (uint32_t)n < m->hdr.nmsrs ? m->e[n].index : 0, n, m->hdr.nmsrs);
	return 0;
}

int vcpu_state_load(struct vcpu *v, const struct state_reader *r, vt_err *err)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events events;
	struct kvm_mp_state mp;
	struct kvm_debugregs dbg;
	int xs = xsave_size(v);
	cleanup_free void *xsave = calloc(1, (size_t)xs);
	if (!xsave)
		return vt_fail_errno(err, ENOMEM, "vCPU %u state", v->index);
	if (set_part(v, r, "regs", KVM_SET_REGS, &regs, sizeof(regs), err) < 0 ||
	    set_part(v, r, "xsave", KVM_SET_XSAVE, xsave, (uint64_t)xs, err) < 0 ||
	    set_part(v, r, "xcrs", KVM_SET_XCRS, &xcrs, sizeof(xcrs), err) < 0 ||
	    set_part(v, r, "sregs", KVM_SET_SREGS, &sregs, sizeof(sregs), err) < 0 || set_msrs(v, r, err) < 0 ||
	    set_part(v, r, "mpstate", KVM_SET_MP_STATE, &mp, sizeof(mp), err) < 0 ||
	    set_part(v, r, "lapic", KVM_SET_LAPIC, &lapic, sizeof(lapic), err) < 0 ||
	    set_part(v, r, "events", KVM_SET_VCPU_EVENTS, &events, sizeof(events), err) < 0 ||
	    set_part(v, r, "debugregs", KVM_SET_DEBUGREGS, &dbg, sizeof(dbg), err) < 0)
		return -1;
	return 0;
}
