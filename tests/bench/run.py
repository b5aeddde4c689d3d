#!/usr/bin/env python3
"""make bench: tgrun's benchmark scenarios, printed as a report.

burst     20,000 updates in 500 chats, echo_id handler, 2 workers, fake API
          without latency: updates/s, hand-out-to-echo latency, peak RSS of the
          master and the workers, the master's CPU time per update; with the
          journal on (sync = full) and off.
latency   5,000 updates in 500 chats, every handler's Bot API call answered
          after 50 ms (getUpdates is not delayed):
          updates/s against the workload's critical-path bound.
steady    10,000 updates arriving at 1,000 per second, journal on (sync =
          full) and off: CPU per update of the master and of the workers,
          hand-out-to-answer latency; then the same with strace -c on the
          master and on the workers: system calls per update.
sleepers  10,000 updates that each sleep 5 s, in flight at once across 2
          workers: time to finish and the workers' total RSS.
tls       the same burst over HTTPS through nghttpx (HTTP/2, and HTTP/1.1
          only) and over plain HTTP, interleaved: updates/s, CPU per update of
          the whole daemon, TLS connections opened; with --baseline DIR, the
          build in DIR too, in the same run (its CA store is the system bundle
          plus the test CA, bind-mounted in a private mount namespace).
lua       the burst of text messages (journal on, 2 workers) with the C echo
          handler (echo.so) and with worker/examples/echo.lua (lua.so),
          interleaved: updates/s and the workers' CPU per update of each,
          Lua's share of C's updates/s and its added CPU per update; then the
          sleepers with the Lua twin of slow.c (tests/bench/slow.lua) and with
          slow.c: the workers' memory per sleeping update; then lua.so's own
          work per update measured alone (build/bench/lua_update).
cluster   the burst with CPU-bound handler work (burn.so: 1 ms of CPU per
          update, 1 worker per node): the single-machine master (journal on),
          then the cluster mode with 1 node and with 2 nodes on this machine,
          on a NATS JetStream of --nats-servers servers (replicas as many),
          interleaved: updates/s of each, and the CPU per update of the
          leader's master (and the follower's, and the NATS servers')
          against the single-machine master's in the same run.
switch    the fiber switch cost (build/bench/fiber_switch).
ceiling   the fake API's own ceiling (tests/bench/fakeapi_ceiling.sh).
"""
import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

from daemon import Tgrund  # noqa: E402
from fakeapi import FakeApi  # noqa: E402
from natscluster import NatsCluster, node_conf  # noqa: E402
from netfront import Nghttpx, make_ca  # noqa: E402
from procs import Proc  # noqa: E402
from updates import message  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


