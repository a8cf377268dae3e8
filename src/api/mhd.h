/* libmicrohttpd, loaded on first use: the VM API's server and `virtus serve` both dlopen() it rather than link
 * it (with gnutls and its other dependencies it costs every `virtus` start-up ~5 ms). The header is still used
 * for types and constants, so an ABI mismatch is a compile error. */
#ifndef VIRTUS_API_MHD_H
#define VIRTUS_API_MHD_H

#include <microhttpd.h>

#include "lib/err.h"

#define MHD_LIBRARY "libmicrohttpd.so.12"

/* The entry points virtus calls, resolved with dlsym. */
struct mhd_api {
	void *handle;
	__typeof__(MHD_start_daemon) *start_daemon;
	__typeof__(MHD_stop_daemon) *stop_daemon;
	__typeof__(MHD_run) *run;
	__typeof__(MHD_get_timeout) *get_timeout;
	__typeof__(MHD_get_daemon_info) *get_daemon_info;
	__typeof__(MHD_get_connection_info) *get_connection_info;
	__typeof__(MHD_lookup_connection_value) *lookup_value;
	__typeof__(MHD_create_response_from_buffer) *response_from_buffer;
	__typeof__(MHD_create_response_for_upgrade) *response_for_upgrade;
	__typeof__(MHD_upgrade_action) *upgrade_action;
	__typeof__(MHD_add_response_header) *add_header;
	__typeof__(MHD_queue_response) *queue_response;
	__typeof__(MHD_destroy_response) *destroy_response;
};

/* Load the library into api (who: what needs it, for the error message). dlclose(api->handle) when done. */
int mhd_load(struct mhd_api *api, const char *who, vt_err *err);

#endif
