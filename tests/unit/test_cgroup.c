/* Pure parts of the cgroup backends: path computation, host layout from mountinfo, resource parsing
 * (every error names its field), v1<->v2 conversions, v1 device rule lines and the v2 BPF device program,
 * which is run here through a small interpreter of the instructions it uses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "runtime/cgroup_internal.h"

/* ---- helpers ---- */

static json_object *linux_from(const char *json)
{
	json_object *j = json_tokener_parse(json);
	assert_non_null(j);
	return j;
}

static void expect_parse_error(const char *json, const char *needle)
{
	json_object *j = linux_from(json);
	struct rt_cg_resources r;
	vt_err err = { 0 };
	assert_int_equal(rt_cg_resources_parse(j, &r, &err), -1);
	if (!strstr(err.msg, needle))
		fail_msg("error '%s' does not contain '%s'", err.msg, needle);
	json_object_put(j);
}

/* ---- path ---- */

static void check_path(const char *cgroups_path, const char *want)
{
	char *p = NULL;
	vt_err err = { 0 };
	assert_int_equal(rt_cg_compute_path("c1", cgroups_path, &p, &err), 0);
	assert_string_equal(p, want);
	free(p);
}

static void test_path_default_relative_absolute(void **state)
{
	(void)state;
	check_path(NULL, "/virtus/c1");
	check_path("", "/virtus/c1");
	check_path("/machine/web", "/machine/web");
	check_path("//machine//web/", "/machine/web");
	check_path("pods/web", "/virtus/pods/web");
	check_path("./pods/./web", "/virtus/pods/web");
}

static void test_path_rejects(void **state)
{
	(void)state;
	char *p = NULL;
	vt_err err = { 0 };
	assert_int_equal(rt_cg_compute_path("c1", "/a/../../etc", &p, &err), -1);
	assert_non_null(strstr(err.msg, "linux.cgroupsPath"));
	assert_int_equal(rt_cg_compute_path("c1", "/", &p, &err), -1);
	assert_non_null(strstr(err.msg, "root cgroup"));
	assert_int_equal(rt_cg_compute_path("c1", "machine.slice:libpod:c1", &p, &err), -1);
	assert_non_null(strstr(err.msg, "systemd"));
	assert_int_equal(rt_cg_compute_path("a/b", NULL, &p, &err), -1);
	assert_null(p);
}

/* ---- layout ---- */

static const char hybrid_mountinfo[] =
	"25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw\n"
	"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
	"33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
	"34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children\n"
	"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	"36 31 0:32 / /mnt/memory\\040copy rw,relatime - cgroup cgroup rw,memory\n"
	"40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
	"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

static void test_layout_hybrid(void **state)
{
	(void)state;
	struct rt_cg_layout l;
	vt_err err = { 0 };
	assert_int_equal(rt_cg_layout_from_mountinfo(hybrid_mountinfo, &l, &err), 0);
	assert_int_equal(l.mode, RT_CG_HYBRID);
	assert_int_equal(l.nhier, 6); /* the second memory mount is the same hierarchy */
	assert_string_equal(l.hier[0].mount, "/sys/fs/cgroup/cpu");
	assert_string_equal(l.hier[1].controllers, "cpu,cpuacct");
	assert_string_equal(l.hier[2].controllers, "cpuset");
	assert_string_equal(l.hier[4].controllers, "name=systemd");
	assert_true(l.hier[5].v2);
	assert_string_equal(l.hier[5].mount, "/sys/fs/cgroup/unified");
	rt_cg_layout_free(&l);
}

