"""Prometheus metrics: values after a known workload and the text format."""
import http.client
import os
import re
import resource
import socket
import time

from daemon import wait_until
from updates import message


def scrape(port, path="/metrics"):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()
    finally:
        conn.close()


def parse(text):
    """{name{labels}: value} for every sample line."""
    out = {}
    for ln in text.splitlines():
        if ln and not ln.startswith("#"):
            key, val = ln.rsplit(" ", 1)
            out[key] = float(val)
    return out


def metrics_port(d):
    assert d.proc.wait_log("metrics: listening on 127.0.0.1:", 10), d.log()
    return int(re.search(r"metrics: listening on 127\.0\.0\.1:(\d+)", d.log()).group(1))


def test_metrics_after_a_known_workload(fakeapi, tgrund):
    api = fakeapi()
    api.set_fault("sendMessage", kind="429", times=2, retry_after=1)
    d = tgrund(api, conf={"metrics": {"listen": "127.0.0.1:0"}}).wait_ready()
    port = metrics_port(d)
    api.push_updates([message(1000 + i % 30, "m%d" % i) for i in range(300)])
    st = api.wait_stats(lambda s: s["echoed"] >= 300, 60)
    assert st["echoed"] == 300

    def settled():
        m = parse(scrape(port)[2])
        ok = m.get('tgrun_api_calls_total{method="sendMessage",outcome="ok"}', 0)
        return m if ok >= 300 and m["tgrun_api_429_total"] == 2 and \
            m["tgrun_updates_done_total"] == 300 else None
    m = wait_until(settled, 10, 0.2)
    assert m, scrape(port)[2]
    assert m["tgrun_updates_fetched_total"] == 300
    assert m["tgrun_updates_done_total"] == 300
    assert m["tgrun_updates_failed_total"] == 0
    assert m["tgrun_updates_retried_total"] == 0
    assert m["tgrun_updates_dead_lettered_total"] == 0
    assert m["tgrun_updates_timed_out_total"] == 0
    assert m['tgrun_api_calls_total{method="sendMessage",outcome="ok"}'] == 300
    # The two 429s were API errors, each retried.
    assert m['tgrun_api_calls_total{method="sendMessage",outcome="api_error"}'] == 2
    assert m["tgrun_api_429_total"] == 2
    assert m["tgrun_updates_in_flight"] == 0
    assert m["tgrun_updates_pending"] == 0
    assert m['tgrun_worker_in_flight{slot="0"}'] == 0
    assert m['tgrun_worker_in_flight{slot="1"}'] == 0
    assert m["tgrun_journal_bytes"] > 0
    assert 0 <= m["tgrun_seconds_since_last_poll"] < 5
    for h in ("tgrun_handler_duration_seconds", "tgrun_dispatch_latency_seconds"):
        assert m[h + "_count"] == 300
        assert m[h + '_bucket{le="+Inf"}'] == 300
        buckets = [v for k, v in m.items() if k.startswith(h + "_bucket")]
        assert buckets == sorted(buckets), "buckets are not cumulative"
    # Two updates waited out retry_after = 1 s.
    assert m['tgrun_handler_duration_seconds_bucket{le="0.5"}'] <= 298
    assert m["tgrun_handler_duration_seconds_sum"] >= 2.0


def test_metrics_text_format(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, conf={"metrics": {"listen": "127.0.0.1:0"}}).wait_ready()
    port = metrics_port(d)
    api.push_updates([message(1100, "x")])
    api.wait_stats(lambda s: s["echoed"] >= 1, 20)
    wait_until(lambda: "sendMessage" in scrape(port)[2], 5)
    status, ctype, text = scrape(port)
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    helps = set(re.findall(r"^# HELP (\S+) .+$", text, re.M))
    types = dict(re.findall(r"^# TYPE (\S+) (counter|gauge|histogram)$", text, re.M))
    assert helps == set(types)
    sample = re.compile(r'^([a-z_][a-z0-9_]*)(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? '
                        r'(-?[0-9.e+-]+|\+Inf|NaN)$')
    for ln in text.splitlines():
        if ln.startswith("#"):
            continue
        mm = sample.match(ln)
        assert mm, "bad sample line: %r" % ln
        name = mm.group(1)
        base = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        assert base in types, "no TYPE for %s" % name
    for name in ("tgrun_updates_fetched_total", "tgrun_updates_done_total",
                 "tgrun_updates_failed_total", "tgrun_updates_retried_total",
                 "tgrun_updates_dead_lettered_total", "tgrun_updates_timed_out_total",
                 "tgrun_api_calls_total", "tgrun_api_429_total"):
        assert types[name] == "counter", name
    for name in ("tgrun_updates_in_flight", "tgrun_updates_pending",
                 "tgrun_worker_in_flight", "tgrun_journal_bytes",
                 "tgrun_seconds_since_last_poll"):
        assert types[name] == "gauge", name
    assert types["tgrun_handler_duration_seconds"] == "histogram"
    assert types["tgrun_dispatch_latency_seconds"] == "histogram"
    assert scrape(port, "/nope")[0] == 404


