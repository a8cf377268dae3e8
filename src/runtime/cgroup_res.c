/* linux.resources -> struct rt_cg_resources, the v1<->v2 value conversions and the device rules.
 * Everything here is pure (no kernel files), so the unit tests cover it completely. */
#include "runtime/cgroup_internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/util.h"

/* ---- typed field readers: each error names the field by its full JSON path ---- */

static int get_i64(json_object *obj, const char *base, const char *key, bool *has, int64_t *out, vt_err *err)
{
	json_object *v;
	if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return vt_fail(err, "%s.%s: must be an integer", base, key);
	errno = 0;
	int64_t val = json_object_get_int64(v);
	if (errno == EINVAL || (val == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX))
		return vt_fail(err, "%s.%s: out of range", base, key);
	*out = val;
	*has = true;
	return 0;
}

static int get_u64(json_object *obj, const char *base, const char *key, bool *has, uint64_t *out, vt_err *err)
{
	bool present = false;
	int64_t val = 0;
	if (get_i64(obj, base, key, &present, &val, err) < 0)
		return -1;
	if (!present)
		return 0;
	if (val < 0)
		return vt_fail(err, "%s.%s: must not be negative", base, key);
	*out = (uint64_t)val;
	*has = true;
	return 0;
}

static int get_bool(json_object *obj, const char *base, const char *key, bool *out, vt_err *err)
{
	json_object *v;
	if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return vt_fail(err, "%s.%s: must be a boolean", base, key);
	*out = json_object_get_boolean(v);
	return 0;
}

static int get_str(json_object *obj, const char *base, const char *key, char **out, vt_err *err)
{
	json_object *v;
	if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return vt_fail(err, "%s.%s: must be a string", base, key);
	free(*out);
	*out = strdup(json_object_get_string(v));
	if (!*out)
		return vt_fail_errno(err, ENOMEM, "%s.%s", base, key);
	return 0;
}

/* The object at obj[key], NULL when absent; an error when present but not an object. */
static int get_section(json_object *obj, const char *base, const char *key, json_object **out, vt_err *err)
{
	*out = NULL;
	json_object *v;
	if (!obj || !json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_object))
		return vt_fail(err, "%s.%s: must be an object", base, key);
	*out = v;
	return 0;
}

