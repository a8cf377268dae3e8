/* .containerignore / .dockerignore: which files of the build context COPY and ADD leave out.
 *
 * One pattern a line; blank lines and '#' lines are skipped; blanks around a pattern are trimmed; '!' makes an
 * exception (the file is included again); a leading '/' means nothing (patterns are relative to the context);
 * "./" and repeated '/' are cleaned. Each '/'-separated segment is an fnmatch(3) pattern ('*', '?', [...]),
 * "**" matches any number of segments. A pattern matching a directory excludes what is below it; the last
 * pattern that matches decides. */
#include "image/build_internal.h"
#include "lib/util.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

struct ignore_rule {
	char **segs;
	size_t n_segs;
	bool exception;
};

struct build_ignore {
	struct ignore_rule *rules;
	size_t n_rules;
	bool has_exceptions;
};

/* Split a cleaned path into its segments (empty and "." segments dropped). */
static int split_segments(const char *path, char ***segs, size_t *n)
{
	*segs = NULL;
	*n = 0;
	cleanup_free char *copy = strdup(path);
	if (!copy)
		return -1;
	char *save = NULL;
	for (char *s = strtok_r(copy, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
		if (!strcmp(s, "."))
			continue;
		char **grown = realloc(*segs, (*n + 1) * sizeof(char *));
		char *dup = strdup(s);
		if (!grown || !dup) {
			free(dup);
			free(grown ? grown : *segs);
			*segs = NULL;
			*n = 0;
			return -1;
		}
		*segs = grown;
		(*segs)[(*n)++] = dup;
	}
	return 0;
}

static void free_segments(char **segs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(segs[i]);
	free(segs);
}

static int add_rule(struct build_ignore *ig, const char *pattern, vt_err *err)
{
	bool exception = pattern[0] == '!';
	if (exception)
		pattern++;
	while (*pattern == ' ' || *pattern == '\t')
		pattern++;
	struct ignore_rule r = { .exception = exception };
	if (split_segments(pattern, &r.segs, &r.n_segs))
		return vt_fail_errno(err, ENOMEM, "ignore patterns");
	if (!r.n_segs) /* "/" or "." alone: nothing to match */
		return 0;
	struct ignore_rule *grown = realloc(ig->rules, (ig->n_rules + 1) * sizeof(*grown));
	if (!grown) {
		free_segments(r.segs, r.n_segs);
		return vt_fail_errno(err, ENOMEM, "ignore patterns");
	}
	ig->rules = grown;
	ig->rules[ig->n_rules++] = r;
	ig->has_exceptions |= exception;
	return 0;
}

int build_ignore_parse(const char *text, size_t len, struct build_ignore **out, vt_err *err)
{
	struct build_ignore *ig = calloc(1, sizeof(*ig));
	if (!ig)
		return vt_fail_errno(err, ENOMEM, "ignore patterns");
	for (size_t pos = 0; pos < len;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		cleanup_free char *line = strndup(text + pos, n);
		pos += n + 1;
		if (!line) {
			build_ignore_free(ig);
			return vt_fail_errno(err, ENOMEM, "ignore patterns");
		}
		char *s = line;
		while (*s == ' ' || *s == '\t')
			s++;
		size_t l = strlen(s);
		while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\r'))
			s[--l] = 0;
		if (!*s || *s == '#')
			continue;
		if (add_rule(ig, s, err)) {
			build_ignore_free(ig);
			return -1;
		}
	}
	*out = ig;
	return 0;
}

int build_ignore_load(const char *context_dir, struct build_ignore **out, vt_err *err)
{
	static const char *const names[] = { ".containerignore", ".dockerignore" };
	*out = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", context_dir, names[i]);
		if (access(path, F_OK) && errno == ENOENT)
			continue;
		cleanup_free void *data = NULL;
		size_t len;
		if (read_file(path, 4 * MiB, &data, &len, err))
			return -1;
		if (build_ignore_parse(data, len, out, err))
			return vt_err_prefix(err, "%s", path);
		return 0;
	}
	return 0;
}

void build_ignore_free(struct build_ignore *ig)
{
	if (!ig)
		return;
	for (size_t i = 0; i < ig->n_rules; i++)
		free_segments(ig->rules[i].segs, ig->rules[i].n_segs);
	free(ig->rules);
	free(ig);
}

bool build_ignore_has_exceptions(const struct build_ignore *ig)
{
	return ig && ig->has_exceptions;
}

/* Does the pattern match the path, or one of its leading directories? */
static bool match_prefix(char *const *pat, size_t np, char *const *path, size_t npath)
{
	if (!np)
		return true;
	if (!strcmp(pat[0], "**")) {
		for (size_t skip = 0; skip <= npath; skip++)
			if (match_prefix(pat + 1, np - 1, path + skip, npath - skip))
				return true;
		return false;
	}
	if (!npath || fnmatch(pat[0], path[0], 0))
		return false;
	return match_prefix(pat + 1, np - 1, path + 1, npath - 1);
}

bool build_ignore_excluded(const struct build_ignore *ig, const char *path)
{
	if (!ig || !ig->n_rules)
		return false;
	char **segs;
	size_t n;
	if (split_segments(path, &segs, &n))
		return false;
	bool excluded = false;
	for (size_t i = 0; i < ig->n_rules; i++) {
		const struct ignore_rule *r = &ig->rules[i];
		if (match_prefix(r->segs, r->n_segs, segs, n))
			excluded = !r->exception;
	}
	free_segments(segs, n);
	return excluded;
}
