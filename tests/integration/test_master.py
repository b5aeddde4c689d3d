"""The master end to end: polling, ordering, limits, faults, shutdown and workers."""
import os
import re
import signal
import time

import pytest

from daemon import run_check, wait_until
from conftest import BUILD
from waits import wait_echoed, wait_log
from updates import callback_query, message



def first_echo_ms(api, uid):
    e = api.control("/__fake/echoes?id=%d" % uid)["echoes"]
    assert e, "update %d was not echoed" % uid
    return e[0]["t_ms"]


# ---- correctness --------------------------------------------------------------

def test_20000_updates_no_loss_no_duplicates_in_order(fakeapi, tgrund):
    api = fakeapi("--count", "20000", "--chats", "500", "--users", "2000",
                  "--seed", "11")
    d = tgrund(api, conf={"workers": {"count": 2}})
    st = wait_echoed(api, api.stats()["expected_echoes"], timeout=240)
    assert st["missing"] == 0
    assert st["duplicates"] == 0
    assert st["inversions"] == 0
    assert st["handed_out"] == 20000
    assert d.stop() == 0


def test_chat_and_user_keys_in_groups(fakeapi, tgrund):
    api = fakeapi("--count", "5000", "--chats", "100", "--users", "300",
                  "--group-fraction", "0.6", "--seed", "5")
    tgrund(api, conf={"order": {"sequentialize": "chat, user"},
                      "workers": {"count": 3}})
    st = wait_echoed(api, api.stats()["expected_echoes"], timeout=120)
    assert (st["missing"], st["duplicates"], st["inversions"]) == (0, 0, 0)


# ---- ordering is not serialisation -----------------------------------------

def test_slow_chat_does_not_delay_other_chats(fakeapi, tgrund):
    api = fakeapi()
    tgrund(api, handler="slow", conf={"workers": {"count": 1}}).wait_ready()
    r = api.push_updates([message(1001, "sleep 3"), message(1001, "after")] +
                         [message(2000 + i, "hi") for i in range(20)])
    slow_id = r["first_id"]
    wait_echoed(api, 22, timeout=30)
    slow_done = first_echo_ms(api, slow_id)
    others = [first_echo_ms(api, slow_id + 2 + i) for i in range(20)]
    # Every other chat finished while chat 1001 was still sleeping ...
    assert max(others) < slow_done
    # ... and chat 1001's second update waited for its first.
    assert first_echo_ms(api, slow_id + 1) > slow_done
    assert api.stats()["inversions"] == 0


@pytest.mark.parametrize("bypass", [False, True])
def test_bypass_lets_callbacks_overtake(fakeapi, tgrund, bypass):
    api = fakeapi()
    conf = {"workers": {"count": 2}}
    if bypass:
        conf["order"] = {"bypass": "callback_query"}
    tgrund(api, handler="slow", conf=conf).wait_ready()
    r = api.push_updates([message(3001, "sleep 2"), callback_query(3001)])
    first = r["first_id"]
    wait_echoed(api, 2, timeout=30)
    cb, slow = first_echo_ms(api, first + 1), first_echo_ms(api, first)
    if bypass:
        assert cb < slow, "the callback query waited for the slow message"
    else:
        assert cb > slow, "the callback query overtook its chat without bypass"


# ---- limits and backpressure --------------------------------------------------

def test_concurrency_limit_holds(fakeapi, tgrund):
    api = fakeapi("--count", "300", "--chats", "300", "--mix", "message=1",
                  "--fault", "sendMessage:latency_ms=30")
    tgrund(api, conf={"workers": {"count": 4}, "limits": {"concurrency": 3}})
    st = wait_echoed(api, 300, timeout=60)
    assert st["peak_concurrent"] <= 3
    assert st["peak_concurrent"] >= 2, "the limit was not used at all"


def test_concurrency_one_is_strictly_sequential(fakeapi, tgrund):
    api = fakeapi("--count", "100", "--chats", "50", "--mix", "message=1",
                  "--fault", "sendMessage:latency_ms=20")
    tgrund(api, conf={"workers": {"count": 3}, "limits": {"concurrency": 1}})
    st = wait_echoed(api, 100, timeout=60)
    # The fake server never had two calls open at once ...
    assert st["peak_concurrent"] == 1
    assert st["inversions"] == 0
    # ... and each call is answered after 20 ms, so the next one started
    # after that (a few ms of timestamp noise allowed on a loaded machine).
    t = [c["t_ms"] for c in api.calls("sendMessage")]
    assert len(t) == 100
    gaps = [b - a for a, b in zip(t, t[1:])]
    assert min(gaps) >= 15, "two updates overlapped: gap %.2f ms" % min(gaps)