static void test_layout_v2_and_v1(void **state)
{
	(void)state;
	struct rt_cg_layout l;
	vt_err err = { 0 };
	assert_int_equal(rt_cg_layout_from_mountinfo(
				 "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n", &l, &err), 0);
	assert_int_equal(l.mode, RT_CG_V2);
	assert_int_equal(l.nhier, 1);
	assert_string_equal(l.hier[0].mount, "/sys/fs/cgroup");
	rt_cg_layout_free(&l);

	assert_int_equal(rt_cg_layout_from_mountinfo(
				 "32 31 0:29 / /cg/pids rw - cgroup cgroup rw,pids\n", &l, &err), 0);
	assert_int_equal(l.mode, RT_CG_V1);
	rt_cg_layout_free(&l);

	assert_int_equal(rt_cg_layout_from_mountinfo("25 30 0:23 / /sys rw - sysfs sysfs rw\n", &l, &err), -1);
	assert_non_null(strstr(err.msg, "no cgroup"));
}

/* ---- resources ---- */

static void test_resources_parse_values(void **state)
{
	(void)state;
	json_object *j = linux_from("{\"resources\":{\"memory\":{\"limit\":104857600,\"swap\":209715200,"
				    "\"disableOOMKiller\":true,"
				    "\"kernel\":67108864,\"kernelTCP\":-1,\"useHierarchy\":true},\"cpu\":{\"shares\":512,\"quota\":50000,\"period\":100000,"
				    "\"cpus\":\"0\",\"burst\":1000},\"pids\":{\"limit\":32},\"blockIO\":{\"weight\":300,"
				    "\"throttleReadBpsDevice\":[{\"major\":8,\"minor\":0,\"rate\":1048576}]},"
				    "\"network\":{\"classID\":1048577,\"priorities\":[{\"name\":\"eth0\",\"priority\":5}]},"
				    "\"hugepageLimits\":[{\"pageSize\":\"1GB\",\"limit\":0}],"
				    "\"devices\":[{\"allow\":false,\"access\":\"rwm\"},"
				    "{\"allow\":true,\"type\":\"b\",\"major\":8,\"access\":\"r\"}]},"
				    "\"devices\":[{\"path\":\"/dev/fuse\",\"type\":\"c\",\"major\":10,\"minor\":229}]}");
	struct rt_cg_resources r;
	vt_err err = { 0 };
	assert_int_equal(rt_cg_resources_parse(j, &r, &err), 0);
	assert_true(r.has_mem_limit);
	assert_int_equal(r.mem_limit, 104857600);
	assert_int_equal(r.mem_swap, 209715200);
	assert_true(r.disable_oom_killer);
	assert_true(r.has_mem_kernel && r.has_mem_kernel_tcp && r.has_use_hierarchy && r.use_hierarchy);
	assert_int_equal(r.mem_kernel, 67108864);
	assert_int_equal(r.mem_kernel_tcp, -1);
	assert_true(r.has_net_classid);
	assert_int_equal(r.net_classid, 1048577);
	assert_int_equal(r.nnet_prios, 1);
	assert_string_equal(r.net_prios[0].name, "eth0");
	assert_int_equal(r.net_prios[0].priority, 5);
	assert_int_equal(r.cpu_shares, 512);
	assert_int_equal(r.cpu_quota, 50000);
	assert_string_equal(r.cpus, "0");
	assert_null(r.mems);
	assert_int_equal(r.pids_limit, 32);
	assert_int_equal(r.blkio_weight, 300);
	assert_true(r.has_cpu_burst);
	assert_int_equal(r.cpu_burst, 1000);
	assert_int_equal(r.nblkio_devs[RT_CG_BLKIO_READ_BPS], 1);
	assert_int_equal(r.blkio_devs[RT_CG_BLKIO_READ_BPS][0].major, 8);
	assert_int_equal(r.blkio_devs[RT_CG_BLKIO_READ_BPS][0].value, 1048576);
	assert_int_equal(r.nblkio_devs[RT_CG_BLKIO_WEIGHT], 0);
	assert_int_equal(r.nhugepages, 1);
	assert_string_equal(r.hugepages[0].size, "1GB");
	/* two user rules, nine defaults, one from linux.devices */
	assert_int_equal(r.ndevices, 12);
	assert_false(r.devices[0].allow);
	assert_int_equal(r.devices[0].type, 'a');
	assert_int_equal(r.devices[1].major, 8);
	assert_int_equal(r.devices[1].minor, -1);
	assert_string_equal(r.devices[1].access, "r");
	assert_int_equal(r.devices[11].major, 10);
	assert_int_equal(r.devices[11].minor, 229);
	rt_cg_resources_free(&r);
	json_object_put(j);

	assert_int_equal(rt_cg_resources_parse(NULL, &r, &err), 0);
	assert_false(r.has_mem_limit);
	assert_int_equal(r.ndevices, 9);
	rt_cg_resources_free(&r);
}

