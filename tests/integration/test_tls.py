"""The network path of production: TLS (HTTP/2 and HTTP/1.1) through nghttpx, private CAs, proxies."""
import collections
import os
import signal
import subprocess


from conftest import BUILD
from daemon import run_check, wait_until
from procs import TEST_TOKEN
from waits import wait_echoed

BURST = ("--count", "3000", "--chats", "300", "--users", "900", "--seed", "5")


def tls_daemon(tgrund, front, tls_certs, **conf):
    c = {"api": {"ca_file": tls_certs.ca_cert}}
    for sec, kv in conf.items():
        c.setdefault(sec, {}).update(kv)
    return tgrund(front, conf=c).wait_ready()


def by_method(front, method):
    return [e for e in front.access_entries() if e["api_method"] == method]


def assert_clean(st):
    assert (st["missing"], st["duplicates"], st["inversions"]) == (0, 0, 0), st


def test_burst_over_http2_no_stall_calls_multiplexed(fakeapi, tgrund, nghttpx, tls_certs):
    """getUpdates answers bigger than an HTTP/2 frame no longer stall (each stall
    was a 45 s timeout), and calls share a few multiplexed connections."""
    api = fakeapi(*BURST)
    front = nghttpx(api, http2=True)
    tls_daemon(tgrund, front, tls_certs)
    st = wait_echoed(api, api.stats()["expected_echoes"], timeout=40)
    assert_clean(st)
    # nghttpx writes an access log line after its answer: wait for the last ones.
    n = api.stats()["calls"]["sendMessage"]
    sends = wait_until(lambda: (lambda x: x if len(x) >= n else None)(
        by_method(front, "sendMessage")), 10)
    assert sends, "nghttpx logged fewer calls than the fake API answered"
    assert {e["alpn"] for e in sends} == {"h2"}, "calls did not use HTTP/2"
    # The long poll stays on HTTP/1.1 ([api] http_version = auto).
    assert {e["alpn"] for e in by_method(front, "getUpdates")} == {"http/1.1"}
    per_conn = collections.Counter((e["remote_addr"], e["remote_port"]) for e in sends)
    # A connection carries up to the server's 100 streams at once. Over
    # HTTP/2 each worker keeps to (worker_concurrency + 49) / 50 + 1 = 6
    # connections: calls past the streams in use wait for a free one instead
    # of each opening its own (about 270 connections for a burst otherwise).
    assert len(per_conn) <= 2 * 6, "%d connections for %d multiplexed calls" \
        % (len(per_conn), len(sends))
    assert max(per_conn.values()) >= 500, per_conn


def test_http_version_2_puts_the_long_poll_on_http2(fakeapi, tgrund, nghttpx, tls_certs):
    api = fakeapi(*BURST)
    front = nghttpx(api, http2=True)
    tls_daemon(tgrund, front, tls_certs, api={"http_version": "2"})
    assert_clean(wait_echoed(api, api.stats()["expected_echoes"], timeout=40))
    polls = by_method(front, "getUpdates")
    assert polls and {e["alpn"] for e in polls} == {"h2"}


def test_http_version_1_1_never_negotiates_http2(fakeapi, tgrund, nghttpx, tls_certs):
    api = fakeapi("--count", "300", "--chats", "50")
    front = nghttpx(api, http2=True)
    tls_daemon(tgrund, front, tls_certs, api={"http_version": "1.1"})
    assert_clean(wait_echoed(api, api.stats()["expected_echoes"], timeout=30))
    assert {e["alpn"] for e in front.access_entries()} == {"http/1.1"}


def test_burst_over_http1_reuses_connections_and_sessions(fakeapi, tgrund, nghttpx, tls_certs):
    """A TLS server without HTTP/2: keep-alive connections are kept across the
    burst instead of being closed and opened again, and new ones resume the
    TLS session."""
    api = fakeapi(*BURST)
    front = nghttpx(api, http2=False)
    conc = 40
    tls_daemon(tgrund, front, tls_certs, limits={"concurrency": conc * 2,
                                                "worker_concurrency": conc})
    st = wait_echoed(api, api.stats()["expected_echoes"], timeout=40)
    assert_clean(st)
    calls = len(front.access_entries())
    conns = front.connections()
    # At most one connection per call a worker may have in flight, plus the
    # master's poll: never closed and reopened during the burst.
    assert conns <= 2 * conc + 2, "%d connections for %d calls" % (conns, calls)
    # A burst opens its connections at once, before any session exists to
    # resume; those opened later resume one.
    assert wait_until(lambda: front.session_reuse_counts()["reused"] >= 1, 5), \
        front.session_reuse_counts()


def traced_by(pid, tracer):
    """Whether every thread of process `pid` is ptraced by process `tracer`."""
    try:
        tids = os.listdir("/proc/%d/task" % pid)
        for tid in tids:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                if "\nTracerPid:\t%d\n" % tracer not in f.read():
                    return False
    except OSError:
        return False
    return bool(tids)


