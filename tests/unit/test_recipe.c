/* The build recipe: parsing (lines, continuations, comments, forms of each instruction), substitution,
 * .containerignore patterns, and errors that name the line. Pure: no store, no root. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "image/build.h"

static struct recipe *parse_ok(const char *text)
{
	struct recipe *r = NULL;
	vt_err err = { 0 };
	int rc = recipe_parse(text, strlen(text), "Containerfile", &r, &err);
	if (rc)
		fail_msg("parse failed: %s", err.msg);
	return r;
}

static void parse_fails(const char *text, const char *expected_msg)
{
	struct recipe *r = NULL;
	vt_err err = { 0 };
	assert_int_equal(recipe_parse(text, strlen(text), "Containerfile", &r, &err), -1);
	assert_null(r);
	if (!strstr(err.msg, expected_msg))
		fail_msg("error '%s' does not contain '%s'", err.msg, expected_msg);
}

static void test_lines_comments_continuations(void **state)
{
	(void)state;
	struct recipe *r = parse_ok("# escape=\\\n"
				    "\n"
				    "FROM busybox\n"
				    "   # an indented comment\n"
				    "RUN echo one \\\n"
				    "# a comment inside the continuation\n"
				    "\n"
				    "    && echo two \\   \n"
				    "    && echo three\n"
				    "run echo lower-case keyword\r\n"
				    "CMD [\"sh\"]");
	assert_int_equal(r->n_steps, 4);
	assert_int_equal(r->steps[0].op, RECIPE_FROM);
	assert_int_equal(r->steps[0].line, 3);
	assert_int_equal(r->steps[1].op, RECIPE_RUN);
	assert_int_equal(r->steps[1].line, 5);
	assert_string_equal(r->steps[1].args, "echo one     && echo two     && echo three");
	assert_false(r->steps[1].exec_form);
	assert_int_equal(r->steps[2].line, 10);
	assert_string_equal(r->steps[2].text, "RUN echo lower-case keyword");
	assert_int_equal(r->steps[3].line, 11);
	assert_true(r->steps[3].exec_form);
	recipe_free(r);
}

static void test_exec_and_shell_forms(void **state)
{
	(void)state;
	struct recipe *r = parse_ok("FROM scratch\n"
				    "RUN [\"/bin/echo\", \"a b\", \"c\"]\n"
				    "RUN [not json\n"
				    "ENTRYPOINT [\"/bin/app\", \"--flag\"]\n"
				    "CMD echo $HOME\n"
				    "CMD []\n");
	assert_true(r->steps[1].exec_form);
	assert_int_equal(r->steps[1].n_words, 3);
	assert_string_equal(r->steps[1].words[1], "a b");
	assert_false(r->steps[2].exec_form); /* not JSON: docker runs it through the shell */
	assert_string_equal(r->steps[2].args, "[not json");
	assert_true(r->steps[3].exec_form);
	assert_string_equal(r->steps[3].words[0], "/bin/app");
	assert_false(r->steps[4].exec_form);
	assert_string_equal(r->steps[4].args, "echo $HOME");
	assert_true(r->steps[5].exec_form);
	assert_int_equal(r->steps[5].n_words, 0);
	recipe_free(r);
}

static void test_copy_add_flags(void **state)
{
	(void)state;
	struct recipe *r = parse_ok("FROM busybox AS base\n"
				    "COPY --chown=nobody:nogroup --chmod=0640 a.txt \"b c.txt\" /dest/\n"
				    "ADD [\"x.tar\", \"/opt/\"]\n"
				    "COPY src /app\n");
	assert_int_equal(r->steps[0].n_words, 3);
	assert_string_equal(r->steps[1].chown, "nobody:nogroup");
	assert_string_equal(r->steps[1].chmod, "0640");
	assert_int_equal(r->steps[1].n_words, 3);
	assert_string_equal(r->steps[1].words[1], "\"b c.txt\""); /* raw: quotes go at substitution */
	assert_string_equal(r->steps[1].text, "COPY --chown=nobody:nogroup --chmod=0640 a.txt \"b c.txt\" /dest/");
	assert_true(r->steps[2].exec_form);
	assert_string_equal(r->steps[2].words[1], "/opt/");
	assert_null(r->steps[3].chown);
	recipe_free(r);
	parse_fails("FROM busybox\nADD --from=build /a /b\n", "line 2: ADD: option --from=build is not supported");
	r = parse_ok("FROM busybox AS build\nRUN make\nFROM busybox\nCOPY --from=build --chown=1 /a /b\n");
	assert_int_equal(r->n_steps, 4);
	assert_string_equal(r->steps[3].from, "build");
	assert_string_equal(r->steps[3].chown, "1");
	assert_string_equal(r->steps[3].words[0], "/a");
	recipe_free(r);
	r = parse_ok("FROM busybox\nCOPY --from=build --chown=1 /a /b\n");
	assert_string_equal(r->steps[1].from, "build");
	assert_string_equal(r->steps[1].chown, "1");
	assert_string_equal(r->steps[1].words[0], "/a");
	recipe_free(r);
	parse_fails("FROM busybox\nADD onlyone\n", "line 2: ADD needs at least one source and a destination");
}

