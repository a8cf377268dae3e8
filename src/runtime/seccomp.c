/* linux.seccomp -> a libseccomp filter. Everything is validated and compiled in rt_seccomp_prepare (in the
 * runtime, where errors can still be reported cleanly); rt_seccomp_apply only loads it. */
#include "runtime/seccomp.h"

#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"

struct rt_seccomp {
	scmp_filter_ctx ctx;
};

struct name_value {
	const char *name;
	uint32_t value;
};

static const struct name_value arch_names[] = {
	{ "SCMP_ARCH_X86", SCMP_ARCH_X86 },           { "SCMP_ARCH_X86_64", SCMP_ARCH_X86_64 },
	{ "SCMP_ARCH_X32", SCMP_ARCH_X32 },           { "SCMP_ARCH_ARM", SCMP_ARCH_ARM },
	{ "SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64 },   { "SCMP_ARCH_MIPS", SCMP_ARCH_MIPS },
	{ "SCMP_ARCH_MIPS64", SCMP_ARCH_MIPS64 },     { "SCMP_ARCH_MIPS64N32", SCMP_ARCH_MIPS64N32 },
	{ "SCMP_ARCH_MIPSEL", SCMP_ARCH_MIPSEL },     { "SCMP_ARCH_MIPSEL64", SCMP_ARCH_MIPSEL64 },
	{ "SCMP_ARCH_MIPSEL64N32", SCMP_ARCH_MIPSEL64N32 }, { "SCMP_ARCH_PPC", SCMP_ARCH_PPC },
	{ "SCMP_ARCH_PPC64", SCMP_ARCH_PPC64 },       { "SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE },
	{ "SCMP_ARCH_S390", SCMP_ARCH_S390 },         { "SCMP_ARCH_S390X", SCMP_ARCH_S390X },
	{ "SCMP_ARCH_PARISC", SCMP_ARCH_PARISC },     { "SCMP_ARCH_PARISC64", SCMP_ARCH_PARISC64 },
	{ "SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64 },
};

static const struct name_value cmp_names[] = {
	{ "SCMP_CMP_NE", SCMP_CMP_NE }, { "SCMP_CMP_LT", SCMP_CMP_LT }, { "SCMP_CMP_LE", SCMP_CMP_LE },
	{ "SCMP_CMP_EQ", SCMP_CMP_EQ }, { "SCMP_CMP_GE", SCMP_CMP_GE }, { "SCMP_CMP_GT", SCMP_CMP_GT },
	{ "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
};

static const struct name_value flag_names[] = {
	{ "SECCOMP_FILTER_FLAG_TSYNC", SCMP_FLTATR_CTL_TSYNC },
	{ "SECCOMP_FILTER_FLAG_LOG", SCMP_FLTATR_CTL_LOG },
	{ "SECCOMP_FILTER_FLAG_SPEC_ALLOW", SCMP_FLTATR_CTL_SSB },
};

static bool lookup(const struct name_value *table, size_t n, const char *name, uint32_t *out)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(table[i].name, name) == 0) {
			*out = table[i].value;
			return true;
		}
	return false;
}

/* ---- typed JSON access, every error naming its field ---- */

static int opt_member(json_object *o, const char *key, json_type type, const char *field, json_object **out,
		      vt_err *err)
{
	*out = NULL;
	json_object *v;
	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, type))
		return vt_fail(err, "%s.%s: must be %s", field, key,
			       type == json_type_string ? "a string" : type == json_type_array ? "an array" : "an integer");
	*out = v;
	return 0;
}

static int get_uint(json_object *v, const char *field, uint64_t max, uint64_t *out, vt_err *err)
{
	if (!json_object_is_type(v, json_type_int))
		return vt_fail(err, "%s: must be an unsigned integer", field);
	errno = 0;
	int64_t s = json_object_get_int64(v);
	uint64_t u = s < 0 ? 0 : (s == INT64_MAX ? json_object_get_uint64(v) : (uint64_t)s);
	if (s < 0 || u > max)
		return vt_fail(err, "%s: %s is out of range", field, json_object_get_string(v));
	*out = u;
	return 0;
}

/* ---- actions ---- */

enum { TAKES_NOTHING, TAKES_ERRNO, UNSUPPORTED };

