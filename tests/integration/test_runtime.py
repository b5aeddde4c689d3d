"""The worker runtime end to end: fibers, all, spawn, waiters, cancellation, locks, every."""
import os
import re
import signal
import subprocess
import time

import pytest

from daemon import Tgrund, wait_until
from updates import message
from waits import sent_texts

from conftest import BUILD, ROOT, SANITIZED  # noqa: E402


texts = sent_texts


def report(api, uid, timeout=20):
    """The "u<uid> ..." report of an update, parsed into {key: value}."""
    pre = "u%d " % uid

    def find():
        for t, ms in texts(api):
            if t.startswith(pre):
                return t, ms
        return None
    got = wait_until(find, timeout, 0.05)
    assert got, "update %d sent no report; messages: %r" % (uid, texts(api)[-20:])
    t, ms = got
    kv = dict(w.split("=", 1) for w in t.split() if "=" in w)
    kv["_text"], kv["_t_ms"] = t, ms
    return kv


def slots(st):
    """"0:0,1:9" -> [(0, 0), (1, 9)]"""
    return [tuple(int(x) for x in s.split(":")) for s in st.split(",")]


def start(fakeapi, tgrund, handler="rt_cmds", conf=None, api_args=()):
    api = fakeapi(*api_args)
    c = {"workers": {"count": 1}}
    for k, v in (conf or {}).items():
        c.setdefault(k, {}).update(v)
    d = tgrund(api, handler=handler, conf=c).wait_ready()
    return api, d


def push(api, *msgs):
    return api.push_updates(list(msgs))["first_id"]


OK, FAILED, CANCELLED, TIMEOUT = 0, 1, 2, 3
ERR_API, ERR_NETWORK, ERR_CANCELLED, ERR_INVALID = 1, 2, 3, 5
ECANCELED, ETIMEDOUT, EOVERFLOW, EPERM = 125, 110, 75, 1


# ---- concurrency -------------------------------------------------------------------------

def test_1000_sleeping_updates_run_concurrently_in_one_worker(fakeapi, tgrund):
    api, d = start(fakeapi, tgrund, handler="slow",
                   conf={"limits": {"concurrency": 1000}},
                   api_args=("--fault", "sendMessage:latency_ms=300"))
    t0 = time.monotonic()
    api.push_updates([message(100000 + i, "sleep 1") for i in range(1000)])
    st = api.wait_stats(lambda s: s["echoed"] >= 1000, 60)
    wall = time.monotonic() - t0
    assert st["echoed"] == 1000 and st["missing"] == 0
    assert wall < 15, "1000 one-second sleeps took %.1f s in one worker" % wall
    assert st["peak_concurrent"] >= 50, st["peak_concurrent"]


# ---- tgrun_all ---------------------------------------------------------------------------

def test_all_settled_input_order_and_isolated_failure(fakeapi, tgrund):
    api, d = start(fakeapi, tgrund)
    uid = push(api, message(11, "all settled"))
    r = report(api, uid)
    # slot 0 sleeps and finishes last but is reported first; the 400 fails only slot 2.
    assert slots(r["st"]) == [(OK, 0), (OK, 0), (FAILED, 400), (OK, 0)], r
    assert r["rc"] == "-1"
    order = [int(x) for x in r["order"].split(",")]
    assert order[0] == 4 and sorted(order) == [1, 2, 3, 4], r
    assert any(t == "k%d slow" % uid for t, _ in texts(api)), "the slow sibling was disturbed"
    assert api.stats()["calls"].get("getMe", 0) == 1
    assert api.stats()["calls"].get("sendChatAction", 0) == 1


def test_all_fail_fast_cancels_the_slow_sibling(fakeapi, tgrund):
    api, d = start(fakeapi, tgrund)
    uid = push(api, message(12, "all failfast"))
    r = report(api, uid)
    st = slots(r["st"])
    assert st[1] == (OK, 0) and st[3] == (OK, 0), r
    assert st[2] == (FAILED, 9), r
    assert st[0] == (CANCELLED, -2), r       # its sleep returned -1 (ECANCELED)
    assert int(r["ms"]) < 400, "tgrun_all waited for the cancelled sleep: %r" % r
    # A negative window: the sibling would send 0.5 s after the group began, before the report.
    time.sleep(0.6)
    assert not any(t == "k%d slow" % uid for t, _ in texts(api))