def test_polling_pauses_at_max_pending(fakeapi, tgrund):
    api = fakeapi()
    api.push_updates([message(5000 + i, "sleep 0.2") for i in range(200)])
    tgrund(api, handler="slow", conf={"workers": {"count": 2},
                                      "limits": {"max_pending": 20}})
    samples = []

    def sample():
        s = api.stats()
        samples.append(s["handed_out"] - s["echoed"])
        return s["echoed"] >= 200
    # Sampled every 0.1 s over the whole run, until the last update is echoed.
    wait_until(sample, 60, interval=0.1, what="all 200 updates echoed")
    assert max(samples) <= 20, "more than max_pending updates were fetched: %r" % samples
    assert max(samples) >= 15, "the pending window was not used: %r" % samples


# ---- getUpdates faults ------------------------------------------------------------

@pytest.mark.parametrize("kind", ["429", "500", "502", "badjson", "drop",
                                  "truncate"])
def test_getupdates_faults_recovered_without_loss(fakeapi, tgrund, kind):
    api = fakeapi("--count", "600", "--chats", "60", "--rate", "300",
                  "--fault", "getUpdates:kind=%s,every=2,retry_after=1" % kind)
    tgrund(api)
    st = wait_echoed(api, api.stats()["expected_echoes"], timeout=90)
    assert (st["missing"], st["duplicates"], st["inversions"]) == (0, 0, 0)
    assert st["faults_injected"].get("getUpdates", 0) >= 1


@pytest.mark.parametrize("kind,max_calls", [("500", 5), ("drop", 5), ("429", 2)])
def test_persistent_fault_backs_off(fakeapi, tgrund, kind, max_calls):
    """A getUpdates that always fails is retried with backoff, not in a hot loop."""
    api = fakeapi("--fault", "getUpdates:kind=%s,retry_after=2" % kind)
    d = tgrund(api).wait_ready()
    wait_until(lambda: api.stats()["calls"].get("getUpdates", 0) >= 1, 10,
               what="the first getUpdates")
    before = api.stats()["calls"].get("getUpdates", 0)
    # A negative window: a hot loop would make hundreds of calls in it; the
    # backoff (500 ms doubling, or retry_after 2 s) makes a few.
    time.sleep(2.5)
    calls = api.stats()["calls"].get("getUpdates", 0) - before
    assert 1 <= calls <= max_calls, "%d getUpdates calls in 2.5 s during %s" % (calls, kind)
    api.clear_faults()
    api.push_updates([message(42, "back")])
    wait_echoed(api, 1, timeout=40)
    assert d.proc.alive()


def test_webhook_conflict_backs_off_then_delete_webhook(fakeapi, tgrund):
    api = fakeapi()
    api.control("/__fake/webhook", "POST", {"url": "https://example.invalid/hook"})
    d = tgrund(api).wait_ready()
    wait_log(d.proc, "webhook", 10)
    # A negative window: backing off, it neither spins nor deletes the webhook.
    time.sleep(2)
    st = api.stats()
    assert 1 <= st["calls"].get("getUpdates", 0) <= 5
    assert st["calls"].get("deleteWebhook", 0) == 0
    d.stop()

    d2 = tgrund(api, conf={"poll": {"delete_webhook": "yes"}}).wait_ready()
    api.push_updates([message(7, "hello")])
    wait_echoed(api, 1, timeout=30)
    assert api.stats()["calls"].get("deleteWebhook", 0) == 1
    assert d2.proc.alive()


def test_conflicting_poller_is_logged(fakeapi, tgrund):
    api = fakeapi()
    a = tgrund(api).wait_ready()
    b = tgrund(api).wait_ready()
    wait_until(lambda: "409" in a.log() + b.log(), 10, what="a 409 in either log")
    before = api.stats()["calls"].get("getUpdates", 0)
    # A negative window: two pollers fighting still do not spin.
    time.sleep(2)
    assert api.stats()["calls"].get("getUpdates", 0) - before < 20


@pytest.mark.parametrize("token", ["999:WRONG-token"])
def test_rejected_token_exits_3(fakeapi, tmp_path, token):
    api = fakeapi()
    st, log = run_check(BUILD, str(tmp_path), api.url, token=token)
    assert st == 3, log
    assert "rejected the token" in log
    assert "WRONG-token" not in log


# ---- shutdown and workers --------------------------------------------------------