static void test_resources_errors_name_field(void **state)
{
	(void)state;
	expect_parse_error("{\"resources\":{\"memory\":{\"limit\":\"1G\"}}}", "linux.resources.memory.limit: must be an integer");
	expect_parse_error("{\"resources\":{\"memory\":{\"limit\":0}}}", "linux.resources.memory.limit");
	expect_parse_error("{\"resources\":{\"memory\":{\"limit\":200,\"swap\":100}}}", "linux.resources.memory.swap");
	expect_parse_error("{\"resources\":{\"memory\":{\"disableOOMKiller\":1}}}", "linux.resources.memory.disableOOMKiller");
	expect_parse_error("{\"resources\":{\"memory\":{\"swappiness\":101}}}", "linux.resources.memory.swappiness");
	expect_parse_error("{\"resources\":{\"cpu\":{\"shares\":1}}}", "linux.resources.cpu.shares");
	expect_parse_error("{\"resources\":{\"cpu\":{\"period\":10}}}", "linux.resources.cpu.period");
	expect_parse_error("{\"resources\":{\"cpu\":{\"quota\":5}}}", "linux.resources.cpu.quota");
	expect_parse_error("{\"resources\":{\"cpu\":{\"cpus\":0}}}", "linux.resources.cpu.cpus: must be a string");
	expect_parse_error("{\"resources\":{\"pids\":{\"limit\":-5}}}", "linux.resources.pids.limit");
	expect_parse_error("{\"resources\":{\"pids\":7}}", "linux.resources.pids: must be an object");
	expect_parse_error("{\"resources\":{\"blockIO\":{\"weight\":5}}}", "linux.resources.blockIO.weight");
	expect_parse_error("{\"resources\":{\"blockIO\":{\"throttleReadBpsDevice\":[{\"major\":8}]}}}",
			   "linux.resources.blockIO.throttleReadBpsDevice[0]: needs major and minor");
	expect_parse_error("{\"resources\":{\"blockIO\":{\"throttleWriteIOPSDevice\":[{\"major\":8,\"minor\":0}]}}}",
			   "linux.resources.blockIO.throttleWriteIOPSDevice[0].rate: required");
	expect_parse_error("{\"resources\":{\"blockIO\":{\"weightDevice\":[{\"major\":8,\"minor\":0,\"weight\":5}]}}}",
			   "linux.resources.blockIO.weightDevice[0].weight");
	expect_parse_error("{\"resources\":{\"blockIO\":{\"leafWeight\":10}}}", "linux.resources.blockIO.leafWeight");
	expect_parse_error("{\"resources\":{\"cpu\":{\"idle\":2}}}", "linux.resources.cpu.idle");
	expect_parse_error("{\"resources\":{\"network\":{\"classID\":-1}}}", "linux.resources.network.classID");
	expect_parse_error("{\"resources\":{\"network\":{\"classID\":4294967296}}}",
			   "linux.resources.network.classID: must be a 32-bit number");
	expect_parse_error("{\"resources\":{\"network\":{\"priorities\":[{\"name\":\"eth0\"}]}}}",
			   "linux.resources.network.priorities[0].priority: required");
	expect_parse_error("{\"resources\":{\"network\":{\"priorities\":[{\"name\":\"a b\",\"priority\":1}]}}}",
			   "linux.resources.network.priorities[0].name");
	expect_parse_error("{\"resources\":{\"memory\":{\"kernel\":0}}}", "linux.resources.memory.kernel: must be positive");
	expect_parse_error("{\"resources\":{\"memory\":{\"kernelTCP\":\"x\"}}}", "linux.resources.memory.kernelTCP");
	expect_parse_error("{\"resources\":{\"memory\":{\"useHierarchy\":1}}}", "linux.resources.memory.useHierarchy");
	expect_parse_error("{\"resources\":{\"devices\":[{\"access\":\"rwm\"}]}}", "linux.resources.devices[0].allow");
	expect_parse_error("{\"resources\":{\"devices\":[{\"allow\":true},{\"allow\":true,\"access\":\"rx\"}]}}",
			   "linux.resources.devices[1].access");
	expect_parse_error("{\"resources\":{\"devices\":[{\"allow\":true,\"type\":\"p\"}]}}", "linux.resources.devices[0].type");
	expect_parse_error("{\"resources\":{\"devices\":[{\"allow\":true,\"major\":-7}]}}", "linux.resources.devices[0].major");
	expect_parse_error("{\"resources\":{\"unified\":{\"../x\":\"1\"}}}", "linux.resources.unified.../x");
	expect_parse_error("{\"resources\":{\"hugepageLimits\":[{\"pageSize\":\"2M\",\"limit\":1}]}}",
			   "linux.resources.hugepageLimits[0].pageSize: '2M' is not a page size");
	expect_parse_error("{\"resources\":{\"hugepageLimits\":[{\"pageSize\":\"2MB\"}]}}",
			   "linux.resources.hugepageLimits[0].limit: required");
	expect_parse_error("{\"resources\":{\"hugepageLimits\":[{\"pageSize\":\"../x\",\"limit\":1}]}}",
			   "linux.resources.hugepageLimits[0].pageSize");
	expect_parse_error("{\"resources\":{\"rdma\":{\"mlx5_1\":{\"hcaHandles\":3}}}}", "linux.resources.rdma: not supported");
	expect_parse_error("{\"resources\":[]}", "linux.resources: must be an object");
}

