#!/usr/bin/env python3
"""Side-by-side timing of OCI runtimes on one bundle (called by bench/runtime.sh inside its mount namespace).

For each runtime, alternating the order every round: `run` of the bundle's process (/bin/true), and the
create + start + delete sequence. Wall time per operation; peak RSS from wait4() rusage (the runtime process
and the children it reaped, so a re-executed init such as `runc init` counts too). Prints medians and
ratios to the first runtime."""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def peak_rss_kib(cmd):
    """Peak RSS of cmd (and the children it waited for) in KiB, via GNU time."""
    # -o, not a stderr pipe: after `create` the container's init keeps the inherited stderr open.
    with tempfile.NamedTemporaryFile("r") as f:
        rc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", f.name, "--"] + cmd,
                            stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL).returncode
        if rc != 0:
            sys.exit(f"{' '.join(cmd)} failed with status {rc}")
        return int(f.read().strip().splitlines()[-1])


def rss_pass(rt, bundle, cid):
    """(peak RSS of run, peak RSS over create/start/delete) in KiB."""
    base = [rt["bin"], "--root", rt["root"]]
    run = peak_rss_kib(base + ["run", "--bundle", bundle, cid + "r"])
    subprocess.run(base + ["delete", "--force", cid + "r"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    csd = max(peak_rss_kib(base + args) for args in (["create", "--bundle", bundle, cid + "l"],
                                                     ["start", cid + "l"], ["delete", "--force", cid + "l"]))
    return run, csd


def timed(cmd):
    """Run cmd; return (seconds, wait4 peak RSS in KiB (inflated, see above), exit status)."""
    start = time.perf_counter()
    pid = os.posix_spawn(cmd[0], cmd, os.environ,
                         file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                                       (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)])
    _, status, rusage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    return elapsed, rusage.ru_maxrss, os.waitstatus_to_exitcode(status)


def run_once(rt, bundle, cid):
    t, rss, rc = timed([rt["bin"], "--root", rt["root"], "run", "--bundle", bundle, cid])
    if rc != 0:
        sys.exit(f"{rt['name']} run {cid} failed with status {rc}")
    # A runtime that leaves the stopped container behind pays for its delete outside the timing.
    subprocess.run([rt["bin"], "--root", rt["root"], "delete", "--force", cid],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return t, rss


def lifecycle_once(rt, bundle, cid):
    base = [rt["bin"], "--root", rt["root"]]
    total, peak = 0.0, 0
    for args in (["create", "--bundle", bundle, cid], ["start", cid], ["delete", "--force", cid]):
        t, rss, rc = timed(base + args)
        if rc != 0:
            sys.exit(f"{rt['name']} {args[0]} {cid} failed with status {rc}")
        total += t
        peak = max(peak, rss)
    return total, peak


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rss-runs", type=int, default=5)
    ap.add_argument("--state", required=True, help="directory for each runtime's --root")
    ap.add_argument("runtimes", nargs="+", help="name=path; the first is the reference for ratios")
    a = ap.parse_args()

    rts = []
    for spec in a.runtimes:
        name, path = spec.split("=", 1)
        rts.append({"name": name, "bin": path, "root": os.path.join(a.state, name)})
    results = {rt["name"]: {"run": [], "run_rss": [], "csd": [], "csd_rss": []} for rt in rts}

    for rnd in range(-a.warmup, a.runs):
        order = rts[rnd % len(rts):] + rts[:rnd % len(rts)]  # rotate who goes first
        for rt in order:
            t, _ = run_once(rt, a.bundle, f"b{os.getpid()}r{rnd + a.warmup}")
            t2, _ = lifecycle_once(rt, a.bundle, f"b{os.getpid()}l{rnd + a.warmup}")
            if rnd >= 0:
                results[rt["name"]]["run"].append(t)
                results[rt["name"]]["csd"].append(t2)
    for rnd in range(a.rss_runs):
        for rt in rts:
            run_rss, csd_rss = rss_pass(rt, a.bundle, f"m{os.getpid()}x{rnd}")
            results[rt["name"]]["run_rss"].append(run_rss)
            results[rt["name"]]["csd_rss"].append(csd_rss)

    ref = results[rts[0]["name"]]
    ref_run, ref_csd = statistics.median(ref["run"]), statistics.median(ref["csd"])
    print(f"# {a.runs} alternating rounds (+{a.warmup} warm-up) per runtime, bundle {a.bundle}")
    print(f"{'runtime':10} {'run median':>11} {'(min..max)':>17} {'ratio':>6} {'c+s+d median':>13} {'ratio':>6} "
          f"{'peak RSS run':>13} {'peak RSS c/s/d':>15}")
    for rt in rts:
        r = results[rt["name"]]
        run_m, csd_m = statistics.median(r["run"]), statistics.median(r["csd"])
        print(f"{rt['name']:10} {run_m * 1e3:9.2f}ms {min(r['run']) * 1e3:7.2f}..{max(r['run']) * 1e3:6.2f}ms "
              f"{run_m / ref_run:6.2f} {csd_m * 1e3:11.2f}ms {csd_m / ref_csd:6.2f} "
              f"{statistics.median(r['run_rss']) / 1024:10.1f}MiB {statistics.median(r['csd_rss']) / 1024:12.1f}MiB")
    print(f"# ratio = runtime median / {rts[0]['name']} median (above 1: slower than {rts[0]['name']}); "
          f"peak RSS: median of {a.rss_runs} GNU time passes (max over create/start/delete for c+s+d)")


if __name__ == "__main__":
    main()