def test_metrics_off_by_default(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api).wait_ready()
    assert "metrics: listening" not in d.log()


def test_metrics_warns_when_not_on_loopback(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, conf={"metrics": {"listen": "0.0.0.0:0"}}).wait_ready()
    assert d.proc.wait_log("metrics: listening on 0.0.0.0:", 10), d.log()
    assert "metrics: 0.0.0.0:" in d.log() and "is not a loopback address" in d.log()
    port = int(re.search(r"metrics: listening on 0\.0\.0\.0:(\d+)", d.log()).group(1))
    assert scrape(port)[0] == 200
    quiet = tgrund(api, conf={"metrics": {"listen": "127.0.0.1:0"}}).wait_ready()
    metrics_port(quiet)
    assert "not a loopback address" not in quiet.log()


def metrics_conns(pid, port):
    """Connections to `port` the process `pid` has accepted (from /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    n = 0
    with open("/proc/net/tcp") as f:
        for ln in f.readlines()[1:]:
            p = ln.split()
            if int(p[1].split(":")[1], 16) == port and p[3] != "0A" and p[9] in inodes:
                n += 1
    return n


def open_conns(port, n, wait=True):
    """n connections; with wait=False connect() does not wait for a full
    backlog to take them."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if wait:
            s.settimeout(10)
            s.connect(("127.0.0.1", port))
        else:
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    return socks


def test_metrics_connections_are_capped(fakeapi, tgrund):
    """Past METRICS_HTTP_MAX_CONNS (64) idle connections the master accepts no
    more; they wait in the backlog and are served once others close."""
    api = fakeapi()
    d = tgrund(api, conf={"metrics": {"listen": "127.0.0.1:0"}}).wait_ready()
    port = metrics_port(d)
    socks = open_conns(port, 100)
    try:
        wait_until(lambda: metrics_conns(d.pid, port) >= 64, 10,
                   what="64 accepted metrics connections")
        # One more round of the loop could accept the rest: ask a waiting one.
        late = socks[-1]
        late.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        late.settimeout(1.0)
        try:
            early = late.recv(100)
        except socket.timeout:
            early = b""
        assert early == b"", "connection 100 was served while 64 were open"
        assert metrics_conns(d.pid, port) == 64
        for s in socks[:64]:
            s.close()
        late.settimeout(10)
        assert late.recv(100).startswith(b"HTTP/1.1 200 OK")
    finally:
        for s in socks:
            s.close()
    assert wait_until(lambda: metrics_conns(d.pid, port) == 0, 15), metrics_conns(d.pid, port)
    assert scrape(port)[0] == 200


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_metrics_out_of_descriptors_backs_off(fakeapi, tgrund):
    """Out of file descriptors, the metrics listener pauses instead of
    spinning on accept(): a few log lines, little CPU, and it serves again
    once descriptors are free."""
    api = fakeapi()
    d = tgrund(api, conf={"metrics": {"listen": "127.0.0.1:0"}}).wait_ready()
    port = metrics_port(d)
    used = len(os.listdir("/proc/%d/fd" % d.pid))
    hard = resource.prlimit(d.pid, resource.RLIMIT_NOFILE)[1]
    resource.prlimit(d.pid, resource.RLIMIT_NOFILE, (used + 8, hard))
    socks = open_conns(port, 200, wait=False)
    try:
        assert d.proc.wait_log("Too many open files", 10), d.log()
        cpu0, t0 = cpu_seconds(d.pid), time.monotonic()
        time.sleep(2)   # an interval to measure, not a wait for an event
        busy = (cpu_seconds(d.pid) - cpu0) / (time.monotonic() - t0)
        emfile = [l for l in d.log().splitlines() if "Too many open files" in l]
        print("%d lines about EMFILE, the master busy %.0f%% of the time"
              % (len(emfile), busy * 100))
        assert len(emfile) <= 3, (len(emfile), emfile[:3])
        assert "metrics: accept: Too many open files; not accepting for" in emfile[0]
        assert busy < 0.5, "the master was busy %.0f%% of the time" % (busy * 100)
    finally:
        for s in socks:
            s.close()
    # Still under the low limit: the descriptors closed are enough.
    t1 = time.monotonic()
    st = wait_until(lambda: scrape_quietly(port), 15, 0.2, what="a scrape to succeed")
    print("served again after %.1f s" % (time.monotonic() - t1))
    assert st == 200
    assert d.proc.alive()


def scrape_quietly(port):
    try:
        return scrape(port)[0]
    except OSError:
        return None