/* Fields we do not implement are refused when they ask for something, never silently dropped. */
static int refuse_nonempty(json_object *obj, const char *base, const char *key, vt_err *err)
{
	json_object *v;
	if (!obj || !json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (json_object_is_type(v, json_type_array) && json_object_array_length(v) == 0)
		return 0;
	if (json_object_is_type(v, json_type_object) && json_object_object_length(v) == 0)
		return 0;
	return vt_fail(err, "%s.%s: not supported by virtus-runtime", base, key);
}

/* ---- sections ---- */

static int parse_memory(json_object *res, struct rt_cg_resources *r, vt_err *err)
{
	const char *base = "linux.resources.memory";
	json_object *m;
	if (get_section(res, "linux.resources", "memory", &m, err) < 0)
		return -1;
	if (!m)
		return 0;
	if (get_i64(m, base, "limit", &r->has_mem_limit, &r->mem_limit, err) < 0 ||
	    get_i64(m, base, "reservation", &r->has_mem_reservation, &r->mem_reservation, err) < 0 ||
	    get_i64(m, base, "swap", &r->has_mem_swap, &r->mem_swap, err) < 0 ||
	    get_u64(m, base, "swappiness", &r->has_swappiness, &r->swappiness, err) < 0 ||
	    get_bool(m, base, "disableOOMKiller", &r->disable_oom_killer, err) < 0 ||
	    get_i64(m, base, "kernel", &r->has_mem_kernel, &r->mem_kernel, err) < 0 ||
	    get_i64(m, base, "kernelTCP", &r->has_mem_kernel_tcp, &r->mem_kernel_tcp, err) < 0)
		return -1;
	json_object *uh;
	if (json_object_object_get_ex(m, "useHierarchy", &uh) && !json_object_is_type(uh, json_type_null)) {
		r->has_use_hierarchy = true;
		if (get_bool(m, base, "useHierarchy", &r->use_hierarchy, err) < 0)
			return -1;
	}
	if (r->has_mem_kernel && r->mem_kernel != -1 && r->mem_kernel <= 0)
		return vt_fail(err, "%s.kernel: must be positive or -1 (unlimited), got %lld", base, (long long)r->mem_kernel);
	if (r->has_mem_kernel_tcp && r->mem_kernel_tcp != -1 && r->mem_kernel_tcp <= 0)
		return vt_fail(err, "%s.kernelTCP: must be positive or -1 (unlimited), got %lld", base,
			       (long long)r->mem_kernel_tcp);
	if (r->has_mem_limit && r->mem_limit != -1 && r->mem_limit <= 0)
		return vt_fail(err, "%s.limit: must be positive or -1 (unlimited), got %lld", base,
			       (long long)r->mem_limit);
	if (r->has_mem_reservation && r->mem_reservation < -1)
		return vt_fail(err, "%s.reservation: must be >= 0 or -1, got %lld", base,
			       (long long)r->mem_reservation);
	if (r->has_mem_swap && r->mem_swap != -1 && r->mem_swap <= 0)
		return vt_fail(err, "%s.swap: must be positive or -1 (unlimited), got %lld", base,
			       (long long)r->mem_swap);
	/* OCI swap is memory+swap, so it can never be below the memory limit. */
	if (r->has_mem_swap && r->has_mem_limit && r->mem_swap != -1 && r->mem_limit != -1 &&
	    r->mem_swap < r->mem_limit)
		return vt_fail(err, "%s.swap: %lld is below memory.limit %lld (swap counts memory+swap)", base,
			       (long long)r->mem_swap, (long long)r->mem_limit);
	if (r->has_swappiness && r->swappiness > 100)
		return vt_fail(err, "%s.swappiness: must be in [0, 100], got %llu", base,
			       (unsigned long long)r->swappiness);
	return 0;
}

static int parse_cpu(json_object *res, struct rt_cg_resources *r, vt_err *err)
{
	const char *base = "linux.resources.cpu";
	json_object *c;
	if (get_section(res, "linux.resources", "cpu", &c, err) < 0)
		return -1;
	if (!c)
		return 0;
	if (get_u64(c, base, "shares", &r->has_cpu_shares, &r->cpu_shares, err) < 0 ||
	    get_i64(c, base, "quota", &r->has_cpu_quota, &r->cpu_quota, err) < 0 ||
	    get_u64(c, base, "period", &r->has_cpu_period, &r->cpu_period, err) < 0 ||
	    get_str(c, base, "cpus", &r->cpus, err) < 0 || get_str(c, base, "mems", &r->mems, err) < 0)
		return -1;
	if (r->has_cpu_shares && r->cpu_shares != 0 && (r->cpu_shares < 2 || r->cpu_shares > 262144))
		return vt_fail(err, "%s.shares: must be in [2, 262144], got %llu", base,
			       (unsigned long long)r->cpu_shares);
	if (r->has_cpu_quota && r->cpu_quota != -1 && r->cpu_quota < 1000)
		return vt_fail(err, "%s.quota: must be >= 1000 (microseconds) or -1, got %lld", base,
			       (long long)r->cpu_quota);
	if (r->has_cpu_period && (r->cpu_period < 1000 || r->cpu_period > 1000000))
		return vt_fail(err, "%s.period: must be in [1000, 1000000] microseconds, got %llu", base,
			       (unsigned long long)r->cpu_period);
	if (get_u64(c, base, "burst", &r->has_cpu_burst, &r->cpu_burst, err) < 0 ||
	    get_i64(c, base, "idle", &r->has_cpu_idle, &r->cpu_idle, err) < 0)
		return -1;
	if (r->has_cpu_idle && r->cpu_idle != 0 && r->cpu_idle != 1)
		return vt_fail(err, "%s.idle: must be 0 or 1, got %lld", base, (long long)r->cpu_idle);
	if (refuse_nonempty(c, base, "realtimeRuntime", err) < 0 ||
	    refuse_nonempty(c, base, "realtimePeriod", err) < 0)
		return -1;
	return 0;
}

static int parse_pids(json_object *res, struct rt_cg_resources *r, vt_err *err)
{
	json_object *p;
	if (get_section(res, "linux.resources", "pids", &p, err) < 0)
		return -1;
	if (!p)
		return 0;
	if (get_i64(p, "linux.resources.pids", "limit", &r->has_pids_limit, &r->pids_limit, err) < 0)
		return -1;
	if (r->has_pids_limit && r->pids_limit < -1)
		return vt_fail(err, "linux.resources.pids.limit: must be >= 0 or -1 (unlimited), got %lld",
			       (long long)r->pids_limit);
	return 0;
}

const char *rt_cg_blkio_list_name(enum rt_cg_blkio_list l)
{
	static const char *const names[RT_CG_BLKIO_LISTS] = { "weightDevice", "throttleReadBpsDevice",
		"throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice" };
	return names[l];
}

static int parse_blkio_dev(json_object *d, const char *field, bool weight, struct rt_cg_blkio_dev *out, vt_err *err)
{
	bool has_major = false, has_minor = false, has_value = false;
	if (!json_object_is_type(d, json_type_object))
		return vt_fail(err, "%s: must be an object", field);
	if (get_i64(d, field, "major", &has_major, &out->major, err) < 0 ||
	    get_i64(d, field, "minor", &has_minor, &out->minor, err) < 0 ||
	    get_u64(d, field, weight ? "weight" : "rate", &has_value, &out->value, err) < 0)
		return -1;
	if (!has_major || !has_minor || out->major < 0 || out->minor < 0)
		return vt_fail(err, "%s: needs major and minor device numbers", field);
	if (!has_value)
		return weight ? vt_fail(err, "%s.weight: required (leafWeight is not supported)", field) :
				vt_fail(err, "%s.rate: required", field);
	if (weight && (out->value < 10 || out->value > 1000))
		return vt_fail(err, "%s.weight: must be in [10, 1000], got %llu", field, (unsigned long long)out->value);
	return 0;
}

static int parse_blkio_list(json_object *b, enum rt_cg_blkio_list l, struct rt_cg_resources *r, vt_err *err)
{
	const char *key = rt_cg_blkio_list_name(l);
	json_object *arr;
	if (!json_object_object_get_ex(b, key, &arr) || json_object_is_type(arr, json_type_null))
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return vt_fail(err, "linux.resources.blockIO.%s: must be an array", key);
	size_t n = json_object_array_length(arr);
	r->blkio_devs[l] = calloc(n ? n : 1, sizeof(*r->blkio_devs[l]));
	if (!r->blkio_devs[l])
		return vt_fail_errno(err, ENOMEM, "linux.resources.blockIO.%s", key);
	for (size_t i = 0; i < n; i++, r->nblkio_devs[l]++) {
		char field[96];
		snprintf(field, sizeof(field), "linux.resources.blockIO.%s[%zu]", key, i);
		if (parse_blkio_dev(json_object_array_get_idx(arr, i), field, l == RT_CG_BLKIO_WEIGHT,
				    &r->blkio_devs[l][i], err) < 0)
			return -1;
	}
	return 0;
}

static int parse_blkio(json_object *res, struct rt_cg_resources *r, vt_err *err)
{
	const char *base = "linux.resources.blockIO";
	json_object *b;
	if (get_section(res, "linux.resources", "blockIO", &b, err) < 0)
		return -1;
	if (!b)
		return 0;
	if (get_u64(b, base, "weight", &r->has_blkio_weight, &r->blkio_weight, err) < 0)
		return -1;
	if (r->has_blkio_weight && (r->blkio_weight < 10 || r->blkio_weight > 1000))
		return vt_fail(err, "%s.weight: must be in [10, 1000], got %llu", base,
			       (unsigned long long)r->blkio_weight);
	if (refuse_nonempty(b, base, "leafWeight", err) < 0)
		return -1;
	for (enum rt_cg_blkio_list l = 0; l < RT_CG_BLKIO_LISTS; l++)
		if (parse_blkio_list(b, l, r, err) < 0)
			return -1;
	return 0;
}

/* ---- devices ---- */

static int parse_access(const char *s, char out[4], const char *field, vt_err *err)
{
	bool r = false, w = false, m = false;
	for (const char *p = s; *p; p++) {
		switch (*p) {
		case 'r': r = true; break;
		case 'w': w = true; break;
		case 'm': m = true; break;
		default: return vt_fail(err, "%s.access: '%s' has '%c', expected letters of \"rwm\"", field, s, *p);
		}
	}
	int n = 0;
	if (r) out[n++] = 'r';
	if (w) out[n++] = 'w';
	if (m) out[n++] = 'm';
	out[n] = '\0';
	return 0;
}

static int parse_dev_number(json_object *d, const char *field, const char *key, int64_t *out, vt_err *err)
{
	bool has = false;
	*out = -1;
	if (get_i64(d, field, key, &has, out, err) < 0)
		return -1;
	if (has && (*out < -1 || *out > 0xfffff))
		return vt_fail(err, "%s.%s: %lld is not a device number", field, key, (long long)*out);
	return 0;
}

static int parse_dev_rule(json_object *d, const char *field, struct rt_cg_dev_rule *rule, vt_err *err)
{
	if (!json_object_is_type(d, json_type_object))
		return vt_fail(err, "%s: must be an object", field);
	json_object *allow;
	if (!json_object_object_get_ex(d, "allow", &allow) || !json_object_is_type(allow, json_type_boolean))
		return vt_fail(err, "%s.allow: required boolean", field);
	rule->allow = json_object_get_boolean(allow);

	cleanup_free char *type = NULL, *access = NULL;
	if (get_str(d, field, "type", &type, err) < 0 || get_str(d, field, "access", &access, err) < 0)
		return -1;
	rule->type = type ? type[0] : 'a';
	if (type && (strlen(type) != 1 || !strchr("acbu", type[0])))
		return vt_fail(err, "%s.type: '%s' is not one of a, c, b", field, type);
	if (rule->type == 'u') /* "u" (unbuffered) is a character device to the kernel */
		rule->type = 'c';
	if (parse_access(access ? access : "rwm", rule->access, field, err) < 0)
		return -1;
	return parse_dev_number(d, field, "major", &rule->major, err) < 0 ||
	       parse_dev_number(d, field, "minor", &rule->minor, err) < 0 ? -1 : 0;
}

static int push_rule(struct rt_cg_resources *r, const struct rt_cg_dev_rule *rule, vt_err *err)
{
	struct rt_cg_dev_rule *grown = realloc(r->devices, (r->ndevices + 1) * sizeof(*grown));
	if (!grown)
		return vt_fail_errno(err, ENOMEM, "linux.resources.devices");
	grown[r->ndevices++] = *rule;
	r->devices = grown;
	return 0;
}

static int parse_user_devices(json_object *res, struct rt_cg_resources *r, vt_err *err)
{
	json_object *arr;
	if (!res || !json_object_object_get_ex(res, "devices", &arr) || json_object_is_type(arr, json_type_null))
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return vt_fail(err, "linux.resources.devices: must be an array");
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		char field[64];
		snprintf(field, sizeof(field), "linux.resources.devices[%zu]", i);
		struct rt_cg_dev_rule rule;
		if (parse_dev_rule(json_object_array_get_idx(arr, i), field, &rule, err) < 0 ||
		    push_rule(r, &rule, err) < 0)
			return -1;
	}
	return 0;
}