static void test_conversions(void **state)
{
	(void)state;
	assert_int_equal(rt_cg_shares_to_weight(2), 1);
	assert_int_equal(rt_cg_shares_to_weight(1024), 39); /* 1 + 1022*9999/262142 = 1 + 38.98 */
	assert_int_equal(rt_cg_shares_to_weight(262144), 10000);
	assert_int_equal(rt_cg_shares_to_weight(512), 20);
	assert_int_equal(rt_cg_blkio_to_io_weight(10), 1);
	assert_int_equal(rt_cg_blkio_to_io_weight(500), 4950); /* 1 + 490*9999/990 = 1 + 4949 */
	assert_int_equal(rt_cg_blkio_to_io_weight(1000), 10000);
}

/* ---- v1 device rules ---- */

static void test_v1_device_lines(void **state)
{
	(void)state;
	const struct rt_cg_dev_rule rules[] = {
		{ false, 'a', -1, -1, "rwm" },
		{ true, 'c', 1, 3, "rwm" },
		{ true, 'b', 8, -1, "r" },
		{ false, 'c', 1, 3, "w" },
		{ true, 'a', -1, -1, "m" },
	};
	struct rt_cg_dev_write *w = NULL;
	size_t n = 0;
	assert_int_equal(rt_cg_v1_device_writes(rules, 5, &w, &n, NULL), 0);
	assert_int_equal(n, 6);
	assert_string_equal(w[0].file, "devices.deny");
	assert_string_equal(w[0].line, "a");
	assert_string_equal(w[1].file, "devices.deny");
	assert_string_equal(w[1].line, "a");
	assert_string_equal(w[2].file, "devices.allow");
	assert_string_equal(w[2].line, "c 1:3 rwm");
	assert_string_equal(w[3].line, "b 8:* r");
	assert_string_equal(w[4].file, "devices.deny");
	assert_string_equal(w[4].line, "c 1:3 w");
	assert_string_equal(w[5].line, "a *:* m");
	free(w);
}

/* ---- BPF device program ---- */