# ---- cancellation reaches every kind of wait -----------------------------------------

@pytest.mark.parametrize("what", ["call", "sleep", "fd", "lock"])
@pytest.mark.parametrize("mode", ["cancel", "timeout"])
def test_cancel_reaches_blocked_fiber(fakeapi, tgrund, what, mode):
    api, d = start(fakeapi, tgrund,
                   api_args=("--fault", "sendChatAction:latency_ms=5000"))
    uid = push(api, message(13, "%s %s" % (mode, what)))
    r = report(api, uid)
    st = slots(r["st"])
    if mode == "cancel":      # fail-fast: the sibling fails after 0.3 s
        assert st == [(CANCELLED, -1), (FAILED, 5)], r
    else:                     # tgrun_all timeout 0.3 s
        assert st == [(TIMEOUT, -1)], r
    assert r["rc"] == "-1"
    assert r["brc"] == "-1", r
    if what == "call":
        assert r["kind"] == str(ERR_CANCELLED), r
    else:
        assert r["errno"] == str(ECANCELED), r
    # Returned promptly, not after the 5 s latency or the 30 s wait.
    assert 250 <= int(r["bms"]) < 2500, r
    # After the cancel, the fiber's Bot API calls fail at once.
    assert r["after"] == str(ERR_CANCELLED), r
    assert not any(t == "late" for t, _ in texts(api))


# ---- the examples ------------------------------------------------------------------------

def test_example_all_reports_in_input_order(fakeapi, tgrund):
    api, d = start(fakeapi, tgrund, handler="all",
                   api_args=("--fault", "getMe:latency_ms=300"))
    push(api, message(21, "hi"))
    got = wait_until(lambda: [t for t, _ in texts(api, 21) if "getMe=" in t], 15)
    assert got == ["getMe=ok sendChatAction=ok sendMessage=ok (@%s)" % got[0].split("@")[1][:-1]]
    assert "@?" not in got[0]
    # The three calls overlapped: the note went out while getMe was still delayed.
    notes = [ms for t, ms in texts(api, 21) if t == "working on it"]
    me = [c["t_ms"] for c in api.calls("getMe")]
    assert len(notes) == 1 and len(me) == 1
    assert notes[0] - me[0] < 250, "sendMessage waited for getMe"


def test_example_spawn_attached_holds_the_update_detached_outlives_it(fakeapi, tgrund):
    api, d = start(fakeapi, tgrund, handler="spawn")
    push(api, message(22, "/work"), message(22, "next"))
    assert wait_until(lambda: len(texts(api, 22)) >= 4, 15), texts(api, 22)
    t = {text: ms for text, ms in texts(api, 22)}
    assert set(t) == {"started", "result: 42", "echo: next", "reminder: the work is done"}
    # The next update of the chat started only after the attached child finished ...
    assert t["started"] < t["result: 42"] < t["echo: next"]
    # ... and the detached one ran on after the update was done.
    assert t["echo: next"] < t["reminder: the work is done"]
    assert t["reminder: the work is done"] - t["started"] >= 1400


def test_example_fdwait_wakes_on_the_pipe_and_times_out(fakeapi, tgrund):
    api, d = start(fakeapi, tgrund, handler="fdwait")
    push(api, message(23, "/tick"), message(24, "/tick 0.01"))
    assert wait_until(lambda: texts(api, 23) and texts(api, 24), 15)
    tick = texts(api, 23)[0][0]
    m = re.match(r"tick (\d+) after (\d+) ms$", tick)
    assert m, tick
    assert int(m.group(2)) < 1000
    assert texts(api, 24)[0][0] in ("no tick within 0.01 s",) or \
        texts(api, 24)[0][0].startswith("tick ")
    # Several waits in a row all get their byte.
    push(api, *[message(25, "/tick") for _ in range(3)])
    assert wait_until(lambda: len(texts(api, 25)) == 3, 15), texts(api, 25)
    ns = [int(t.split()[1]) for t, _ in texts(api, 25)]
    assert ns == sorted(ns) and len(set(ns)) == 3, ns
    stop_now(d)    # see test_every_stops_at_shutdown