static const struct action_name {
	const char *name;
	uint32_t action; /* for TAKES_ERRNO: the action with errno 0, or'ed with the errno */
	int kind;
} action_names[] = {
	{ "SCMP_ACT_KILL", SCMP_ACT_KILL_THREAD, TAKES_NOTHING },
	{ "SCMP_ACT_KILL_THREAD", SCMP_ACT_KILL_THREAD, TAKES_NOTHING },
	{ "SCMP_ACT_KILL_PROCESS", SCMP_ACT_KILL_PROCESS, TAKES_NOTHING },
	{ "SCMP_ACT_TRAP", SCMP_ACT_TRAP, TAKES_NOTHING },
	{ "SCMP_ACT_ERRNO", SCMP_ACT_ERRNO(0), TAKES_ERRNO },
	{ "SCMP_ACT_TRACE", SCMP_ACT_TRACE(0), TAKES_ERRNO },
	{ "SCMP_ACT_ALLOW", SCMP_ACT_ALLOW, TAKES_NOTHING },
	{ "SCMP_ACT_LOG", SCMP_ACT_LOG, TAKES_NOTHING },
	{ "SCMP_ACT_NOTIFY", 0, UNSUPPORTED },
};

/* action name + optional errno (default EPERM) -> libseccomp action. */
static int parse_action(const char *name, json_object *errno_ret, const char *field, const char *errno_field,
			uint32_t *out, vt_err *err)
{
	const struct action_name *a = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(action_names) && !a; i++)
		if (strcmp(action_names[i].name, name) == 0)
			a = &action_names[i];
	if (!a)
		return vt_fail(err, "%s: unknown action '%s'", field, name);
	if (a->kind == UNSUPPORTED)
		return vt_fail(err, "%s: %s is not supported by virtus-runtime", field, name);
	if (errno_ret && a->kind != TAKES_ERRNO)
		return vt_fail(err, "%s: %s takes no errno (action is %s)", errno_field, json_object_get_string(errno_ret), name);
	uint64_t e = EPERM;
	if (errno_ret && get_uint(errno_ret, errno_field, 0xffff, &e, err) < 0)
		return -1;
	*out = a->kind == TAKES_ERRNO ? a->action | (uint32_t)e : a->action;
	return 0;
}

static int action_of(json_object *o, const char *field, const char *action_key, const char *errno_key,
		     uint32_t *out, vt_err *err)
{
	json_object *action, *errno_ret;
	char afield[128], efield[128];
	snprintf(afield, sizeof(afield), "%s.%s", field, action_key);
	snprintf(efield, sizeof(efield), "%s.%s", field, errno_key);
	if (opt_member(o, action_key, json_type_string, field, &action, err) < 0 ||
	    opt_member(o, errno_key, json_type_int, field, &errno_ret, err) < 0)
		return -1;
	if (!action)
		return vt_fail(err, "%s: required", afield);
	return parse_action(json_object_get_string(action), errno_ret, afield, efield, out, err);
}

/* ---- architectures and flags ---- */

static int add_architectures(scmp_filter_ctx ctx, json_object *sc, vt_err *err)
{
	json_object *arr;
	if (opt_member(sc, "architectures", json_type_array, "linux.seccomp", &arr, err) < 0)
		return -1;
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		json_object *a = json_object_array_get_idx(arr, i);
		uint32_t arch;
		if (!json_object_is_type(a, json_type_string))
			return vt_fail(err, "linux.seccomp.architectures[%zu]: must be a string", i);
		if (!lookup(arch_names, ARRAY_SIZE(arch_names), json_object_get_string(a), &arch))
			return vt_fail(err, "linux.seccomp.architectures[%zu]: unknown architecture '%s'", i,
				       json_object_get_string(a));
		int rc = seccomp_arch_add(ctx, arch);
		if (rc < 0 && rc != -EEXIST) /* the native arch is always present */
			return vt_fail_errno(err, -rc, "linux.seccomp.architectures[%zu]: '%s'", i, json_object_get_string(a));
	}
	return 0;
}

static int set_flags(scmp_filter_ctx ctx, json_object *sc, vt_err *err)
{
	json_object *arr;
	if (opt_member(sc, "flags", json_type_array, "linux.seccomp", &arr, err) < 0)
		return -1;
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
		json_object *f = json_object_array_get_idx(arr, i);
		uint32_t attr;
		if (!json_object_is_type(f, json_type_string))
			return vt_fail(err, "linux.seccomp.flags[%zu]: must be a string", i);
		if (!lookup(flag_names, ARRAY_SIZE(flag_names), json_object_get_string(f), &attr))
			return vt_fail(err, "linux.seccomp.flags[%zu]: '%s' is not supported", i, json_object_get_string(f));
		int rc = seccomp_attr_set(ctx, (enum scmp_filter_attr)attr, 1);
		if (rc < 0)
			return vt_fail_errno(err, -rc, "linux.seccomp.flags[%zu]: '%s' is not supported by this kernel or "
					     "libseccomp", i, json_object_get_string(f));
	}
	return 0;
}

