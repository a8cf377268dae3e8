/* `virtus vm run`: boot a kernel (or the default guest) and attach its serial console. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "api/handoff.h"
#include "api/preboot.h"
#include "api/vm_api.h"
#include "api/vm_devices.h"
#include "cli/cli.h"
#include "cli/vm_control.h"
#include "cli/vm_state.h"
#include "devices/virtio/balloon.h"
#include "lib/unixsock.h"
#include "lib/sock_url.h"
#include "lib/util.h"
#include "devices/virtio/vsock.h"
#include "net/net_opts.h"
#include "vmm/layout.h"
#include "vmm/jail.h"
#include "vmm/sandbox.h"
#include "vmm/state/migration.h"
#include "vmm/state/snapshot.h"

#define DEFAULT_MEMORY (512 * MiB)
#define DEFAULT_STOP_TIMEOUT_S 10
#define MAX_CPUS 255 /* xAPIC IDs; KVM's own limit on this host is checked when the VM is made */

const char vm_run_usage[] =
	"usage: virtus vm run [--kernel PATH] [--initrd PATH] [--cmdline STR] [--cpus N] [--memory SIZE]\n"
	"                     [--console stdio|none|FILE] [--console-device serial|virtio] [--rng]\n"
	"                     [--disk PATH[,ro][,id=NAME][,format=F][,overlay]]... [--net SPEC]... [--balloon SIZE[,stats=S]]\n"
	"                     [--cdrom [ISO]] [--vsock CID,PATH] [--ksm] [--seccomp on|off|log] [--jail [--jail-uid N] [--jail-gid N]]\n"
	"                     [--stats] [-d] [--name NAME] [--api-socket PATH] [--stop-timeout SECS]\n"
	"                     [--restore DIR | --incoming tcp:HOST:PORT|unix:PATH]\n"
	"       virtus vm run -h|--help\n"
	"\n"
	"Boots a Linux bzImage or PVH ELF vmlinux (detected from the file). Without --kernel, boots the\n"
	"default guest from $VIRTUS_GUEST_DIR, <directory of virtus>/guest or <that>/../lib/virtus/guest.\n"
	"  --kernel PATH    the kernel: a bzImage, or an ELF vmlinux with a PVH entry note\n"
	"  --initrd PATH    an initial ramdisk for the kernel\n"
	"  --cmdline STR    the kernel command line, at most 2047 bytes (Linux's COMMAND_LINE_SIZE); default\n"
	"                   \"console=ttyS0 panic=-1\"; without console=, the guest's output is lost\n"
	"  --cpus N         vCPUs, 1 to 255 (default 1)\n"
	"  --memory SIZE    guest RAM, e.g. 512M, 2G (default 512M, at least 4M)\n"
	"  --console MODE   stdio (default), none, or a FILE to write the guest's console output to; FILE is\n"
	"                   emptied only when the VM starts (if it cannot start, an existing FILE is untouched)\n"
	"  --console-device serial|virtio  the guest console: the serial port ttyS0 (default), or virtio-console\n"
	"                   (hvc0, PCI); host input and the --console output then go through hvc0, and the\n"
	"                   default command line says console=hvc0 (pass console=ttyS0 too for early boot)\n"
	"  --rng            add a virtio-rng device (PCI) fed by the host's getrandom()\n"
	"  --balloon SIZE[,stats=S]  add a virtio-balloon device (PCI) that asks the guest for SIZE of its RAM at\n"
	"                   start (0: nothing yet); the pages the guest gives back are returned to the host, and\n"
	"                   'virtus vm balloon NAME SIZE' changes the target while it runs. The guest reports its\n"
	"                   memory statistics every S seconds (default 5, 0: off); --stats prints the latest\n"
	"                   values when the VM ends\n"
	"  --disk PATH[,ro][,id=NAME][,format=raw|qcow2][,overlay]  add a virtio-blk disk (PCI) over a raw or qcow2\n"
	"                   image (format probed unless given; qcow2 backing files are followed); ro: read-only;\n"
	"                   id: its serial; overlay: writes go to a throwaway qcow2 overlay, the image is never\n"
	"                   written (up to 8 disks, the first is /dev/vda)\n"
	"  --cdrom [ISO]    add a CD-ROM drive (virtio-scsi, PCI; /dev/sr0 in Linux) holding the ISO image, or\n"
	"                   empty; 'virtus vm cd NAME insert ISO | eject' swaps the disc while the VM runs\n"
	"  --net user[,hostfwd=tcp:[ADDR:]HOSTPORT-[GUESTADDR]:GUESTPORT]...[,mac=52:54:00:XX:XX:XX][,host-loopback=on]\n"
	"                   virtio-net with user-mode networking (libslirp: NAT, DHCP, DNS on 10.0.2.0/24);\n"
	"                   hostfwd binds 127.0.0.1 unless ADDR is given; host-loopback=on lets the guest reach\n"
	"                   the host's own loopback services as 10.0.2.2 (off by default)\n"
	"  --net tap=NAME[,mac=52:54:00:XX:XX:XX]\n"
	"                   virtio-net on the TAP device NAME with checksum/TSO offloads (needs CAP_NET_ADMIN or\n"
	"                   a persistent tap you own); a missing NAME is created and vanishes when virtus exits;\n"
	"                   addresses are yours to configure; the default MAC is derived from NAME\n"
	"                   (--net is repeatable: up to 4 devices, eth0 first)\n"
	"  --vsock CID,PATH add a virtio-vsock device (PCI), guest CID 3..4294967294: guest connections to host\n"
	"                   (CID 2) port P reach the Unix socket PATH_P; host clients of the Unix socket PATH\n"
	"                   (created mode 0600, removed at exit) send \"CONNECT P\\n\" to reach guest port P\n"
	"  --fs tag=TAG,socket=PATH  add a virtio-fs device (PCI) served by the vhost-user backend listening on\n"
	"                   PATH (e.g. /usr/lib/qemu/virtiofsd); the guest mounts it with mount -t virtiofs TAG.\n"
	"                   Guest RAM is then a shared memfd the backend maps (up to 4 devices)\n"
	"  --ksm            let the host's KSM merge identical guest pages (density; off by default because\n"
	"                   merged pages let one VM learn about another's memory by timing its writes)\n"
	"  --seccomp on|off|log  the VMM's own sandbox (default on): each of its threads (vCPUs, device loop,\n"
	"                   I/O workers, libslirp, main) may make only the system calls its job needs, with\n"
	"                   no_new_privs; any other call stops the VMM with SIGSYS and a line naming it. log:\n"
	"                   allow such calls but log them in the kernel log (dmesg). off: for debugging only\n"
	"  --jail           run the VMM jailed (needs root): new mount, PID, IPC, UTS and, unless --net is\n"
	"                   given, network namespaces; an empty read-only root (/run/virtus/vm-PID on the\n"
	"                   host) holding only the --vsock socket's directory (and /etc/resolv.conf for --net\n"
	"                   user); its own cgroup virtus/vm-PID; uid/gid 65534 with no capabilities. Files and\n"
	"                   devices are opened before the jail closes; host sockets the guest connects to\n"
	"                   over vsock must be writable by that uid. Nothing is left behind at exit\n"
	"  --jail-uid N, --jail-gid N  the jail's unprivileged ids (default 65534, never 0)\n"
	"  --stats          print VM exit counters when the VM ends\n"
	"  -d, --detach     run in the background: print the VM's name once it runs and return; the console\n"
	"                   goes to a log (virtus vm logs) and to 'virtus vm console NAME'\n"
	"  --name NAME      the VM's name for the 'virtus vm' commands (default vm-XXXXXX, random); letters,\n"
	"                   digits, '_', '.', '-', at most 63\n"
	"  --api-socket PATH  serve the VM API (HTTP/JSON, Firecracker's endpoints; docs/api.md) on the Unix\n"
	"                   socket PATH instead of the VM's directory under /run/virtus-vms/NAME. Without\n"
	"                   --kernel, the VM waits to be configured and started through the API (PUT\n"
	"                   /boot-source, /machine-config, /drives/ID, ..., then PUT /actions InstanceStart)\n"
	"  --restore DIR    continue the VM a snapshot holds ('virtus vm snapshot'): its vCPUs, memory (mapped\n"
	"                   from DIR/memory, read as the guest touches it) and devices; --cpus and --memory, if\n"
	"                   given, must be the snapshot's; no --kernel, --initrd or --cmdline. Device options\n"
	"                   replace the snapshot's of their kind (--disk, --vsock: the host side may differ);\n"
	"                   the devices must still be the snapshot's. --net: one per snapshot interface, in\n"
	"                   order, its host side (the interface keeps its ID, PCI slot and MAC)\n"
	"  --incoming tcp:HOST:PORT|unix:PATH  wait there for a live migration ('virtus vm migrate') and run\n"
	"                   the VM it brings; device options as for --restore (with -d: returns once listening)\n"
	"  --stop-timeout SECS  SIGTERM presses the guest's ACPI power button and stops the VM SECS later if the\n"
	"                   guest has not powered off by then (default 10; 0: SIGTERM stops the VM at once)\n"
	"  -h, --help       print this help\n"
	"On the console, Ctrl-A x quits and Ctrl-A Ctrl-A sends Ctrl-A.\n"
	"Exit status: 0 guest powered off, 3 guest rebooted, 4 guest crashed, 1 VMM error, 2 usage error,\n"
	"130 stopped from the host.\n";