# ---- waiters --------------------------------------------------------------------------

def test_waiters(fakeapi, tgrund):
    api, d = start(fakeapi, tgrund)
    first = push(api, message(31, "waiter n"), message(32, "waiter early"),
                 message(33, "waiter timeout"), message(34, "waiter toomany"))
    n, early, tmo, many = (report(api, first + i) for i in range(4))
    # Three fibers and one libevent callback: released after the last (0.3 s).
    assert n["rc"] == "0", n
    assert 280 <= int(n["ms"]) < 3000, n
    # done() before wait() counts: no wait at all.
    assert (early["rc"], early["rc2"]) == ("0", "0"), early
    assert int(early["ms"]) < 200, early
    assert (tmo["rc"], tmo["errno"], tmo["rc2"]) == ("-1", str(ETIMEDOUT), "0"), tmo
    assert 280 <= int(tmo["ms"]) < 3000, tmo
    assert (many["rc"], many["rc2"], many["errno2"]) == ("0", "-1", str(EOVERFLOW)), many
    assert "called more than the 1 times" in d.log()


# ---- locks ---------------------------------------------------------------------------

def test_lock_contention_fifo_and_timeout(fakeapi, tgrund):
    api, d = start(fakeapi, tgrund)
    first = push(api, message(41, "lock hold K 1.0"), message(42, "lock wait K 10"),
                 message(43, "lock wait K 10"), message(44, "lock wait K 0.3"),
                 message(45, "lock wait K 10"), message(46, "lock wait other 1"))
    hold, w1, w2, tmo, w3, other = (report(api, first + i) for i in range(6))
    got = {}
    for t, ms in texts(api):
        m = re.match(r"g(\d+) got", t)
        if m:
            got[int(m.group(1))] = ms
    # Another key is independent.
    assert other["rc"] == "0" and int(other["ms"]) < 900, other
    # Waiters get the key in arrival order, each after the previous one let go.
    order = sorted((got[first + i], i) for i in (0, 1, 2, 4))
    assert [i for _, i in order] == [0, 1, 2, 4], got
    assert got[first + 1] - got[first] >= 950
    assert got[first + 1] <= hold["_t_ms"] + 50 or got[first + 1] >= got[first]
    for r in (hold, w1, w2, w3):
        assert (r["rc"], r["unlock"], r["again"], r["errno"]) == ("0", "0", "-1", str(EPERM)), r
    assert int(w1["ms"]) >= 900, w1
    assert (tmo["rc"], tmo["errno"]) == ("-1", str(ETIMEDOUT)), tmo
    assert 280 <= int(tmo["ms"]) < 900, tmo
    assert first + 3 not in got


# ---- the Bot API ---------------------------------------------------------------------