/* ---- syscall rules ---- */

static int parse_arg(json_object *a, const char *field, struct scmp_arg_cmp *cmp, vt_err *err)
{
	char f[160];
	json_object *index, *value, *value2, *op;
	uint64_t idx, v, v2 = 0;
	uint32_t opv;
	if (!json_object_is_type(a, json_type_object))
		return vt_fail(err, "%s: must be an object", field);
	if (opt_member(a, "op", json_type_string, field, &op, err) < 0)
		return -1;
	if (!json_object_object_get_ex(a, "index", &index))
		return vt_fail(err, "%s.index: required", field);
	if (!json_object_object_get_ex(a, "value", &value))
		return vt_fail(err, "%s.value: required", field);
	if (!op)
		return vt_fail(err, "%s.op: required", field);
	snprintf(f, sizeof(f), "%s.index", field);
	if (get_uint(index, f, 5, &idx, err) < 0)
		return -1;
	snprintf(f, sizeof(f), "%s.value", field);
	if (get_uint(value, f, UINT64_MAX, &v, err) < 0)
		return -1;
	snprintf(f, sizeof(f), "%s.valueTwo", field);
	if (json_object_object_get_ex(a, "valueTwo", &value2) && get_uint(value2, f, UINT64_MAX, &v2, err) < 0)
		return -1;
	if (!lookup(cmp_names, ARRAY_SIZE(cmp_names), json_object_get_string(op), &opv))
		return vt_fail(err, "%s.op: unknown operator '%s'", field, json_object_get_string(op));
	/* For MASKED_EQ OCI's value is the mask and valueTwo the expected value, as in libseccomp's datum_a/b. */
	*cmp = (struct scmp_arg_cmp){ .arg = (unsigned)idx, .op = (enum scmp_compare)opv, .datum_a = v, .datum_b = v2 };
	return 0;
}

static int parse_args(json_object *rule, const char *field, struct scmp_arg_cmp *cmps, unsigned *n, vt_err *err)
{
	json_object *arr;
	*n = 0;
	if (opt_member(rule, "args", json_type_array, field, &arr, err) < 0)
		return -1;
	if (!arr)
		return 0;
	size_t len = json_object_array_length(arr);
	if (len > 6)
		return vt_fail(err, "%s.args: at most 6 argument comparisons, got %zu", field, len);
	for (size_t i = 0; i < len; i++) {
		char f[128];
		snprintf(f, sizeof(f), "%s.args[%zu]", field, i);
		if (parse_arg(json_object_array_get_idx(arr, i), f, &cmps[i], err) < 0)
			return -1;
	}
	*n = (unsigned)len;
	return 0;
}

static bool args_repeat_an_index(const struct scmp_arg_cmp *cmps, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		for (unsigned k = i + 1; k < n; k++)
			if (cmps[i].arg == cmps[k].arg)
				return true;
	return false;
}

static int add_one_rule(scmp_filter_ctx ctx, uint32_t action, int nr, const struct scmp_arg_cmp *cmps, unsigned n,
			const char *field, const char *name, vt_err *err)
{
	int rc = seccomp_rule_add_array(ctx, action, nr, n, cmps);
	if (rc < 0)
		return vt_fail_errno(err, -rc, "%s: adding rule for '%s'", field, name);
	return 0;
}

static int add_syscall(scmp_filter_ctx ctx, uint32_t action, int nr, const struct scmp_arg_cmp *cmps, unsigned n,
		       const char *field, const char *name, vt_err *err)
{
	/* libseccomp cannot AND two comparisons of one argument; like runc, such entries mean "any of them". */
	if (!args_repeat_an_index(cmps, n))
		return add_one_rule(ctx, action, nr, cmps, n, field, name, err);
	for (unsigned i = 0; i < n; i++)
		if (add_one_rule(ctx, action, nr, &cmps[i], 1, field, name, err) < 0)
			return -1;
	return 0;
}