def test_ca_file_is_read_once_per_process(fakeapi, tgrund, nghttpx, tls_certs, procs):
    """libcurl builds the CA store once per process, not once per connection."""
    api = fakeapi(*BURST)
    front = nghttpx(api, http2=False)
    d = tls_daemon(tgrund, front, tls_certs, limits={"concurrency": 80,
                                                    "worker_concurrency": 40})
    out = os.path.join(procs.tmp, "strace.out")
    argv = ["strace", "-qq", "-f", "-e", "trace=openat", "-o", out]
    pids = [d.pid] + d.worker_pids()
    for pid in pids:
        argv += ["-p", str(pid)]
    tracer = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # strace attaches before the updates arrive.
        wait_until(lambda: all(traced_by(pid, tracer.pid) for pid in pids), 10,
                   what="strace attached to the daemon and its workers")
        api.push_updates({"count": 1500, "chats": 300})
        assert_clean(wait_echoed(api, api.stats()["expected_echoes"], timeout=60))
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=10)
    conns = front.connections()
    with open(out) as f:
        opens = [ln for ln in f if tls_certs.ca_cert in ln]
    assert conns >= 10, "the burst made only %d connections" % conns
    assert len(opens) <= 3, "the CA file was opened %d times for %d connections" \
        % (len(opens), conns)


def test_unknown_ca_fails_with_a_clear_error(fakeapi, tgrund, nghttpx, tls_certs):
    api = fakeapi()
    front = nghttpx(api, http2=True, other_ca=True)
    d = tls_daemon(tgrund, front, tls_certs)
    assert d.proc.wait_log("the server's certificate is not trusted; set [api] "
                           "ca_file or ca_path", 20), d.log()
    assert "SSL certificate problem" in d.log()
    assert api.stats()["calls"].get("getUpdates", 0) == 0


def test_system_bundle_does_not_trust_a_private_ca(fakeapi, tgrund, nghttpx):
    api = fakeapi()
    front = nghttpx(api, http2=True)
    d = tgrund(front).wait_ready()
    assert d.proc.wait_log("SSL certificate problem", 20), d.log()


def test_ca_path_directory(fakeapi, tgrund, nghttpx, tls_certs, procs):
    cadir = os.path.join(procs.tmp, "cadir")
    os.makedirs(cadir)
    os.symlink(tls_certs.ca_cert, os.path.join(cadir, "test-ca.pem"))
    subprocess.run(["openssl", "rehash", cadir], check=True, timeout=20)
    api = fakeapi("--count", "200", "--chats", "20")
    front = nghttpx(api, http2=True)
    tgrund(front, conf={"api": {"ca_path": cadir}}).wait_ready()
    assert_clean(wait_echoed(api, api.stats()["expected_echoes"], timeout=30))


# ---- proxies ----------------------------------------------------------------------

PROXY_PASSWORD = "pr0xy-S3CRET-word"


def test_socks5h_proxy_with_credentials(fakeapi, tgrund, microsocks):
    proxy = microsocks("tgrun", PROXY_PASSWORD)
    assert PROXY_PASSWORD in proxy.url
    api = fakeapi("--count", "300", "--chats", "30")
    d = tgrund(api, conf={"api": {"proxy": proxy.url}}).wait_ready()
    assert_clean(wait_echoed(api, api.stats()["expected_echoes"], timeout=30))
    assert proxy.connections() >= 2, "the proxy carried no traffic"
    assert PROXY_PASSWORD not in d.log()


def test_socks5_proxy_to_tls(fakeapi, tgrund, microsocks, nghttpx, tls_certs):
    proxy = microsocks()
    api = fakeapi("--count", "300", "--chats", "30")
    front = nghttpx(api, http2=True)
    tls_daemon(tgrund, front, tls_certs,
               api={"proxy": proxy.url.replace("socks5h://", "socks5://")})
    assert_clean(wait_echoed(api, api.stats()["expected_echoes"], timeout=30))
    assert proxy.connections() >= 2


def test_http_proxy_with_credentials(fakeapi, tgrund, tinyproxy):
    proxy = tinyproxy("tgrun", PROXY_PASSWORD)
    api = fakeapi("--count", "300", "--chats", "30")
    d = tgrund(api, conf={"api": {"proxy": proxy.url}}).wait_ready()
    assert_clean(wait_echoed(api, api.stats()["expected_echoes"], timeout=30))
    n = api.stats()["calls"]["sendMessage"]
    assert wait_until(lambda: proxy.requests_seen("POST") >= n, 10), \
        "the proxy carried %d of %d calls" % (proxy.requests_seen("POST"), n)
    assert PROXY_PASSWORD not in d.log()


def test_http_proxy_connect_to_tls(fakeapi, tgrund, tinyproxy, nghttpx, tls_certs):
    proxy = tinyproxy()
    api = fakeapi("--count", "300", "--chats", "30")
    front = nghttpx(api, http2=True)
    tls_daemon(tgrund, front, tls_certs, api={"proxy": proxy.url})
    assert_clean(wait_echoed(api, api.stats()["expected_echoes"], timeout=30))
    assert proxy.requests_seen("CONNECT") >= 2
    assert {e["alpn"] for e in by_method(front, "sendMessage")} == {"h2"}


def test_bad_proxy_is_a_config_error_without_its_password(fakeapi, procs):
    api = fakeapi()
    st, log = run_check(BUILD, procs.tmp, api.url,
                        conf={"api": {"proxy": "ftp://u:%s@h:21" % PROXY_PASSWORD}})
    assert st == 2, log
    assert "[api] proxy: the scheme is not accepted" in log
    assert PROXY_PASSWORD not in log and TEST_TOKEN not in log
