/* A VM configured through the API before it starts, as Firecracker's clients do: `virtus vm run
 * --api-socket PATH` without --kernel serves the pre-boot resources (PUT /boot-source, /machine-config,
 * /drives/ID, /network-interfaces/ID, /vsock, /balloon), GET / ("Not started") and GET /vm/config, and
 * PUT /actions InstanceStart, which builds and starts the VM through the caller's start function, or PUT
 * /snapshot/load (Firecracker's LoadSnapshot), which starts the VM a snapshot holds instead. Each PUT
 * is checked field by field at once; what needs the host (files, KVM) is checked by the start, whose error
 * is the InstanceStart's answer (the VM stays unstarted and can be configured again). */
#ifndef VIRTUS_API_PREBOOT_H
#define VIRTUS_API_PREBOOT_H

#include <limits.h>
#include <stdbool.h>

#include "api/http.h"
#include "vmm/boot/boot.h"
#include "vmm/vm.h"

struct preboot {
	struct vm_config *cfg;       /* the run's configuration, filled in place */
	const char *id, *version;    /* GET /'s answers */
	/* InstanceStart: build and start the VM from cfg; 0 once it runs */
	int (*start)(void *opaque, vt_err *err);
	/* PUT /snapshot/load: build the VM a snapshot holds and start it (paused unless resume); 0 once it is */
	int (*load)(void *opaque, const char *state_path, const char *mem_path, bool resume, vt_err *err);
	void *start_opaque;
	bool started;
	bool killed;                 /* PUT /actions Kill: the VMM ends, unstarted */
	/* what the configuration's strings point into */
	char kernel[PATH_MAX], initrd[PATH_MAX], cmdline[BOOT_CMDLINE_MAX + 1];
	struct preboot_drive { char id[32]; char path[PATH_MAX]; bool readonly, root; } drive[VM_MAX_DISKS];
	unsigned ndrives;
	struct preboot_net { char id[32]; char spec[96]; } net[VM_MAX_NETS];
	unsigned nnets;
	char vsock_path[108];
};

/* cfg keeps its defaults (1 vCPU, 512 MiB) until the API changes them. */
void preboot_init(struct preboot *p, struct vm_config *cfg, const char *id, const char *version,
		  int (*start)(void *opaque, vt_err *err),
		  int (*load)(void *opaque, const char *state_path, const char *mem_path, bool resume, vt_err *err),
		  void *start_opaque);
/* An api_handler_fn; opaque is a struct preboot. */
void preboot_handle(void *opaque, const struct api_request *req, struct api_reply *reply);

#endif
