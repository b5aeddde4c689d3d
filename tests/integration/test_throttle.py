"""[throttle]: flood limits shared by all workers, measured at the fake Bot API (rates scaled up)."""
import os
import re

from daemon import wait_until
from updates import message

TARGET = 777
GROUP = -100777
TOL_S = 0.15          # arrival jitter at the fake server


def sends(api, chat=None):
    """Arrival times (s) and texts of every sendMessage, optionally to one chat."""
    out = []
    for c in api.calls("sendMessage"):
        p = c["params"]
        if chat is not None and int(p.get("chat_id", 0)) != chat:
            continue
        out.append((c["t_ms"] / 1000.0, p.get("text", "")))
    return sorted(out)


def max_in_window(times, width=1.0, start=None):
    """Most arrivals in any window [t, t + width) with t an arrival at or after `start`."""
    best, j = 0, 0
    for i, t in enumerate(times):
        if start is not None and t < start:
            continue
        j = max(j, i)
        while j < len(times) and times[j] < t + width:
            j += 1
        best = max(best, j - i)
    return best


def flood(fakeapi, tgrund, throttle, texts, chats=None, expect=None, timeout=40,
          target=TARGET):
    """Run the flood handler on 2 workers for one update per text; wait for its sends."""
    api = fakeapi()
    conf = {"workers": {"count": 2}, "handler": {"target": target},
            "limits": {"concurrency": 1000, "update_timeout": "60s"}}
    if throttle is not None:
        conf["throttle"] = throttle
    d = tgrund(api, handler="flood", conf=conf).wait_ready()
    chats = chats or [100000 + i for i in range(len(texts))]
    api.push_updates([message(c, t) for c, t in zip(chats, texts)])
    n = expect if expect is not None else len(texts)
    assert wait_until(lambda: len(sends(api)) >= n, timeout, 0.1), \
        "%d of %d messages sent" % (len(sends(api)), n)
    return api, d


def check_paced(times, rate, burst, label):
    """`times` honour a bucket of `burst` refilled at `rate`/s, and it did limit them."""
    n = len(times)
    span = times[-1] - times[0]
    want = (n - burst) / float(rate)
    assert span >= want - TOL_S, "%s: %d messages in %.2f s, a bucket of %d at %d/s " \
        "needs %.2f s" % (label, n, span, burst, rate, want)
    assert span <= want + 3.0, "%s: %.2f s is far slower than %d/s" % (label, span, rate)
    peak = max_in_window(times)
    assert peak <= burst + rate + 2, "%s: %d in one second" % (label, peak)
    # Once the burst is spent, any second holds about `rate`.
    steady = max_in_window(times, start=times[0] + 1.0)
    assert steady <= rate + 3, "%s: %d in one second after the burst" % (label, steady)


def test_one_chat_paced_across_two_workers(fakeapi, tgrund):
    """200 messages to one chat from 2 workers at chat = 40/s take >= (200-40)/40 s."""
    api, d = flood(fakeapi, tgrund, {"enabled": "yes", "chat": "40/s",
                                     "global": "1000/s"}, ["x"] * 200)
    got = sends(api, TARGET)
    assert len(got) == 200
    check_paced([t for t, _ in got], 40, 40, "chat 40/s")
    workers = {re.search(r" w(\d+)$", text).group(1) for _, text in got}
    assert workers == {"0", "1"}, "not both workers sent: %r" % workers
    assert "throttle: 1000/s overall, 40/s per chat, 20/m per group" in d.log()


def test_without_throttle_the_same_run_is_fast(fakeapi, tgrund):
    api, d = flood(fakeapi, tgrund, None, ["x"] * 200)
    times = [t for t, _ in sends(api, TARGET)]
    assert len(times) == 200
    span = times[-1] - times[0]
    assert span < 2.0, "200 unthrottled messages took %.2f s" % span
    assert "throttle:" not in d.log()


def test_group_limit_paces_groups_only(fakeapi, tgrund):
    """group = 20/s (scaled 20/m): 100 to a group are paced, 100 to a private chat are not."""
    texts = [str(GROUP) if i % 2 == 0 else str(TARGET) for i in range(200)]
    api, d = flood(fakeapi, tgrund, {"enabled": "yes", "chat": "1000/s",
                                     "group": "20/s", "global": "10000/s"}, texts)
    group = [t for t, _ in sends(api, GROUP)]
    private = [t for t, _ in sends(api, TARGET)]
    assert len(group) == 100 and len(private) == 100
    check_paced(group, 20, 20, "group 20/s")
    assert private[-1] - private[0] < 2.0, \
        "the private chat was held back: %.2f s" % (private[-1] - private[0])


def test_global_limit_paces_many_chats(fakeapi, tgrund):
    """global = 40/s: 200 replies, each to its own chat, still go at 40/s overall."""
    api, d = flood(fakeapi, tgrund, {"enabled": "yes", "global": "40/s"},
                   ["reply"] * 200, target=0)
    got = sends(api)
    assert len({text.split()[0] for _, text in got}) == 200
    check_paced([t for t, _ in got], 40, 40, "global 40/s")


def test_reload_keeps_the_buckets_and_applies_new_rates(fakeapi, tgrund):
    """SIGHUP: the new generation maps the same memory; its rates apply."""
    import signal
    api, d = flood(fakeapi, tgrund, {"enabled": "yes", "chat": "40/s",
                                     "global": "1000/s"}, ["x"] * 10)

    def memfd_inodes(pid):
        try:
            with open("/proc/%d/maps" % pid) as f:
                return {line.split()[4] for line in f if "memfd:tgrun-throttle" in line}
        except OSError:
            return set()
    before = set().union(*[memfd_inodes(p) for p in d.worker_pids()])
    assert len(before) == 1, before
    conf = open(d.conf_path).read().replace("chat = 40/s", "chat = 10/s")
    with open(d.conf_path, "w") as f:
        f.write(conf)
    old = set(d.worker_pids())
    os.kill(d.pid, signal.SIGHUP)
    assert d.proc.wait_log("reload done", 20), d.log()
    new = wait_until(lambda: [p for p in d.worker_pids() if p not in old and
                              memfd_inodes(p)], 10)
    assert new, "no new worker maps the buckets"
    assert set().union(*[memfd_inodes(p) for p in new]) == before
    n0 = len(sends(api))
    api.push_updates([message(200000 + i, "x") for i in range(30)])
    assert wait_until(lambda: len(sends(api)) >= n0 + 30, 20, 0.1)
    times = [t for t, _ in sends(api, TARGET)][n0:]
    # 10/s now: the bucket refilled to 10 during the reload, the other 20 take 2 s.
    check_paced(times, 10, 10, "chat 10/s after reload")
