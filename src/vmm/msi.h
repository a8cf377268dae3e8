/* MSI delivery through KVM: each device vector owns a GSI whose route (KVM_SET_GSI_ROUTING, MSI entry) is
 * rewritten whenever the guest programs its MSI-X table entry, and an irqfd (KVM_IRQFD) bound to that GSI,
 * so the device thread raises an interrupt with one eventfd write and no ioctl. Also the ioeventfd helper
 * the transports use for queue kicks. */
#ifndef VIRTUS_MSI_H
#define VIRTUS_MSI_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/pci.h"
#include "lib/err.h"

#define MSI_GSI_BASE   24        /* GSIs 0..23 stay routed to the PIC/IOAPIC pins as KVM set them up */
#define MSI_MAX_ROUTES 128

struct msi_routes {
	int vm_fd;
	pthread_mutex_t lock;
	unsigned nmsi;                           /* MSI GSIs ever handed out: msi[0..nmsi) */
	bool used[MSI_MAX_ROUTES];               /* owned by a device's block (a removed device's are free again) */
	struct kvm_irq_routing_entry msi[MSI_MAX_ROUTES];
};

/* A device's block of vectors: vector v is GSI gsi_base + v, raised by writing irqfd[v]. */
struct msi_vectors {
	struct msi_routes *routes;
	unsigned gsi_base, n;
	unsigned reserved;       /* GSIs it holds in routes (n once created) */
	int irqfd[MSIX_MAX_VECTORS];
};

void msi_routes_init(struct msi_routes *r, int vm_fd);
void msi_routes_destroy(struct msi_routes *r);
/* n vectors with consecutive GSIs (the first free run: a device plugged after another was removed reuses its
 * GSIs). Any thread; devices are created and destroyed by one controlling thread. */
int msi_vectors_create(struct msi_routes *r, unsigned n, struct msi_vectors *out, vt_err *err);
/* Unbind and close the vectors' irqfds and free their GSIs (their routes leave KVM's table). */
void msi_vectors_destroy(struct msi_vectors *v);

/* msix_ops for a struct msi_vectors. */
extern const struct msix_ops msi_kvm_ops;

/* KVM_IOEVENTFD for a 2-byte write, without datamatch: to port addr if `port`, else to MMIO at gpa addr. */
int kvm_ioeventfd(int vm_fd, uint64_t addr, bool port, int fd, bool assign);

#endif
