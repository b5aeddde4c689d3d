"""Reliability: kills, poison updates, timeouts, heartbeats, reload, stop and disk faults."""
import os
import random
import re
import signal
import struct
import subprocess
import time

from daemon import run_check, wait_until
from conftest import BUILD
from waits import wait_echoed, wait_log
from updates import message
from procs import live_workers




def texts(api, since=0):
    return [(c["t_ms"], c["params"].get("text", "")) for c in api.calls("sendMessage", since)]


def wait_tagged(api, tag, since=0, timeout=30):
    """The seq of the first sendMessage after call `since` that ends with " <tag>"."""
    last = [since]

    def find():
        for c in api.calls("sendMessage", last[0]):
            last[0] = c["seq"]
            if c["params"].get("text", "").endswith(" " + tag):
                return c["seq"]
        return None
    return wait_until(find, timeout, what="a reply tagged %s" % tag)


# ---- kills -------------------------------------------------------------------------

def test_master_sigkill_five_times_loses_nothing_and_reruns_little(fakeapi, tgrund):
    api = fakeapi("--count", "20000", "--chats", "500", "--users", "2000",
                  "--seed", "21", "--rate", "4000")
    expected = api.stats()["expected_echoes"]
    rng = random.Random(7)
    d = tgrund(api, conf={"workers": {"count": 2}})
    journal = os.path.join(d.dir, "journal.db")
    orphans = []
    try:
        for k in range(5):
            d.wait_ready(30)
            # Kill at a random point of the burst, while work is in flight.
            target = min(expected - 1, int(expected * (k + 1) / 6) + rng.randint(-500, 500))
            api.wait_stats(lambda s: s["echoed"] >= target, 60)
            orphans += d.worker_pids()
            os.kill(d.pid, signal.SIGKILL)
            assert d.wait_exit(10) == -signal.SIGKILL
            d = tgrund(api, conf={"workers": {"count": 2}, "journal": {"path": journal}})
        d.wait_ready(30)
        st = wait_echoed(api, expected, timeout=180)
        print("duplicates after 5 master kills: %d" % st["duplicates"])
        assert st["missing"] == 0
        assert st["inversions"] == 0, "per-chat order of first deliveries broke"
        # Re-runs: only what the kill caught between a worker's DONE and the
        # done log, or work cancelled at the orphans' bound (none here).
        assert st["duplicates"] <= 5 * 5
        # The killed masters' workers finished their updates and exited.
        assert wait_until(lambda: live_workers(orphans) == [], 15), live_workers(orphans)
        assert d.stop() == 0
    finally:
        for pid in live_workers(orphans):
            os.kill(pid, signal.SIGKILL)


def kill_master(d):
    """SIGKILL the master; returns the PIDs of its workers, which outlive it."""
    pids = d.worker_pids()
    os.kill(d.pid, signal.SIGKILL)
    assert d.wait_exit(10) == -signal.SIGKILL
    return pids


def said(api, text):
    return [x for _, x in texts(api)].count(text)


def test_orphans_finish_their_updates_and_the_next_master_waits(fakeapi, tgrund):
    api = fakeapi()
    conf = {"workers": {"count": 2}}
    d = tgrund(api, handler="stubborn", conf=conf).wait_ready()
    r = api.push_updates([message(900, "nap 2"), message(900, "next"), message(901, "nap 2")])
    a, b, c = r["first_id"], r["first_id"] + 1, r["first_id"] + 2
    wait_until(lambda: said(api, "b%d" % a) and said(api, "b%d" % c), 10,
               what="both naps to start")
    orphans = kill_master(d)
    try:
        conf["journal"] = {"path": os.path.join(d.dir, "journal.db")}
        d2 = tgrund(api, handler="stubborn", conf=conf)
        wait_log(d2.proc, "is locked: waiting up to", 10)
        d2.wait_ready(20)
        wait_until(lambda: said(api, "u%d" % b), 20, what="the update after the nap")
        # The orphans finished a and c; the new master ran only b, after a.
        for x in (a, c):
            assert (said(api, "b%d" % x), said(api, "u%d" % x)) == (1, 1), texts(api)
        calls = texts(api)
        assert [t for t, x in calls if x == "u%d" % a][0] <= \
            [t for t, x in calls if x == "b%d" % b][0]
        log = d2.log()
        assert "replaying 1 unfinished updates" in log
        assert "the previous master's workers are gone" in log
        assert wait_until(lambda: live_workers(orphans) == [], 5)
        assert d2.stop() == 0
    finally:
        for pid in live_workers(orphans):
            os.kill(pid, signal.SIGKILL)