struct run_opts {
	struct vm_config cfg;
	bool detach;
	const char *name;           /* --name, or a random one */
	char random_name[16];
	const char *api_socket;     /* --api-socket, or NULL for the VM directory's */
	struct vm_state state;      /* the VM's directory (vm_state.h) */
	int ready_fd;               /* detached: the parent waits for a byte here, -1 otherwise */
	unsigned stop_timeout_s;    /* --stop-timeout */
	const char *restore_dir;    /* --restore */
	const char *incoming;       /* --incoming URL */
	struct vm_devices_store devstore; /* the devices a snapshot or migration describes */
	bool preboot;               /* --api-socket without --kernel: configured and started through the API */
	bool start_paused;          /* PUT /snapshot/load without resume_vm */
	char restore_state[PATH_MAX], restore_mem[PATH_MAX];
	bool cpus_given, memory_given;
	enum sandbox_mode sandbox;
	bool jail;
	struct jail_config jail_cfg;
	char vsock_abs[PATH_MAX];   /* --vsock's path made absolute for the jail */
	char vsock_dir[PATH_MAX];   /* and its directory, bound into the jail */
	const char *console;
	bool stats;
	struct vm_preflight *pf;    /* its kernel image is freed once loaded into guest memory */
};

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "virtus vm run: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(see 'virtus vm run --help')\n");
	return EXIT_USAGE;
}

/* "PATH[,ro][,id=NAME][,format=raw|qcow2][,overlay]", split in place (argv outlives the VM). -1 if good,
 * else the exit status. */
static int parse_disk(char *arg, struct vm_config *cfg)
{
	if (cfg->ndisks == VM_MAX_DISKS)
		return usage_error("--disk %s: at most 8 disks", arg);
	struct vm_disk_config *d = &cfg->disk[cfg->ndisks];
	*d = (struct vm_disk_config){ .path = strsep(&arg, ",") };
	if (!*d->path)
		return usage_error("--disk wants PATH[,ro][,id=NAME][,format=raw|qcow2][,overlay], got '%s'", d->path);
	for (char *opt; (opt = strsep(&arg, ",")) != NULL;) {
		if (!strcmp(opt, "ro"))
			d->readonly = true;
		else if (!strncmp(opt, "id=", 3) && opt[3])
			d->serial = opt + 3;
		else if (!strcmp(opt, "format=raw"))
			d->format = BLK_FORMAT_RAW;
		else if (!strcmp(opt, "format=qcow2"))
			d->format = BLK_FORMAT_QCOW2;
		else if (!strcmp(opt, "overlay"))
			d->overlay = true;
		else
			return usage_error("--disk: unknown option '%s' (expected ro, id=NAME, format=raw|qcow2 or overlay)", opt);
	}
	if (d->readonly && d->overlay)
		return usage_error("--disk %s: ro and overlay exclude each other (an overlay is what takes the writes)", d->path);
	cfg->ndisks++;
	return -1;
}

/* --balloon SIZE[,stats=SECONDS]: -1 when parsed, else the usage error's exit status. */
static int parse_balloon(char *spec, struct vm_config *cfg)
{
	vt_err err;
	uint64_t secs = VBALLOON_STATS_DEFAULT_SECONDS;
	char *opts = strchr(spec, ',');
	if (opts) {
		*opts++ = '\0';
		if (strncmp(opts, "stats=", 6) || parse_uint(opts + 6, 0, 3600, &secs) < 0)
			return usage_error("--balloon: expected stats=SECONDS (0..3600) after the size, got '%s'", opts);
	}
	if (!strcmp(spec, "0")) /* a balloon with nothing asked yet: its target is set while the VM runs */
		cfg->balloon_size = 0;
	else if (parse_size(spec, &cfg->balloon_size, &err) < 0)
		return usage_error("--balloon: %s", err.msg);
	cfg->balloon = true;
	cfg->balloon_stats_s = (unsigned)secs;
	return -1;
}

