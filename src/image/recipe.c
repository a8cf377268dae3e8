/* The Containerfile/Dockerfile subset that real recipes use, parsed into steps.
 *
 * Lines: '#' at the start of a line (after blanks) is a comment, also inside a continued instruction;
 * a backslash at the end of a line (blanks may follow it) continues the instruction on the next line; blank
 * lines are skipped. Parser directives ("# escape=`") are comments here: the escape character is always '\'.
 * Substitution is not done here: it needs the base image's ENV and the --build-arg values (recipe_expand). */
#include "image/build_internal.h"
#include "lib/util.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const op_names[] = {
	[RECIPE_FROM] = "FROM", [RECIPE_RUN] = "RUN", [RECIPE_COPY] = "COPY", [RECIPE_ADD] = "ADD",
	[RECIPE_ENV] = "ENV", [RECIPE_ARG] = "ARG", [RECIPE_WORKDIR] = "WORKDIR", [RECIPE_USER] = "USER",
	[RECIPE_CMD] = "CMD", [RECIPE_ENTRYPOINT] = "ENTRYPOINT", [RECIPE_EXPOSE] = "EXPOSE",
	[RECIPE_LABEL] = "LABEL", [RECIPE_VOLUME] = "VOLUME", [RECIPE_STOPSIGNAL] = "STOPSIGNAL",
};

/* Docker instructions that exist but that this builder does not do: refused by name, not as unknown. */
static const char *const unsupported_ops[] = { "SHELL", "HEALTHCHECK", "ONBUILD", "MAINTAINER" };

