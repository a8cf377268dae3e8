/* The VM API's routes: Firecracker's published endpoints (and virtus extensions in the same style) mapped
 * onto a running VM. Transport: api/http.h. Endpoints and their answers: docs/api.md. */
#ifndef VIRTUS_API_VM_API_H
#define VIRTUS_API_VM_API_H

#include "api/http.h"
#include "vmm/vm.h"

struct vm_api {
	struct vm *vm;               /* the running VM */
	const struct vm_config *cfg; /* what it was built from */
	const char *id;              /* its name */
	const char *version;         /* virtus's version */
	long long started;           /* wall clock, seconds */
};

/* An api_handler_fn; opaque is a struct vm_api. */
void vm_api_handle(void *opaque, const struct api_request *req, struct api_reply *reply);

/* "Running", "Paused" or "Stopping". */
const char *vm_api_state(struct vm *vm);

#endif