def test_orphans_cancel_what_outlasts_the_bound_and_it_runs_again(fakeapi, tgrund):
    api = fakeapi()
    # An orphan lets its updates run min(update_timeout, shutdown_timeout).
    conf = {"workers": {"count": 1},
            "limits": {"update_timeout": "1s", "kill_grace": "1s"}}
    d = tgrund(api, handler="stubborn", conf=conf).wait_ready()
    a = api.push_updates([message(902, "nap 30")])["first_id"]
    wait_until(lambda: said(api, "b%d" % a), 10, what="the nap to start")
    t0 = time.monotonic()
    orphans = kill_master(d)
    try:
        assert wait_until(lambda: live_workers(orphans) == [], 5)
        # Cancelled at 1 s, so not recorded as done: the next master runs it.
        assert time.monotonic() - t0 < 3
        conf["journal"] = {"path": os.path.join(d.dir, "journal.db")}
        d2 = tgrund(api, handler="stubborn", conf=conf).wait_ready()
        assert "replaying 1 unfinished updates" in d2.log()
        wait_until(lambda: said(api, "b%d" % a) == 2, 10, what="the nap to start again")
        assert "cancelling 1 updates still running after 1000 ms" in d.log()
        d2.stop()
    finally:
        for pid in live_workers(orphans):
            os.kill(pid, signal.SIGKILL)


def test_an_orphan_stuck_in_its_handler_ends_at_the_hard_bound(fakeapi, tgrund):
    api = fakeapi()
    # Bound: update_timeout (1 s) + kill_grace (1 s) + 1 s, then SIGALRM.
    conf = {"workers": {"count": 1},
            "limits": {"update_timeout": "1s", "kill_grace": "1s",
                       "heartbeat_timeout": "30s"}}
    d = tgrund(api, handler="stubborn", conf=conf).wait_ready()
    a = api.push_updates([message(903, "spin")])["first_id"]
    wait_until(lambda: said(api, "b%d" % a), 10, what="the spin to start")
    t0 = time.monotonic()
    orphans = kill_master(d)
    try:
        # It never turns its loop again: only the kernel's alarm ends it.
        assert wait_until(lambda: live_workers(orphans) == [], 8), live_workers(orphans)
        assert 2.5 <= time.monotonic() - t0 < 5
        conf["journal"] = {"path": os.path.join(d.dir, "journal.db")}
        conf["limits"]["max_attempts"] = 1
        d2 = tgrund(api, handler="stubborn", conf=conf).wait_ready()
        assert "replaying 1 unfinished updates" in d2.log()
        d2.stop()
    finally:
        for pid in live_workers(orphans):
            os.kill(pid, signal.SIGKILL)


def test_a_stray_sighup_does_not_end_a_worker(fakeapi, tgrund):
    api = fakeapi()
    conf = {"workers": {"count": 1},
            "limits": {"update_timeout": "1s", "kill_grace": "1s"}}
    d = tgrund(api, handler="stubborn", conf=conf).wait_ready()
    [pid] = d.worker_pids()
    os.kill(pid, signal.SIGHUP)
    # Past the bound a worker whose master died would have.
    time.sleep(4)
    assert live_workers([pid]) == [pid]
    a = api.push_updates([message(904, "hi")])["first_id"]
    wait_until(lambda: said(api, "u%d" % a), 10, what="the worker to answer")
    assert d.stop() == 0


