/* Substitution in one word of a recipe, as docker does it for FROM, COPY, ADD, ENV, ARG, LABEL, EXPOSE,
 * WORKDIR, USER, VOLUME and STOPSIGNAL (RUN, CMD and ENTRYPOINT are left to the shell in the container):
 *
 *   'text'     literal              "text"   $ is substituted; \" \$ \\ are escapes, other backslashes stay
 *   \c         the character c      $NAME ${NAME}   the value, or nothing if unset
 *   ${NAME:-w} w if unset or empty  ${NAME-w} w if unset      ${NAME:+w} w if set and non-empty  ${NAME+w} w if set
 *
 * w is itself expanded. A '$' that starts no name is kept. */
#include "image/build_internal.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

const char *recipe_vars_get(const struct recipe_vars *v, const char *name, size_t name_len)
{
	for (size_t i = 0; v && i < v->n; i++) {
		const char *e = v->list[i];
		if (!strncmp(e, name, name_len) && e[name_len] == '=')
			return e + name_len + 1;
	}
	return NULL;
}

struct expander {
	const char *p;
	const struct recipe_vars *vars;
	const char *word;  /* for messages */
	vt_err *err;
};

static bool name_start(char c) { return isalpha((unsigned char)c) || c == '_'; }
static bool name_char(char c) { return isalnum((unsigned char)c) || c == '_'; }

static size_t name_len(const char *p)
{
	size_t n = 0;
	if (!name_start(p[0]))
		return 0;
	while (name_char(p[n]))
		n++;
	return n;
}

static int expand_until(struct expander *x, char stop, struct sbuf *out);

/* ${NAME<mod>word}: x->p is just after NAME. */
static int expand_modifier(struct expander *x, const char *value, struct sbuf *out)
{
	bool colon = *x->p == ':';
	if (colon)
		x->p++;
	char mod = *x->p;
	if (mod != '-' && mod != '+')
		return vt_fail(x->err, "'%s': unsupported substitution modifier '%s%c' (use :- - :+ +)", x->word,
			       colon ? ":" : "", mod ? mod : ' ');
	x->p++;
	struct sbuf word = { 0 };
	if (expand_until(x, '}', &word)) {
		sbuf_free(&word);
		return -1;
	}
	x->p++; /* '}' */
	bool set = value != NULL, usable = set && (!colon || *value);
	const char *pick = mod == '-' ? (usable ? value : word.s) : (usable ? word.s : NULL);
	if (pick)
		sbuf_add(out, pick);
	sbuf_free(&word);
	return 0;
}

/* At '$'. */
static int expand_var(struct expander *x, struct sbuf *out)
{
	bool braced = x->p[1] == '{';
	const char *name = x->p + (braced ? 2 : 1);
	size_t len = name_len(name);
	if (!len && braced)
		return vt_fail(x->err, "'%s': bad substitution (a name must follow '${')", x->word);
	if (!len) {
		sbuf_addc(out, '$');
		x->p++;
		return 0;
	}
	const char *value = recipe_vars_get(x->vars, name, len);
	x->p = name + len;
	if (braced && !*x->p)
		return vt_fail(x->err, "'%s': unterminated '${'", x->word);
	if (braced && *x->p != '}')
		return expand_modifier(x, value, out);
	if (braced)
		x->p++;
	if (value)
		sbuf_add(out, value);
	return 0;
}

static int expand_single_quoted(struct expander *x, struct sbuf *out)
{
	const char *end = strchr(x->p + 1, '\'');
	if (!end)
		return vt_fail(x->err, "'%s': unterminated single quote", x->word);
	sbuf_addn(out, x->p + 1, (size_t)(end - x->p - 1));
	x->p = end + 1;
	return 0;
}

static int expand_double_quoted(struct expander *x, struct sbuf *out)
{
	x->p++;
	while (*x->p != '"') {
		if (!*x->p)
			return vt_fail(x->err, "'%s': unterminated double quote", x->word);
		if (*x->p == '$') {
			if (expand_var(x, out))
				return -1;
			continue;
		}
		if (*x->p == '\\' && (x->p[1] == '"' || x->p[1] == '$' || x->p[1] == '\\'))
			x->p++;
		sbuf_addc(out, *x->p++);
	}
	x->p++;
	return 0;
}

/* Expand until `stop` (not consumed) or the end of the text (then stop must be 0). */
static int expand_until(struct expander *x, char stop, struct sbuf *out)
{
	while (*x->p && *x->p != stop) {
		int rc = 0;
		switch (*x->p) {
		case '\\':
			x->p++;
			sbuf_addc(out, *x->p ? *x->p++ : '\\');
			break;
		case '\'':
			rc = expand_single_quoted(x, out);
			break;
		case '"':
			rc = expand_double_quoted(x, out);
			break;
		case '$':
			rc = expand_var(x, out);
			break;
		default:
			sbuf_addc(out, *x->p++);
		}
		if (rc)
			return -1;
	}
	if (stop && *x->p != stop)
		return vt_fail(x->err, "'%s': unterminated '${'", x->word);
	return 0;
}

int recipe_expand(const char *raw, const struct recipe_vars *vars, char **out, vt_err *err)
{
	struct expander x = { .p = raw, .vars = vars, .word = raw, .err = err };
	struct sbuf b = { 0 };
	if (expand_until(&x, 0, &b)) {
		sbuf_free(&b);
		return -1;
	}
	*out = sbuf_take(&b);
	return *out ? 0 : vt_fail_errno(err, ENOMEM, "substitution");
}
