"""Prometheus metrics: values after a known workload and the text format."""
import http.client
import re

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