/* "CID,PATH", split in place. -1 if good, else the exit status. */
static int parse_vsock(char *arg, struct vm_config *cfg)
{
	char *comma = strchr(arg, ',');
	if (!comma)
		return usage_error("--vsock wants CID,PATH, got '%s'", arg);
	*comma = 0;
	uint64_t cid;
	if (parse_uint(arg, VSOCK_CID_MIN, VSOCK_CID_MAX, &cid) < 0)
		return usage_error("--vsock: CID must be a number from 3 to 4294967294, got '%s'", arg);
	vt_err err;
	if (vsock_check_path(comma + 1, &err) < 0)
		return usage_error("%s", err.msg);
	cfg->vsock_cid = cid;
	cfg->vsock_path = comma + 1;
	return -1;
}

/* --fs tag=TAG,socket=PATH */
static int parse_fs(const char *arg, struct vm_config *cfg)
{
	char buf[512];
	const char *tag = NULL, *sock = NULL;
	if (cfg->nfs == VM_MAX_FS)
		return usage_error("at most %s --fs devices", "4");
	if (snprintf(buf, sizeof(buf), "%s", arg) >= (int)sizeof(buf))
		return usage_error("--fs '%s' is too long", arg);
	for (char *save, *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		if (!strncmp(item, "tag=", 4))
			tag = item + 4;
		else if (!strncmp(item, "socket=", 7))
			sock = item + 7;
		else
			return usage_error("--fs: unknown item '%s' (want tag=TAG,socket=PATH)", item);
	}
	if (!tag || !*tag || strlen(tag) > 36)
		return usage_error("--fs: tag= must be 1 to 36 bytes, in '%s'", arg);
	if (!sock || !*sock || strlen(sock) >= sizeof(cfg->fs[0].socket))
		return usage_error("--fs: socket= must be a Unix socket path of at most 107 bytes, in '%s'", arg);
	struct vm_fs_config *f = &cfg->fs[cfg->nfs++];
	snprintf(f->tag, sizeof(f->tag), "%s", tag);
	snprintf(f->socket, sizeof(f->socket), "%s", sock);
	return -1;
}