static void test_env_label_arg(void **state)
{
	(void)state;
	struct recipe *r = parse_ok("ARG BASE=busybox\n"
				    "FROM $BASE\n"
				    "ENV A=1 B=\"two words\" C='x y'\n"
				    "ENV OLD the rest of the line\n"
				    "LABEL org.example.version=\"1.0\" \"quoted key\"=v\n"
				    "ARG NOVAL\n"
				    "ARG X=1 Y\n");
	const struct recipe_step *env = &r->steps[2];
	assert_int_equal(env->n_kv, 3);
	assert_string_equal(env->kv[0].key, "A");
	assert_string_equal(env->kv[0].value, "1");
	assert_string_equal(env->kv[1].value, "\"two words\"");
	assert_string_equal(env->kv[2].value, "'x y'");
	assert_int_equal(r->steps[3].n_kv, 1);
	assert_string_equal(r->steps[3].kv[0].key, "OLD");
	assert_string_equal(r->steps[3].kv[0].value, "the rest of the line");
	assert_int_equal(r->steps[4].n_kv, 2);
	assert_string_equal(r->steps[4].kv[1].key, "\"quoted key\"");
	assert_int_equal(r->steps[0].op, RECIPE_ARG);
	assert_string_equal(r->steps[0].kv[0].value, "busybox");
	assert_null(r->steps[5].kv[0].value);
	assert_int_equal(r->steps[6].n_kv, 2);
	assert_null(r->steps[6].kv[1].value);
	recipe_free(r);
	parse_fails("FROM busybox\nENV ONLYKEY\n", "line 2: ENV ONLYKEY needs a value");
	parse_fails("FROM busybox\nENV A=1 B\n", "line 2: ENV: 'B' is not KEY=VALUE");
	parse_fails("FROM busybox\nARG 9x\n", "line 2: ARG: '9x' is not a valid name");
}

static void test_errors_name_the_line(void **state)
{
	(void)state;
	parse_fails("FROM busybox\nRUN true\n\nFOO bar\n", "Containerfile line 4: unknown instruction FOO");
	parse_fails("FROM busybox\nRUN a \\\n  b\nBOGUS\n", "Containerfile line 4: unknown instruction BOGUS");
	parse_fails("FROM busybox\nHEALTHCHECK CMD true\n", "line 2: HEALTHCHECK is not supported");
	parse_fails("RUN true\nFROM busybox\n", "line 1: RUN before FROM");
	parse_fails("# nothing\n", "no FROM instruction");
	parse_fails("FROM a AS one\nRUN x\nFROM b AS One\n", "line 3: a second stage named 'One' (line 1)");
	parse_fails("FROM a AS 12\n", "line 1: stage name '12' is a number");
	parse_fails("FROM a AS -x\n", "line 1: stage name '-x': use letters");
	parse_fails("FROM a AS b/c\n", "line 1: stage name 'b/c': use letters");
	parse_fails("FROM busybox\nRUN\n", "line 2: RUN needs a command");
	parse_fails("FROM busybox\nRUN --mount=type=cache,target=/x true\n", "line 2: RUN: option --mount");
	parse_fails("FROM a b\n", "line 1: FROM needs an image name");
	parse_fails("FROM busybox\nWORKDIR\n", "line 2: WORKDIR needs a value");
}

static char *expand(const char *raw, const char *const *vars, size_t n)
{
	struct recipe_vars v = { vars, n };
	char *out = NULL;
	vt_err err = { 0 };
	if (recipe_expand(raw, &v, &out, &err))
		fail_msg("expand '%s' failed: %s", raw, err.msg);
	return out;
}

#define assert_expands(raw, expected)                              \
	do {                                                       \
		char *_o = expand(raw, vars, sizeof(vars) / sizeof(vars[0])); \
		assert_string_equal(_o, expected);                 \
		free(_o);                                          \
	} while (0)