/* Runs the subset of eBPF the generator emits; fails the test on anything else. */
static uint64_t run_bpf(const struct bpf_insn *p, size_t n, uint32_t access_type, uint32_t major, uint32_t minor)
{
	uint32_t ctx[3] = { access_type, major, minor };
	uint64_t r[11] = { 0 };
	for (size_t pc = 0; pc < n; pc++) {
		const struct bpf_insn *i = &p[pc];
		uint64_t imm = (uint64_t)(int64_t)i->imm;
		switch (i->code) {
		case BPF_LDX | BPF_MEM | BPF_W:
			assert_int_equal(i->src_reg, 1);
			assert_true(i->off >= 0 && i->off <= 8 && i->off % 4 == 0);
			r[i->dst_reg] = ctx[i->off / 4];
			break;
		case BPF_ALU64 | BPF_MOV | BPF_X: r[i->dst_reg] = r[i->src_reg]; break;
		case BPF_ALU64 | BPF_MOV | BPF_K: r[i->dst_reg] = imm; break;
		case BPF_ALU64 | BPF_AND | BPF_K: r[i->dst_reg] &= imm; break;
		case BPF_ALU64 | BPF_RSH | BPF_K: r[i->dst_reg] >>= i->imm; break;
		case BPF_JMP | BPF_JNE | BPF_K:
			if (r[i->dst_reg] != imm)
				pc += (size_t)i->off;
			break;
		case BPF_JMP | BPF_JEQ | BPF_K:
			if (r[i->dst_reg] == imm)
				pc += (size_t)i->off;
			break;
		case BPF_JMP | BPF_EXIT: return r[0];
		default: fail_msg("unexpected opcode 0x%x at %zu", i->code, pc);
		}
		assert_true(pc < n);
	}
	fail_msg("program fell off its end");
	return 0;
}

/* The kernel verifier rejects programs with unreachable instructions: every one must be reachable. */
static void assert_all_reachable(const struct bpf_insn *p, size_t n)
{
	bool seen[512] = { false };
	size_t stack[512], top = 0;
	assert_true(n <= 512);
	stack[top++] = 0;
	while (top) {
		size_t pc = stack[--top];
		if (pc >= n || seen[pc])
			continue;
		seen[pc] = true;
		if (p[pc].code == (BPF_JMP | BPF_EXIT))
			continue;
		if (BPF_CLASS(p[pc].code) == BPF_JMP)
			stack[top++] = pc + 1 + (size_t)p[pc].off;
		stack[top++] = pc + 1;
	}
	for (size_t i = 0; i < n; i++)
		if (!seen[i])
			fail_msg("instruction %zu is unreachable", i);
}

static uint32_t req(int access, int type) { return (uint32_t)(access << 16) | (uint32_t)type; }

#define CHR BPF_DEVCG_DEV_CHAR
#define BLK BPF_DEVCG_DEV_BLOCK
#define RD BPF_DEVCG_ACC_READ
#define WR BPF_DEVCG_ACC_WRITE
#define MK BPF_DEVCG_ACC_MKNOD