static int add_rule(scmp_filter_ctx ctx, uint32_t default_action, json_object *rule, size_t ri, vt_err *err)
{
	char field[64];
	snprintf(field, sizeof(field), "linux.seccomp.syscalls[%zu]", ri);
	if (!json_object_is_type(rule, json_type_object))
		return vt_fail(err, "%s: must be an object", field);
	json_object *names;
	uint32_t action;
	struct scmp_arg_cmp cmps[6];
	unsigned ncmp;
	if (opt_member(rule, "names", json_type_array, field, &names, err) < 0 ||
	    action_of(rule, field, "action", "errnoRet", &action, err) < 0 || parse_args(rule, field, cmps, &ncmp, err) < 0)
		return -1;
	if (!names || json_object_array_length(names) == 0)
		return vt_fail(err, "%s.names: must contain at least one syscall name", field);
	for (size_t i = 0; i < json_object_array_length(names); i++) {
		json_object *nm = json_object_array_get_idx(names, i);
		char nfield[96];
		snprintf(nfield, sizeof(nfield), "%s.names[%zu]", field, i);
		if (!json_object_is_type(nm, json_type_string))
			return vt_fail(err, "%s: must be a string", nfield);
		const char *name = json_object_get_string(nm);
		int nr = seccomp_syscall_resolve_name(name);
		if (nr == __NR_SCMP_ERROR)
			return vt_fail(err, "%s: unknown syscall '%s'", nfield, name);
		if (action == default_action) /* libseccomp refuses rules that repeat the default; they change nothing */
			continue;
		if (add_syscall(ctx, action, nr, cmps, ncmp, nfield, name, err) < 0)
			return -1;
	}
	return 0;
}

static int add_rules(scmp_filter_ctx ctx, uint32_t default_action, json_object *sc, vt_err *err)
{
	json_object *arr;
	if (opt_member(sc, "syscalls", json_type_array, "linux.seccomp", &arr, err) < 0)
		return -1;
	for (size_t i = 0; arr && i < json_object_array_length(arr); i++)
		if (add_rule(ctx, default_action, json_object_array_get_idx(arr, i), i, err) < 0)
			return -1;
	return 0;
}

static int build_filter(scmp_filter_ctx ctx, uint32_t default_action, json_object *sc, vt_err *err)
{
	/* no_new_privs is the caller's decision (process.noNewPrivileges), not libseccomp's default. */
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (rc < 0)
		return vt_fail_errno(err, -rc, "linux.seccomp: configuring the filter");
	if (add_architectures(ctx, sc, err) < 0 || set_flags(ctx, sc, err) < 0 || add_rules(ctx, default_action, sc, err) < 0)
		return -1;
	return 0;
}

int rt_seccomp_prepare(json_object *seccomp, struct rt_seccomp **out, vt_err *err)
{
	uint32_t default_action;
	if (!seccomp || !json_object_is_type(seccomp, json_type_object))
		return vt_fail(err, "linux.seccomp: must be an object");
	/* listenerPath/listenerMetadata only matter with SCMP_ACT_NOTIFY, which is refused below. */
	if (action_of(seccomp, "linux.seccomp", "defaultAction", "defaultErrnoRet", &default_action, err) < 0)
		return -1;
	struct rt_seccomp *sc = calloc(1, sizeof(*sc));
	if (!sc)
		return vt_fail_errno(err, ENOMEM, "linux.seccomp");
	sc->ctx = seccomp_init(default_action);
	if (!sc->ctx) {
		free(sc);
		return vt_fail(err, "linux.seccomp.defaultAction: libseccomp refused the action");
	}
	if (build_filter(sc->ctx, default_action, seccomp, err) < 0) {
		rt_seccomp_free(sc);
		return -1;
	}
	*out = sc;
	return 0;
}

int rt_seccomp_apply(struct rt_seccomp *sc, vt_err *err)
{
	int rc = seccomp_load(sc->ctx);
	if (rc == -EACCES)
		return vt_fail_errno(err, -rc, "loading the seccomp filter (without no_new_privs this needs CAP_SYS_ADMIN: "
				     "set process.noNewPrivileges or load it before dropping capabilities)");
	if (rc < 0)
		return vt_fail_errno(err, -rc, "loading the seccomp filter");
	return 0;
}

void rt_seccomp_free(struct rt_seccomp *sc)
{
	if (!sc)
		return;
	seccomp_release(sc->ctx);
	free(sc);
}