def test_without_a_journal_workers_die_with_the_master(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, handler="stubborn", conf={"journal": {"enabled": "no"}}).wait_ready()
    a = api.push_updates([message(905, "nap 30")])["first_id"]
    wait_until(lambda: said(api, "b%d" % a), 10, what="the nap to start")
    orphans = kill_master(d)
    try:
        assert wait_until(lambda: live_workers(orphans) == [], 3)
    finally:
        for pid in live_workers(orphans):
            os.kill(pid, signal.SIGKILL)


# common/donelog.h: a record is the id, then the id XOR this, little-endian.
DONELOG_MAGIC = 0xd0e1a5c3b2f49687


def done_records(ids):
    return b"".join(struct.pack("<qQ", i, i ^ DONELOG_MAGIC) for i in ids)


def test_a_restart_marks_done_what_the_done_log_names(fakeapi, tgrund):
    api = fakeapi()
    conf = {"workers": {"count": 1},
            "limits": {"shutdown_timeout": "1s", "kill_grace": "1s"}}
    d = tgrund(api, handler="stubborn", conf=conf).wait_ready()
    r = api.push_updates([message(906, "nap 30") for _ in range(3)])
    a = r["first_id"]
    wait_until(lambda: said(api, "b%d" % a), 10, what="the first nap to start")
    # The stop cancels the nap: all three stay journaled.
    d.proc.signal(signal.SIGTERM)
    assert d.wait_exit(20) == 0
    # As if a and a + 1 had finished after their completions were last flushed.
    with open(os.path.join(d.dir, "journal.db.done"), "ab") as f:
        f.write(done_records([a + 1]) + b"torn" + done_records([a, a + 1]))
    conf["journal"] = {"path": os.path.join(d.dir, "journal.db")}
    d2 = tgrund(api, handler="stubborn", conf=conf).wait_ready()
    log = d2.log()
    assert "2 updates named in" in log and "are marked done before the replay" in log
    assert "4 bytes that are no record skipped" in log
    assert "replaying 1 unfinished updates" in log
    wait_until(lambda: said(api, "b%d" % (a + 2)), 10, what="the third nap to start")
    assert said(api, "b%d" % a) == 1 and said(api, "b%d" % (a + 1)) == 0
    assert os.path.getsize(os.path.join(d.dir, "journal.db.done")) == 0
    d2.stop()


def test_a_done_log_older_than_its_journal_is_ignored(fakeapi, tgrund, procs):
    api = fakeapi()
    state = os.path.join(procs.tmp, "state")
    os.makedirs(state)
    journal = os.path.join(state, "journal.db")
    # Ids another journal's updates had, left next to a fresh journal.
    with open(journal + ".done", "wb") as f:
        f.write(done_records([1, 2, 3]))
    d = tgrund(api, conf={"journal": {"path": journal}}).wait_ready()
    assert "names 3 updates of an earlier journal; ignored" in d.log()
    a = api.push_updates([message(907, "hi")])["first_id"]
    wait_until(lambda: said(api, "u%d" % a), 10, what="the update to run")
    assert d.stop() == 0


def test_worker_sigkill_twenty_times(fakeapi, tgrund):
    api = fakeapi("--count", "6000", "--chats", "300", "--users", "600", "--seed", "4",
                  "--rate", "250", "--fault", "sendMessage:latency_ms=2")
    expected = api.stats()["expected_echoes"]
    d = tgrund(api, conf={"workers": {"count": 2}, "limits": {"max_attempts": 25}}).wait_ready()
    rng = random.Random(3)
    kills = 0
    end = time.monotonic() + 100
    seen = set()
    while kills < 20:
        # Kill a random live worker that was not killed before (respawns back off).
        pids = wait_until(lambda: [p for p in d.worker_pids() if p not in seen],
                          max(end - time.monotonic(), 0),
                          what="a live worker to kill (%d kills so far)" % kills)
        victim = rng.choice(pids)
        seen.add(victim)
        os.kill(victim, signal.SIGKILL)
        kills += 1
    assert kills == 20
    st = wait_echoed(api, expected, timeout=120)
    assert st["missing"] == 0 and st["inversions"] == 0
    assert d.log().count("killed by signal 9") >= 20
    assert d.proc.alive()