static int parse_args(int argc, char **argv, struct run_opts *o)
{
	static const struct option longopts[] = {
		{ "kernel", required_argument, NULL, 'k' }, { "initrd", required_argument, NULL, 'i' },
		{ "cmdline", required_argument, NULL, 'c' }, { "cpus", required_argument, NULL, 'n' },
		{ "memory", required_argument, NULL, 'm' }, { "console", required_argument, NULL, 'o' },
		{ "console-device", required_argument, NULL, 'C' }, { "balloon", required_argument, NULL, 'b' },
		{ "disk", required_argument, NULL, 'D' }, { "net", required_argument, NULL, 'N' },
		{ "vsock", required_argument, NULL, 'V' }, { "ksm", no_argument, NULL, 'K' },
		{ "fs", required_argument, NULL, 'F' }, { "cdrom", optional_argument, NULL, 'Q' },
		{ "seccomp", required_argument, NULL, 'S' }, { "jail", no_argument, NULL, 'J' },
		{ "jail-uid", required_argument, NULL, 'U' }, { "jail-gid", required_argument, NULL, 'G' },
		{ "stats", no_argument, NULL, 's' }, { "rng", no_argument, NULL, 'r' }, { "help", no_argument, NULL, 'h' },
		{ "detach", no_argument, NULL, 'd' }, { "name", required_argument, NULL, 'A' },
		{ "api-socket", required_argument, NULL, 'P' }, { "stop-timeout", required_argument, NULL, 'T' },
		{ "restore", required_argument, NULL, 'R' }, { "incoming", required_argument, NULL, 'I' }, { 0 },
	};
	uint64_t n;
	struct net_opts net;
	vt_err err;
	int c, rc;
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+hd", longopts, NULL)) != -1) {
		switch (c) {
		case 'd':
			o->detach = true;
			break;
		case 'A':
			if (vm_state_check_name(optarg, &err) < 0)
				return usage_error("--name: %s", err.msg);
			o->name = optarg;
			break;
		case 'R':
			o->restore_dir = optarg;
			break;
		case 'I':
			if (strncmp(optarg, "tcp:", 4) && strncmp(optarg, "unix:", 5))
				return usage_error("--incoming '%s': expected tcp:HOST:PORT or unix:PATH", optarg);
			o->incoming = optarg;
			break;
		case 'T':
			if (parse_uint(optarg, 0, 3600, &n) < 0)
				return usage_error("--stop-timeout wants seconds from 0 to 3600, got '%s'", optarg);
			o->stop_timeout_s = (unsigned)n;
			break;
		case 'P':
			if (!*optarg || strlen(optarg) >= VM_SOCKET_PATH_MAX)
				return usage_error("--api-socket wants a path of 1 to 107 bytes, got '%s'", optarg);
			o->api_socket = optarg;
			break;
		case 'k': o->cfg.kernel_path = optarg; break;
		case 'i': o->cfg.initrd_path = optarg; break;
		case 'c': {
			char len[24];
			snprintf(len, sizeof(len), "%zu", strlen(optarg));
			if (strlen(optarg) > BOOT_CMDLINE_MAX)
				return usage_error("--cmdline is too long: Linux on x86 takes at most 2047 bytes "
						   "(COMMAND_LINE_SIZE 2048 with the final NUL), this one has %s", len);
			o->cfg.cmdline = optarg;
			break;
		}
		case 'o': o->console = optarg; break;
		case 's': o->stats = true; break;
		case 'r': o->cfg.rng = true; break;
		case 'K': o->cfg.ksm = true; break;
		case 'C':
			if (strcmp(optarg, "serial") && strcmp(optarg, "virtio"))
				return usage_error("--console-device wants serial or virtio, got '%s'", optarg);
			o->cfg.virtio_console = !strcmp(optarg, "virtio");
			break;
		case 'b':
			if ((rc = parse_balloon(optarg, &o->cfg)) >= 0)
				return rc;
			break;
		case 'D':
			if ((rc = parse_disk(optarg, &o->cfg)) >= 0)
				return rc;
			break;
		case 'V':
			if ((rc = parse_vsock(optarg, &o->cfg)) >= 0)
				return rc;
			break;
		case 'F':
			if ((rc = parse_fs(optarg, &o->cfg)) >= 0)
				return rc;
			break;
		case 'Q':
			/* --cdrom ISO as well as --cdrom=ISO: vm run takes no operands, so a word after it is the ISO */
			if (!optarg && optind < argc && argv[optind][0] != '-')
				optarg = argv[optind++];
			if (o->cfg.cdrom)
				return usage_error("--cdrom: one CD drive per VM (%s)", "given twice");
			if (optarg && !*optarg)
				return usage_error("--cdrom: an empty path (give an ISO image, or nothing for an empty drive%s)", "");
			o->cfg.cdrom = true;
			o->cfg.cdrom_path = optarg;
			break;
		case 'N':
			if (net_opts_parse(optarg, &net, &err) < 0)
				return usage_error("%s", err.msg);
			if (o->cfg.nnets == VM_MAX_NETS)
				return usage_error("at most %s --net devices", "4");
			o->cfg.net[o->cfg.nnets++] = optarg;
			break;
		case 'S':
			if (sandbox_parse_mode(optarg, &o->sandbox) < 0)
				return usage_error("--seccomp wants on, off or log, got '%s'", optarg);
			break;
		case 'J': o->jail = true; break;
		case 'U':
		case 'G':
			if (parse_uint(optarg, 1, 4294967294ULL, &n) < 0)
				return usage_error(c == 'U' ? "--jail-uid wants a number from 1 to 4294967294 (never 0), got '%s'"
							    : "--jail-gid wants a number from 1 to 4294967294 (never 0), got '%s'", optarg);
			if (c == 'U')
				o->jail_cfg.uid = (uid_t)n;
			else
				o->jail_cfg.gid = (gid_t)n;
			break;
		case 'h': fputs(vm_run_usage, stdout); return 0;
		case 'n':
			if (parse_uint(optarg, 0, UINT32_MAX, &n) < 0)
				return usage_error("--cpus wants a whole number, got '%s'", optarg);
			if (n < 1 || n > MAX_CPUS)
				return usage_error("--cpus must be from 1 to 255, got '%s'", optarg);
			o->cfg.ncpus = (unsigned)n;
			o->cpus_given = true;
			break;
		case 'm':
			if (parse_size(optarg, &o->cfg.mem_size, &err) < 0)
				return usage_error("--memory: %s", err.msg);
			if (o->cfg.mem_size < VM_MIN_MEMORY || o->cfg.mem_size % 4096)
				return usage_error("--memory must be at least 4M and a multiple of 4K, got '%s'", optarg);
			o->memory_given = true;
			break;
		case '?':
			return usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (o->cfg.balloon && o->cfg.balloon_size >= o->cfg.mem_size)
		return usage_error("--balloon must be smaller than --memory (%s)", "guest RAM");
	const char *from = o->restore_dir ? "--restore" : o->incoming ? "--incoming" : NULL;
	if (o->restore_dir && o->incoming)
		return usage_error("--restore and --incoming both bring a VM: give one (%s)", "a snapshot or a migration");
	if (from && (o->cfg.kernel_path || o->cfg.initrd_path || o->cfg.cmdline))
		return fprintf(stderr, "virtus vm run: %s continues the source's kernel: drop %s\n", from,
			       o->cfg.kernel_path ? "--kernel" : o->cfg.initrd_path ? "--initrd" : "--cmdline"), EXIT_USAGE;
	if (from && o->cfg.nfs)
		return fprintf(stderr, "virtus vm run: %s: virtio-fs (--fs) cannot be snapshotted or migrated\n", from), EXIT_USAGE;
	if (o->detach && o->console)
		return usage_error("-d keeps the console in the VM's log and on 'virtus vm console'; drop --console %s", o->console);
	return -1; /* parsed: go on */
}

struct console_fds {
	int in_fd, out_fd;
	char *created_path; /* a console log file this run created, removed if the VM never started */
};

/* A console FILE is created if missing but emptied only once the VM is about to run (truncate_console):
 * a run that fails before its start leaves an existing file as it was, and a file it created is removed. */
static int open_console(const char *mode, struct console_fds *c, vt_err *err)
{
	c->created_path = NULL;
	if (!mode || !strcmp(mode, "stdio")) {
		c->in_fd = STDIN_FILENO;
		c->out_fd = STDOUT_FILENO;
		return 0;
	}
	c->in_fd = -1;
	if (!strcmp(mode, "none")) {
		c->out_fd = -1;
		return 0;
	}
	bool existed = access(mode, F_OK) == 0;
	c->out_fd = open(mode, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (c->out_fd < 0)
		return vt_fail_errno(err, errno, "--console %s", mode);
	if (!existed)
		c->created_path = strdup(mode);
	return 0;
}

static int truncate_console(const struct console_fds *c, const char *mode, vt_err *err)
{
	struct stat st;
	if (c->out_fd <= STDERR_FILENO || fstat(c->out_fd, &st) < 0 || !S_ISREG(st.st_mode))
		return 0; /* a terminal, pipe or device has nothing to empty */
	if (ftruncate(c->out_fd, 0) < 0)
		return vt_fail_errno(err, errno, "--console %s: cannot empty it", mode);
	return 0;
}

static void close_console(struct console_fds *c, bool remove_created)
{
	if (c->out_fd > STDERR_FILENO)
		close(c->out_fd);
	if (remove_created && c->created_path)
		unlink(c->created_path);
	free(c->created_path);
}

static int block_host_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGQUIT);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, set, SFD_CLOEXEC);
}

static int report_end(enum vm_exit why)
{
	if (why == VM_EXIT_RESET)
		fprintf(stderr, "virtus: the guest rebooted; the reboot policy is to exit (status %d)\n", VM_EXIT_RESET);
	else if (why == VM_EXIT_CRASH)
		fprintf(stderr, "virtus: the guest crashed (status %d)\n", VM_EXIT_CRASH);
	else if (why == VM_EXIT_INTERRUPTED)
		fprintf(stderr, "virtus: stopped from the host (status %d)\n", VM_EXIT_INTERRUPTED);
	return (int)why;
}