static void test_bpf_program_semantics(void **state)
{
	(void)state;
	const struct rt_cg_dev_rule rules[] = {
		{ false, 'a', -1, -1, "rwm" }, /* deny all */
		{ true, 'c', 1, 3, "rwm" },    /* /dev/null */
		{ true, 'b', 8, -1, "r" },     /* read any sd* */
		{ true, 'c', 136, -1, "rw" },  /* pts, no mknod */
		{ false, 'c', 1, 3, "w" },     /* later rule: no writes to /dev/null */
	};
	struct bpf_insn *p = NULL;
	size_t n = 0;
	assert_int_equal(rt_cg_bpf_device_program(rules, 5, &p, &n, NULL), 0);
	assert_true(n > 7 && n < 80);
	assert_int_equal(p[n - 1].code, BPF_JMP | BPF_EXIT);
	assert_all_reachable(p, n);

	assert_int_equal(run_bpf(p, n, req(RD, CHR), 1, 3), 1);      /* read null */
	assert_int_equal(run_bpf(p, n, req(WR, CHR), 1, 3), 0);      /* last rule denies write */
	assert_int_equal(run_bpf(p, n, req(RD | WR, CHR), 1, 3), 0); /* any denied bit denies */
	assert_int_equal(run_bpf(p, n, req(RD, CHR), 1, 5), 0);      /* zero: only deny-all matches */
	assert_int_equal(run_bpf(p, n, req(RD, BLK), 8, 0), 1);      /* read sda */
	assert_int_equal(run_bpf(p, n, req(RD, BLK), 8, 17), 1);     /* read sdb1 */
	assert_int_equal(run_bpf(p, n, req(WR, BLK), 8, 0), 0);      /* write sda */
	assert_int_equal(run_bpf(p, n, req(RD, CHR), 8, 0), 0);      /* char 8:0 is not block 8:0 */
	assert_int_equal(run_bpf(p, n, req(RD | WR, CHR), 136, 4), 1);
	assert_int_equal(run_bpf(p, n, req(MK, CHR), 136, 4), 0);
	free(p);

	/* No rules: deny everything. One allow-all: allow everything. */
	assert_int_equal(rt_cg_bpf_device_program(NULL, 0, &p, &n, NULL), 0);
	assert_int_equal(run_bpf(p, n, req(RD, CHR), 1, 3), 0);
	free(p);
	const struct rt_cg_dev_rule all = { true, 'a', -1, -1, "rwm" };
	assert_int_equal(rt_cg_bpf_device_program(&all, 1, &p, &n, NULL), 0);
	assert_int_equal(run_bpf(p, n, req(MK | WR, BLK), 259, 1), 1);
	assert_all_reachable(p, n);
	free(p);
	/* Rules before an unconditional one can never decide anything, and must not be emitted. */
	const struct rt_cg_dev_rule shadowed[] = { { true, 'c', 1, 3, "rwm" }, { false, 'a', -1, -1, "rwm" } };
	assert_int_equal(rt_cg_bpf_device_program(shadowed, 2, &p, &n, NULL), 0);
	assert_all_reachable(p, n);
	assert_int_equal(run_bpf(p, n, req(RD, CHR), 1, 3), 0);
	free(p);
}

/* ---- JSON state ---- */

static void test_state_json_errors(void **state)
{
	(void)state;
	struct rt_cgroup *cg = NULL;
	vt_err err = { 0 };
	json_object *j = json_tokener_parse("{\"mode\":\"v9\",\"path\":\"/x\",\"hierarchies\":[{\"dir\":\"/a\","
					    "\"mount\":\"/m\",\"controllers\":\"\",\"v2\":true}]}");
	assert_int_equal(rt_cgroup_from_json(j, &cg, &err), -1);
	assert_non_null(strstr(err.msg, "v9"));
	json_object_put(j);

	j = json_tokener_parse("{\"mode\":\"hybrid\",\"path\":\"/virtus/c1\",\"hierarchies\":[{\"dir\":\"/m/virtus/c1\","
			       "\"mount\":\"/m\",\"controllers\":\"memory\",\"v2\":false}]}");
	assert_int_equal(rt_cgroup_from_json(j, &cg, &err), 0);
	json_object *back = rt_cgroup_to_json(cg);
	assert_string_equal(json_object_to_json_string_ext(back, JSON_C_TO_STRING_PLAIN),
			    json_object_to_json_string_ext(j, JSON_C_TO_STRING_PLAIN));
	json_object_put(back);
	json_object_put(j);
	rt_cgroup_free(cg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_default_relative_absolute),
		cmocka_unit_test(test_path_rejects),
		cmocka_unit_test(test_layout_hybrid),
		cmocka_unit_test(test_layout_v2_and_v1),
		cmocka_unit_test(test_resources_parse_values),
		cmocka_unit_test(test_resources_errors_name_field),
		cmocka_unit_test(test_conversions),
		cmocka_unit_test(test_v1_device_lines),
		cmocka_unit_test(test_bpf_program_semantics),
		cmocka_unit_test(test_state_json_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
