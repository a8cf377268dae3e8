/* VMM start-up timer for places without Python (the nested bed's L1): runs virtus with a tiny guest that
 * prints and then triple-faults, for several option variants in alternation, and prints per-variant medians
 * of exec -> first guest byte, exec -> exit, and CPU time (user+system of the VMM process and its children).
 *   vmm-start-timer ROUNDS VIRTUS KERNEL NAME=ARGS...   (ARGS: extra `vm run` options, space-separated)
 * bench/vmm-start --bed builds it and runs it in the bed; the output format is parsed there. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_VARIANTS 8
#define MAX_ROUNDS 200
#define MAX_ARGS 24
#define RUN_TIMEOUT_MS 30000 /* a run that hangs is killed and reported, not waited for */

struct variant {
	char *name;
	char *argv[MAX_ARGS];
	double first_ms[MAX_ROUNDS], exit_ms[MAX_ROUNDS], cpu_ms[MAX_ROUNDS];
};

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int parse_variant(struct variant *v, char *spec, const char *virtus, const char *kernel)
{
	char *eq = strchr(spec, '=');
	if (!eq)
		return -1;
	*eq = '\0';
	v->name = spec;
	int n = 0;
	const char *fixed[] = { virtus, "vm", "run", "--kernel", kernel, "--memory", "16M" };
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		v->argv[n++] = (char *)fixed[i];
	for (char *tok = strtok(eq + 1, " "); tok && n < MAX_ARGS - 1; tok = strtok(NULL, " "))
		v->argv[n++] = tok;
	v->argv[n] = NULL;
	return 0;
}

/* One run: 0 if the guest printed, with the three times. */
static int one_run(struct variant *v, int round)
{
	int p[2];
	if (pipe(p) < 0)
		return -1;
	double t0 = now_ms();
	pid_t pid = fork();
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		int null = open("/dev/null", 0);
		dup2(null, STDIN_FILENO);
		dup2(null, STDERR_FILENO);
		execv(v->argv[0], v->argv);
		_exit(127);
	}
	close(p[1]);
	char c, sink[256];
	struct pollfd pfd = { .fd = p[0], .events = POLLIN };
	ssize_t got = poll(&pfd, 1, RUN_TIMEOUT_MS) == 1 ? read(p[0], &c, 1) : -1;
	double t1 = now_ms();
	while (got == 1 && poll(&pfd, 1, RUN_TIMEOUT_MS) == 1 && read(p[0], sink, sizeof(sink)) > 0)
		;
	close(p[0]);
	kill(pid, SIGKILL); /* only does something if the VMM hung */
	int status;
	struct rusage ru;
	wait4(pid, &status, 0, &ru);
	double t2 = now_ms();
	if (got != 1 || !WIFEXITED(status)) {
		fprintf(stderr, "%s: round %d: %s (status 0x%x)\n", v->name, round,
			got != 1 ? "no guest output" : "the VMM did not exit by itself", status);
		return -1;
	}
	v->first_ms[round] = t1 - t0;
	v->exit_ms[round] = t2 - t0;
	v->cpu_ms[round] = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
			   (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static double median(double *xs, int n)
{
	qsort(xs, (size_t)n, sizeof(*xs), cmp_double);
	return n % 2 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}

int main(int argc, char **argv)
{
	static struct variant vs[MAX_VARIANTS];
	if (argc < 5 || argc - 4 > MAX_VARIANTS) {
		fprintf(stderr, "usage: vmm-start-timer ROUNDS VIRTUS KERNEL NAME=ARGS... (at most %d variants)\n", MAX_VARIANTS);
		return 2;
	}
	int rounds = atoi(argv[1]), nv = argc - 4;
	if (rounds < 1 || rounds > MAX_ROUNDS)
		return fprintf(stderr, "ROUNDS must be 1..%d\n", MAX_ROUNDS), 2;
	for (int i = 0; i < nv; i++)
		if (parse_variant(&vs[i], argv[4 + i], argv[2], argv[3]) < 0)
			return fprintf(stderr, "a variant is NAME=ARGS, got '%s'\n", argv[4 + i]), 2;
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < nv; i++) /* alternate, so drift hits every variant alike */
			if (one_run(&vs[i], r) < 0) {
				printf("vmm-start failed variant=%s round=%d\n", vs[i].name, r);
				return 1;
			}
		printf("vmm-start round %d done\n", r); /* a hang is then placed in the console log */
		fflush(stdout);
	}
	double base[3] = { 0 };
	for (int i = 0; i < nv; i++) {
		double m[3] = { median(vs[i].first_ms, rounds), median(vs[i].exit_ms, rounds), median(vs[i].cpu_ms, rounds) };
		if (i == 0)
			memcpy(base, m, sizeof(base));
		printf("vmm-start variant=%s rounds=%d first_byte_ms=%.2f exit_ms=%.2f cpu_ms=%.2f "
		       "ratio_first=%.3f ratio_exit=%.3f ratio_cpu=%.3f\n", vs[i].name, rounds, m[0], m[1], m[2],
		       m[0] / base[0], m[1] / base[1], base[2] > 0 ? m[2] / base[2] : 0.0);
	}
	return 0;
}