def test_api_retries(fakeapi, tgrund):
    api, d = start(fakeapi, tgrund, conf={"api": {"retries": 3, "retry_after_max": "2s"}})
    api.set_fault("getMe", kind="429", times=1, retry_after=1)
    uid = push(api, message(51, "api getMe"))
    r = report(api, uid)
    assert (r["ok"], r["kind"]) == ("1", "0"), r
    assert int(r["ms"]) >= 950, "the 429 was not waited for: %r" % r
    assert api.stats()["calls"]["getMe"] == 2

    api.set_fault("getChat", kind="500", times=2)
    uid = push(api, message(52, "api getChat"))
    r = report(api, uid)
    assert r["ok"] == "1", r
    assert api.stats()["calls"]["getChat"] == 3

    # Bad Request: returned at once with its code, never retried.
    uid = push(api, message(53, "api sendMessage empty"))
    r = report(api, uid)
    assert (r["ok"], r["kind"], r["code"]) == ("0", str(ERR_API), "400"), r
    assert len([t for t, _ in texts(api, 53) if t == ""]) == 1

    # A retry_after over [api] retry_after_max is returned to the handler.
    api.set_fault("getMyName", kind="429", times=1, retry_after=5)
    uid = push(api, message(54, "api getMyName"))
    r = report(api, uid)
    assert (r["ok"], r["kind"], r["code"], r["retry_after"]) == ("0", str(ERR_API), "429", "5"), r
    assert api.stats()["calls"]["getMyName"] == 1

    # 5xx for ever: 1 + retries attempts, then the error. The fake's 502 is a
    # proxy's HTML page, not a Bot API answer: a network error with the HTTP status.
    api.set_fault("getMyCommands", kind="500")
    uid = push(api, message(55, "api getMyCommands"))
    r = report(api, uid)
    assert (r["ok"], r["kind"], r["code"]) == ("0", str(ERR_API), "500"), r
    assert api.stats()["calls"]["getMyCommands"] == 4
    api.set_fault("getMyDescription", kind="502")
    uid = push(api, message(56, "api getMyDescription"))
    r = report(api, uid)
    assert (r["ok"], r["kind"], r["code"]) == ("0", str(ERR_NETWORK), "502"), r
    assert api.stats()["calls"]["getMyDescription"] == 4


# ---- outside a fiber, every, init --------------------------------------------------------

def test_blocking_calls_outside_a_fiber_fail_at_once(fakeapi, tgrund):
    api, d = start(fakeapi, tgrund)
    uid = push(api, message(61, "outside"))
    r = report(api, uid)
    assert r["rc"] == "0", r
    assert (r["call_null"], r["kind"]) == ("1", str(ERR_INVALID)), r
    assert (r["sleep"], r["fd"], r["fd_errno"]) == ("-1", "-1", str(EPERM)), r
    assert r["spawn_null"] == "1", r
    # A contended lock cannot be waited for outside a fiber: refused, not queued.
    assert (r["lock"], r["lock_errno"]) == ("-1", str(EPERM)), r
    assert (r["join"], r["stray"]) == ("0", "-1"), r
    assert int(r["ms"]) < 1000, r
    assert "ended holding lock" not in d.log()
    assert api.stats()["calls"].get("getMe", 0) == 0


def test_all_in_a_detached_fiber(fakeapi, tgrund):
    api, d = start(fakeapi, tgrund)
    uid = push(api, message(62, "all detached"), message(62, "next"))
    r = report(api, uid)
    # Slot i returns its argument (0, 2, 1) after 50 ms * that: input order kept.
    assert r["rc"] == "-1" and slots(r["st"]) == [(OK, 0), (FAILED, 2), (FAILED, 1)], r
    report(api, uid + 1)
    assert d.worker_pids() and "killed" not in d.log() and "exited" not in d.log()