/* Devices every container gets (the OCI default /dev entries and the pty slaves), as runc and crun do. */
static int add_default_devices(struct rt_cg_resources *r, vt_err *err)
{
	static const struct rt_cg_dev_rule defaults[] = {
		{ true, 'c', 1, 3, "rwm" },   /* null */
		{ true, 'c', 1, 5, "rwm" },   /* zero */
		{ true, 'c', 1, 7, "rwm" },   /* full */
		{ true, 'c', 1, 8, "rwm" },   /* random */
		{ true, 'c', 1, 9, "rwm" },   /* urandom */
		{ true, 'c', 5, 0, "rwm" },   /* tty */
		{ true, 'c', 5, 1, "rwm" },   /* console */
		{ true, 'c', 5, 2, "rwm" },   /* ptmx */
		{ true, 'c', 136, -1, "rwm" }, /* pts */
	};
	for (size_t i = 0; i < ARRAY_SIZE(defaults); i++)
		if (push_rule(r, &defaults[i], err) < 0)
			return -1;
	return 0;
}

/* Devices the config asks to be created (linux.devices) are meant to be usable. */
static int add_config_devices(json_object *linux_obj, struct rt_cg_resources *r, vt_err *err)
{
	json_object *arr;
	if (!linux_obj || !json_object_object_get_ex(linux_obj, "devices", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *d = json_object_array_get_idx(arr, i);
		char field[64];
		snprintf(field, sizeof(field), "linux.devices[%zu]", i);
		cleanup_free char *type = NULL;
		struct rt_cg_dev_rule rule = { .allow = true, .access = "rwm" };
		if (!json_object_is_type(d, json_type_object))
			return vt_fail(err, "%s: must be an object", field);
		if (get_str(d, field, "type", &type, err) < 0 || parse_dev_number(d, field, "major", &rule.major, err) < 0 ||
		    parse_dev_number(d, field, "minor", &rule.minor, err) < 0)
			return -1;
		if (!type || strlen(type) != 1 || !strchr("cbu", type[0]) || rule.major < 0 || rule.minor < 0)
			continue; /* fifos and incomplete entries: the device code reports those */
		rule.type = type[0] == 'b' ? 'b' : 'c';
		if (push_rule(r, &rule, err) < 0)
			return -1;
	}
	return 0;
}

/* "2MB", "1GB", "64KB": the page-size spelling of the kernel's hugetlb.<size>.* file names. */
static bool valid_page_size(const char *s)
{
	size_t digits = strspn(s, "0123456789");
	return digits > 0 && digits < 8 && (strcmp(s + digits, "KB") == 0 || strcmp(s + digits, "MB") == 0 ||
					    strcmp(s + digits, "GB") == 0);
}

static int parse_hugepage(json_object *h, const char *field, struct rt_cg_hugepage *out, vt_err *err)
{
	cleanup_free char *size = NULL;
	bool has_limit = false;
	if (!json_object_is_type(h, json_type_object))
		return vt_fail(err, "%s: must be an object", field);
	if (get_str(h, field, "pageSize", &size, err) < 0 || get_u64(h, field, "limit", &has_limit, &out->limit, err) < 0)
		return -1;
	if (!size || !valid_page_size(size))
		return vt_fail(err, "%s.pageSize: '%s' is not a page size like \"2MB\" or \"1GB\"", field, size ? size : "");
	if (!has_limit)
		return vt_fail(err, "%s.limit: required", field);
	snprintf(out->size, sizeof(out->size), "%s", size);
	return 0;
}

static int parse_hugepages(json_object *res, struct rt_cg_resources *r, vt_err *err)
{
	json_object *arr;
	if (!res || !json_object_object_get_ex(res, "hugepageLimits", &arr) || json_object_is_type(arr, json_type_null))
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return vt_fail(err, "linux.resources.hugepageLimits: must be an array");
	size_t n = json_object_array_length(arr);
	r->hugepages = calloc(n ? n : 1, sizeof(*r->hugepages));
	if (!r->hugepages)
		return vt_fail_errno(err, ENOMEM, "linux.resources.hugepageLimits");
	for (size_t i = 0; i < n; i++, r->nhugepages++) {
		char field[64];
		snprintf(field, sizeof(field), "linux.resources.hugepageLimits[%zu]", i);
		if (parse_hugepage(json_object_array_get_idx(arr, i), field, &r->hugepages[i], err) < 0)
			return -1;
	}
	return 0;
}

static int parse_net_prio(json_object *o, const char *field, struct rt_cg_net_prio *out, vt_err *err)
{
	cleanup_free char *name = NULL;
	bool has_prio = false;
	uint64_t prio = 0;
	if (!json_object_is_type(o, json_type_object))
		return vt_fail(err, "%s: must be an object", field);
	if (get_str(o, field, "name", &name, err) < 0 || get_u64(o, field, "priority", &has_prio, &prio, err) < 0)
		return -1;
	if (!name || !*name || strlen(name) >= 16 || strpbrk(name, " /\n"))
		return vt_fail(err, "%s.name: '%s' is not an interface name", field, name ? name : "");
	if (!has_prio || prio > UINT32_MAX)
		return vt_fail(err, "%s.priority: required, a 32-bit number", field);
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->priority = (uint32_t)prio;
	return 0;
}

static int parse_network(json_object *res, struct rt_cg_resources *r, vt_err *err)
{
	const char *base = "linux.resources.network";
	json_object *n, *arr;
	uint64_t classid = 0;
	if (get_section(res, "linux.resources", "network", &n, err) < 0 || !n)
		return n ? -1 : 0;
	if (get_u64(n, base, "classID", &r->has_net_classid, &classid, err) < 0)
		return -1;
	if (classid > UINT32_MAX)
		return vt_fail(err, "%s.classID: must be a 32-bit number, got %llu", base, (unsigned long long)classid);
	r->net_classid = (uint32_t)classid;
	if (!json_object_object_get_ex(n, "priorities", &arr) || json_object_is_type(arr, json_type_null))
		return 0;
	if (!json_object_is_type(arr, json_type_array))
		return vt_fail(err, "%s.priorities: must be an array", base);
	size_t len = json_object_array_length(arr);
	r->net_prios = calloc(len ? len : 1, sizeof(*r->net_prios));
	if (!r->net_prios)
		return vt_fail_errno(err, ENOMEM, "%s.priorities", base);
	for (size_t i = 0; i < len; i++, r->nnet_prios++) {
		char field[64];
		snprintf(field, sizeof(field), "%s.priorities[%zu]", base, i);
		if (parse_net_prio(json_object_array_get_idx(arr, i), field, &r->net_prios[i], err) < 0)
			return -1;
	}
	return 0;
}

static int parse_unified(json_object *res, struct rt_cg_resources *r, vt_err *err)
{
	json_object *u;
	if (get_section(res, "linux.resources", "unified", &u, err) < 0)
		return -1;
	if (!u)
		return 0;
	json_object_object_foreach(u, key, val) {
		if (!json_object_is_type(val, json_type_string))
			return vt_fail(err, "linux.resources.unified.%s: must be a string", key);
		if (strchr(key, '/') || key[0] == '.' || !strchr(key, '.'))
			return vt_fail(err, "linux.resources.unified.%s: not a cgroup v2 control file name", key);
	}
	r->unified = json_object_get(u);
	return 0;
}

int rt_cg_resources_parse(json_object *linux_obj, struct rt_cg_resources *out, vt_err *err)
{
	memset(out, 0, sizeof(*out));
	json_object *res = NULL;
	if (linux_obj && !json_object_is_type(linux_obj, json_type_object))
		return vt_fail(err, "linux: must be an object");
	if (get_section(linux_obj, "linux", "resources", &res, err) < 0)
		return -1;
	int rc = 0;
	if (parse_memory(res, out, err) < 0 || parse_cpu(res, out, err) < 0 || parse_pids(res, out, err) < 0 ||
	    parse_blkio(res, out, err) < 0 || parse_user_devices(res, out, err) < 0 ||
	    add_default_devices(out, err) < 0 || add_config_devices(linux_obj, out, err) < 0 ||
	    parse_unified(res, out, err) < 0 || parse_hugepages(res, out, err) < 0 ||
	    refuse_nonempty(res, "linux.resources", "rdma", err) < 0 ||
	    parse_network(res, out, err) < 0)
		rc = -1;
	if (rc < 0)
		rt_cg_resources_free(out);
	return rc;
}

void rt_cg_resources_free(struct rt_cg_resources *r)
{
	free(r->cpus);
	free(r->mems);
	free(r->devices);
	free(r->hugepages);
	free(r->net_prios);
	for (enum rt_cg_blkio_list l = 0; l < RT_CG_BLKIO_LISTS; l++)
		free(r->blkio_devs[l]);
	if (r->unified)
		json_object_put(r->unified);
	memset(r, 0, sizeof(*r));
}

/* ---- conversions ---- */

uint64_t rt_cg_shares_to_weight(uint64_t shares)
{
	if (shares < 2)
		shares = 2;
	if (shares > 262144)
		shares = 262144;
	return 1 + ((shares - 2) * 9999) / 262142;
}

uint64_t rt_cg_blkio_to_io_weight(uint64_t weight)
{
	if (weight < 10)
		weight = 10;
	if (weight > 1000)
		weight = 1000;
	return 1 + ((weight - 10) * 9999) / 990;
}

/* ---- v1 device rules ---- */

static void format_dev_number(int64_t n, char *buf, size_t len)
{
	if (n < 0)
		snprintf(buf, len, "*");
	else
		snprintf(buf, len, "%lld", (long long)n);
}

void rt_cg_dev_rule_line(const struct rt_cg_dev_rule *r, char *buf, size_t len)
{
	char major[24], minor[24];
	format_dev_number(r->major, major, sizeof(major));
	format_dev_number(r->minor, minor, sizeof(minor));
	snprintf(buf, len, "%c %s:%s %s", r->type, major, minor, r->access);
}

int rt_cg_v1_device_writes(const struct rt_cg_dev_rule *rules, size_t n, struct rt_cg_dev_write **out,
			   size_t *nout, vt_err *err)
{
	struct rt_cg_dev_write *w = calloc(n + 1, sizeof(*w));
	if (!w)
		return vt_fail_errno(err, ENOMEM, "linux.resources.devices");
	/* Start from "deny everything"; then the kernel applies each later rule on top, so the
	 * order of writes is the order of the rules: the last matching rule wins. */
	w[0].file = "devices.deny";
	snprintf(w[0].line, sizeof(w[0].line), "a");
	for (size_t i = 0; i < n; i++) {
		w[i + 1].file = rules[i].allow ? "devices.allow" : "devices.deny";
		if (rules[i].type == 'a' && strcmp(rules[i].access, "rwm") == 0)
			snprintf(w[i + 1].line, sizeof(w[i + 1].line), "a"); /* resets the default */
		else
			rt_cg_dev_rule_line(&rules[i], w[i + 1].line, sizeof(w[i + 1].line));
	}
	*out = w;
	*nout = n + 1;
	return 0;
}
