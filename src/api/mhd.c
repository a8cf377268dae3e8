/* libmicrohttpd's entry points, resolved at run time (api/mhd.h). */
#include <dlfcn.h>
#include <string.h>

#include "api/mhd.h"
#include "lib/util.h"

int mhd_load(struct mhd_api *api, const char *who, vt_err *err)
{
	/* NODELETE: gnutls, initialised by the library's constructor, is not meant to be unloaded. */
	api->handle = dlopen(MHD_LIBRARY, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (!api->handle)
		return vt_fail(err, "%s needs %s (Debian package libmicrohttpd12): %s", who, MHD_LIBRARY, dlerror());
	/* Each slot is a function pointer; dlsym's void * is copied into it bytewise (POSIX guarantees the
	 * representations match). */
	struct { void *slot; const char *name; } syms[] = {
		{ &api->start_daemon, "MHD_start_daemon" },
		{ &api->stop_daemon, "MHD_stop_daemon" },
		{ &api->run, "MHD_run" },
		{ &api->get_timeout, "MHD_get_timeout" },
		{ &api->get_daemon_info, "MHD_get_daemon_info" },
		{ &api->get_connection_info, "MHD_get_connection_info" },
		{ &api->lookup_value, "MHD_lookup_connection_value" },
		{ &api->response_from_buffer, "MHD_create_response_from_buffer" },
		{ &api->response_for_upgrade, "MHD_create_response_for_upgrade" },
		{ &api->upgrade_action, "MHD_upgrade_action" },
		{ &api->add_header, "MHD_add_response_header" },
		{ &api->queue_response, "MHD_queue_response" },
		{ &api->destroy_response, "MHD_destroy_response" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(syms); i++) {
		void *sym = dlsym(api->handle, syms[i].name);
		if (!sym) {
			dlclose(api->handle);
			api->handle = NULL;
			return vt_fail(err, "%s: %s has no %s (too old?)", who, MHD_LIBRARY, syms[i].name);
		}
		memcpy(syms[i].slot, &sym, sizeof(sym));
	}
	return 0;
}