def test_poison_update_is_dead_lettered_and_its_chat_goes_on(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, handler="crash", conf={"limits": {"max_attempts": 3}}).wait_ready()
    r = api.push_updates([message(501, "first"), message(501, "#crash"),
                          message(501, "after 1"), message(501, "after 2")])
    wait_echoed(api, 3, timeout=30)
    poison = r["first_id"] + 1
    log = d.log()
    assert "update %d (message): dead-lettered after 3 attempts" % poison in log
    # The chat went on after it, in order.
    order = [t for _, t in texts(api)]
    assert order == ["u%d" % r["first_id"], "u%d" % (poison + 1), "u%d" % (poison + 2)]
    assert d.stop() == 0
    # It stays in the journal's dead-letter table with its last error.
    import sqlite3
    db = sqlite3.connect(os.path.join(d.dir, "journal.db"))
    rows = db.execute("SELECT update_id, attempts, error FROM dead").fetchall()
    db.close()
    assert rows == [(poison, 3, "its worker died while it ran")]


def test_crash_storm_backs_off(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, handler="crash", conf={"workers": {"count": 1},
                                           "limits": {"max_attempts": 4}}).wait_ready()
    api.push_updates([message(600 + i, "#crash") for i in range(3)])
    assert d.proc.wait_log("crashing repeatedly; respawn in", 30)
    assert re.search(r"respawn in (\d+) ms \(backoff\)", d.log())
    assert d.proc.alive()


# ---- timeouts and heartbeats ----------------------------------------------------------

def block_then_next(fakeapi, tgrund, chat, block, update_timeout, kill_grace):
    """On the stubborn handler, "block <block>" and then "next" in one chat; once
    "next" is answered: the daemon, the blocking update's id, the sendMessage calls
    and when each of the two updates began ("b<id>")."""
    api = fakeapi()
    d = tgrund(api, handler="stubborn", conf={
        "workers": {"count": 2},
        "limits": {"update_timeout": update_timeout, "kill_grace": kill_grace}}).wait_ready()
    r = api.push_updates([message(chat, "block " + block), message(chat, "next")])
    a, b = r["first_id"], r["first_id"] + 1
    wait_until(lambda: any(t == "u%d" % b for _, t in texts(api)), 30)
    calls = texts(api)
    t_begin_a = [t for t, x in calls if x == "b%d" % a][0]
    t_begin_b = [t for t, x in calls if x == "b%d" % b][0]
    return d, a, calls, t_begin_a, t_begin_b


def test_timed_out_update_never_overlaps_the_next_of_its_chat(fakeapi, tgrund):
    """The handler ignores cancellation: the next update waits for the kill."""
    d, a, calls, t_begin_a, t_begin_b = block_then_next(fakeapi, tgrund, 700, "6", "1s", "1s")
    # b started only after a's worker was killed: update_timeout + kill_grace.
    assert t_begin_b - t_begin_a >= 1900, (t_begin_a, t_begin_b)
    assert "u%d" % a not in [x for _, x in calls]
    log = d.log()
    assert "update %d: running for" % a in log and "over update_timeout" in log
    assert "did not end within kill_grace" in log


def test_timed_out_update_that_ends_late_releases_keys_at_its_end(fakeapi, tgrund):
    d, _, _, t_begin_a, t_begin_b = block_then_next(fakeapi, tgrund, 701, "1.5", "500ms", "5s")
    assert t_begin_b - t_begin_a >= 1400, (t_begin_a, t_begin_b)
    assert "cancelled after update_timeout" in d.log()
    assert "killing the worker" not in d.log()