/* What a running VM holds besides the VM itself: its console's fds, the detached console and the API. */
struct vm_session {
	struct console_fds con;
	struct console_hub hub;     /* detached only (hub.out_rd >= 0) */
	struct vm_api api_ctx;
	struct api_server *api;
	struct preboot preboot;     /* configured through the API (o->preboot) */
	struct vm_api_waiting waiting; /* waiting for a migration (o->incoming) */
	struct term_state term;
	struct vm *vm;
	int handoff_fd;             /* a jailed VMM's handoff socket (api/handoff.h), else -1 */
};

static int open_session_console(struct run_opts *o, struct vm_session *s, vt_err *err)
{
	s->hub = (struct console_hub){ .out_rd = -1, .log_fd = -1, .listen_fd = -1, .client_fd = -1 };
	if (!o->detach)
		return open_console(o->console, &s->con, err);
	char path[PATH_MAX + 16];
	s->con = (struct console_fds){ .in_fd = -1, .out_fd = -1 };
	snprintf(path, sizeof(path), "%s/console.log", o->state.dir);
	return console_hub_open(&s->hub, path, o->state.console_socket, &s->con.out_fd, err);
}

/* The VM and its console; the API goes too unless it serves a configuration that may start again. */
static void close_session(struct vm_session *s, bool remove_created, bool keep_api)
{
	term_restore(&s->term);
	if (s->vm)
		vm_destroy(s->vm), s->vm = NULL;
	if (!keep_api) {
		api_server_stop(s->api);
		s->api = NULL;
	}
	if (s->handoff_fd >= 0)
		close(s->handoff_fd); /* its socket file goes with the VM's directory */
	s->handoff_fd = -1;
	console_hub_close(&s->hub);
	close_console(&s->con, remove_created);
	s->con = (struct console_fds){ .in_fd = -1, .out_fd = -1 };
}

/* A jailed VMM reaches no host path: the files it is to write are handed to it on a socket made now, before
 * the jail closes (the API's is made here too). */
static int start_handoff(struct run_opts *o, struct vm_session *s, vt_err *err)
{
	char path[PATH_MAX + 16];
	if (!o->jail || s->handoff_fd >= 0)
		return 0;
	snprintf(path, sizeof(path), "%s/" HANDOFF_SOCKET, o->state.dir);
	s->handoff_fd = unix_listen(path, 4, err);
	return s->handoff_fd < 0 ? -1 : 0;
}

/* The running VM's routes: on a new server, or on the one that served its configuration. */
static int start_api(struct run_opts *o, struct vm_session *s, vt_err *err)
{
	s->api_ctx = (struct vm_api){ .vm = s->vm, .cfg = &o->cfg, .id = o->state.name, .version = VIRTUS_VERSION,
				      .started = o->state.started, .jailed = o->jail,
				      .jail_own_network = o->jail && o->jail_cfg.new_netns };
	if (s->api) {
		api_server_set_handler(s->api, vm_api_handle, &s->api_ctx);
		return 0;
	}
	return api_server_start(o->state.api_socket, vm_api_handle, &s->api_ctx, &s->api, err);
}

/* Arguments and files are checked before KVM is opened and the console file is opened last. The sandbox's
 * filters are compiled before vm_create (which starts the I/O workers and the libslirp thread, and they
 * confine themselves); the API and console sockets listen, and the jail closes, once everything the VM
 * needs is open. */
static int prepare_vm(struct run_opts *o, struct jail *jail, struct vm_session *s, vt_err *err)
{
	if (open_session_console(o, s, err) < 0)
		return -1;
	o->cfg.console_out_fd = s->con.out_fd;
	o->cfg.diag = stderr;
	struct sandbox_ids ids = { o->jail_cfg.uid, o->jail_cfg.gid };
	/* configured through the API, the filters of every role were prepared before the first start */
	if ((!o->preboot && sandbox_prepare(o->sandbox, vm_thread_roles(&o->cfg), jail ? &ids : NULL, err) < 0) ||
	    vm_create(&o->cfg, &s->vm, err) < 0 ||
	    (o->restore_dir && vm_snapshot_restore(s->vm, o->restore_state, err) < 0) ||
	    truncate_console(&s->con, o->console, err) < 0 ||
	    start_api(o, s, err) < 0 || start_handoff(o, s, err) < 0 || (jail && jail_enter(jail, err) < 0))
		return -1;
	return 0;
}

/* Start a VM prepare_vm built: once this returns 0 its vCPUs run. */
static int start_prepared(struct run_opts *o, struct vm_session *s, vt_err *err)
{
	/* The kernel is in guest memory now: its file image (51 MB for the default vmlinux) would otherwise stay
	 * resident for the VM's whole life. */
	vm_preflight_free(o->pf);
	o->cfg.kernel_data = NULL;
	if (s->con.in_fd == STDIN_FILENO)
		term_raw(&s->term, STDIN_FILENO);
	if (o->start_paused)
		vm_pause_at_start(s->vm);
	return vm_start(s->vm, err);
}

/* Build and start the VM: once this returns 0 its vCPUs run. */
static int launch_vm(struct run_opts *o, struct jail *jail, struct vm_session *s, vt_err *err)
{
	return prepare_vm(o, jail, s, err) < 0 ? -1 : start_prepared(o, s, err);
}

/* A VM from a snapshot or a migration: the machine is the source's, and what the command line says of it
 * must agree; the devices the command line does not give are the source's (api/vm_devices.h). */
static int adopt_machine(struct run_opts *o, const char *from, const struct snapshot_machine *m, const char *config,
			 vt_err *err)
{
	if (o->cpus_given && o->cfg.ncpus != m->ncpus)
		return vt_fail(err, "%s: the source VM has %u vCPUs, --cpus says %u", from, m->ncpus, o->cfg.ncpus);
	if (o->memory_given && o->cfg.mem_size != m->mem_size)
		return vt_fail(err, "%s: the source VM has %llu MiB, --memory says %llu MiB", from,
			       (unsigned long long)(m->mem_size >> 20), (unsigned long long)(o->cfg.mem_size >> 20));
	if (!m->ncpus || m->ncpus > MAX_CPUS || m->mem_size < VM_MIN_MEMORY || m->mem_size % 4096)
		return vt_fail(err, "%s: the source VM's machine (%u vCPUs, %llu bytes) is not one virtus builds", from,
			       m->ncpus, (unsigned long long)m->mem_size);
	o->cfg.ncpus = m->ncpus;
	o->cfg.mem_size = m->mem_size;
	if (vm_devices_from_json(config, &o->cfg, &o->devstore, err) < 0)
		return vt_err_prefix(err, "%s", from);
	return 0;
}

