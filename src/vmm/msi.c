#include "vmm/msi.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "lib/util.h"

#define IOAPIC_PINS 24
#define PIC_PINS    16

void msi_routes_init(struct msi_routes *r, int vm_fd)
{
	memset(r, 0, sizeof(*r));
	r->vm_fd = vm_fd;
	pthread_mutex_init(&r->lock, NULL);
}

void msi_routes_destroy(struct msi_routes *r)
{
	pthread_mutex_destroy(&r->lock);
}

static struct kvm_irq_routing_entry irqchip_route(uint32_t gsi, uint32_t chip, uint32_t pin)
{
	return (struct kvm_irq_routing_entry){ .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
					       .u.irqchip = { .irqchip = chip, .pin = pin } };
}

/* KVM_SET_GSI_ROUTING replaces the whole table, so it must repeat the default pin routes KVM_CREATE_IRQCHIP
 * made (GSI 0..15 to both PICs and the IOAPIC, 16..23 to the IOAPIC) or the serial IRQ would stop working.
 * Caller holds r->lock. */
static int commit_routes(struct msi_routes *r)
{
	size_t max = PIC_PINS + IOAPIC_PINS + r->nmsi;
	struct kvm_irq_routing *t = calloc(1, sizeof(*t) + max * sizeof(t->entries[0]));
	if (!t)
		return -1;
	unsigned n = 0;
	for (uint32_t gsi = 0; gsi < PIC_PINS; gsi++)
		t->entries[n++] = irqchip_route(gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8);
	for (uint32_t gsi = 0; gsi < IOAPIC_PINS; gsi++)
		t->entries[n++] = irqchip_route(gsi, KVM_IRQCHIP_IOAPIC, gsi);
	for (unsigned i = 0; i < r->nmsi; i++)
		if (r->msi[i].type == KVM_IRQ_ROUTING_MSI)
			t->entries[n++] = r->msi[i];
	t->nr = n;
	int rc = ioctl(r->vm_fd, KVM_SET_GSI_ROUTING, t);
	free(t);
	return rc;
}

static int set_route(void *opaque, unsigned vector, uint64_t addr, uint32_t data)
{
	struct msi_vectors *v = opaque;
	struct msi_routes *r = v->routes;
	unsigned i = v->gsi_base - MSI_GSI_BASE + vector;
	pthread_mutex_lock(&r->lock);
	r->msi[i] = (struct kvm_irq_routing_entry){
		.gsi = v->gsi_base + vector, .type = KVM_IRQ_ROUTING_MSI,
		.u.msi = { .address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data },
	};
	int rc = commit_routes(r);
	pthread_mutex_unlock(&r->lock);
	return rc;
}

static void signal_vector(void *opaque, unsigned vector)
{
	struct msi_vectors *v = opaque;
	uint64_t one = 1;
	if (vector < v->n && write(v->irqfd[vector], &one, sizeof(one)) < 0) {
		/* only on counter overflow: the interrupt is pending anyway */
	}
}

const struct msix_ops msi_kvm_ops = { .set_route = set_route, .signal = signal_vector };

static int bind_irqfd(int vm_fd, int fd, unsigned gsi, bool assign)
{
	struct kvm_irqfd irqfd = { .fd = (uint32_t)fd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN };
	return ioctl(vm_fd, KVM_IRQFD, &irqfd);
}

/* The first run of n free GSIs, as an index into r->msi; -1 if none. Caller holds r->lock. */
static int free_run(const struct msi_routes *r, unsigned n)
{
	for (unsigned start = 0; start + n <= MSI_MAX_ROUTES; start++) {
		unsigned k = 0;
		while (k < n && !r->used[start + k])
			k++;
		if (k == n)
			return (int)start;
		start += k; /* past the used entry */
	}
	return -1;
}

static int reserve_run(struct msi_routes *r, unsigned n, vt_err *err)
{
	pthread_mutex_lock(&r->lock);
	int at = n <= MSIX_MAX_VECTORS ? free_run(r, n) : -1;
	for (unsigned i = 0; at >= 0 && i < n; i++)
		r->used[at + i] = true;
	if (at >= 0 && (unsigned)at + n > r->nmsi)
		r->nmsi = (unsigned)at + n;
	pthread_mutex_unlock(&r->lock);
	if (at < 0)
		return vt_fail(err, "out of MSI vectors (%u more wanted, %d in all)", n, MSI_MAX_ROUTES);
	return at;
}

int msi_vectors_create(struct msi_routes *r, unsigned n, struct msi_vectors *out, vt_err *err)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < MSIX_MAX_VECTORS; i++)
		out->irqfd[i] = -1;
	int at = reserve_run(r, n, err);
	if (at < 0)
		return -1;
	out->routes = r;
	out->gsi_base = MSI_GSI_BASE + (unsigned)at;
	out->reserved = n;
	for (unsigned i = 0; i < n; i++, out->n++) {
		if ((out->irqfd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
			return vt_fail_errno(err, errno, "eventfd for an MSI vector");
		if (bind_irqfd(r->vm_fd, out->irqfd[i], out->gsi_base + i, true) < 0)
			return vt_fail_errno(err, errno, "KVM_IRQFD (GSI %u)", out->gsi_base + i);
	}
	return 0;
}

void msi_vectors_destroy(struct msi_vectors *v)
{
	for (unsigned i = 0; i < MSIX_MAX_VECTORS; i++) {
		if (v->irqfd[i] < 0)
			continue;
		if (v->routes)
			bind_irqfd(v->routes->vm_fd, v->irqfd[i], v->gsi_base + i, false);
		close(v->irqfd[i]);
		v->irqfd[i] = -1;
	}
	struct msi_routes *r = v->routes;
	if (!r || !v->reserved)
		return;
	pthread_mutex_lock(&r->lock);
	bool routed = false;
	for (unsigned i = 0; i < v->reserved; i++) {
		unsigned k = v->gsi_base - MSI_GSI_BASE + i;
		routed |= r->msi[k].type == KVM_IRQ_ROUTING_MSI;
		r->msi[k] = (struct kvm_irq_routing_entry){ 0 };
		r->used[k] = false;
	}
	if (routed)
		commit_routes(r);
	pthread_mutex_unlock(&r->lock);
	v->reserved = 0;
}

int kvm_ioeventfd(int vm_fd, uint64_t addr, bool port, int fd, bool assign)
{
	struct kvm_ioeventfd io = { .addr = addr, .len = 2, .fd = fd,
				    .flags = (port ? KVM_IOEVENTFD_FLAG_PIO : 0) | (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN) };
	return ioctl(vm_fd, KVM_IOEVENTFD, &io);
}