def test_spinning_handler_is_replaced_by_the_heartbeat(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, handler="stubborn", conf={
        "workers": {"count": 2},
        "limits": {"heartbeat_timeout": "1500ms", "max_attempts": 2}}).wait_ready()
    r = api.push_updates([message(800, "spin")] + [message(801 + i, "hi") for i in range(20)])
    assert d.proc.wait_log("no heartbeat for", 20)
    others = ["u%d" % (r["first_id"] + 1 + i) for i in range(20)]
    assert wait_until(lambda: set(others) <= {t for _, t in texts(api)}, 30)
    assert d.proc.wait_log("update %d (message): dead-lettered after 2 attempts"
                           % r["first_id"], 30)
    assert d.proc.alive()


def test_max_updates_recycles_workers(fakeapi, tgrund):
    api = fakeapi("--count", "400", "--chats", "40", "--mix", "message=1")
    d = tgrund(api, conf={"workers": {"count": 2, "max_updates": 50}})
    st = wait_echoed(api, 400, timeout=60)
    assert st["missing"] == 0 and st["duplicates"] == 0 and st["inversions"] == 0
    assert d.log().count("recycling it") >= 4
    assert "crashing repeatedly" not in d.log()


# ---- reload ---------------------------------------------------------------------------

def test_reload_under_load(fakeapi, tgrund):
    api = fakeapi("--count", "8000", "--chats", "200", "--users", "400", "--seed", "9",
                  "--rate", "1200")
    expected = api.stats()["expected_echoes"]
    d = tgrund(api, conf={"workers": {"count": 2}, "handler": {"tag": "v0"}}).wait_ready()
    conf_text = open(d.conf_path).read()
    seq = 0
    for v in range(1, 6):
        # The generation serving now answered under load before it is replaced.
        seq = wait_tagged(api, "v%d" % (v - 1), seq)
        with open(d.conf_path, "w") as f:
            f.write(conf_text.replace("tag = v0", "tag = v%d" % v))
        d.proc.signal(signal.SIGHUP)
        assert d.proc.wait_log("reload done: generation %d serves" % (v + 1), 20)
    # An invalid config is refused and the current generation keeps serving.
    with open(d.conf_path, "w") as f:
        f.write(conf_text + "\n[limits]\nconcurrency = lots\n")
    d.proc.signal(signal.SIGHUP)
    assert d.proc.wait_log("reload refused", 10)
    st = wait_echoed(api, expected, timeout=120)
    assert st["missing"] == 0 and st["duplicates"] == 0 and st["inversions"] == 0
    seen = {t.split(" ", 1)[1] for _, t in texts(api) if " " in t}
    assert {"v0", "v5"} <= seen, seen
    last = [t for _, t in texts(api)][-50:]
    assert all(t.endswith(" v5") for t in last), last[-5:]
    assert d.proc.alive()


def test_reload_during_a_reload_is_queued(fakeapi, tgrund):
    """Each generation takes 1.5 s to start: a second SIGHUP meanwhile waits its turn."""
    api = fakeapi()
    d = tgrund(api, handler="crash", conf={"handler": {"init": "slow"}}).wait_ready(20)
    d.proc.signal(signal.SIGHUP)
    assert d.proc.wait_log("starting worker generation 2", 10)
    # The second SIGHUP comes while generation 2 starts (its init takes 1.5 s).
    assert "reload done: generation 2" not in d.log()
    d.proc.signal(signal.SIGHUP)
    assert d.proc.wait_log("SIGHUP during a reload or start-up: queued", 10)
    assert d.proc.wait_log("running the reload queued during the last one", 20)
    assert wait_until(lambda: "reload done: generation 3 serves" in d.log(), 20), d.log()
    api.push_updates([message(950, "hi")])
    wait_echoed(api, 1, timeout=20)
    assert d.proc.alive()


