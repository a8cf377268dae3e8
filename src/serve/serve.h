/* `virtus serve`: the browser console's web server (docs/serve.md).
 *
 * libmicrohttpd (loaded at start, api/mhd.h) with a thread per connection: a slow VM API or a long action
 * holds its own connection only. Requests are turned into answers by serve_handle, which knows nothing of
 * HTTP's transport (the unit tests call it directly): it checks the token, routes, and either answers (a
 * list, an action's result, one of the page's files) or names a terminal to run over a WebSocket.
 * Actions and terminals run the `virtus` program itself (serve_run_cli, serve_term_run), so the page can do
 * exactly what the command line can. */
#ifndef VIRTUS_SERVE_SERVE_H
#define VIRTUS_SERVE_SERVE_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <json-c/json.h>

#include "lib/err.h"
#include "serve/auth.h"

#define SERVE_DEFAULT_LISTEN "127.0.0.1:8006"
#define SERVE_BODY_MAX (64 * 1024)
#define SERVE_VM_API_TIMEOUT_MS 500   /* a VM that does not answer a list within this is "unresponsive" */
#define SERVE_ACTION_TIMEOUT_S 120
#define SERVE_OUTPUT_MAX (64 * 1024)  /* of an action's output kept for the answer */
#define SERVE_ARGV_MAX 64
#define SERVE_TERMS_MAX 32            /* terminals open at once */

struct serve_options {
	const char *root;        /* --root as given, or NULL (the store's default) */
	const char *listen;      /* ADDR:PORT */
	const char *tls_cert, *tls_key;
	const char *iso_dir;     /* NULL: <root>/isos */
	const char *token_file;  /* NULL: <root>/serve/token */
	const char *web_dir;     /* NULL: found next to the program (serve_find_web_dir) */
	const char *program;     /* NULL: this program (/proc/self/exe) */
};

/* One of the page's files, read at start. */
struct serve_file {
	const char *url;
	const char *name;        /* in the web directory */
	const char *type;
	char *data;
	size_t len;
};

/* CPU time samples, for cpu_percent between two lists. */
#define SERVE_USAGE_SLOTS 512
struct serve_usage {
	pthread_mutex_t lock;
	struct {
		char key[72];            /* "vm:NAME" or "ctr:ID"; "" unused */
		uint64_t cpu_ns, at_ns;  /* CPU time used, and when it was read */
	} slot[SERVE_USAGE_SLOTS];
};

struct serve {
	char token[SERVE_TOKEN_LEN + 1];
	char program[PATH_MAX];  /* the virtus program that runs actions and terminals */
	char root[PATH_MAX];     /* the store root given with --root, "" for the default */
	char iso_dir[PATH_MAX];
	char token_file[PATH_MAX];
	struct serve_limiter limiter;
	struct serve_usage usage;
	struct serve_file *files;
	size_t n_files;
	pthread_mutex_t terms_lock;   /* the open terminals' sockets, shut down when the server stops */
	int term_socks[SERVE_TERMS_MAX];
	unsigned n_terms;
	bool stopping;
};

struct serve_request {
	const char *method;
	const char *path;            /* without the query */
	const char *query_token;     /* ?token=, or NULL */
	const char *authorization;   /* the Authorization header, or NULL */
	const char *client;          /* the client's address as text */
	const char *body;            /* NUL-terminated, "" when none */
	size_t body_len;
	bool websocket;              /* asks for an upgrade to a WebSocket */
};

struct serve_reply {
	int status;
	char *body;                  /* malloc'd; or NULL */
	const struct serve_file *file; /* one of the page's files instead of body */
	char *term_argv[SERVE_ARGV_MAX]; /* status 101: the terminal's command (malloc'd strings, NULL-ended) */
};

/* Settle the options (token, directories, the page's files); no socket yet. */
int serve_init(struct serve *s, const struct serve_options *o, vt_err *err);
void serve_fini(struct serve *s);
/* The answer to one request. Free the reply with serve_reply_free. */
void serve_handle(struct serve *s, const struct serve_request *req, struct serve_reply *reply);
void serve_reply_free(struct serve_reply *reply);

/* Lists (serve/lists.c): each returns a new JSON value. */
json_object *serve_list_host(void);
json_object *serve_list_vms(struct serve *s);
json_object *serve_list_containers(struct serve *s, vt_err *err);
json_object *serve_list_images(struct serve *s, vt_err *err);
json_object *serve_list_isos(struct serve *s);
/* cpu_percent of one core for key since its previous sample (a JSON null on the first). */
json_object *serve_cpu_percent(struct serve_usage *u, const char *key, uint64_t cpu_ns);

/* Actions (serve/actions.c): the `virtus` command for a request into argv (malloc'd strings, NULL-ended,
 * after the program and its --root); 0, or the HTTP status of why not with *why set. */
int serve_action_argv(struct serve *s, const char *method, const char *path, json_object *body,
		      char *argv[SERVE_ARGV_MAX], char **why);
/* The terminal's command for a WebSocket path into argv, as above. */
int serve_term_argv(struct serve *s, const char *path, char *argv[SERVE_ARGV_MAX], char **why);
/* Run `program --root R argv...` (serve/run.c), its output (stdout and stderr, at most SERVE_OUTPUT_MAX each) in
 * malloc'd strings; the exit status (128+N for a signal, -1 when it could not run, with *err_out saying why). */
int serve_run_cli(struct serve *s, char *const argv[], int timeout_s, char **out, char **err_out);
void serve_argv_free(char *argv[SERVE_ARGV_MAX]);
/* The full command line of argv: the program, --root ROOT, then argv (serve/run.c). A malloc'd array of
 * borrowed strings, NULL-ended; NULL when out of memory. */
char **serve_full_argv(struct serve *s, char *const argv[]);

/* Live migration to another host's `virtus serve` (serve/actions.c): ask it for a VM waiting for the
 * migration (POST /api/vms {"name", "incoming"}), then run `vm migrate`; the waiting VM is killed there if the
 * migration fails. body: {"to": its URL (as it printed it: the token may come with it), "token", "port",
 * "insecure"}. The HTTP status of the answer, with *output (200) or *why set. */
#define SERVE_MIGRATE_PORT 4466        /* the stream's port at the destination, unless given */
#define SERVE_MIGRATE_TIMEOUT_S 600
int serve_migrate(struct serve *s, const char *name, json_object *body, char **output, char **why);

/* A request to another `virtus serve` (serve/remote.c, through libcurl loaded at run time). */
struct serve_remote {
	char base[512];                  /* http(s)://HOST:PORT */
	char token[SERVE_TOKEN_LEN + 1];
	bool insecure;                   /* accept a certificate that does not verify (self-signed) */
	int timeout_ms;
};
int serve_remote_call(const struct serve_remote *r, const char *method, const char *path, const char *body,
		      int *status, char **reply, vt_err *err);

/* The terminal (serve/term.c): run argv on a pseudo-terminal and carry it over the WebSocket on sock until
 * either ends. early: bytes of the WebSocket read with the request (usually none). */
void serve_term_run(struct serve *s, int sock, char *const argv[], const uint8_t *early, size_t early_len);

/* The server (serve/server.c): the options checked before anything is made (--listen's form, TLS files); then
 * listen, print the URL, serve until SIGINT or SIGTERM. */
int serve_check_options(const struct serve_options *o, vt_err *err);
int serve_run(struct serve *s, const struct serve_options *o, vt_err *err);

#endif
