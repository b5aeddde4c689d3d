"""A hostile Bot API: scripted getUpdates answers with bad ids, huge updates and
oversized answers. The master never aborts, nothing is dropped without a log
line, and the offset always moves past what was received."""
import json

from waits import wait_log, wait_until

INT64_MAX = 2**63 - 1


def upd(uid, chat=700, text=None):
    return {"update_id": uid, "message": {
        "message_id": 1, "date": 1700000000, "text": text or "hi",
        "chat": {"id": chat, "type": "private"},
        "from": {"id": chat, "is_bot": False, "first_name": "A"}}}


def answer(*updates):
    return {"body": json.dumps({"ok": True, "result": list(updates)})}


def started(fakeapi, tgrund, **kw):
    """A fake Bot API, and a tgrund polling it."""
    api = fakeapi()
    d = tgrund(api, **kw)
    d.wait_ready()
    return api, d


def script(api, *answers):
    return api.control("/__fake/script", "POST", {"answers": list(answers)})


def offsets(api):
    return api.control("/__fake/script")["offsets"]


def echoed(api):
    return [c["params"].get("text") for c in api.calls("sendMessage")]


def test_update_id_zero_runs(fakeapi, tgrund):
    api, d = started(fakeapi, tgrund)
    script(api, answer(upd(0)))
    assert wait_until(lambda: "u0" in echoed(api), 15, what="update 0 echoed")
    # The next poll confirms it.
    assert wait_until(lambda: 1 in offsets(api), 10, what="offset 1 asked")
    assert d.stop() == 0


def test_update_id_zero_replayed_from_the_journal(fakeapi, tgrund):
    """Update 0 still running at a stop stays journaled; the next start replays
    it instead of aborting (which, under systemd, was a crash loop)."""
    api = fakeapi()
    d = tgrund(api, handler="slow", conf={"limits": {"shutdown_timeout": "1s"}})
    d.wait_ready()
    script(api, answer(upd(0, text="sleep 60")))
    assert wait_until(lambda: 1 in offsets(api), 10, what="update 0 confirmed")
    assert d.stop() == 0
    assert "update 0: cancelled by the stop" in d.log()
    d.start()
    wait_log(d.proc, "journal: replaying 1 unfinished updates", timeout=15)
    assert wait_until(lambda: d.log().count("workers ready") == 2, 15,
                      what="the second start ready")
    assert d.proc.alive()
    # Reading the offset is not an error (it once logged one at every start).
    assert "read offset" not in d.log()
    assert d.stop() == 0


def test_ids_out_of_order_all_run(fakeapi, tgrund):
    api, d = started(fakeapi, tgrund)
    script(api, answer(upd(41, chat=701), upd(40, chat=702)))
    assert wait_until(lambda: {"u40", "u41"} <= set(echoed(api)), 15,
                      what="both updates of [41, 40] echoed")
    assert wait_until(lambda: 42 in offsets(api), 10, what="offset 42 asked")
    assert d.stop() == 0


def test_update_below_the_offset_is_dropped_with_a_line(fakeapi, tgrund):
    api, d = started(fakeapi, tgrund)
    script(api, answer(upd(50)), answer(upd(45), upd(51)))
    assert wait_until(lambda: "u51" in echoed(api), 15, what="u51 echoed")
    wait_log(d.proc, "update 45: below offset 51")
    assert "u45" not in echoed(api)
    assert d.stop() == 0


def test_negative_and_int64_max_ids_are_dead_lettered(fakeapi, tgrund):
    api, d = started(fakeapi, tgrund)
    script(api, answer(upd(-5, chat=703), upd(60, chat=704), upd(INT64_MAX, chat=705)))
    assert wait_until(lambda: "u60" in echoed(api), 15, what="u60 echoed")
    wait_log(d.proc, "update -5 (message): dead-lettered without running: a negative update_id")
    wait_log(d.proc, "update %d (message): dead-lettered without running" % INT64_MAX)
    # The offset moves as far as it can, and no signed overflow happened
    # (UBSan aborts the master under SANITIZE=1).
    assert wait_until(lambda: INT64_MAX in offsets(api), 10, what="offset INT64_MAX")
    assert "u-5" not in echoed(api)
    assert d.proc.alive()
    assert d.stop() == 0


def test_update_over_8mib_is_dead_lettered_and_its_chat_goes_on(fakeapi, tgrund):
    api, d = started(fakeapi, tgrund)
    big = json.dumps({"ok": True, "result": [upd(80, chat=706, text="@PAD@"),
                                              upd(81, chat=706)]})
    script(api, {"body": big, "pad": 9 << 20})
    assert wait_until(lambda: "u81" in echoed(api), 30, what="the next update of its chat")
    wait_log(d.proc, "update 80 (message): dead-lettered without running: larger than "
                "the 8 MiB a worker takes")
    assert "u80" not in echoed(api)
    assert d.stop() == 0


def test_answer_over_64mib_is_split_then_skipped(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, conf={"poll": {"limit": 2}})
    d.wait_ready()
    huge = json.dumps({"ok": True, "result": [upd(90, text="@PAD@"), upd(91)]})
    one = json.dumps({"ok": True, "result": [upd(90, text="@PAD@")]})
    script(api, {"body": huge, "pad": 65 << 20}, {"body": one, "pad": 65 << 20},
           answer(upd(91)))
    wait_log(d.proc, "asking for 1 updates at a time", timeout=60)
    wait_log(d.proc, "update 90: over 64 MiB", timeout=60)
    assert wait_until(lambda: "u91" in echoed(api), 30, what="u91 echoed")
    # The poll after the skip asks past update 90.
    assert offsets(api)[2] == 91
    assert d.stop() == 0


def test_updates_a_worker_cannot_decode_are_dead_lettered(fakeapi, tgrund):
    """Well-formed JSON that jansson refuses (\\u0000, a 30-digit integer, 1e400)
    used to be counted as a failure and deleted; now it is a dead letter with
    its reason, and its chat goes on."""
    api, d = started(fakeapi, tgrund)
    nul = upd(100, chat=707, text="a\x00b")          # json.dumps writes \u0000
    big = upd(101, chat=707)
    big["message"]["message_id"] = 10**30
    body = json.dumps({"ok": True, "result": [nul, big, upd(102, chat=707),
                                              upd(103, chat=707, text="@REAL@")]})
    body = body.replace('"@REAL@"', "1e400")
    script(api, {"body": body})
    assert wait_until(lambda: "u102" in echoed(api), 15, what="u102 echoed")
    wait_log(d.proc, "update 100 (message): dead-lettered without running: a worker "
                     "cannot decode it: \\u0000 in a string")
    wait_log(d.proc, "update 101 (message): dead-lettered without running: a worker "
                     "cannot decode it: an integer out of 64-bit range")
    wait_log(d.proc, "update 103 (message): dead-lettered without running: a worker "
                     "cannot decode it: a number that overflows a double")
    assert not {"u100", "u101", "u103"} & set(echoed(api))
    assert d.stop() == 0