def gone(pid):
    """Whether process `pid` has exited (a zombie has)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def stop_now(d):
    """SIGTERM twice: a stop that does not wait for the drain."""
    n = d.log().count(": stopping")
    d.proc.signal(signal.SIGTERM)
    # The second must come after the first is taken, or the two are one signal.
    wait_until(lambda: d.log().count(": stopping") > n or not d.proc.alive(), 10,
               what="the first SIGTERM taken")
    d.proc.signal(signal.SIGTERM)
    return d.wait_exit(10)


def test_every_runs_on_schedule(fakeapi, tgrund):
    api, d = start(fakeapi, tgrund, handler="rt_every",
                   conf={"handler": {"every": "0.2", "chat": "71"}})
    # tgrun_call from tgrun_init: no fiber, no context: an error, at once.
    m = re.search(r"rt_every: tgrun_call in init: NULL kind=(\d+) .* in (\d+) ms", d.log())
    assert m and m.group(1) == str(ERR_INVALID), d.log()
    assert int(m.group(2)) < 100
    n0 = len(texts(api, 71))
    t0 = time.monotonic()
    wait_until(lambda: len(texts(api, 71)) >= n0 + 10, 10, what="10 more runs of the job")
    took = time.monotonic() - t0
    # 5 to 14 runs in 2 s, as the time 10 runs take.
    assert 10 / 7 <= took <= 10 / 2.5, "10 runs of a 0.2 s job in %.2f s" % took
    ticks = [int(t.split()[1]) for t, _ in texts(api, 71)]
    assert ticks == list(range(1, len(ticks) + 1))
    push(api, message(72, "hi"))
    assert wait_until(lambda: texts(api, 72), 10)
    stop_now(d)


def test_every_stops_at_shutdown(fakeapi, tgrund):
    api, d = start(fakeapi, tgrund, handler="rt_every",
                   conf={"handler": {"every": "0.2", "chat": "73"}})
    assert wait_until(lambda: len(texts(api, 73)) >= 2, 10)
    workers = d.worker_pids()
    t0 = time.monotonic()
    d.proc.signal(signal.SIGTERM)
    st = d.wait_exit(4.5)
    if st is None:
        stop_now(d)
    assert st == 0, d.log()
    assert time.monotonic() - t0 < 4.5, "the every job held the worker up"
    n_end = len(texts(api, 73))
    # Nothing after the stop: its workers are gone, and sent nothing meanwhile.
    wait_until(lambda: all(gone(p) for p in workers), 10, what="the workers gone")
    assert len(texts(api, 73)) == n_end


# ---- stacks, dumps -----------------------------------------------------------------------

def test_stack_overflow_kills_the_worker_which_is_restarted(fakeapi, tgrund):
    api, d = start(fakeapi, tgrund, conf={"workers": {"stack_size": "64k"},
                                          "limits": {"max_attempts": 2}})
    pids = d.worker_pids()
    first = push(api, message(81, "#overflow"), *[message(82 + i, "hi") for i in range(5)])
    assert wait_until(lambda: sum(1 for i in range(1, 6) if any(
        t.startswith("u%d " % (first + i)) for t, _ in texts(api))) == 5, 30)
    assert wait_until(lambda: re.search(r"update %d\b.*(dropped|dead-lettered) after 2 attempts"
                                        % first, d.log()), 20), d.log()
    log = d.log()
    if SANITIZED:
        assert "stack overflow in a fiber" in log or "stack-overflow" in log, log
    else:
        assert "stack overflow in a fiber (stack_size 65536 bytes)" in log, log
    assert re.search(r"worker 0 .*(killed by signal 11|exited with status 1)", log), log
    assert not any(t.startswith("u%d " % first) for t, _ in texts(api))
    assert wait_until(lambda: len(d.worker_pids()) == 1 and d.worker_pids() != pids, 10)
    assert d.proc.alive()


def test_large_frame_lands_in_the_guard_region(fakeapi, tgrund):
    # bigframe.so is built without stack clash protection: 12 KiB above the
    # bottom of its stack it writes the far end of a 32 KiB frame first, some
    # 20 KiB below the stack. That must fault in the guard region and be
    # reported as an overflow, not land in (or fault on) other memory.
    api, d = start(fakeapi, tgrund, handler="bigframe",
                   conf={"workers": {"stack_size": "64k"}, "handler": {"stack": "65536"},
                         "limits": {"max_attempts": 1}})
    uid = push(api, message(86, "#bigframe"))
    want = "stack overflow in a fiber (stack_size 65536 bytes)"
    assert wait_until(lambda: "killed by signal" in d.log() or "exited with status" in d.log()
                      or any(t.startswith("u%d " % uid) for t, _ in texts(api)), 20), d.log()
    assert not any(t.startswith("u%d " % uid) for t, _ in texts(api)), texts(api)
    log = d.log()
    assert want in log or (SANITIZED and "stack-overflow" in log), log
    # The worker is replaced and serves the next update.
    nxt = push(api, message(87, "hi"))
    assert report(api, nxt)["_text"] == "u%d ok" % nxt
    assert d.proc.alive()


def test_sigusr1_dumps_one_line_per_fiber(fakeapi, tgrund):
    api, d = start(fakeapi, tgrund)
    first = push(api, message(91, "sleep 5"), message(92, "sleep 5"), message(93, "lock hold D 5"))
    assert wait_until(lambda: any(t == "g%d got D" % (first + 2) for t, _ in texts(api)), 10)
    time.sleep(0.3)  # kept: the sleeping time under test (the dump must show >= 100 ms)
    (pid,) = d.worker_pids()
    os.kill(pid, signal.SIGUSR1)
    assert wait_until(lambda: "fiber dump:" in d.log(), 10), d.log()
    # The dump's first line comes before its line for each fiber.
    wait_until(lambda: all("fiber: update %d (" % u in d.log() for u in range(first, first + 3)),
               10, what="the dump's line for each of the 3 fibers")
    log = d.log()
    assert re.search(r"fiber dump: 3 fibers, 3 updates running", log), log
    for uid in (first, first + 1, first + 2):
        m = re.search(r"fiber: update %d \(message\): sleep for (\d+) ms" % uid, log)
        assert m, log
        assert 100 <= int(m.group(1)) < 5000


# ---- out of tree -------------------------------------------------------------------------

OOT_HANDLER = r'''
#include <stdio.h>
#include <tgrun.h>
TGRUN_HANDLER;
int tgrun_handle(struct tgrun_ctx *ctx, const json_t *update)
{
	char t[64];
	json_t *r;

	snprintf(t, sizeof(t), "u%lld out-of-tree", (long long)tgrun_update_id(ctx));
	r = tgrun_reply(ctx, update, t, NULL);
	json_decref(r);
	return r ? 0 : -1;
}
'''


def test_out_of_tree_handler_via_pkg_config(fakeapi, procs, tmp_path):
    build = BUILD
    dest = str(tmp_path / "dest")
    # The build under test is installed as it is (-o build-all: nothing is rebuilt).
    cmd = ["make", "-s", "-o", "build-all", "install", "DESTDIR=" + dest, "PREFIX=/usr",
           "B=" + build] + (["SANITIZE=1"] if SANITIZED else [])
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert os.path.exists(os.path.join(dest, "usr/include/tgrun.h"))
    assert os.path.exists(os.path.join(dest, "usr/lib/pkgconfig/tgrun.pc"))
    env = dict(os.environ, PKG_CONFIG_SYSROOT_DIR=dest,
               PKG_CONFIG_PATH=os.path.join(dest, "usr/lib/pkgconfig"))
    cflags = subprocess.run(["pkg-config", "--cflags", "tgrun"], env=env,
                            capture_output=True, text=True, timeout=30)
    assert cflags.returncode == 0, cflags.stderr
    incs = [f[2:] for f in cflags.stdout.split() if f.startswith("-I")]
    assert any(os.path.exists(os.path.join(i, "tgrun.h")) for i in incs), \
        "pkg-config --cflags tgrun does not lead to the installed tgrun.h: " + cflags.stdout
    src = tmp_path / "oot.c"
    src.write_text(OOT_HANDLER)
    so = str(tmp_path / "oot.so")
    cc = subprocess.run(["cc", "-shared", "-fPIC", "-Wl,-z,noexecstack", "-Wall", "-Werror"]
                        + cflags.stdout.split() + ["-o", so, str(src)],
                        capture_output=True, text=True, timeout=60, cwd=str(tmp_path))
    assert cc.returncode == 0, cflags.stdout + cc.stderr
    # The installed tgrund finds the installed worker in ../libexec/tgrun.
    assert os.path.exists(os.path.join(dest, "usr/libexec/tgrun/tgrun-worker"))
    api = fakeapi()
    d = procs.add(Tgrund(os.path.join(dest, "usr/bin"), procs.tmp, api.url,
                         conf={"workers": {"count": 1, "handler": so}})).wait_ready()
    uid = push(api, message(99, "hi"))
    r = report(api, uid)
    assert r["_text"] == "u%d out-of-tree" % uid
    assert d.proc.alive()