def test_reload_with_a_broken_handler_keeps_serving(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api).wait_ready()
    conf_text = open(d.conf_path).read()
    with open(d.conf_path, "w") as f:
        f.write(conf_text.replace("echo_id.so", "bad_abi.so"))
    d.proc.signal(signal.SIGHUP)
    assert d.proc.wait_log("reload refused: the new workers failed to start", 15)
    api.push_updates([message(900, "still there")])
    wait_echoed(api, 1, timeout=20)
    assert d.proc.alive()


# ---- stop -----------------------------------------------------------------------------

def test_sigterm_with_500_slow_updates_then_restart_completes_them(fakeapi, tgrund):
    api = fakeapi()
    conf = {"workers": {"count": 2},
            "limits": {"shutdown_timeout": "2s", "kill_grace": "2s"}}
    d = tgrund(api, handler="slow", conf=conf).wait_ready()
    api.push_updates([message(10000 + i, "sleep 30") for i in range(500)])
    api.wait_stats(lambda s: s["handed_out"] >= 500, 20)
    wait_until(lambda: d.status()["in_flight"] == 500, 20, what="all 500 updates in the workers")
    t0 = time.monotonic()
    d.proc.signal(signal.SIGTERM)
    assert d.wait_exit(20) == 0
    assert time.monotonic() - t0 < 2 + 2 + 3
    assert api.stats()["echoed"] == 0
    conf["journal"] = {"path": os.path.join(d.dir, "journal.db")}
    conf["handler"] = {"max_sleep": "0.05"}
    d2 = tgrund(api, handler="slow", conf=conf).wait_ready()
    st = wait_echoed(api, 500, timeout=60)
    assert st["missing"] == 0 and st["duplicates"] == 0
    d2.stop()


# ---- disk faults -----------------------------------------------------------------------

def test_unwritable_journal_exits_2(fakeapi, tmp_path):
    api = fakeapi()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    st, log = run_check(BUILD, str(tmp_path), api.url,
                        conf={"journal": {"path": str(blocker / "journal.db")}})
    assert st == 2, log
    assert "journal" in log and str(blocker) in log


def test_corrupt_journal_exits_2(fakeapi, tmp_path):
    api = fakeapi()
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not an sqlite database at all" * 100)
    st, log = run_check(BUILD, str(tmp_path), api.url, conf={"journal": {"path": str(bad)}})
    assert st == 2, log
    assert "not a database" in log


def test_full_disk_pauses_polling_and_resumes_without_loss(fakeapi, tgrund, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, "cannot mount a small tmpfs: " + r.stderr
    try:
        api = fakeapi()
        d = tgrund(api, handler="slow",
                   conf={"journal": {"path": str(mnt / "journal.db")}}).wait_ready()
        api.push_updates([message(1100 + i, "warm up") for i in range(50)])
        wait_echoed(api, 50, timeout=20)
        # Fill the file system.
        filler = mnt / "filler"
        subprocess.run(["dd", "if=/dev/zero", "of=" + str(filler), "bs=64k"],
                       capture_output=True, timeout=20)
        # Slow updates: no completion frees journal pages while we watch.
        long_text = "sleep 3 " + "x" * 3000
        api.push_updates([message(1200 + i, long_text) for i in range(600)])
        assert d.proc.wait_log("polling paused until it can", 20)
        calls_before = api.stats()["calls"].get("getUpdates", 0)
        # A negative window: it spans a failed journal retry (one each second).
        time.sleep(1.5)
        # Paused: no getUpdates that would confirm the unwritten batch.
        assert api.stats()["calls"].get("getUpdates", 0) == calls_before
        filler.unlink()
        assert d.proc.wait_log("writable again; polling resumed", 20)
        st = wait_echoed(api, 650, timeout=90)
        assert st["missing"] == 0
        assert d.stop() == 0
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=20)
