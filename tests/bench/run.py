#!/usr/bin/env python3
"""make bench: the burst scenario through tgrund, and the fake API's own ceiling.

Burst: 20,000 updates in 500 chats, echo_id handler, 2 workers, fake API
without latency. Prints updates/s, hand-out-to-echo latency, peak RSS of the
master and of each worker, and the master's CPU time per update.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))

from daemon import Tgrund  # noqa: E402
from fakeapi import FakeApi  # noqa: E402

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


def burst(build, count, workers):
    tmp = tempfile.mkdtemp(prefix="tgrun-bench-")
    api = FakeApi(build, tmp, args=("--count", str(count), "--chats", "500",
                                    "--users", "2000", "--seed", "3"))
    expected = api.stats()["expected_echoes"]
    d = Tgrund(build, tmp, api.url, handler="echo_id",
               conf={"workers": {"count": workers}, "log": {"level": "notice"}})
    try:
        d.wait_ready(30)
        wpids = d.worker_pids()
        # The clock runs from the first hand-out to the last echo (polled every 10 ms).
        while api.stats()["handed_out"] == 0:
            time.sleep(0.01)
        t0 = time.monotonic()
        while True:
            st = api.stats()
            if st["echoed"] >= expected or time.monotonic() - t0 > 600:
                break
            time.sleep(0.01)
        elapsed = time.monotonic() - t0
        master_cpu = cpu_seconds(d.pid)
        rss_master = proc_status(d.pid, "VmHWM")
        rss_workers = [proc_status(p, "VmHWM") for p in wpids]
        worker_cpu = [cpu_seconds(p) for p in wpids]
    finally:
        d.stop()
        api.stop()
    return {
        "count": count, "echoed": st["echoed"], "missing": st["missing"],
        "duplicates": st["duplicates"], "inversions": st["inversions"],
        "elapsed": elapsed, "latency": st["latency_ms"],
        "rss_master_kb": rss_master, "rss_workers_kb": rss_workers,
        "master_cpu_s": master_cpu, "worker_cpu_s": worker_cpu,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default="build")
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--skip-ceiling", action="store_true")
    a = ap.parse_args()
    build = os.path.abspath(a.build)

    r = burst(build, a.count, a.workers)
    print("== burst: %d updates, 500 chats, echo_id, %d workers" % (a.count, a.workers))
    print("updates/s            %.0f  (%d echoed in %.2f s)"
          % (r["echoed"] / r["elapsed"], r["echoed"], r["elapsed"]))
    print("latency p50 / p99    %s / %s ms (hand-out to echo)"
          % (r["latency"]["p50"], r["latency"]["p99"]))
    print("missing/dup/inv      %d / %d / %d" % (r["missing"], r["duplicates"], r["inversions"]))
    print("peak RSS master      %d KiB" % r["rss_master_kb"])
    print("peak RSS workers     %s KiB" % ", ".join(str(x) for x in r["rss_workers_kb"]))
    print("master CPU           %.3f s = %.1f us per update"
          % (r["master_cpu_s"], r["master_cpu_s"] * 1e6 / max(1, r["count"])))
    print("worker CPU           %s s" % ", ".join("%.2f" % x for x in r["worker_cpu_s"]))
    if not a.skip_ceiling:
        print("== fake API ceiling (sendMessage, wrk, keep-alive)")
        sys.stdout.flush()
        subprocess.run(["bash", os.path.join(HERE, "fakeapi_ceiling.sh"), build], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