/* The snapshot's disks go back to the checkpoint: each becomes a new overlay over the image the snapshot
 * kept in its directory (only disks that come from the snapshot; a --disk given now is the user's). */
static int restore_disk_layers(struct vm_config *cfg, const char *dir, vt_err *err)
{
	char real[PATH_MAX], layer[PATH_MAX + 72];
	bool any = false;
	for (unsigned k = 0; k < cfg->ndisks; k++)
		any |= cfg->disk[k].layer != NULL;
	if (!any)
		return 0;
	if (!realpath(dir, real))
		return vt_fail_errno(err, errno, "%s", dir);
	for (unsigned k = 0; k < cfg->ndisks; k++) {
		if (!cfg->disk[k].layer)
			continue;
		snprintf(layer, sizeof(layer), "%s/%s", real, cfg->disk[k].layer);
		if (blk_restore_layer(cfg->disk[k].path, layer, err) < 0)
			return vt_err_prefix(err, "disk %u", k + 1);
		cfg->disk[k].layer = NULL;
	}
	return 0;
}

/* --restore DIR: the snapshot's machine and devices. */
static int plan_restore(struct run_opts *o, vt_err *err)
{
	struct snapshot_machine m;
	char *config;
	snprintf(o->restore_state, sizeof(o->restore_state), "%s/state", o->restore_dir);
	snprintf(o->restore_mem, sizeof(o->restore_mem), "%s/memory", o->restore_dir);
	if (vm_snapshot_read_machine(o->restore_state, &m, &config, err) < 0)
		return vt_err_prefix(err, "--restore %s", o->restore_dir);
	char from[PATH_MAX + 16];
	snprintf(from, sizeof(from), "--restore %s", o->restore_dir);
	int rc = adopt_machine(o, from, &m, config, err);
	free(config);
	o->cfg.restore_mem_path = o->restore_mem;
	if (rc == 0 && restore_disk_layers(&o->cfg, o->restore_dir, err) < 0)
		return vt_err_prefix(err, "%s", from);
	return rc;
}

/* A detached VM runs (or, configured through the API, its API listens): tell the waiting parent. */
static void report_ready(struct run_opts *o)
{
	if (o->ready_fd < 0)
		return;
	if (write(o->ready_fd, "R", 1) < 0) {
		/* the parent is gone; the VM runs on */
	}
	close(o->ready_fd);
	o->ready_fd = -1;
}

struct preboot_run {
	struct run_opts *o;
	struct vm_session *s;
};

/* InstanceStart: what `vm run` checks before opening /dev/kvm, then the launch. A failure leaves the VM
 * unstarted (and the API serving its configuration). */
static int preboot_start(void *opaque, vt_err *err)
{
	struct preboot_run *pr = opaque;
	struct run_opts *o = pr->o;
	vm_preflight_free(o->pf);
	if (vm_preflight(&o->cfg, o->console && !strcmp(o->console, "none"), o->pf, err) < 0 ||
	    launch_vm(o, NULL, pr->s, err) < 0) {
		close_session(pr->s, true, true);
		return -1;
	}
	return 0;
}

/* PUT /snapshot/load: as --restore with these files; a failure leaves the VM unstarted and configurable. */
static int preboot_load(void *opaque, const char *state, const char *mem, bool resume, vt_err *err)
{
	struct preboot_run *pr = opaque;
	struct run_opts *o = pr->o;
	struct snapshot_machine m;
	char *config;
	struct vm_config before = o->cfg;
	if ((size_t)snprintf(o->restore_state, sizeof(o->restore_state), "%s", state) >= sizeof(o->restore_state) ||
	    (size_t)snprintf(o->restore_mem, sizeof(o->restore_mem), "%s", mem) >= sizeof(o->restore_mem))
		return vt_fail(err, "a path is too long");
	if (vm_snapshot_read_machine(o->restore_state, &m, &config, err) < 0)
		return -1;
	int rc = adopt_machine(o, "the snapshot", &m, config, err);
	free(config);
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", state);
	if (rc == 0)
		rc = restore_disk_layers(&o->cfg, dirname(dir), err);
	o->cfg.restore_mem_path = o->restore_mem;
	o->restore_dir = o->restore_state;
	o->start_paused = !resume;
	if (rc == 0 && (rc = launch_vm(o, NULL, pr->s, err)) < 0)
		close_session(pr->s, true, true);
	if (rc < 0) {
		o->cfg = before;
		o->restore_dir = NULL;
		o->start_paused = false;
	}
	return rc;
}

/* Serve the pre-boot API until InstanceStart has started the VM (0) or a signal ends the wait (-1). */
static int wait_for_start(struct run_opts *o, struct vm_session *s, int sig_fd)
{
	vt_err err;
	struct preboot_run pr = { o, s };
	preboot_init(&s->preboot, &o->cfg, o->state.name, VIRTUS_VERSION, preboot_start, preboot_load, &pr);
	if (sandbox_prepare(o->sandbox, ~0u >> (32 - THREAD_ROLES), NULL, &err) < 0 ||
	    api_server_start(o->state.api_socket, preboot_handle, &s->preboot, &s->api, &err) < 0)
		return fprintf(stderr, "virtus: %s\n", err.msg), -1;
	fprintf(stderr, "virtus: waiting for the VM's configuration on %s (PUT /boot-source, then PUT /actions "
			"InstanceStart; docs/api.md)\n", o->state.api_socket);
	report_ready(o);
	while (!s->preboot.started) {
		struct pollfd p[2] = { { .fd = sig_fd, .events = POLLIN }, { .fd = api_server_poll_fd(s->api), .events = POLLIN } };
		if (poll(p, 2, api_server_timeout_ms(s->api)) < 0 && errno != EINTR)
			return -1;
		if (p[0].revents) {
			fprintf(stderr, "virtus: stopped from the host before the VM was started\n");
			return -2;
		}
		api_server_dispatch(s->api);
		if (s->preboot.killed)
			return -2;
	}
	return 0;
}


