/* nftables for the bridge, through libnftables: the table "ip virtus", one batch per change.
 *
 *   guard        (filter, prerouting -300) packets from the bridge to 127/8 are dropped: route_localnet on
 *                virtus0 (needed for the host's own connections to 127.0.0.1:PORT) must not let a
 *                container reach services bound only to the host's loopback.
 *   prerouting   (nat) per container: DNAT of its -p ports (from other hosts and other containers)
 *   output       (nat) per container: the same for connections the host itself makes (127.0.0.1 included)
 *   postrouting  (nat) masquerade of the subnet's outbound traffic, and of 127/8 sources leaving on virtus0
 *
 * guard and postrouting hold only the table's own rules: they are flushed and refilled in the same batch
 * (atomic, so two runs at once are harmless). Every rule of a container carries the comment "virtus:<id>",
 * which is how cnet_detach and cnet_gc find exactly that container's rules (by their handles).
 *
 * libnftables is loaded on first use (dlopen): with libjansson, libgmp, libxtables and the rest it costs every
 * store command ~2 ms of start-up, and only bridged containers with rules or a new bridge need it. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <nftables/libnftables.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "container/net_int.h"
#include "lib/util.h"

#define RULES_MAX 16384
#define NFT_LIBRARY "libnftables.so.1"

/* The entry points used, resolved with dlsym (the header still types them). */
static struct {
	__typeof__(nft_ctx_new) *ctx_new;
	__typeof__(nft_ctx_free) *ctx_free;
	__typeof__(nft_ctx_output_set_flags) *output_set_flags;
	__typeof__(nft_ctx_buffer_output) *buffer_output;
	__typeof__(nft_ctx_buffer_error) *buffer_error;
	__typeof__(nft_ctx_get_output_buffer) *get_output_buffer;
	__typeof__(nft_ctx_get_error_buffer) *get_error_buffer;
	__typeof__(nft_run_cmd_from_buffer) *run_cmd_from_buffer;
	char error[200];          /* why loading failed; "" when loaded */
} nft;
static pthread_once_t nft_once = PTHREAD_ONCE_INIT;