def process_state(pid):
    """The state letter of /proc/PID/stat (T: stopped)."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def test_stopped_master_does_not_count_its_pause_against_updates(fakeapi, tgrund):
    """The master is stopped (SIGSTOP) while an update runs: on waking, the
    update has run longer than update_timeout by the clock, but the pause was
    the master's, so it gets that time back instead of being cancelled (a
    cancelled update is not retried). Here the handler takes 4 s of the 3 s
    allowed plus the 3 s pause."""
    api = fakeapi()
    d = tgrund(api, handler="slow", conf={"workers": {"count": 1},
                                          "limits": {"update_timeout": "3s"}}).wait_ready()
    r = api.push_updates([message(8101, "sleep 4")])
    wait_until(lambda: d.status()["in_flight"] == 1, 10, what="the update running")
    d.proc.signal(signal.SIGSTOP)
    try:
        wait_until(lambda: process_state(d.pid) == "T", 5, what="the master stopped")
        time.sleep(3)
    finally:
        d.proc.signal(signal.SIGCONT)
    st = wait_echoed(api, 1, timeout=20)
    assert st["missing"] == 0, st
    assert api.control("/__fake/echoes?id=%d" % r["last_id"])["echoes"]
    wait_log(d.proc, "the master did not run for", 10)
    assert "over update_timeout" not in d.log()
    assert d.stop() == 0


def sigterm_with_in_flight(api, d, n, timeout):
    """Once n updates run in the workers, SIGTERM: the daemon exits with 0
    within timeout s. Returns the seconds the stop took."""
    api.wait_stats(lambda s: s["handed_out"] >= n, 10)
    wait_until(lambda: d.status()["in_flight"] == n, 10,
               what="%d updates in the workers" % n)
    t0 = time.monotonic()
    d.proc.signal(signal.SIGTERM)
    assert d.wait_exit(timeout) == 0
    return time.monotonic() - t0


def test_sigterm_drains_in_flight_work(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, handler="slow", conf={"workers": {"count": 2}}).wait_ready()
    r = api.push_updates([message(8001, "sleep 2"), message(8002, "sleep 2")])
    assert sigterm_with_in_flight(api, d, 2, 20) < 10
    st = api.stats()
    assert st["echoed"] == 2 and st["missing"] == 0
    assert api.control("/__fake/echoes?id=%d" % r["last_id"])["echoes"]
    assert "stopped" in d.log()


def test_sigterm_without_journal_finishes_fetched_updates(fakeapi, tgrund):
    """Without the journal, fetched updates are already confirmed: a stop finishes them."""
    api = fakeapi()
    d = tgrund(api, handler="slow", conf={"workers": {"count": 1},
                                          "limits": {"concurrency": 1},
                                          "journal": {"enabled": "no"}}).wait_ready()
    api.push_updates([message(9001, "sleep 1")] + [message(9001, "x") for _ in range(5)])
    api.wait_stats(lambda s: s["handed_out"] >= 6, 10)
    d.proc.signal(signal.SIGTERM)
    assert d.wait_exit(20) == 0
    st = api.stats()
    assert st["echoed"] == 6 and st["inversions"] == 0
    assert "at-most-once" in d.log()


def test_sigterm_with_journal_keeps_pending_for_next_start(fakeapi, tgrund):
    api = fakeapi()
    conf = {"workers": {"count": 1}, "limits": {"concurrency": 1}}
    d = tgrund(api, handler="slow", conf=conf).wait_ready()
    api.push_updates([message(9001, "sleep 1")] + [message(9001, "x") for _ in range(5)])
    api.wait_stats(lambda s: s["handed_out"] >= 6, 10)
    d.proc.signal(signal.SIGTERM)
    assert d.wait_exit(20) == 0
    assert api.stats()["echoed"] < 6
    assert "stay in the journal" in d.log()
    # The same journal file: the next start replays what was left, in order.
    conf["journal"] = {"path": os.path.join(d.dir, "journal.db")}
    d2 = tgrund(api, handler="slow", conf=conf).wait_ready()
    st = wait_echoed(api, 6, timeout=30)
    assert st["missing"] == 0 and st["inversions"] == 0
    assert "replaying" in d2.log()
    d2.stop()


def test_shutdown_timeout_bounds_the_stop(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, handler="slow", conf={"limits": {"shutdown_timeout": "1s"}}).wait_ready()
    api.push_updates([message(9101, "sleep 30")])
    assert sigterm_with_in_flight(api, d, 1, 15) < 8
    assert "shutdown_timeout" in d.log()


def test_killed_worker_is_respawned_and_service_continues(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, conf={"workers": {"count": 2}}).wait_ready()
    victims = d.worker_pids()
    assert len(victims) == 2
    os.kill(victims[0], signal.SIGKILL)
    assert wait_until(lambda: len(d.worker_pids()) == 2 and
                      victims[0] not in d.worker_pids(), 10)
    assert "killed by signal 9" in d.log()
    api.push_updates([message(100 + i, "after") for i in range(50)])
    st = wait_echoed(api, 50, timeout=30)
    assert st["missing"] == 0
    assert d.proc.alive()


def test_crashing_update_is_retried_then_dead_lettered(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, handler="crash", conf={"limits": {"max_attempts": 2}}).wait_ready()
    r = api.push_updates([message(77, "boom #crash"), message(77, "next")] +
                         [message(78 + i, "other") for i in range(10)])
    st = wait_echoed(api, 11, timeout=30)
    assert st["echoed"] == 11
    log = d.log()
    # A plain build dies by SIGSEGV; a sanitizer build reports and exits 1.
    assert re.search(r"worker \d (killed by signal 11|exited with status 1)", log)
    assert "update %d: retrying (attempt 2)" % r["first_id"] in log
    assert "update %d (message): dead-lettered after 2 attempts" % r["first_id"] in log
    assert d.proc.alive()


# ---- config and handler errors ---------------------------------------------------



@pytest.mark.parametrize("conf,needle", [
    ({"limits": {"concurrency": "lots"}}, "[limits] concurrency"),
    ({"poll": {"timout": "1s"}}, "unknown key"),
    ({"polling": {"x": "1"}}, "unknown section"),
    ({"order": {"sequentialize": "chats"}}, "accepted: "),
    ({"workers": {"handler": "/nonexistent/h.so"}}, "/nonexistent/h.so"),
])
def test_bad_config_exits_2_with_file_and_line(fakeapi, tmp_path, conf, needle):
    api = fakeapi()
    st, log = run_check(BUILD, str(tmp_path), api.url, conf=conf)
    assert st == 2, log
    assert needle in log
    assert "bot.conf" in log


@pytest.mark.parametrize("handler,needle", [
    ("bad_abi", "ABI 999"),
    ("no_abi", "TGRUN_HANDLER"),
])
def test_unloadable_handler_exits_2(fakeapi, tmp_path, handler, needle):
    api = fakeapi()
    st, log = run_check(BUILD, str(tmp_path), api.url, handler=handler)
    assert st == 2, log
    assert needle in log
    st, log = run_check(BUILD, str(tmp_path), api.url, handler=handler, args=["-t"])
    assert st == 2, log
    assert needle in log


def test_handler_init_failure_exits_2(fakeapi, tmp_path):
    api = fakeapi()
    st, log = run_check(BUILD, str(tmp_path), api.url, handler="crash",
                        conf={"handler": {"init": "fail"}})
    assert st == 2, log
    assert "tgrun_init failed" in log


def test_check_mode_accepts_good_config(fakeapi, tmp_path):
    api = fakeapi()
    st, log = run_check(BUILD, str(tmp_path), api.url, args=["-t"])
    assert st == 0, log
    assert api.stats()["calls"].get("getUpdates", 0) == 0


def test_missing_token_exits_2(fakeapi, tmp_path):
    api = fakeapi()
    st, log = run_check(BUILD, str(tmp_path), api.url,
                        conf={"bot": {"token_file": str(tmp_path / "nope")}})
    assert st == 2, log
    assert "nope" in log


def test_token_from_credentials_directory(fakeapi, tmp_path, tgrund):
    from procs import TEST_TOKEN
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "token").write_text(TEST_TOKEN + "\n")
    api = fakeapi()
    d = tgrund(api, conf={"bot": {"token_file": None}}, token="1:unused",
               env={"CREDENTIALS_DIRECTORY": str(creds)}).wait_ready()
    api.push_updates([message(5, "x")])
    wait_echoed(api, 1, timeout=20)
    assert d.proc.alive()


# ---- [poll] coalesce -------------------------------------------------------------

@pytest.mark.parametrize("coalesce,bound", [("200ms", lambda n: n < 60),
                                            ("0", lambda n: n >= 100)])
def test_steady_arrivals_are_fetched_in_batches_with_coalesce(fakeapi, tgrund,
                                                              coalesce, bound):
    """1,500 updates arriving at 300/s: with a 200 ms window the master asks about
    once per window (some 25 getUpdates over five seconds); without it, about
    once per update (fewer only when the machine is slow)."""
    api = fakeapi("--count", "1500", "--chats", "50", "--rate", "300", "--seed", "5")
    tgrund(api, conf={"poll": {"coalesce": coalesce}})
    st = wait_echoed(api, api.stats()["expected_echoes"], timeout=60)
    assert (st["missing"], st["duplicates"], st["inversions"]) == (0, 0, 0), st
    polls = api.stats()["calls"]["getUpdates"]
    print("coalesce %s: %d getUpdates calls" % (coalesce, polls))
    assert bound(polls), "coalesce %s: %d getUpdates calls for 1500 updates" % (
        coalesce, polls)