def proc_status(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def wait_all(api, expected, limit):
    """Seconds from the first hand-out to the last echo, polled every 10 ms."""
    end = time.monotonic() + limit
    while api.stats()["handed_out"] == 0 and time.monotonic() < end:
        time.sleep(0.01)
    t0 = time.monotonic()
    while time.monotonic() < end:
        st = api.stats()
        if st["echoed"] >= expected:
            break
        time.sleep(0.01)
    return time.monotonic() - t0, st


def burst(build, count, workers, journal):
    tmp = tempfile.mkdtemp(prefix="tgrun-bench-")
    api = FakeApi(build, tmp, args=("--count", str(count), "--chats", "500",
                                    "--users", "2000", "--seed", "3"))
    expected = api.stats()["expected_echoes"]
    conf = {"workers": {"count": workers}, "log": {"level": "notice"},
            "journal": {"enabled": "yes" if journal else "no", "sync": "full"}}
    d = Tgrund(build, tmp, api.url, handler="echo_id", conf=conf)
    try:
        d.wait_ready(30)
        wpids = d.worker_pids()
        cpu0 = cpu_seconds(d.pid)
        elapsed, st = wait_all(api, expected, 600)
        r = {"elapsed": elapsed, "st": st,
             "master_cpu": cpu_seconds(d.pid) - cpu0,
             "rss_master": proc_status(d.pid, "VmHWM"),
             "rss_workers": [proc_status(p, "VmHWM") for p in wpids],
             "worker_cpu": [cpu_seconds(p) for p in wpids]}
    finally:
        d.stop()
        api.stop()
    return r


def print_burst(label, r, count):
    st = r["st"]
    print("== burst, %s" % label)
    print("  updates/s             %.0f  (%d echoed in %.2f s)"
          % (st["echoed"] / r["elapsed"], st["echoed"], r["elapsed"]))
    print("  latency p50 / p99     %s / %s ms (hand-out to echo)"
          % (st["latency_ms"]["p50"], st["latency_ms"]["p99"]))
    print("  missing/dup/inv       %d / %d / %d" % (st["missing"], st["duplicates"],
                                                   st["inversions"]))
    print("  peak RSS master       %d KiB" % r["rss_master"])
    print("  peak RSS workers      %s KiB" % ", ".join(str(x) for x in r["rss_workers"]))
    print("  master CPU            %.3f s = %.1f us per update"
          % (r["master_cpu"], r["master_cpu"] * 1e6 / count))
    print("  worker CPU            %s s" % ", ".join("%.2f" % x for x in r["worker_cpu"]))
    print("  API connections       %s opened, %s open at most, for %d calls"
          % (st.get("api_connections"), st.get("api_connections_peak"),
             sum(st["calls"].values())))


SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


class MountedBundleTgrund(Tgrund):
    """A tgrund without [api] ca_file (an older build): it trusts `bundle` as
    the system bundle, in a mount namespace of its own. Same PID as tgrund."""

    def __init__(self, build, tmp, api_url, bundle, **kw):
        self.bundle = bundle
        super().__init__(build, tmp, api_url, **kw)

    def start(self):
        argv = ["unshare", "-m", "sh", "-c",
                'mount --bind "$0" %s && exec "$@"' % SYSTEM_BUNDLE, self.bundle,
                os.path.join(self.build, "tgrund"), "-c", self.conf_path] + self.args
        self.proc = Proc(argv, self.log_path, env=self.env, cwd=self.dir)
        return self


def tls_burst(build, count, mode, tls, baseline, limit):
    """One burst; mode "http" (plain), "h2" or "h1" (nghttpx, HTTP/1.1 only)."""
    tmp = tempfile.mkdtemp(prefix="tgrun-bench-")
    api = FakeApi(build, tmp, args=("--count", str(count), "--chats", "500",
                                    "--users", "2000", "--seed", "3"))
    expected = api.stats()["expected_echoes"]
    front = None
    url = api.url
    conf = {"workers": {"count": 2}, "log": {"level": "notice"},
            "journal": {"enabled": "yes", "sync": "full"}}
    if mode != "http":
        front = Nghttpx(tmp, api.port, tls.server_key, tls.server_cert,
                        http2=(mode == "h2"), bench=True)
        url = front.url
        if not baseline:
            conf["api"] = {"ca_file": tls.bundle}
    if baseline and mode != "http":
        d = MountedBundleTgrund(build, tmp, url, tls.bundle, handler="echo_id", conf=conf)
    else:
        d = Tgrund(build, tmp, url, handler="echo_id", conf=conf)
    try:
        d.wait_ready(30)
        wpids = d.worker_pids()
        cpu0 = cpu_seconds(d.pid) + sum(cpu_seconds(p) for p in wpids)
        elapsed, st = wait_all(api, expected, limit)
        r = {"elapsed": elapsed, "st": st, "expected": expected,
             "cpu": cpu_seconds(d.pid) + sum(cpu_seconds(p) for p in wpids) - cpu0,
             "master_cpu": cpu_seconds(d.pid),
             "rss_workers": [proc_status(p, "VmHWM") for p in wpids],
             "conns": front.connections() if front else st.get("api_connections"),
             "calls": sum(st["calls"].values())}
    finally:
        d.stop()
        if front:
            front.stop()
        api.stop()
    return r


def tls_scenario(build, baseline, count, repeat):
    tmp = tempfile.mkdtemp(prefix="tgrun-bench-tls-")
    tls = make_ca(tmp)
    tls.bundle = os.path.join(tmp, "bundle.pem")
    with open(tls.bundle, "wb") as out:
        for path in (SYSTEM_BUNDLE, tls.ca_cert):
            with open(path, "rb") as f:
                out.write(f.read())
    builds = [("this", build, False)]
    if baseline:
        builds.append(("baseline", baseline, True))
    rows = {}
    for _ in range(repeat):
        for mode in ("http", "h2", "h1"):
            for label, b, is_base in builds:
                r = tls_burst(b, count, mode, tls, is_base, 60)
                rows.setdefault((label, mode), []).append(r)
                st = r["st"]
                print("== tls burst %s, %s: %.0f updates/s (%d of %d echoed in %.1f s), "
                      "%.1f us CPU per update (whole daemon), connections %s, calls %d, "
                      "missing/dup/inv %d/%d/%d, workers' peak RSS %s KiB"
                      % (label, mode, st["echoed"] / r["elapsed"], st["echoed"], r["expected"],
                         r["elapsed"], r["cpu"] * 1e6 / max(st["echoed"], 1), r["conns"],
                         r["calls"], st["missing"], st["duplicates"], st["inversions"],
                         "+".join(str(x) for x in r["rss_workers"])))
                sys.stdout.flush()
    for (label, mode), rs in sorted(rows.items()):
        rates = sorted(x["st"]["echoed"] / x["elapsed"] for x in rs)
        cpus = sorted(x["cpu"] * 1e6 / max(x["st"]["echoed"], 1) for x in rs)
        print("== tls medians over %d runs, %s, %s: %.0f updates/s, %.1f us CPU per update"
              % (len(rs), label, mode, rates[len(rates) // 2], cpus[len(cpus) // 2]))


def start_daemon(build, tmp, url, journal=True, **conf_sections):
    conf = {"workers": {"count": 2}, "log": {"level": "notice"},
            "journal": {"enabled": "yes" if journal else "no", "sync": "full"}}
    for sec, kv in conf_sections.items():
        conf.setdefault(sec, {}).update(kv)
    d = Tgrund(build, tmp, url, handler="echo_id", conf=conf)
    d.wait_ready(30)
    return d


def latency(build, count=5000, chats=500, latency_ms=50):
    """The burst with every call answered after `latency_ms`."""
    tmp = tempfile.mkdtemp(prefix="tgrun-bench-")
    api = FakeApi(build, tmp, args=("--count", str(count), "--chats", str(chats),
                                    "--users", "2000", "--seed", "3",
                                    "--fault", "sendMessage:latency_ms=%d" % latency_ms,
                                    "--fault", "answerInlineQuery:latency_ms=%d" % latency_ms))
    expected = api.stats()["expected_echoes"]
    d = start_daemon(build, tmp, api.url)
    try:
        elapsed, st = wait_all(api, expected, 300)
        per_chat = {}
        for c in api.calls("sendMessage"):
            ch = c["params"].get("chat_id")
            per_chat[ch] = per_chat.get(ch, 0) + 1
    finally:
        d.stop()
        api.stop()
    # Updates of one chat run one after another, each waiting one call: the
    # busiest chat bounds the run; so does concurrency (500 calls at once).
    longest = max(per_chat.values()) * latency_ms / 1000.0
    bound = min(st["echoed"] / longest, 500 / (latency_ms / 1000.0))
    rate = st["echoed"] / elapsed
    print("== latency: %d updates, %d chats, every call %d ms: %.0f updates/s; "
          "critical-path bound %.0f/s (busiest chat %d updates x %d ms; concurrency "
          "500 / %d ms = %.0f/s): %.0f%% of it; missing/dup/inv %d/%d/%d; "
          "API connections %s opened, %s open at most, for %d calls"
          % (count, chats, latency_ms, rate, bound, max(per_chat.values()), latency_ms,
             latency_ms, 500 / (latency_ms / 1000.0), 100.0 * rate / bound,
             st["missing"], st["duplicates"], st["inversions"],
             st.get("api_connections"), st.get("api_connections_peak"),
             sum(st["calls"].values())))
    sys.stdout.flush()


def strace_counts(path):
    """{syscall: calls} from an strace -c summary."""
    out = {}
    with open(path) as f:
        for line in f:
            p = line.split()
            if len(p) >= 5 and p[0][0].isdigit() and p[-1] != "total":
                out[p[-1]] = int(p[3])
    return out


def steady(build, count=10000, rate=1000, journal=True, trace=False):
    tmp = tempfile.mkdtemp(prefix="tgrun-bench-")
    api = FakeApi(build, tmp, args=("--count", str(count), "--chats", "500",
                                    "--users", "2000", "--seed", "3", "--rate", str(rate)))
    expected = api.stats()["expected_echoes"]
    d = start_daemon(build, tmp, api.url, journal=journal)
    tracers = []
    try:
        wpids = d.worker_pids()
        if trace:
            for name, pids in (("master", [d.pid]), ("workers", wpids)):
                out = os.path.join(tmp, "strace-%s.txt" % name)
                argv = ["strace", "-c", "-f", "-o", out] + sum([["-p", str(p)] for p in pids], [])
                tracers.append((name, out, subprocess.Popen(
                    argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
            time.sleep(1)
        cpu0 = (cpu_seconds(d.pid), sum(cpu_seconds(p) for p in wpids))
        elapsed, st = wait_all(api, expected, 120)
        cpu = (cpu_seconds(d.pid) - cpu0[0], sum(cpu_seconds(p) for p in wpids) - cpu0[1])
        counts = {}
        for name, out, tr in tracers:
            tr.send_signal(signal.SIGINT)
            tr.wait(20)
            counts[name] = strace_counts(out)
    finally:
        for _, _, tr in tracers:
            if tr.poll() is None:
                tr.kill()
        d.stop()
        api.stop()
    n = max(st["echoed"], 1)
    label = "journal %s" % ("on (sync = full)" if journal else "off")
    if not trace:
        print("== steady %d/s, %d updates, %s: %.0f updates/s; CPU per update: master "
              "%.1f us, workers %.1f us, whole daemon %.1f us; hand-out to answer p50 / "
              "p99 %s / %s ms; arrival to answer p50 / p99 %s / %s ms; missing/dup/inv "
              "%d/%d/%d"
              % (rate, count, label, st["echoed"] / elapsed, cpu[0] * 1e6 / n,
                 cpu[1] * 1e6 / n, (cpu[0] + cpu[1]) * 1e6 / n, st["latency_ms"]["p50"],
                 st["latency_ms"]["p99"], st["arrival_latency_ms"]["p50"],
                 st["arrival_latency_ms"]["p99"], st["missing"], st["duplicates"],
                 st["inversions"]))
    else:
        for name in ("master", "workers"):
            c = counts.get(name, {})
            total = sum(c.values())
            journal_io = sum(c.get(k, 0) for k in ("pwrite64", "fdatasync", "fsync", "pread64"))
            top = sorted(c.items(), key=lambda kv: -kv[1])[:8]
            print("== steady %d/s, %s, strace -c -f on the %s: %.2f system calls per "
                  "update (%.2f without the journal's pwrite64/pread64/fdatasync); %s"
                  % (rate, label, name, total / n, (total - journal_io) / n,
                     ", ".join("%s %.2f" % (k, v / n) for k, v in top)))
    sys.stdout.flush()


def sleepers(build, count, seconds):
    tmp = tempfile.mkdtemp(prefix="tgrun-bench-")
    api = FakeApi(build, tmp)
    conf = {"workers": {"count": 2}, "log": {"level": "notice"},
            "limits": {"concurrency": count, "max_pending": count + 100}}
    d = Tgrund(build, tmp, api.url, handler="slow", conf=conf)
    try:
        d.wait_ready(30)
        wpids = d.worker_pids()
        api.push_updates([message(10**6 + i, "sleep %g" % seconds) for i in range(count)])
        elapsed, st = wait_all(api, count, 120)
        rss = [proc_status(p, "VmHWM") for p in wpids]
    finally:
        d.stop()
        api.stop()
    print("== sleepers: %d updates sleeping %g s each, 2 workers" % (count, seconds))
    print("  finished in           %.2f s (all echoed: %s)"
          % (elapsed, st["echoed"] >= count))
    print("  workers' peak RSS     %s KiB, total %.1f MB"
          % (", ".join(str(x) for x in rss), sum(rss) / 1024.0))


ROOT = os.path.dirname(os.path.dirname(HERE))


def echo_burst(build, count, lua):
    """The burst of text messages only (both echo handlers answer those)."""
    tmp = tempfile.mkdtemp(prefix="tgrun-bench-")
    api = FakeApi(build, tmp, args=("--count", str(count), "--chats", "500",
                                    "--users", "2000", "--seed", "3", "--mix", "message=1"))
    expected = api.stats()["expected_echoes"]
    conf = {"workers": {"count": 2}, "log": {"level": "notice"},
            "journal": {"enabled": "yes", "sync": "full"}}
    if lua:
        conf["handler"] = {"script": os.path.join(ROOT, "worker", "examples", "echo.lua")}
    d = Tgrund(build, tmp, api.url, handler="lua" if lua else "echo", conf=conf)
    try:
        d.wait_ready(30)
        wpids = d.worker_pids()
        cpu0 = [cpu_seconds(p) for p in wpids]
        elapsed, st = wait_all(api, expected, 600)
        r = {"elapsed": elapsed, "st": st, "expected": expected,
             "worker_cpu": sum(cpu_seconds(p) for p in wpids) - sum(cpu0),
             "rss_workers": [proc_status(p, "VmHWM") for p in wpids]}
    finally:
        d.stop()
        api.stop()
    return r


def sleepers_with(build, count, seconds, lua):
    tmp = tempfile.mkdtemp(prefix="tgrun-bench-")
    api = FakeApi(build, tmp)
    conf = {"workers": {"count": 2}, "log": {"level": "notice"},
            "limits": {"concurrency": count, "max_pending": count + 100}}
    if lua:
        conf["handler"] = {"script": os.path.join(HERE, "slow.lua")}
    d = Tgrund(build, tmp, api.url, handler="lua" if lua else "slow", conf=conf)
    try:
        d.wait_ready(30)
        wpids = d.worker_pids()
        base = sum(proc_status(p, "VmRSS") for p in wpids)
        t0 = time.monotonic()
        api.push_updates([message(10**6 + i, "sleep %g" % seconds) for i in range(count)])
        # Memory while every update sleeps: sampled until the first answer.
        peak_sleeping = base
        while api.stats()["echoed"] == 0 and time.monotonic() - t0 < 60:
            peak_sleeping = max(peak_sleeping, sum(proc_status(p, "VmRSS") for p in wpids))
            time.sleep(0.05)
        st = api.wait_stats(lambda s: s["echoed"] >= count, 120)
        elapsed = time.monotonic() - t0
        rss = [proc_status(p, "VmHWM") for p in wpids]
    finally:
        d.stop()
        api.stop()
    return {"elapsed": elapsed, "st": st, "base": base, "sleeping": peak_sleeping,
            "hwm": rss}


def lua_scenario(build, count, repeat):
    rows = {False: [], True: []}
    for _ in range(repeat):
        for lua in (False, True):
            r = echo_burst(build, count, lua)
            rows[lua].append(r)
            st = r["st"]
            print("== lua burst, %s: %.0f updates/s (%d of %d echoed in %.2f s), workers' "
                  "CPU %.1f us per update, missing/dup/inv %d/%d/%d, workers' peak RSS %s KiB"
                  % ("echo.lua" if lua else "echo.c  ", st["echoed"] / r["elapsed"],
                     st["echoed"], r["expected"], r["elapsed"],
                     r["worker_cpu"] * 1e6 / max(st["echoed"], 1), st["missing"],
                     st["duplicates"], st["inversions"],
                     "+".join(str(x) for x in r["rss_workers"])))
            sys.stdout.flush()
    med = {}
    for lua in (False, True):
        rates = sorted(x["st"]["echoed"] / x["elapsed"] for x in rows[lua])
        cpus = sorted(x["worker_cpu"] * 1e6 / max(x["st"]["echoed"], 1) for x in rows[lua])
        med[lua] = (rates[len(rates) // 2], cpus[len(cpus) // 2])
    print("== lua burst medians over %d runs: echo.c %.0f updates/s, %.1f us worker CPU "
          "per update; echo.lua %.0f updates/s, %.1f us: %.0f%% of C's updates/s, "
          "%+.1f us CPU per update" % (repeat, med[False][0], med[False][1], med[True][0],
                                       med[True][1], 100.0 * med[True][0] / med[False][0],
                                       med[True][1] - med[False][1]))
    per = {}
    for lua in (False, True):
        r = sleepers_with(build, 10000, 5, lua)
        per[lua] = (r["sleeping"] - r["base"]) / 10000.0
        print("== lua sleepers, %s: 10000 updates sleeping 5 s, 2 workers: all answered "
              "%.2f s after they were pushed (all echoed: %s); workers' RSS %d KiB idle, %d KiB while all sleep "
              "(%.2f KiB per sleeping update), peak %s KiB"
              % ("slow.lua" if lua else "slow.c  ", r["elapsed"],
                 r["st"]["echoed"] >= 10000, r["base"], r["sleeping"], per[lua],
                 "+".join(str(x) for x in r["hwm"])))
        sys.stdout.flush()
    print("== lua sleepers: memory per sleeping update, Lua / C = %.2f"
          % (per[True] / per[False] if per[False] > 0 else float("nan")))
    print("== lua alone (build/bench/lua_update, no network, one process)")
    sys.stdout.flush()
    subprocess.run([os.path.join(build, "bench", "lua_update")], check=False)


CLUSTER_NAMES = ["alpha", "beta"]


def cluster_burst(build, count, nodes, nats_servers, burn_us):
    """The burn burst on the single-machine master (nodes = 0) or on `nodes`
    cluster nodes of 1 worker each; the first node leads."""
    tmp = tempfile.mkdtemp(prefix="tgrun-bench-")
    api = FakeApi(build, tmp, args=("--count", str(count), "--chats", "500",
                                    "--users", "2000", "--seed", "3", "--hold"))
    expected = api.stats()["expected_echoes"]
    nats = NatsCluster(tmp, size=nats_servers) if nodes else None
    ds = []
    try:
        base = {"workers": {"count": 1}, "log": {"level": "notice"},
                "handler": {"burn_us": burn_us}}
        if nodes == 0:
            base["journal"] = {"enabled": "yes", "sync": "full"}
            ds.append(Tgrund(build, tmp, api.url, handler="burn", conf=base).wait_ready(30))
        for i in range(nodes):
            conf = dict(base, **node_conf(CLUSTER_NAMES[i], nats.urls, api.url,
                                          lease="5s", replicas=nats_servers))
            ds.append(Tgrund(build, tmp, api.url, handler="burn", conf=conf).wait_ready(30))
            role = "leader (epoch" if i == 0 else "follower (leader: %s)" % CLUSTER_NAMES[0]
            if not ds[-1].proc.wait_log("cluster: " + role, 30):
                raise RuntimeError("node %s is no %s:\n%s" % (CLUSTER_NAMES[i], role,
                                                             ds[-1].log()[-3000:]))
        masters = [d.pid for d in ds]
        cpu0 = [cpu_seconds(p) for p in masters]
        ncpu0 = [cpu_seconds(p) for p in nats.pids] if nats else []
        api.release()
        elapsed, st = wait_all(api, expected, 600)
        r = {"elapsed": elapsed, "st": st, "expected": expected,
             "master_cpu": [cpu_seconds(p) - c for p, c in zip(masters, cpu0)],
             "nats_cpu": sum(cpu_seconds(p) for p in nats.pids) - sum(ncpu0) if nats else 0,
             "ran": {}}
        for c in api.calls("sendMessage"):
            r["ran"][c.get("via")] = r["ran"].get(c.get("via"), 0) + 1
    finally:
        for d in ds:
            d.stop()
        if nats:
            nats.stop_all()
        api.stop()
    return r


def cluster_scenario(build, count, repeat, nats_servers, burn_us=1000):
    labels = {0: "single machine", 1: "cluster, 1 node ", 2: "cluster, 2 nodes"}
    rows = {0: [], 1: [], 2: []}
    for _ in range(repeat):
        for nodes in (0, 1, 2):
            r = cluster_burst(build, count, nodes, nats_servers, burn_us)
            rows[nodes].append(r)
            st = r["st"]
            n = max(st["echoed"], 1)
            line = ("== cluster burst, %s: %.0f updates/s (%d of %d echoed in %.2f s), "
                    "missing/dup/inv %d/%d/%d, %s CPU %.1f us per update"
                    % (labels[nodes], st["echoed"] / r["elapsed"], st["echoed"],
                       r["expected"], r["elapsed"], st["missing"], st["duplicates"],
                       st["inversions"], "master" if nodes == 0 else "leader",
                       r["master_cpu"][0] * 1e6 / n))
            if nodes == 2:
                line += ", follower %.1f us" % (r["master_cpu"][1] * 1e6 / n)
            if nodes:
                line += ", NATS %.1f us; ran by %s" % (
                    r["nats_cpu"] * 1e6 / n,
                    ", ".join("%s %d" % kv for kv in sorted(r["ran"].items())))
            print(line)
            sys.stdout.flush()
    med = {}
    for nodes in (0, 1, 2):
        rates = sorted(x["st"]["echoed"] / x["elapsed"] for x in rows[nodes])
        cpus = sorted(x["master_cpu"][0] * 1e6 / max(x["st"]["echoed"], 1)
                      for x in rows[nodes])
        med[nodes] = (rates[len(rates) // 2], cpus[len(cpus) // 2])
    print("== cluster burst medians over %d runs (%d updates, burn %d us, 1 worker per node, "
          "NATS %d server%s): single machine %.0f updates/s, master %.1f us per update; "
          "1 node %.0f updates/s, leader %.1f us (%+.1f us); 2 nodes %.0f updates/s "
          "(%.2fx 1 node), leader %.1f us (%+.1f us)"
          % (repeat, count, burn_us, nats_servers, "" if nats_servers == 1 else "s",
             med[0][0], med[0][1], med[1][0], med[1][1], med[1][1] - med[0][1],
             med[2][0], med[2][0] / med[1][0], med[2][1], med[2][1] - med[0][1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="burst runs per journal mode")
    ap.add_argument("--baseline", default=None,
                    help="build dir of another version, measured in the same run (tls)")
    ap.add_argument("--nats-servers", type=int, default=1, choices=(1, 3),
                    help="NATS JetStream servers of the cluster scenario")
    ap.add_argument("--only",
                    default="burst,latency,steady,tls,sleepers,lua,cluster,switch,ceiling",
                    help="comma-separated scenarios")
    a = ap.parse_args()
    build = os.path.abspath(a.build)
    only = set(a.only.split(","))
    print("tgrun bench, %s, %d CPUs" % (time.strftime("%Y-%m-%d"), os.cpu_count()))
    if "burst" in only:
        # Interleaved repetitions; the report shows each run and the medians,
        # since a shared 2-CPU machine varies a lot from run to run.
        runs = {True: [], False: []}
        for _ in range(a.repeat):
            for journal in (True, False):
                r = burst(build, a.count, a.workers, journal)
                runs[journal].append(r)
                print_burst("%d updates, 500 chats, echo_id, %d workers, journal %s"
                            % (a.count, a.workers, "on (sync = full)" if journal else "off"),
                            r, a.count)
                sys.stdout.flush()
        med = {}
        for journal in (True, False):
            rates = sorted(x["st"]["echoed"] / x["elapsed"] for x in runs[journal])
            cpus = sorted(x["master_cpu"] * 1e6 / a.count for x in runs[journal])
            med[journal] = (rates[len(rates) // 2], cpus[len(cpus) // 2])
            print("== burst medians over %d runs, journal %s: %.0f updates/s, "
                  "master CPU %.1f us per update" % (a.repeat, "on" if journal else "off",
                                                     med[journal][0], med[journal][1]))
        print("== journal cost: %.1f%% of updates/s (medians)"
              % (100.0 * (1 - med[True][0] / med[False][0])))
    if "latency" in only:
        for _ in range(a.repeat):
            latency(build)
    if "steady" in only:
        for _ in range(a.repeat):
            for journal in (True, False):
                steady(build, journal=journal)
        for journal in (True, False):
            steady(build, journal=journal, trace=True)
    if "tls" in only:
        tls_scenario(build, os.path.abspath(a.baseline) if a.baseline else None,
                     a.count, a.repeat)
    if "sleepers" in only:
        sleepers(build, 10000, 5)
    if "lua" in only:
        lua_scenario(build, a.count, a.repeat)
    if "cluster" in only:
        cluster_scenario(build, a.count, a.repeat, a.nats_servers)
    if "switch" in only:
        print("== fiber switch")
        sys.stdout.flush()
        subprocess.run([os.path.join(build, "bench", "fiber_switch")], check=False)
    if "ceiling" in only:
        print("== fake API ceiling (sendMessage, wrk, 50 keep-alive connections)")
        sys.stdout.flush()
        subprocess.run(["sh", os.path.join(HERE, "fakeapi_ceiling.sh"), build], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