/* The source's connection, or -2 when a host signal or a Kill through the API ended the wait. */
static int accept_migration(struct vm_session *s, int lfd, int sig_fd, vt_err *err)
{
	struct vm_api_waiting *waiting = &s->waiting;
	for (;;) {
		struct pollfd p[3] = { { .fd = sig_fd, .events = POLLIN }, { .fd = lfd, .events = POLLIN },
				       { .fd = api_server_poll_fd(s->api), .events = POLLIN } };
		if (poll(p, 3, api_server_timeout_ms(s->api)) < 0 && errno != EINTR)
			return vt_fail_errno(err, errno, "poll");
		api_server_dispatch(s->api);
		if (p[0].revents || waiting->killed) {
			fprintf(stderr, "virtus: stopped before a migration arrived\n");
			return -2;
		}
		if (!p[1].revents)
			continue;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0) {
			struct timeval tv = { .tv_sec = MIGRATION_ANSWER_S };
			int flags = fcntl(fd, F_GETFL);
			if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0 ||
			    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
				close(fd);
				return vt_fail_errno(err, errno, "the migration's connection");
			}
			return fd;
		}
		if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
			return vt_fail_errno(err, errno, "accepting the migration on %s", "--incoming");
	}
}

/* A jailed destination binds the vsock socket's directory when the jail is made, before the stream has said
 * what the VM is: an arriving vsock device needs its host side on the command line. */
static int check_jailed_arrival(const struct run_opts *o, const struct jail *jail, vt_err *err)
{
	if (jail && o->cfg.vsock_cid && o->cfg.vsock_path != o->vsock_abs)
		return vt_fail(err, "--incoming %s: the arriving VM has a vsock device; a jailed destination needs "
			       "--vsock CID,PATH on its command line (the jail binds PATH's directory when it is made)",
			       o->incoming);
	return 0;
}

/* Everything the stream brings, into a VM built from its machine and configuration. */
static int receive_stream(struct run_opts *o, struct jail *jail, struct vm_session *s, int fd, vt_err *err)
{
	struct snapshot_machine m;
	char *config = NULL;
	char from[PATH_MAX + 16];
	snprintf(from, sizeof(from), "--incoming %s", o->incoming);
	int rc = migration_in_machine(fd, &m, &config, err);
	if (rc == 0)
		rc = adopt_machine(o, from, &m, config, err);
	free(config);
	o->cfg.incoming = true;
	if (rc == 0)
		rc = check_jailed_arrival(o, jail, err);
	if (rc == 0)
		rc = prepare_vm(o, jail, s, err);
	if (rc == 0)
		rc = migration_in_receive(s->vm, fd, err);
	return rc;
}

/* --incoming: listen, take one migration, build and load the VM it brings, and start it once the source has
 * let it go. Returns as launch_vm does, or -2 when a host signal ended the wait. */
static int receive_vm(struct run_opts *o, struct jail *jail, struct vm_session *s, int sig_fd, vt_err *err)
{
	int lfd = sock_url_listen(o->incoming, err);
	if (lfd < 0)
		return -1;
	/* the API answers before the caller of -d is told the VM is there (a `vm kill` may follow at once) */
	s->waiting = (struct vm_api_waiting){ .id = o->state.name, .version = VIRTUS_VERSION, .url = o->incoming };
	if (api_server_start(o->state.api_socket, vm_api_waiting_handle, &s->waiting, &s->api, err) < 0) {
		close(lfd);
		if (!strncmp(o->incoming, "unix:", 5))
			unlink(o->incoming + 5);
		return -1;
	}
	fprintf(stderr, "virtus: waiting for a migration on %s ('virtus vm migrate NAME %s' on the source)\n",
		o->incoming, o->incoming);
	report_ready(o);
	int fd = accept_migration(s, lfd, sig_fd, err);
	close(lfd);
	if (!strncmp(o->incoming, "unix:", 5))
		unlink(o->incoming + 5);
	if (fd < 0)
		return fd;
	int rc = receive_stream(o, jail, s, fd, err);
	if (rc < 0)
		migration_in_refuse(fd, err); /* the source resumes */
	else
		rc = migration_in_commit(s->vm, fd, err);
	close(fd);
	if (rc < 0)
		return -1;
	fprintf(stderr, "virtus: the migration arrived; the VM runs here\n");
	return start_prepared(o, s, err);
}

static int run_vm(struct run_opts *o, struct jail *jail)
{
	struct vm_session s = { .api = NULL, .vm = NULL, .con = { .in_fd = -1, .out_fd = -1 },
				.hub = { .out_rd = -1, .log_fd = -1, .listen_fd = -1, .client_fd = -1 }, .handoff_fd = -1 };
	sigset_t set;
	int sig_fd = block_host_signals(&set);
	vt_err err;
	int rc = o->preboot ? wait_for_start(o, &s, sig_fd)
		 : o->incoming ? receive_vm(o, jail, &s, sig_fd, &err) : launch_vm(o, jail, &s, &err);
	if (rc < 0) {
		if (!o->preboot && rc != -2)
			fprintf(stderr, "virtus: %s\n", err.msg);
		bool started = s.vm && __atomic_load_n(&s.vm->start_ns, __ATOMIC_RELAXED);
		close_session(&s, !started, false);
		close(sig_fd);
		return rc == -2 ? VM_EXIT_INTERRUPTED : VM_EXIT_ERROR;
	}
	report_ready(o);
	sandbox_enter_main(); /* every VMM thread exists now */
	struct vm_control ctl = { .vm = s.vm, .sig_fd = sig_fd, .in_fd = s.con.in_fd, .escape_quits = true,
				  .stop_timeout_s = o->stop_timeout_s, .api = s.api, .api_ctx = s.api ? &s.api_ctx : NULL,
				  .hub = s.hub.out_rd >= 0 ? &s.hub : NULL, .handoff_fd = s.handoff_fd };
	vm_control_loop(&ctl);
	enum vm_exit why = vm_wait(s.vm);
	vm_api_release(&s.api_ctx);
	if (ctl.hub)
		console_hub_flush(ctl.hub);
	term_restore(&s.term);
	if (o->stats)
		vm_print_stats(s.vm, stderr);
	close_session(&s, false, false);
	close(sig_fd);
	return report_end(why);
}

static int run_jailed_vm(void *arg, struct jail *jail)
{
	return run_vm(arg, jail);
}

/* What the jail must hold: the vsock socket's directory (guest connections reach PATH_P by path while the
 * VM runs) and, for user networking, the resolver's configuration libslirp reads. A VM that arrives by
 * --incoming is known only once it is there, after the jail is made: its jail keeps the host's network (the
 * listener is in it, and the VM may bring a network) and holds the resolver's configuration in case. */
