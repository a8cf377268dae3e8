/* Requests to another host's `virtus serve` (a live migration's destination), through libcurl: loaded at run
 * time, like libmicrohttpd, since only a migration from the page needs it. */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "lib/util.h"
#include "serve/serve.h"

#define CURL_LIBRARY "libcurl.so.4"
#define REMOTE_REPLY_MAX (1024 * 1024)

struct curl_api {
	__typeof__(curl_easy_init) *init;
	__typeof__(curl_easy_setopt) *setopt;
	__typeof__(curl_easy_perform) *perform;
	__typeof__(curl_easy_getinfo) *getinfo;
	__typeof__(curl_easy_cleanup) *cleanup;
	__typeof__(curl_easy_strerror) *strerror;
	__typeof__(curl_slist_append) *slist_append;
	__typeof__(curl_slist_free_all) *slist_free_all;
};

static int load_curl(struct curl_api *api, void **handle, vt_err *err)
{
	*handle = dlopen(CURL_LIBRARY, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (!*handle)
		return vt_fail(err, "a migration from the page needs %s (Debian package libcurl4): %s", CURL_LIBRARY, dlerror());
	struct { void *slot; const char *name; } syms[] = {
		{ &api->init, "curl_easy_init" },         { &api->setopt, "curl_easy_setopt" },
		{ &api->perform, "curl_easy_perform" },   { &api->getinfo, "curl_easy_getinfo" },
		{ &api->cleanup, "curl_easy_cleanup" },   { &api->strerror, "curl_easy_strerror" },
		{ &api->slist_append, "curl_slist_append" }, { &api->slist_free_all, "curl_slist_free_all" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(syms); i++) {
		void *sym = dlsym(*handle, syms[i].name);
		if (!sym) {
			dlclose(*handle);
			return vt_fail(err, "%s has no %s", CURL_LIBRARY, syms[i].name);
		}
		memcpy(syms[i].slot, &sym, sizeof(sym));
	}
	return 0;
}

struct reply_buf {
	char *data;
	size_t len;
	bool too_long;
};

static size_t take_reply(char *p, size_t size, size_t n, void *opaque)
{
	struct reply_buf *b = opaque;
	size_t len = size * n;
	if (b->len + len > REMOTE_REPLY_MAX) {
		b->too_long = true;
		return 0; /* ends the transfer */
	}
	char *d = realloc(b->data, b->len + len + 1);
	if (!d)
		return 0;
	memcpy(d + b->len, p, len);
	b->len += len;
	d[b->len] = '\0';
	b->data = d;
	return len;
}

int serve_remote_call(const struct serve_remote *r, const char *method, const char *path, const char *body,
		      int *status, char **reply, vt_err *err)
{
	struct curl_api api;
	void *handle;
	*reply = NULL;
	if (load_curl(&api, &handle, err))
		return -1;
	CURL *c = api.init();
	if (!c) {
		dlclose(handle);
		return vt_fail(err, "libcurl could not start a request");
	}
	char url[1024], auth[SERVE_TOKEN_LEN + 32], errbuf[CURL_ERROR_SIZE] = "";
	snprintf(url, sizeof(url), "%s%s", r->base, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", r->token);
	struct curl_slist *headers = api.slist_append(NULL, auth);
	headers = api.slist_append(headers, "Content-Type: application/json");
	struct reply_buf b = { 0 };
	api.setopt(c, CURLOPT_URL, url);
	api.setopt(c, CURLOPT_CUSTOMREQUEST, method);
	api.setopt(c, CURLOPT_HTTPHEADER, headers);
	api.setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
	api.setopt(c, CURLOPT_WRITEFUNCTION, take_reply);
	api.setopt(c, CURLOPT_WRITEDATA, &b);
	api.setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	api.setopt(c, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
	api.setopt(c, CURLOPT_NOSIGNAL, 1L);
	api.setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (r->insecure) { /* a self-signed certificate the user chose to trust */
		api.setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		api.setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	CURLcode rc = api.perform(c);
	long code = 0;
	api.getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	api.slist_free_all(headers);
	api.cleanup(c);
	dlclose(handle); /* (NODELETE: the library stays for the next call) */
	if (rc != CURLE_OK) {
		free(b.data);
		return vt_fail(err, "%s: %s", r->base, b.too_long ? "an answer over 1 MiB" : errbuf[0] ? errbuf : api.strerror(rc));
	}
	*status = (int)code;
	*reply = b.data ? b.data : strdup("");
	return 0;
}