static void nft_load_once(void)
{
	void *h = dlopen(NFT_LIBRARY, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	struct { void *slot; const char *name; } syms[] = {
		{ &nft.ctx_new, "nft_ctx_new" },
		{ &nft.ctx_free, "nft_ctx_free" },
		{ &nft.output_set_flags, "nft_ctx_output_set_flags" },
		{ &nft.buffer_output, "nft_ctx_buffer_output" },
		{ &nft.buffer_error, "nft_ctx_buffer_error" },
		{ &nft.get_output_buffer, "nft_ctx_get_output_buffer" },
		{ &nft.get_error_buffer, "nft_ctx_get_error_buffer" },
		{ &nft.run_cmd_from_buffer, "nft_run_cmd_from_buffer" },
	};
	if (!h) {
		snprintf(nft.error, sizeof(nft.error), "%s (Debian package libnftables1): %s", NFT_LIBRARY, dlerror());
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(syms); i++) {
		void *sym = dlsym(h, syms[i].name);
		if (!sym) {
			snprintf(nft.error, sizeof(nft.error), "%s has no %s", NFT_LIBRARY, syms[i].name);
			return;
		}
		memcpy(syms[i].slot, &sym, sizeof(sym)); /* a function pointer's bytes, as POSIX allows */
	}
}

static int nft_load(vt_err *err)
{
	pthread_once(&nft_once, nft_load_once);
	return nft.error[0] ? vt_fail(err, "nftables: %s", nft.error) : 0;
}

static void nft_freep(struct nft_ctx **c)
{
	if (*c)
		nft.ctx_free(*c);
}

/* libnftables exit()s the whole process when the kernel has no nf_tables netlink family (mnl.c): ask the
 * kernel first. */
static bool nft_available(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Run one batch; list_out (if not NULL) receives the output text (malloc'd). */
static int nft_run(const char *batch, bool handles, char **list_out, vt_err *err)
{
	if (!nft_available())
		return vt_fail(err, "nftables: this kernel has no nf_tables (load the module: modprobe nf_tables)");
	if (nft_load(err))
		return -1;
	__attribute__((cleanup(nft_freep))) struct nft_ctx *ctx = nft.ctx_new(NFT_CTX_DEFAULT);
	if (!ctx)
		return vt_fail(err, "nftables: cannot create a context");
	if (handles)
		nft.output_set_flags(ctx, NFT_CTX_OUTPUT_HANDLE);
	if (nft.buffer_output(ctx) < 0 || nft.buffer_error(ctx) < 0)
		return vt_fail(err, "nftables: cannot buffer output");
	if (nft.run_cmd_from_buffer(ctx, batch) != 0) {
		const char *e = nft.get_error_buffer(ctx);
		char msg[300];
		snprintf(msg, sizeof(msg), "%s", e ? e : "");
		msg[strcspn(msg, "\n")] = '\0';
		return vt_fail(err, "nftables: %s", msg);
	}
	if (list_out) {
		const char *o = nft.get_output_buffer(ctx);
		*list_out = strdup(o ? o : "");
		if (!*list_out)
			return vt_fail(err, "out of memory");
	}
	return 0;
}

/* ---- the table's fingerprint: is the table as ensure_table last made it? ----
 * The kernel numbers every table (per network namespace) and every rule (per table) with handles it never
 * reuses, so the table's handle and the handles of the rules in guard and postrouting (the chains that
 * ensure_table flushes and refills) change whenever anyone deletes, re-creates or edits them. Containers' own
 * rules live in the other chains and do not count. Two netlink dumps, no library. */

struct dump_each {
	void (*each)(void *ctx, const uint8_t *attrs, size_t len);
	void *ctx;
};

static void dump_message(struct nlmsghdr *h, void *opaque)
{
	const struct dump_each *d = opaque;
	size_t hdr = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
	if (h->nlmsg_len >= hdr)
		d->each(d->ctx, (const uint8_t *)h + hdr, h->nlmsg_len - hdr);
}

/* Dump one kind of nf_tables object of family ip; each(ctx, attrs, len) for every object. -1 on failure. */
static int nft_dump(uint16_t msg, void (*each)(void *ctx, const uint8_t *attrs, size_t len), void *ctx)
{
	cleanup_close int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	if (fd < 0)
		return -1;
	struct {
		struct nlmsghdr h;
		struct nfgenmsg g;
	} req = { .h = { .nlmsg_len = sizeof(req), .nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | msg,
			 .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 1 },
		  .g = { .nfgen_family = NFPROTO_IPV4, .version = NFNETLINK_V0 } };
	struct dump_each d = { each, ctx };
	return nl_exchange(fd, &req.h, dump_message, &d) ? -1 : 0;
}

/* The payload of attribute type in attrs (NULL if absent or malformed). */
static const uint8_t *attr(const uint8_t *attrs, size_t len, uint16_t type, size_t *out_len)
{
	size_t at = 0;
	while (at + sizeof(struct nlattr) <= len) {
		struct nlattr a;
		memcpy(&a, attrs + at, sizeof(a));
		if (a.nla_len < sizeof(a) || at + a.nla_len > len)
			return NULL;
		if ((a.nla_type & NLA_TYPE_MASK) == type) {
			*out_len = a.nla_len - sizeof(a);
			return attrs + at + sizeof(a);
		}
		at += NLA_ALIGN(a.nla_len);
	}
	return NULL;
}

static bool attr_is(const uint8_t *attrs, size_t len, uint16_t type, const char *want)
{
	size_t n;
	const uint8_t *v = attr(attrs, len, type, &n);
	return v && n == strlen(want) + 1 && !memcmp(v, want, n);
}

static bool attr_u64(const uint8_t *attrs, size_t len, uint16_t type, uint64_t *out)
{
	size_t n;
	const uint8_t *v = attr(attrs, len, type, &n);
	if (!v || n != sizeof(*out))
		return false;
	memcpy(out, v, sizeof(*out));
	*out = be64toh(*out);
	return true;
}

struct fingerprint {
	char text[512];
	size_t len;
	bool overflow;
};

static void __attribute__((format(printf, 2, 3))) add_text(struct fingerprint *f, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(f->text + f->len, sizeof(f->text) - f->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(f->text) - f->len)
		f->overflow = true;
	else
		f->len += (size_t)n;
}

static void each_table(void *ctx, const uint8_t *attrs, size_t len)
{
	uint64_t handle;
	if (attr_is(attrs, len, NFTA_TABLE_NAME, "virtus") && attr_u64(attrs, len, NFTA_TABLE_HANDLE, &handle))
		add_text(ctx, " table %llu:", (unsigned long long)handle);
}

static void each_rule(void *ctx, const uint8_t *attrs, size_t len)
{
	uint64_t handle;
	if (!attr_is(attrs, len, NFTA_RULE_TABLE, "virtus") || !attr_u64(attrs, len, NFTA_RULE_HANDLE, &handle))
		return;
	static const char *const owned[] = { "guard", "postrouting" };
	for (size_t i = 0; i < ARRAY_SIZE(owned); i++)
		if (attr_is(attrs, len, NFTA_RULE_CHAIN, owned[i]))
			add_text(ctx, " %s/%llu", owned[i], (unsigned long long)handle);
}

/* "SUBNET/PREFIX table H: guard/N postrouting/M ..." or -1 (no nf_tables, no table, a dump failed). */
static int table_fingerprint(const char *want, struct fingerprint *f)
{
	*f = (struct fingerprint){ .len = 0 };
	add_text(f, "%s", want);
	size_t before = f->len;
	if (nft_dump(NFT_MSG_GETTABLE, each_table, f) || f->len == before ||
	    nft_dump(NFT_MSG_GETRULE, each_rule, f) || f->overflow)
		return -1;
	add_text(f, "\n");
	return f->overflow ? -1 : 0;
}

#define TABLE_MARK CNET_RUN_DIR "/table"

static bool table_unchanged(const char *want)
{
	struct fingerprint now;
	char seen[sizeof(now.text)];
	if (table_fingerprint(want, &now))
		return false;
	cleanup_close int fd = open(TABLE_MARK, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, seen, sizeof(seen) - 1) : -1;
	return n > 0 && (seen[n] = 0, !strcmp(seen, now.text));
}

static void remember_table(const char *want)
{
	struct fingerprint f;
	char tmp[] = TABLE_MARK ".XXXXXX";
	if (table_fingerprint(want, &f) || mkdir_on_tmpfs(CNET_RUN_DIR, 0755))
		return;
	int fd = mkstemp(tmp);
	if (fd < 0)
		return;
	bool ok = !write_all(fd, f.text, f.len);
	close(fd);
	if (!ok || rename(tmp, TABLE_MARK))
		unlink(tmp);
}

int cnet_nft_ensure_table(struct in_addr subnet, unsigned prefix, vt_err *err)
{
	char net[INET_ADDRSTRLEN], batch[2048], want[64];
	inet_ntop(AF_INET, &subnet, net, sizeof(net));
	snprintf(want, sizeof(want), "%s/%u", net, prefix);
	if (table_unchanged(want))
		return 0;
	snprintf(batch, sizeof(batch),
		 "add table ip virtus\n"
		 "add chain ip virtus guard { type filter hook prerouting priority -300; }\n"
		 "add chain ip virtus prerouting { type nat hook prerouting priority dstnat; }\n"
		 "add chain ip virtus output { type nat hook output priority -100; }\n"
		 "add chain ip virtus postrouting { type nat hook postrouting priority srcnat; }\n"
		 "flush chain ip virtus guard\n"
		 "flush chain ip virtus postrouting\n"
		 "add rule ip virtus guard iifname \"%s\" ip daddr 127.0.0.0/8 drop\n"
		 "add rule ip virtus postrouting ip saddr %s/%u ip daddr != %s/%u masquerade\n"
		 "add rule ip virtus postrouting oifname \"%s\" ip saddr 127.0.0.0/8 masquerade\n",
		 CNET_BRIDGE_NAME, net, prefix, net, prefix, CNET_BRIDGE_NAME);
	if (nft_run(batch, false, NULL, err))
		return -1;
	remember_table(want);
	return 0;
}

static void append(char **buf, size_t *len, size_t *cap, const char *line)
{
	size_t n = strlen(line);
	if (*len + n + 1 > *cap) {
		size_t c = MAX(*cap * 2, *len + n + 1024);
		char *p = realloc(*buf, c);
		if (!p)
			abort();
		*buf = p;
		*cap = c;
	}
	memcpy(*buf + *len, line, n + 1);
	*len += n;
}

static int delete_stale_port_rules(const struct cnet_config *c, vt_err *err);

int cnet_nft_add_container(const char *id, struct in_addr addr, struct in_addr gw, const struct cnet_config *c,
			   bool *added, vt_err *err)
{
	*added = false;
	char a[INET_ADDRSTRLEN], g[INET_ADDRSTRLEN], line[512];
	inet_ntop(AF_INET, &addr, a, sizeof(a));
	inet_ntop(AF_INET, &gw, g, sizeof(g));
	cleanup_free char *batch = NULL;
	size_t len = 0, cap = 0;
	append(&batch, &len, &cap, "");
	for (size_t i = 0; i < c->n_ports; i++) {
		const struct cnet_port *p = &c->ports[i];
		char match[80];
		if (p->host_addr[0])
			snprintf(match, sizeof(match), "ip daddr %s", p->host_addr);
		else
			snprintf(match, sizeof(match), "fib daddr type local");
		static const char *const chains[] = { "prerouting", "output" };
		for (size_t k = 0; k < ARRAY_SIZE(chains); k++) {
			snprintf(line, sizeof(line),
				 "add rule ip virtus %s %s %s dport %u dnat to %s:%u comment \"virtus:%s\"\n", chains[k],
				 match, p->udp ? "udp" : "tcp", p->host_port, a, p->ctr_port, id);
			append(&batch, &len, &cap, line);
		}
	}
	if (c->host_loopback) {
		snprintf(line, sizeof(line),
			 "add rule ip virtus prerouting iifname \"%s\" ip saddr %s ip daddr %s dnat to 127.0.0.1 "
			 "comment \"virtus:%s\"\n", CNET_BRIDGE_NAME, a, g, id);
		append(&batch, &len, &cap, line);
	}
	if (len == 0)
		return 0;
	if (delete_stale_port_rules(c, err) < 0)
		return -1;
	*added = true; /* (a failed batch adds nothing, but detach may look: it only deletes) */
	return nft_run(batch, false, NULL, err);
}

/* "chain NAME {" opens a chain in the listing. */
static bool chain_line(const char *line, char name[64])
{
	while (*line == ' ' || *line == '\t')
		line++;
	return sscanf(line, "chain %63s {", name) == 1;
}

/* Delete every rule of the table whose listing line holds `needle` and, if not NULL, `also`. */
static int delete_matching(const char *needle, const char *also, vt_err *err)
{
	cleanup_free char *list = NULL;
	vt_err lerr;
	if (nft_run("list table ip virtus", true, &list, &lerr) < 0)
		return 0; /* no table: no rules */
	cleanup_free char *batch = NULL;
	size_t len = 0, cap = 0;
	char chain[64] = "";
	for (char *save = NULL, *line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[64];
		if (chain_line(line, name)) {
			snprintf(chain, sizeof(chain), "%s", name);
			continue;
		}
		const char *h = strstr(line, "# handle ");
		if (!chain[0] || !h || !strstr(line, needle) || (also && !strstr(line, also)))
			continue;
		char cmd[160];
		snprintf(cmd, sizeof(cmd), "delete rule ip virtus %s handle %ld\n", chain, strtol(h + 9, NULL, 10));
		append(&batch, &len, &cap, cmd);
	}
	if (len == 0)
		return 0;
	return nft_run(batch, false, NULL, err);
}

int cnet_nft_del_container(const char *id, vt_err *err)
{
	char needle[300];
	snprintf(needle, sizeof(needle), "comment \"virtus:%s\"", id);
	if (!nft_available())
		return 0; /* no nf_tables: no rule can exist */
	return delete_matching(needle, NULL, err);
}

/* A host port that cnet_prepare could bind is held by no live bridged container (each holds its ports):
 * a DNAT rule for it is a leftover of a container whose monitor died (its record may still exist), and
 * would shadow the new container's rule. Binding all addresses proves the port free on every address; one
 * address, on that address and for the all-address rules. */
static int delete_stale_port_rules(const struct cnet_config *c, vt_err *err)
{
	for (size_t i = 0; i < c->n_ports; i++) {
		const struct cnet_port *p = &c->ports[i];
		const char *proto = p->udp ? "udp" : "tcp";
		char needle[128];
		snprintf(needle, sizeof(needle), "%s dport %u dnat to ", proto, p->host_port);
		if (!p->host_addr[0]) {
			if (delete_matching(needle, "comment \"virtus:", err) < 0)
				return -1;
			continue;
		}
		char local[192], addr[224];
		snprintf(local, sizeof(local), "fib daddr type local %s", needle);
		snprintf(addr, sizeof(addr), "ip daddr %s %s", p->host_addr, needle);
		if (delete_matching(local, "comment \"virtus:", err) < 0 ||
		    delete_matching(addr, "comment \"virtus:", err) < 0)
			return -1;
	}
	return 0;
}