static void test_substitution(void **state)
{
	(void)state;
	static const char *const vars[] = { "NAME=world", "EMPTY=", "DIR=/srv/app", "NAME=shadowed" };
	assert_expands("hello $NAME", "hello world");
	assert_expands("${NAME}s", "worlds");
	assert_expands("$UNSET|", "|");
	assert_expands("${UNSET:-fallback}", "fallback");
	assert_expands("${EMPTY:-fallback}", "fallback");
	assert_expands("${EMPTY-fallback}", "");
	assert_expands("${NAME:-fallback}", "world");
	assert_expands("${NAME:+alt}", "alt");
	assert_expands("${UNSET:+alt}", "");
	assert_expands("${UNSET:-$DIR/x}", "/srv/app/x");
	assert_expands("'$NAME'", "$NAME");
	assert_expands("\"$NAME and \\$NAME\"", "world and $NAME");
	assert_expands("\\$NAME", "$NAME");
	assert_expands("a\\ b", "a b");
	assert_expands("cost: $5", "cost: $5");
	assert_expands("\"two words\"", "two words");
	assert_expands("$DIR/sub", "/srv/app/sub");

	struct recipe_vars v = { vars, 1 };
	char *out = NULL;
	vt_err err = { 0 };
	assert_int_equal(recipe_expand("${NAME", &v, &out, &err), -1);
	assert_non_null(strstr(err.msg, "unterminated"));
	assert_int_equal(recipe_expand("'open", &v, &out, &err), -1);
	assert_non_null(strstr(err.msg, "unterminated single quote"));
	assert_int_equal(recipe_expand("${NAME?x}", &v, &out, &err), -1);
	assert_non_null(strstr(err.msg, "unsupported substitution modifier"));
	assert_int_equal(recipe_expand("${}", &v, &out, &err), -1);
	assert_non_null(strstr(err.msg, "bad substitution"));
}

static void test_split_words(void **state)
{
	(void)state;
	char **w;
	size_t n;
	vt_err err = { 0 };
	assert_int_equal(recipe_split_words("  a 'b c'  \"d e\"f g\\ h  ", &w, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_string_equal(w[0], "a");
	assert_string_equal(w[1], "'b c'");
	assert_string_equal(w[2], "\"d e\"f");
	assert_string_equal(w[3], "g\\ h");
	recipe_words_free(w, n);
}

static struct build_ignore *ignore(const char *text)
{
	struct build_ignore *ig = NULL;
	vt_err err = { 0 };
	if (build_ignore_parse(text, strlen(text), &ig, &err))
		fail_msg("ignore parse: %s", err.msg);
	return ig;
}

static void test_ignore_patterns(void **state)
{
	(void)state;
	struct build_ignore *ig = ignore("# comment\n"
					 "\n"
					 "  *.log  \n"
					 "/build\n"
					 "**/*.tmp\n"
					 "docs/**/draft?.md\n"
					 "secret\n"
					 "!secret/public.txt\n"
					 "./cache//x\n");
	assert_true(build_ignore_excluded(ig, "a.log"));
	assert_false(build_ignore_excluded(ig, "dir/a.log")); /* '*' stays in its segment */
	assert_true(build_ignore_excluded(ig, "build"));
	assert_true(build_ignore_excluded(ig, "build/out/bin")); /* below an excluded directory */
	assert_false(build_ignore_excluded(ig, "builder"));
	assert_true(build_ignore_excluded(ig, "x.tmp"));
	assert_true(build_ignore_excluded(ig, "a/b/c/x.tmp"));
	assert_true(build_ignore_excluded(ig, "docs/draft1.md"));
	assert_true(build_ignore_excluded(ig, "docs/a/b/draft2.md"));
	assert_false(build_ignore_excluded(ig, "docs/a/b/draft22.md"));
	assert_true(build_ignore_excluded(ig, "secret"));
	assert_true(build_ignore_excluded(ig, "secret/key"));
	assert_false(build_ignore_excluded(ig, "secret/public.txt"));
	assert_true(build_ignore_excluded(ig, "cache/x"));
	assert_false(build_ignore_excluded(ig, "src/main.c"));
	assert_true(build_ignore_has_exceptions(ig));
	build_ignore_free(ig);

	ig = ignore("*\n!keep\n");
	assert_true(build_ignore_excluded(ig, "anything"));
	assert_false(build_ignore_excluded(ig, "keep"));
	build_ignore_free(ig);

	assert_false(build_ignore_excluded(NULL, "x"));
	assert_false(build_ignore_has_exceptions(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_comments_continuations),
		cmocka_unit_test(test_exec_and_shell_forms),
		cmocka_unit_test(test_copy_add_flags),
		cmocka_unit_test(test_env_label_arg),
		cmocka_unit_test(test_errors_name_the_line),
		cmocka_unit_test(test_substitution),
		cmocka_unit_test(test_split_words),
		cmocka_unit_test(test_ignore_patterns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
