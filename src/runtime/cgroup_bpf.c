/* cgroup v2 has no devices.allow: device access is decided by a BPF_PROG_TYPE_CGROUP_DEVICE program
 * attached to the cgroup. We generate it from the OCI rules with the kernel's UAPI instruction encoding.
 *
 * Program shape: load the request (type, access, major, minor) into r3..r6, then test the rules from the
 * LAST to the first; the first block that matches returns the rule's verdict (so the last matching rule
 * wins, as in OCI and v1). Nothing matched: deny. */
#include "runtime/cgroup_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/syscall.h>

#include "lib/util.h"

enum {
	REG_CTX = 1, REG_ACCESS_TYPE = 2, REG_TYPE = 3, REG_ACCESS = 4, REG_MAJOR = 5, REG_MINOR = 6, REG_TMP = 7,
	MAX_BLOCK = 16,
};

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	return (struct bpf_insn){ .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm };
}

static struct bpf_insn ldx_w(uint8_t dst, int16_t off)
{
	return insn(BPF_LDX | BPF_MEM | BPF_W, dst, REG_CTX, off, 0);
}

static struct bpf_insn mov_reg(uint8_t dst, uint8_t src) { return insn(BPF_ALU64 | BPF_MOV | BPF_X, dst, src, 0, 0); }
static struct bpf_insn mov_imm(uint8_t dst, int32_t imm) { return insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm); }
static struct bpf_insn and_imm(uint8_t dst, int32_t imm) { return insn(BPF_ALU64 | BPF_AND | BPF_K, dst, 0, 0, imm); }
static struct bpf_insn rsh_imm(uint8_t dst, int32_t imm) { return insn(BPF_ALU64 | BPF_RSH | BPF_K, dst, 0, 0, imm); }
/* Conditional jumps to "next rule"; the offset is patched once the block length is known. */
static struct bpf_insn jne_next(uint8_t dst, int32_t imm) { return insn(BPF_JMP | BPF_JNE | BPF_K, dst, 0, 0, imm); }
static struct bpf_insn jeq_next(uint8_t dst, int32_t imm) { return insn(BPF_JMP | BPF_JEQ | BPF_K, dst, 0, 0, imm); }
static struct bpf_insn exit_insn(void) { return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0); }

static int access_mask(const char *access)
{
	int mask = 0;
	for (const char *p = access; *p; p++)
		mask |= *p == 'r' ? BPF_DEVCG_ACC_READ : *p == 'w' ? BPF_DEVCG_ACC_WRITE : BPF_DEVCG_ACC_MKNOD;
	return mask;
}

/* The instructions testing one rule; returns how many. */
static size_t rule_block(const struct rt_cg_dev_rule *r, struct bpf_insn *b)
{
	size_t n = 0;
	int mask = access_mask(r->access);
	if (r->type != 'a')
		b[n++] = jne_next(REG_TYPE, r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
	if (mask != (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)) {
		b[n++] = mov_reg(REG_TMP, REG_ACCESS);
		if (r->allow) { /* allow only if every requested access is granted */
			b[n++] = and_imm(REG_TMP, ~mask & 7);
			b[n++] = jne_next(REG_TMP, 0);
		} else { /* deny if any requested access is denied */
			b[n++] = and_imm(REG_TMP, mask);
			b[n++] = jeq_next(REG_TMP, 0);
		}
	}
	if (r->major >= 0)
		b[n++] = jne_next(REG_MAJOR, (int32_t)r->major);
	if (r->minor >= 0)
		b[n++] = jne_next(REG_MINOR, (int32_t)r->minor);
	b[n++] = mov_imm(0, r->allow ? 1 : 0);
	b[n++] = exit_insn();
	for (size_t i = 0; i < n; i++)
		if (BPF_CLASS(b[i].code) == BPF_JMP && BPF_OP(b[i].code) != BPF_EXIT)
			b[i].off = (int16_t)(n - i - 1);
	return n;
}

int rt_cg_bpf_device_program(const struct rt_cg_dev_rule *rules, size_t n, struct bpf_insn **prog,
			     size_t *ninsn, vt_err *err)
{
	struct bpf_insn *p = calloc(16 + n * MAX_BLOCK, sizeof(*p));
	if (!p)
		return vt_fail_errno(err, ENOMEM, "linux.resources.devices: building the device program");
	size_t k = 0;
	/* struct bpf_cgroup_dev_ctx: access_type = (access << 16) | type, then major, minor. */
	p[k++] = ldx_w(REG_ACCESS_TYPE, 0);
	p[k++] = mov_reg(REG_TYPE, REG_ACCESS_TYPE);
	p[k++] = and_imm(REG_TYPE, 0xffff);
	p[k++] = mov_reg(REG_ACCESS, REG_ACCESS_TYPE);
	p[k++] = rsh_imm(REG_ACCESS, 16);
	p[k++] = ldx_w(REG_MAJOR, 4);
	p[k++] = ldx_w(REG_MINOR, 8);
	bool matches_all = false;
	for (size_t i = n; i-- > 0 && !matches_all;) {
		size_t len = rule_block(&rules[i], p + k);
		k += len;
		/* A rule without conditions decides everything: the verifier rejects unreachable code after it. */
		matches_all = len == 2;
	}
	if (!matches_all) {
		p[k++] = mov_imm(0, 0);
		p[k++] = exit_insn();
	}
	*prog = p;
	*ninsn = k;
	return 0;
}

static int bpf_load_device_prog(const struct bpf_insn *prog, size_t n, vt_err *err)
{
	static const char license[] = "GPL";
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	attr.insns = (uint64_t)(uintptr_t)prog;
	attr.insn_cnt = (uint32_t)n;
	attr.license = (uint64_t)(uintptr_t)license;
	int fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
	if (fd < 0)
		return vt_fail_errno(err, errno, "linux.resources.devices: loading the BPF device program");
	return fd;
}

int rt_cg_bpf_attach_devices(const char *dir, const struct rt_cg_dev_rule *rules, size_t n, vt_err *err)
{
	cleanup_free struct bpf_insn *prog = NULL;
	size_t ninsn;
	if (rt_cg_bpf_device_program(rules, n, &prog, &ninsn, err) < 0)
		return -1;
	cleanup_close int prog_fd = bpf_load_device_prog(prog, ninsn, err);
	if (prog_fd < 0)
		return -1;
	cleanup_close int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return vt_fail_errno(err, errno, "linux.resources.devices: cannot open %s", dir);
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.target_fd = (uint32_t)dir_fd;
	attr.attach_bpf_fd = (uint32_t)prog_fd;
	attr.attach_type = BPF_CGROUP_DEVICE;
	attr.attach_flags = BPF_F_ALLOW_MULTI; /* an ancestor's program keeps applying too */
	if (syscall(SYS_bpf, BPF_PROG_ATTACH, &attr, sizeof(attr)) < 0)
		return vt_fail_errno(err, errno, "linux.resources.devices: attaching the BPF device program to %s", dir);
	return 0; /* the cgroup holds its own reference: closing prog_fd keeps the program attached */
}