const char *recipe_op_name(enum recipe_op op)
{
	return (size_t)op < ARRAY_SIZE(op_names) ? op_names[op] : "?";
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* ---- words ---- */

void recipe_words_free(char **words, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(words[i]);
	free(words);
}

static int push_word(char ***words, size_t *n, char *w, vt_err *err)
{
	if (!w)
		return vt_fail_errno(err, ENOMEM, "recipe");
	char **grown = realloc(*words, (*n + 1) * sizeof(**words));
	if (!grown) {
		free(w);
		return vt_fail_errno(err, ENOMEM, "recipe");
	}
	grown[(*n)++] = w;
	*words = grown;
	return 0;
}

/* Where the raw word starting at s ends: at the first blank outside quotes (escapes keep their next char). */
static const char *word_end(const char *s)
{
	char quote = 0;
	for (; *s; s++) {
		if (*s == '\\' && quote != '\'' && s[1]) {
			s++;
			continue;
		}
		if (quote) {
			if (*s == quote)
				quote = 0;
		} else if (*s == '\'' || *s == '"') {
			quote = *s;
		} else if (is_blank(*s)) {
			break;
		}
	}
	return s;
}

int recipe_split_words(const char *s, char ***words, size_t *n, vt_err *err)
{
	*words = NULL;
	*n = 0;
	for (;;) {
		while (is_blank(*s))
			s++;
		if (!*s)
			return 0;
		const char *end = word_end(s);
		if (push_word(words, n, strndup(s, (size_t)(end - s)), err)) {
			recipe_words_free(*words, *n);
			*words = NULL;
			*n = 0;
			return -1;
		}
		s = end;
	}
}

/* ---- one instruction ---- */

struct parse_ctx {
	const char *file;
	unsigned line;
	vt_err *err;
};

static int fail_at(const struct parse_ctx *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail_at(const struct parse_ctx *p, const char *fmt, ...)
{
	char what[VT_ERR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return vt_fail(p->err, "%s line %u: %s", p->file, p->line, what);
}

/* RUN ["a", "b"]: a JSON array of strings; anything else is the shell form (as docker decides). */
static bool parse_exec_form(const char *args, struct recipe_step *st)
{
	if (args[0] != '[')
		return false;
	json_object *j = json_tokener_parse(args);
	bool ok = j && json_object_is_type(j, json_type_array);
	size_t n = ok ? json_object_array_length(j) : 0;
	for (size_t i = 0; ok && i < n; i++)
		ok = json_object_is_type(json_object_array_get_idx(j, i), json_type_string);
	if (ok) {
		st->words = calloc(n + 1, sizeof(char *));
		ok = st->words != NULL;
		for (size_t i = 0; ok && i < n; i++) {
			st->words[i] = strdup(json_object_get_string(json_object_array_get_idx(j, i)));
			ok = st->words[i] != NULL;
			st->n_words = i + 1;
		}
	}
	json_object_put(j);
	st->exec_form = ok;
	return ok;
}

static int push_kv(struct recipe_step *st, char *key, char *value, vt_err *err)
{
	struct recipe_kv *grown = key ? realloc(st->kv, (st->n_kv + 1) * sizeof(*grown)) : NULL;
	if (!grown) {
		free(key);
		free(value);
		return vt_fail_errno(err, ENOMEM, "recipe");
	}
	st->kv = grown;
	st->kv[st->n_kv++] = (struct recipe_kv){ key, value };
	return 0;
}

/* ENV/LABEL: "KEY value with blanks" (the old form) or "K1=v1 K2="v 2"" (raw: quotes stay). */
static int parse_pairs(const struct parse_ctx *p, struct recipe_step *st)
{
	const char *op = recipe_op_name(st->op);
	const char *first_end = word_end(st->args);
	const char *eq = memchr(st->args, '=', (size_t)(first_end - st->args));
	if (!eq) {
		const char *v = first_end;
		while (is_blank(*v))
			v++;
		if (!*v)
			return fail_at(p, "%s %s needs a value", op, st->args);
		return push_kv(st, strndup(st->args, (size_t)(first_end - st->args)), strdup(v), p->err);
	}
	for (size_t i = 0; i < st->n_words; i++) {
		const char *w = st->words[i];
		const char *e = strchr(w, '=');
		if (!e)
			return fail_at(p, "%s: '%s' is not KEY=VALUE", op, w);
		if (e == w)
			return fail_at(p, "%s: '%s' has no name before '='", op, w);
		if (push_kv(st, strndup(w, (size_t)(e - w)), strdup(e + 1), p->err))
			return -1;
	}
	return 0;
}

/* ARG NAME[=default] ...: names are plain (no quotes, no $). */
static int parse_args_decl(const struct parse_ctx *p, struct recipe_step *st)
{
	for (size_t i = 0; i < st->n_words; i++) {
		const char *w = st->words[i];
		const char *e = strchr(w, '=');
		size_t name_len = e ? (size_t)(e - w) : strlen(w);
		bool ok = name_len > 0 && (isalpha((unsigned char)w[0]) || w[0] == '_');
		for (size_t k = 1; ok && k < name_len; k++)
			ok = isalnum((unsigned char)w[k]) || w[k] == '_';
		if (!ok)
			return fail_at(p, "ARG: '%s' is not a valid name", w);
		if (push_kv(st, strndup(w, name_len), e ? strdup(e + 1) : NULL, p->err))
			return -1;
		if (e && !st->kv[st->n_kv - 1].value)
			return vt_fail_errno(p->err, ENOMEM, "recipe");
	}
	return 0;
}

/* COPY/ADD flags: --chown=, --chmod=, and COPY's --from=; the rest are refused by name. Returns the text
 * after the flags. */
static const char *parse_copy_flags(const struct parse_ctx *p, struct recipe_step *st, const char *args, int *rc)
{
	*rc = 0;
	while (!strncmp(args, "--", 2)) {
		const char *end = word_end(args);
		size_t len = (size_t)(end - args);
		char **slot = NULL;
		if (len > 8 && !strncmp(args, "--chown=", 8))
			slot = &st->chown;
		else if (len > 8 && !strncmp(args, "--chmod=", 8))
			slot = &st->chmod;
		else if (len > 7 && !strncmp(args, "--from=", 7) && st->op == RECIPE_COPY)
			slot = &st->from;
		if (!slot) {
			*rc = fail_at(p, "%s: option %.*s is not supported", recipe_op_name(st->op), (int)len, args);
			return NULL;
		}
		size_t skip = slot == &st->from ? 7 : 8;
		free(*slot);
		*slot = strndup(args + skip, len - skip);
		args = end;
		while (is_blank(*args))
			args++;
	}
	return args;
}

static int expect_words(const struct parse_ctx *p, const struct recipe_step *st, size_t min, size_t max,
			const char *what)
{
	if (st->n_words >= min && st->n_words <= max)
		return 0;
	return fail_at(p, "%s needs %s", recipe_op_name(st->op), what);
}

/* Check the arguments of one instruction and fill the step's words, pairs and flags. */
static int parse_args(const struct parse_ctx *p, struct recipe_step *st)
{
	bool may_exec = st->op == RECIPE_RUN || st->op == RECIPE_CMD || st->op == RECIPE_ENTRYPOINT ||
			st->op == RECIPE_COPY || st->op == RECIPE_ADD || st->op == RECIPE_VOLUME;
	if (!(may_exec && parse_exec_form(st->args, st)) &&
	    recipe_split_words(st->args, &st->words, &st->n_words, p->err))
		return -1;
	switch (st->op) {
	case RECIPE_FROM:
		if (st->n_words == 3 && !strcasecmp(st->words[1], "AS"))
			return 0;
		if (st->n_words && !strncmp(st->words[0], "--", 2))
			return fail_at(p, "FROM: option %s is not supported", st->words[0]);
		return expect_words(p, st, 1, 1, "an image name (or scratch), optionally followed by AS NAME");
	case RECIPE_RUN:
		if (!st->exec_form && !strncmp(st->args, "--", 2))
			return fail_at(p, "RUN: option %s is not supported", st->words[0]);
		/* fall through */
	case RECIPE_CMD:
	case RECIPE_ENTRYPOINT:
		if (!st->exec_form && !*st->args)
			return fail_at(p, "%s needs a command", recipe_op_name(st->op));
		return 0;
	case RECIPE_COPY:
	case RECIPE_ADD:
		return expect_words(p, st, 2, SIZE_MAX, "at least one source and a destination");
	case RECIPE_ENV:
	case RECIPE_LABEL:
		if (expect_words(p, st, 1, SIZE_MAX, "KEY=VALUE"))
			return -1;
		return parse_pairs(p, st);
	case RECIPE_ARG:
		if (expect_words(p, st, 1, SIZE_MAX, "a name (ARG NAME[=DEFAULT])"))
			return -1;
		return parse_args_decl(p, st);
	case RECIPE_WORKDIR:
	case RECIPE_USER:
	case RECIPE_STOPSIGNAL:
		/* One value, blanks included ("WORKDIR /my dir" is one directory, as docker has it). */
		return expect_words(p, st, 1, SIZE_MAX, "a value");
	case RECIPE_EXPOSE:
		return expect_words(p, st, 1, SIZE_MAX, "at least one PORT[/PROTOCOL]");
	case RECIPE_VOLUME:
		return expect_words(p, st, st->exec_form ? 0 : 1, SIZE_MAX, "at least one path");
	}
	return 0;
}

static int find_op(const struct parse_ctx *p, const char *kw, enum recipe_op *op)
{
	for (size_t i = 0; i < ARRAY_SIZE(op_names); i++)
		if (!strcasecmp(kw, op_names[i])) {
			*op = (enum recipe_op)i;
			return 0;
		}
	for (size_t i = 0; i < ARRAY_SIZE(unsupported_ops); i++)
		if (!strcasecmp(kw, unsupported_ops[i]))
			return fail_at(p, "%s is not supported by virtus build", unsupported_ops[i]);
	return fail_at(p, "unknown instruction %s", kw);
}

static void step_clear(struct recipe_step *st)
{
	free(st->text);
	free(st->args);
	recipe_words_free(st->words, st->n_words);
	for (size_t i = 0; i < st->n_kv; i++) {
		free(st->kv[i].key);
		free(st->kv[i].value);
	}
	free(st->kv);
	free(st->chown);
	free(st->chmod);
	free(st->from);
	*st = (struct recipe_step){ 0 };
}

static char *trimmed_copy(const char *s)
{
	while (is_blank(*s))
		s++;
	size_t n = strlen(s);
	while (n && is_blank(s[n - 1]))
		n--;
	return strndup(s, n);
}

/* One logical line (continuations joined) -> one step. */
static int parse_instruction(const struct parse_ctx *p, const char *line, struct recipe_step *st)
{
	const char *kw_end = line;
	while (*kw_end && !is_blank(*kw_end))
		kw_end++;
	cleanup_free char *kw = strndup(line, (size_t)(kw_end - line));
	if (!kw)
		return vt_fail_errno(p->err, ENOMEM, "recipe");
	*st = (struct recipe_step){ .line = p->line };
	if (find_op(p, kw, &st->op))
		return -1;
	cleanup_free char *rest = trimmed_copy(kw_end);
	if (!rest)
		return vt_fail_errno(p->err, ENOMEM, "recipe");
	const char *args = rest;
	if (st->op == RECIPE_COPY || st->op == RECIPE_ADD) {
		int rc;
		args = parse_copy_flags(p, st, rest, &rc);
		if (rc)
			return -1;
	}
	st->args = strdup(args);
	struct sbuf text = { 0 };
	sbuf_add(&text, recipe_op_name(st->op));
	if (*rest) {
		sbuf_addc(&text, ' ');
		sbuf_add(&text, rest);
	}
	st->text = sbuf_take(&text);
	if (!st->args || !st->text)
		return vt_fail_errno(p->err, ENOMEM, "recipe");
	return parse_args(p, st);
}

/* ---- the whole file ---- */

static int add_step(struct recipe *r, const struct parse_ctx *p, const char *line)
{
	struct recipe_step st;
	if (parse_instruction(p, line, &st)) {
		step_clear(&st);
		return -1;
	}
	struct recipe_step *grown = realloc(r->steps, (r->n_steps + 1) * sizeof(*grown));
	if (!grown) {
		step_clear(&st);
		return vt_fail_errno(p->err, ENOMEM, "recipe");
	}
	r->steps = grown;
	r->steps[r->n_steps++] = st;
	return 0;
}

/* A backslash ending the line (blanks may follow it) continues the instruction: the length without it,
 * or -1 if the line does not continue. */
static ssize_t continued_len(const char *line, size_t len)
{
	while (len && is_blank(line[len - 1]))
		len--;
	if (len && line[len - 1] == '\\')
		return (ssize_t)len - 1;
	return -1;
}

/* FROM IMAGE AS NAME: a name that COPY --from and FROM can tell from an image reference and a stage number,
 * given once. */
static int check_stage_name(const struct recipe *r, size_t at, const char *file, vt_err *err)
{
	const struct recipe_step *st = &r->steps[at];
	const char *name = st->words[2];
	bool digits_only = true;
	for (const char *c = name; *c; c++) {
		bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
			  (c != name && (*c == '_' || *c == '-' || *c == '.'));
		if (!ok)
			return vt_fail(err, "%s line %u: stage name '%s': use letters, digits, '_', '-' and '.', starting "
				       "with a letter or digit", file, st->line, name);
		digits_only &= *c >= '0' && *c <= '9';
	}
	if (digits_only)
		return vt_fail(err, "%s line %u: stage name '%s' is a number (stages are also named by number)", file,
			       st->line, name);
	for (size_t i = 0; i < at; i++)
		if (r->steps[i].op == RECIPE_FROM && r->steps[i].n_words == 3 && !strcasecmp(r->steps[i].words[2], name))
			return vt_fail(err, "%s line %u: a second stage named '%s' (line %u)", file, st->line, name,
				       r->steps[i].line);
	return 0;
}

/* FROM first (only ARGs may come before it); each further FROM starts a stage. */
static int check_order(const struct recipe *r, const char *file, vt_err *err)
{
	size_t from = SIZE_MAX;
	for (size_t i = 0; i < r->n_steps; i++) {
		const struct recipe_step *st = &r->steps[i];
		if (st->op == RECIPE_FROM && st->n_words == 3 && check_stage_name(r, i, file, err))
			return -1;
		if (st->op == RECIPE_FROM && from == SIZE_MAX)
			from = i;
		else if (st->op != RECIPE_ARG && from == SIZE_MAX)
			return vt_fail(err, "%s line %u: %s before FROM (a recipe starts with FROM)", file, st->line,
				       recipe_op_name(st->op));
	}
	if (from == SIZE_MAX)
		return vt_fail(err, "%s: no FROM instruction", file);
	return 0;
}

static int parse_lines(struct recipe *r, const char *text, size_t len, const char *file, vt_err *err)
{
	struct sbuf cur = { 0 };
	bool open = false;
	struct parse_ctx p = { .file = file, .err = err };
	unsigned lineno = 0;
	for (size_t pos = 0; pos < len;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		const char *line = text + pos;
		pos += n + (nl ? 1 : 0);
		lineno++;
		if (memchr(line, 0, n)) {
			sbuf_free(&cur);
			return vt_fail(err, "%s line %u: a NUL byte (is this a recipe?)", file, lineno);
		}
		size_t lead = 0;
		while (lead < n && is_blank(line[lead]))
			lead++;
		if (lead == n || line[lead] == '#')
			continue;
		if (!open) {
			p.line = lineno;
			line += lead;
			n -= lead;
		}
		ssize_t cont = continued_len(line, n);
		sbuf_addn(&cur, line, cont >= 0 ? (size_t)cont : n);
		open = cont >= 0;
		if (open)
			continue;
		cleanup_free char *one = sbuf_take(&cur);
		if (!one)
			return vt_fail_errno(err, ENOMEM, "recipe");
		if (add_step(r, &p, one))
			return -1;
	}
	cleanup_free char *last = open ? sbuf_take(&cur) : NULL;
	if (open && (!last || add_step(r, &p, last)))
		return last ? -1 : vt_fail_errno(err, ENOMEM, "recipe");
	return 0;
}

int recipe_parse(const char *text, size_t len, const char *file_name, struct recipe **out, vt_err *err)
{
	struct recipe *r = calloc(1, sizeof(*r));
	if (!r)
		return vt_fail_errno(err, ENOMEM, "recipe");
	if (parse_lines(r, text, len, file_name, err) || check_order(r, file_name, err)) {
		recipe_free(r);
		return -1;
	}
	*out = r;
	return 0;
}

void recipe_free(struct recipe *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_steps; i++)
		step_clear(&r->steps[i]);
	free(r->steps);
	free(r);
}
