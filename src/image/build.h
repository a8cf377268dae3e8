/* `virtus build`: a Containerfile/Dockerfile recipe becomes an image in the store, one cached step at a time.
 *
 *   recipe.c        the recipe's text -> steps (each with its line number); no substitution yet
 *   recipe_expand.c $VAR, ${VAR}, ${VAR:-default} and quotes, as docker applies them to the words of
 *                   FROM, COPY, ADD, ENV, ARG, LABEL, EXPOSE, WORKDIR, USER, VOLUME, STOPSIGNAL
 *   build_ignore.c  .containerignore / .dockerignore patterns (fnmatch per path segment, "**", "!")
 *   build.c         the executor: FROM, config steps, the cache, the final name
 *   build_copy.c    COPY and ADD: the content digest (for the cache) and the copy into the mounted image
 *   build_run.c     RUN: an OCI bundle over the mounted image, run in-process with the runtime library
 *   build_user.c    USER and --chown names resolved through the image's /etc/passwd and /etc/group
 *
 * Working state lives under <store root>/build/<tmp>/ (overlay upper/work/merged, bundle, runtime root) and
 * is removed when the build ends, whatever the outcome. The step cache is <store root>/build-cache/<key>,
 * a file holding the image id that the step produced. Nothing here prints except through opts->out. */
#ifndef VIRTUS_IMAGE_BUILD_H
#define VIRTUS_IMAGE_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "image/image.h"
#include "lib/err.h"

/* ---- the recipe (recipe.c) ---- */

enum recipe_op {
	RECIPE_FROM, RECIPE_RUN, RECIPE_COPY, RECIPE_ADD, RECIPE_ENV, RECIPE_ARG, RECIPE_WORKDIR, RECIPE_USER,
	RECIPE_CMD, RECIPE_ENTRYPOINT, RECIPE_EXPOSE, RECIPE_LABEL, RECIPE_VOLUME, RECIPE_STOPSIGNAL,
};

/* ENV, LABEL and ARG pairs, raw (quotes and $ still in them). ARG without a default: value NULL. */
struct recipe_kv {
	char *key, *value;
};

struct recipe_step {
	enum recipe_op op;
	unsigned line;        /* 1-based line of the instruction's keyword */
	char *text;           /* "RUN make all": the keyword upper-cased, continuations joined, flags kept */
	char *args;           /* everything after the keyword and the flags, trimmed */
	bool exec_form;       /* RUN, CMD, ENTRYPOINT, COPY, ADD, VOLUME written as a JSON array */
	char **words;         /* exec form: the array's strings; otherwise args split at unquoted blanks (raw) */
	size_t n_words;
	struct recipe_kv *kv; /* ENV, LABEL, ARG */
	size_t n_kv;
	char *chown, *chmod;  /* COPY/ADD --chown= and --chmod= (raw), or NULL */
	char *from;           /* COPY --from= (raw): an earlier stage's name or number, or an image; or NULL */
};

struct recipe {
	struct recipe_step *steps;
	size_t n_steps;
};

/* Parse a recipe. file_name is only used in messages ("Containerfile line 5: unknown instruction FOO"). */
int recipe_parse(const char *text, size_t len, const char *file_name, struct recipe **out, vt_err *err);
void recipe_free(struct recipe *r);
const char *recipe_op_name(enum recipe_op op);

/* Split at unquoted blanks; quotes and backslashes stay in the words (recipe_expand removes them). */
int recipe_split_words(const char *s, char ***words, size_t *n, vt_err *err);
void recipe_words_free(char **words, size_t n);

/* ---- substitution (recipe_expand.c) ---- */

/* Variables for substitution: "NAME=value" strings, the first match wins (ENV before ARG, as docker). */
struct recipe_vars {
	const char *const *list;
	size_t n;
};
const char *recipe_vars_get(const struct recipe_vars *v, const char *name, size_t name_len);

/* One word: quotes removed, backslash escapes applied, $VAR ${VAR} ${VAR:-w} ${VAR-w} ${VAR:+w} ${VAR+w}
 * replaced (unset = empty). Errors: unterminated quote or ${, a bad modifier. */
int recipe_expand(const char *raw, const struct recipe_vars *vars, char **out, vt_err *err);

/* ---- .containerignore / .dockerignore (build_ignore.c) ---- */

struct build_ignore;
/* Patterns from text (one a line, '#' comments, '!' exceptions, a leading '/' ignored). */
int build_ignore_parse(const char *text, size_t len, struct build_ignore **out, vt_err *err);
/* The context's .containerignore, else its .dockerignore, else no patterns (*out NULL is valid: no rules). */
int build_ignore_load(const char *context_dir, struct build_ignore **out, vt_err *err);
void build_ignore_free(struct build_ignore *ig);
/* Is this path (relative to the context, '/'-separated) excluded? A pattern that matches a parent
 * directory excludes everything below it; the last matching pattern decides. */
bool build_ignore_excluded(const struct build_ignore *ig, const char *path);
/* Are there '!' patterns (an excluded directory must then still be walked)? */
bool build_ignore_has_exceptions(const struct build_ignore *ig);

/* ---- the build (build.c) ---- */

struct build_opts {
	const char *context_dir;      /* DIR */
	const char *recipe_path;      /* -f, or NULL: DIR/Containerfile, else DIR/Dockerfile */
	const char *name;             /* -t NAME[:TAG], or NULL */
	const char *const *build_args; /* --build-arg K=V (or K: its value from our environment) */
	size_t n_build_args;
	bool no_cache;
	FILE *out;                    /* progress: "STEP i/n: ...", the steps' own output goes to fds 1 and 2 */
	int stop_fd;                  /* a signalfd for SIGINT/SIGTERM/SIGHUP (blocked), or -1: stops the build */
};

/* Run the recipe; *image_id receives the final image's id. On failure nothing is named, the temporary
 * directories, mounts and runtime state are gone; images of steps that succeeded stay as cache. */
int build_image(struct img_store *s, const struct build_opts *o, char image_id[IMG_ID_LEN + 1], vt_err *err);

#endif