static int plan_jail(struct run_opts *o, vt_err *err)
{
	struct jail_config *j = &o->jail_cfg;
	j->new_netns = o->cfg.nnets == 0 && !o->incoming; /* tap and libslirp both work in the host's network */
	if (o->incoming && !strncmp(o->incoming, "unix:", 5))
		j->remove_at_exit[j->nremove++] = o->incoming + 5;
	if (o->cfg.vsock_path) {
		char *dir = strdup(o->cfg.vsock_path), *base = strdup(o->cfg.vsock_path);
		bool ok = dir && base && realpath(dirname(dir), o->vsock_dir);
		int n = ok ? snprintf(o->vsock_abs, sizeof(o->vsock_abs), "%s/%s", o->vsock_dir, basename(base)) : 0;
		free(dir), free(base);
		if (!ok)
			return vt_fail_errno(err, errno, "--vsock %s: its directory", o->cfg.vsock_path);
		if ((size_t)n >= sizeof(o->vsock_abs) || vsock_check_path(o->vsock_abs, err) < 0)
			return vt_fail(err, "--vsock %s: its absolute path is too long for the jail", o->cfg.vsock_path);
		o->cfg.vsock_path = o->vsock_abs;
		j->remove_at_exit[j->nremove++] = o->vsock_abs;
		j->bind[j->nbind++] = o->vsock_dir;
	}
	bool user_net = false;
	for (unsigned i = 0; i < o->cfg.nnets; i++)
		user_net |= !strncmp(o->cfg.net[i], "user", 4);
	if ((user_net || o->incoming) && access("/etc/resolv.conf", R_OK) == 0) {
		j->bind_readonly[j->nbind] = true;
		j->bind[j->nbind++] = "/etc/resolv.conf";
	}
	return 0;
}


/* -d: the child's messages go to the VM's vmm.log from the start; the parent waits until the VM runs (a
 * byte on the ready pipe), prints the name and returns, or, when the pipe ends without it, shows vmm.log
 * and returns the child's exit status. The child goes on in its own session. */
static int detach(struct run_opts *o, bool *in_child)
{
	char log_path[PATH_MAX + 16];
	snprintf(log_path, sizeof(log_path), "%s/vmm.log", o->state.dir);
	int ready[2];
	*in_child = false;
	int log_fd = open(log_path, O_RDWR | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	if (log_fd < 0 || pipe2(ready, O_CLOEXEC) < 0)
		return fprintf(stderr, "virtus: %s: %s\n", log_path, strerror(errno)), VM_EXIT_ERROR;
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		return fprintf(stderr, "virtus: fork: %s\n", strerror(errno)), VM_EXIT_ERROR;
	if (pid == 0) {
		close(ready[0]);
		setsid();
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		dup2(null, STDIN_FILENO), dup2(null, STDOUT_FILENO), dup2(log_fd, STDERR_FILENO);
		close(null), close(log_fd);
		o->ready_fd = ready[1];
		*in_child = true;
		return 0;
	}
	close(ready[1]);
	char byte;
	ssize_t n;
	while ((n = read(ready[0], &byte, 1)) < 0 && errno == EINTR)
		;
	close(ready[0]);
	if (n == 1) {
		close(log_fd);
		printf("%s\n", o->state.name);
		return 0;
	}
	int status;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	char buf[4096];
	for (off_t off = 0; (n = pread(log_fd, buf, sizeof(buf), off)) > 0; off += n)
		write_all(STDERR_FILENO, buf, (size_t)n);
	close(log_fd);
	return WIFEXITED(status) && WEXITSTATUS(status) ? WEXITSTATUS(status) : VM_EXIT_ERROR;
}

static int run_registered(struct run_opts *o)
{
	vt_err err;
	int rc;
	if (vm_state_publish(&o->state, &err) < 0)
		return fprintf(stderr, "virtus: %s\n", err.msg), VM_EXIT_ERROR;
	if (!o->jail) {
		rc = run_vm(o, NULL);
	} else if (plan_jail(o, &err) < 0 || (rc = jail_run(&o->jail_cfg, run_jailed_vm, o, &err)) < 0) {
		fprintf(stderr, "virtus: %s\n", err.msg);
		rc = VM_EXIT_ERROR;
	}
	return rc;
}

int cmd_vm_run(int argc, char **argv)
{
	struct run_opts o = {
		.cfg = { .ncpus = 1, .mem_size = DEFAULT_MEMORY, .console_out_fd = -1 }, .sandbox = SANDBOX_DEFAULT,
		.jail_cfg = { .uid = JAIL_DEFAULT_ID, .gid = JAIL_DEFAULT_ID }, .ready_fd = -1,
		.stop_timeout_s = DEFAULT_STOP_TIMEOUT_S,
	};
	int rc = parse_args(argc, argv, &o);
	if (rc >= 0)
		return rc;
	struct vm_preflight pf = { .kernel = NULL };
	vt_err err;
	bool discarded = o.console && !strcmp(o.console, "none");
	o.pf = &pf;
	o.preboot = o.api_socket && !o.cfg.kernel_path && !o.restore_dir && !o.incoming;
	if (o.preboot && o.jail)
		return usage_error("--jail needs the VM configured on the command line (--kernel ...), not through "
				   "the API (%s)", "--api-socket without --kernel");
	if (o.preboot || o.incoming) {
		/* checked at InstanceStart, or when the migration has said what the VM is */
	} else if (o.restore_dir ? plan_restore(&o, &err) < 0 : vm_preflight(&o.cfg, discarded, &pf, &err) < 0) {
		vm_preflight_free(&pf);
		return fprintf(stderr, "virtus: %s\n", err.msg), VM_EXIT_ERROR;
	}
	if (!o.name) {
		vm_state_random_name(o.random_name, sizeof(o.random_name));
		o.name = o.random_name;
	}
	if (vm_state_create(o.name, o.api_socket, o.detach, &o.state, &err) < 0) {
		vm_preflight_free(&pf);
		return fprintf(stderr, "virtus: %s\n", err.msg), VM_EXIT_ERROR;
	}
	bool in_child = true;
	if (o.detach && ((rc = detach(&o, &in_child)) != 0 || !in_child)) {
		if (rc && !in_child && access(o.state.dir, F_OK) == 0 && !vm_state_alive(&o.state))
			vm_state_remove(&o.state); /* fork failed, or the child died before cleaning up */
		vm_preflight_free(&pf);
		return rc; /* the parent: the child owns the VM's directory now */
	}
	rc = run_registered(&o);
	vm_state_remove(&o.state);
	if (o.api_socket)
		unlink(o.api_socket); /* a jailed VMM cannot reach it to remove it */
	vm_preflight_free(&pf);
	return rc;
}
