"""lua.so: bots written in Lua, run on the worker's fibers, driven through the fake Bot API."""
import http.server
import json
import os
import re
import signal
import subprocess
import textwrap
import threading
import time
import urllib.parse

import pytest

from conftest import BUILD, SANITIZED  # noqa: F401
from daemon import run_check, wait_until
from updates import callback_query, message
from waits import sent_texts, wait_echoed, wait_log

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "worker", "examples")


SANITIZER_REPORTS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


@pytest.fixture(autouse=True)
def no_sanitizer_reports(procs):
    """Under make SANITIZE=1, a report from any process fails the test."""
    yield
    procs.stop_all()
    for argv, text in procs.logs():
        for what in SANITIZER_REPORTS:
            assert what not in text, "%s in the log of %s:\n%s" % (what, argv, text[-3000:])


def write(path, src):
    with open(path, "w") as f:
        f.write(textwrap.dedent(src))
    return path


def lua_conf(script, workers=1, conf=None, **handler):
    c = {"workers": {"count": workers}, "handler": {"script": script}}
    c["handler"].update(handler)
    for k, v in (conf or {}).items():
        c.setdefault(k, {}).update(v)
    return c


def start(fakeapi, tgrund, procs, src, api_args=(), workers=1, conf=None, **handler):
    """A fake API and a daemon running the Lua script `src` (source text)."""
    api = fakeapi(*api_args)
    script = write(os.path.join(procs.tmp, "bot.lua"), src)
    d = tgrund(api, handler="lua", conf=lua_conf(script, workers, conf, **handler))
    d.wait_ready()
    return api, d, script


def texts(api, chat=None):
    return [t for t, _ in sent_texts(api, chat)]


def report(api, uid, timeout=20):
    """The "u<uid> k=v ..." report of an update, as a dict (and "_text")."""
    pre = "u%d " % uid
    got = wait_until(lambda: [t for t in texts(api) if t.startswith(pre)], timeout)
    assert got, "update %d sent no report; messages: %r" % (uid, texts(api)[-20:])
    kv = dict(w.split("=", 1) for w in got[0].split() if "=" in w)
    kv["_text"] = got[0]
    return kv


def push(api, *updates):
    return api.push_updates(list(updates))["first_id"]


# ---- the examples ----------------------------------------------------------------------

def test_echo_lua_answers_every_message_in_order(fakeapi, tgrund, procs):
    api = fakeapi("--count", 300, "--chats", 20, "--mix", "message=1")
    d = tgrund(api, handler="lua",
               conf=lua_conf(os.path.join(EXAMPLES, "echo.lua"), workers=2))
    d.wait_ready()
    st = wait_echoed(api, api.stats()["expected_echoes"], 60)
    assert st["missing"] == 0 and st["duplicates"] == 0 and st["inversions"] == 0, st
    # Each text came back as a reply, with the same text.
    calls = api.calls("sendMessage")
    assert len(calls) == 300 and all(c["params"]["reply_parameters"]["message_id"]
                                     for c in calls)
    assert "lua: " + os.path.join(EXAMPLES, "echo.lua") + " loaded" in d.log()


RT = os.path.join(ROOT, "tests", "handlers", "rt_lua.lua")


def start_rt(fakeapi, tgrund, procs, api_args=(), conf=None, workers=1, **handler):
    api = fakeapi(*api_args)
    handler.setdefault("api", api.url)
    handler.setdefault("dir", procs.tmp)
    d = tgrund(api, handler="lua", conf=lua_conf(RT, workers, conf, **handler))
    d.wait_ready()
    return api, d


def test_callback_queries_are_answered(fakeapi, tgrund, procs):
    api = fakeapi()
    d = tgrund(api, handler="lua", conf=lua_conf(os.path.join(EXAMPLES, "echo.lua")))
    d.wait_ready()
    push(api, callback_query(5, "x"), callback_query(6, "y"))
    got = wait_until(lambda: api.calls("answerCallbackQuery") if
                     len(api.calls("answerCallbackQuery")) == 2 else None, 15)
    assert got, api.stats()
    assert {c["params"]["text"] for c in got} == {"got it"}


# ---- the update and the bot ------------------------------------------------------------

def test_update_fields_and_64_bit_ids(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs, tag="t1")
    big = 2 ** 53 + 1          # not exact as a double: must stay an integer
    uid = push(api, message(big, "fields", user_id=77))
    r = report(api, uid)
    assert r["chat"] == str(big) and r["raw"] == str(big), r
    assert r["chat_t"] == "integer" and r["raw_t"] == "integer", r
    assert (r["user"], r["attempt"], r["type"]) == ("77", "1", "message"), r
    assert (r["id"], r["same"], r["tag"], r["worker"]) == ("true", "true", "t1", "0/1"), r
    # The reply went to that exact chat id.
    assert any(int(c["params"]["chat_id"]) == big for c in api.calls("sendMessage"))


def test_call_result_and_error_table(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs)
    r = report(api, push(api, message(10, "call")))
    assert r["me"] != "nil" and "ekind" not in r, r
    assert (r["bad"], r["kind"], r["code"], r["ra"], r["maybe"]) == \
        ("nil", "api", "400", "0", "false"), r
    assert r["desc_ok"] == "true", r
    assert r["str"].startswith("api_error_400:"), r


def test_call_429_retry_after_reaches_the_error(fakeapi, tgrund, procs):
    # retry_after beyond [api] retry_after_max: returned, not retried.
    api, d = start_rt(fakeapi, tgrund, procs, conf={"api": {"retry_after_max": "1s"}},
                      api_args=("--fault", "getMe:kind=429,retry_after=7"))
    r = report(api, push(api, message(10, "call")))
    assert (r["me"], r["ekind"], r["ecode"], r["era"]) == ("nil", "api", "429", "7"), r


def test_reply_with_params_and_send_text(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs)
    uid = push(api, message(20, "reply"))
    got = wait_until(lambda: [c["params"] for c in api.calls("sendMessage")
                              if c["params"].get("text", "").startswith("u%d " % uid)], 15)
    assert got, texts(api)
    p = got[0]
    assert p["parse_mode"] == "HTML" and int(p["chat_id"]) == 20, p
    kb = p["reply_markup"]
    if isinstance(kb, str):
        kb = json.loads(kb)
    assert kb == {"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]}, p
    assert wait_until(lambda: "k%d other" % uid in texts(api, 21), 10), texts(api)


# ---- fibers: sleep, spawn, all, waiters, locks ----------------------------------------

def test_sleep_yields_to_other_updates(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs)
    first = push(api, *[message(100 + i, "sleep 0.5") for i in range(50)])
    t0 = time.monotonic()
    rs = [report(api, first + i) for i in range(50)]
    # 50 half-second sleeps in one worker overlap: well under 50 x 0.5 s.
    assert time.monotonic() - t0 < 10
    assert all(r["ok"] == "true" and 450 <= int(r["ms"]) < 3000 for r in rs), rs[:3]


def test_spawn_join_results_errors_and_timeout(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs)
    uid = push(api, message(30, "spawn"), message(30, "after"))
    r = report(api, uid)
    assert (r["ok"], r["a"], r["b"], r["again"]) == ("true", "a", "2", "a"), r
    assert 190 <= int(r["ms"]) < 2000, r
    assert (r["gok"], r["gkind"]) == ("nil", "error"), r
    assert "child_boom" in r["gdesc"], r
    assert (r["hok"], r["hkind"]) == ("nil", "timeout"), r
    # The failed child's traceback is in the log; it did not fail the update.
    wait_log(d.proc, "lua: a fiber spawned by update %d failed: rt_lua.lua:" % uid)
    assert "child boom" in d.log()
    # The attached child that was still running held the update (and its chat).
    after = report(api, uid + 1)
    sent = {c["params"]["text"].split()[0]: c["t_ms"] for c in api.calls("sendMessage")}
    assert sent["u%d" % (uid + 1)] - sent["u%d" % uid] >= 800, (sent, after)
    d.stop()
    assert "done 2, failed 0" in d.log()


def test_detached_fiber_outlives_its_update(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs)
    uid = push(api, message(31, "detached"))
    report(api, uid)
    assert wait_until(lambda: "k%d detached" % uid in texts(api, 31), 10), texts(api, 31)
    msgs = {c["params"]["text"]: c["t_ms"] for c in api.calls("sendMessage")}
    assert msgs["k%d detached" % uid] - msgs["u%d spawned=true" % uid] >= 400


def test_all_settled_keeps_input_order(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs)
    uid = push(api, message(40, "all settled"))
    r = report(api, uid)
    assert (r["all_ok"], r["n"]) == ("false", "4"), r
    wait_log(d.proc, "lua: ctx:all function 3 of update %d failed: table: 0x" % uid)
    assert r["r1"] == "true:slow:1" and r["r2"] == "true:fast", r
    assert r["r3"] == "false:error" and r["r4"].startswith("true:"), r
    assert r["order"] == "2,3,1", r
    assert 290 <= int(r["ms"]) < 2000, r


def test_all_fail_fast_cancels_the_rest(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs)
    r = report(api, push(api, message(41, "all failfast")))
    assert r["all_ok"] == "false", r
    assert r["r3"] == "false:error", r
    assert r["r1"] == "true:cancelled:1", r      # its sleep returned nil, err
    assert int(r["ms"]) < 290, r


def test_all_timeout(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs)
    r = report(api, push(api, message(42, "alltimeout")))
    # A function that returns after its sleep was cut short counts as done;
    # one that raises on it is the timed-out slot.
    assert (r["ok"], r["s1"], r["s2"]) == ("false", "true:cancelled", "true:quick"), r
    assert r["s3"] == "false:timeout", r
    assert 190 <= int(r["ms"]) < 2000, r


def test_absurd_durations_are_refused_or_capped(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs)
    r = report(api, push(api, message(44, "bigsleep")))
    assert (r["nan"], r["huge"], r["neg"]) == ("false", "true", "true"), r


def test_waiters(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs)
    r = report(api, push(api, message(43, "waiter")))
    assert r["ok"] == "true" and 290 <= int(r["ms"]) < 2000, r
    assert (r["ekind"], r["tok"], r["tkind"]) == ("invalid", "nil", "timeout"), r


def test_lock_orders_fibers_of_different_chats(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs)
    first = push(api, message(50, "lock k1 0.5"), message(51, "lock k1 0"))
    a, b = report(api, first), report(api, first + 1)
    assert a["got"] == "true" and int(a["waited"]) < 100, a
    assert b["got"] == "true" and int(b["waited"]) >= 400, b
    # Not re-entrant; <close> released it, so unlock finds nothing held.
    assert (a["again"], a["akind"], a["closed"]) == ("nil", "invalid", "true"), a
    assert (a["un"], a["ukind"]) == ("nil", "invalid"), a
    assert a["m"] == "true,false", a        # lock:unlock() releases once


# ---- HTTP and files ---------------------------------------------------------------------

def test_http_download_upload(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs)
    r = report(api, push(api, message(60, "http")))
    assert r["status"] == "200" and r["ct"].startswith("application/json"), r
    assert r["total"] == "1", r
    assert (r["dl"], r["content"]) == ("true", "hello_from_lua"), r
    assert (r["up"], r["mem"]) == ("true", "true"), r
    assert (r["bad"], r["bkind"]) == ("nil", "invalid"), r
    assert (r["refused"], r["rkind"]) == ("nil", "network"), r
    assert (r["missing"], r["mdkind"], r["mdcode"]) == ("nil", "api", "400"), r
    docs = api.calls("sendDocument")
    assert len(docs) == 2 and any(c["params"].get("caption") == "k%d" % int(r["_text"].split()[0][1:])
                                  for c in docs), docs


def test_json_helpers(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs)
    r = report(api, push(api, message(61, "json")))
    assert (r["a"], r["b"], r["n"]) == ("[]", "{}", "true"), r
    assert (r["i"], r["it"], r["f"], r["l3"]) == ("9007199254740993", "integer", "1.5", "true"), r
    assert (r["mixed"], r["nan"], r["cyc"], r["cycmsg"]) == ("false", "false", "false", "true"), r
    assert (r["dec"], r["decerr"]) == ("nil", "true"), r


def test_every_config_print_and_os_exit(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs, every="0.1")
    time.sleep(0.05)
    uid = push(api, message(62, "exit"))
    r = report(api, uid)
    assert (r["ok"], r["msg"]) == ("false", "true"), r
    wait_log(d.proc, "lua: print works 42")
    r = wait_until(lambda: (lambda x: x if int(x["ticks"]) >= 5 else None)(
        report(api, push(api, message(63, "ticks")))), 10)
    assert r and int(r["ticks"]) >= 5, r
    assert d.worker_pids()      # os.exit did not end the worker


# ---- errors -------------------------------------------------------------------------------

def test_lua_error_fails_the_update_with_its_traceback(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs)
    pids = d.worker_pids()
    uid = push(api, message(70, "error"))
    wait_log(d.proc, "update %d (message) failed in worker 0" % uid)
    log = d.log()
    head = "lua: update %d (message) failed: rt_lua.lua:" % uid
    assert head in log and "boom %d" % uid in log, log
    # The traceback, a line each: the function that raised and its callers.
    tb = [ln for ln in log.splitlines() if "lua: update %d (message):   " % uid in ln]
    assert any("stack traceback:" in ln for ln in tb), tb
    assert sum("rt_lua.lua:" in ln for ln in tb) >= 3, tb
    assert any("inner" in ln for ln in tb) and any("middle" in ln for ln in tb), tb
    # The worker lives on and serves the next update.
    r = report(api, push(api, message(70, "fields")))
    assert r["attempt"] == "1" and d.worker_pids() == pids


def test_handler_returning_false_or_nil_err_fails(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs)
    a = push(api, message(71, "fail false"), message(72, "fail nil"))
    wait_log(d.proc, "update %d (message) failed in worker" % a)
    wait_log(d.proc, "update %d (message) failed in worker" % (a + 1))
    assert "lua: update %d (message) failed: the handler returned false" % a in d.log()
    assert "lua: update %d (message) failed: the handler returned nil, told to fail" \
        % (a + 1) in d.log()


def test_lua_error_is_retried_then_dead_lettered(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs,
                      conf={"limits": {"max_attempts": 2, "retry_delay": "100ms"}})
    uid = push(api, message(73, "error"), message(73, "fields"))
    wait_until(lambda: d.status()["dead_letters"] == 1, 20, what="the dead letter")
    log = d.log()
    # Each attempt logs the error with its traceback.
    assert log.count("lua: update %d (message) failed: rt_lua.lua:" % uid) == 2, log
    assert log.count("lua: update %d (message):   stack traceback:" % uid) == 2, log
    # The retry and the dead letter carry the error's first line.
    m = re.search(r"update %d: retrying \(attempt 2\) in \d+ ms: the handler failed: "
                  r"(rt_lua\.lua:\d+: boom %d)$" % (uid, uid), log, re.M)
    assert m, log
    why = "the handler failed: " + m.group(1)
    assert "update %d (message): dead-lettered after 2 attempts: %s" % (uid, why) in log
    dl = d.ctl("dead-letters", "show", uid)["dead_letter"]
    assert (dl["attempts"], dl["error"]) == (2, why), dl
    # The chat's next update ran after it, once.
    r = report(api, uid + 1)
    assert r["attempt"] == "1"
    assert d.status()["done"] == 1
    # ctx:no_retry(): dead-lettered after its first attempt.
    final = push(api, message(74, "fail final"))
    wait_until(lambda: d.status()["dead_letters"] == 2, 10, what="the second dead letter")
    dl = d.ctl("dead-letters", "show", final)["dead_letter"]
    assert (dl["attempts"], dl["error"]) == \
        (1, "the handler failed: the handler returned nil, told to fail"), dl
    assert "update %d: retrying" % final not in d.log()


def test_waits_under_coroutines_c_calls_and_collections(fakeapi, tgrund, procs):
    """Many threads parked inside C calls while others run, resume
    coroutines, sort with waiting comparators and run full collections."""
    api, d = start_rt(fakeapi, tgrund, procs, conf={"limits": {"concurrency": 300}})
    first = push(api, *[message(1000 + i % 30, "stress") for i in range(300)])
    st = api.wait_stats(lambda s: s["echoed"] >= 300, 60)
    assert st["echoed"] == 300 and st["inversions"] == 0, st
    for i in (0, 137, 299):
        r = report(api, first + i)
        assert (r["first"], r["second"], r["ok"], r["late"]) == ("2", "42", "false", "true"), r
        assert (r["sorted"], r["sum"]) == ("1,3,5,9", "1275"), r
    assert "lua: update" not in d.log()


def test_stale_ctx_raises_instead_of_touching_freed_memory(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs)
    report(api, push(api, message(73, "stale")))
    r = report(api, push(api, message(73, "usestale")))
    assert (r["ok"], r["ended"]) == ("false", "true"), r


def test_deep_c_recursion_is_a_lua_error_not_a_crash(fakeapi, tgrund, procs):
    # Lua bounds C calls (LUAI_MAXCCALLS, 200); the default fiber stack holds that.
    api, d = start_rt(fakeapi, tgrund, procs)
    pids = d.worker_pids()
    a = push(api, message(74, "deep 150"), message(75, "deep 100000"))
    assert report(api, a)["res"] == "bottom"
    assert "stack_overflow" in report(api, a + 1)["res"]
    assert d.worker_pids() == pids


def test_cancel_makes_every_wait_return_cancelled(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs, conf={"limits": {"update_timeout": "1s"}})
    t0 = time.monotonic()
    uid = push(api, message(76, "cancel"))
    wait_log(d.proc, "cancel-test:", 15)
    assert time.monotonic() - t0 < 10
    # sleep, call and waiter all fail with kind "cancelled"; an uncontended
    # lock does not wait, so it is taken.
    assert "lua: cancel-test: nil cancelled true nil cancelled nil cancelled true nil" \
        in d.log(), d.log()
    wait_log(d.proc, "update %d: running for" % uid)
    assert "over update_timeout; cancelling it" in d.log()


def test_shutdown_cancels_a_waiting_handler(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs, conf={"limits": {"shutdown_timeout": "1s"}})
    uid = push(api, message(79, "cancel"))
    wait_until(lambda: api.stats()["handed_out"] >= 1, 10, what="the update handed out")
    time.sleep(0.2)         # into its 30 s sleep
    t0 = time.monotonic()
    d.proc.signal(signal.SIGTERM)
    wait_log(d.proc, "cancel-test:", 15)
    # Cancelled at shutdown_timeout, not after the 30 s sleep.
    assert time.monotonic() - t0 < 10
    assert "lua: cancel-test: nil cancelled true nil cancelled nil cancelled true nil" \
        in d.log(), d.log()
    assert d.proc.wait(20) == 0
    assert "fetched 1, done 1" in d.log()     # it returned normally after the cancel


def test_memory_limit_is_a_lua_error_not_an_oom_kill(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs, lua_memory_limit="4m")
    pids = d.worker_pids()
    uid = push(api, message(77, "memory 16"))
    wait_log(d.proc, "lua: update %d (message) failed: not enough memory" % uid)
    assert "lua_memory_limit = 4194304" in d.log()
    # Under the limit it works, in the same worker.
    r = report(api, push(api, message(77, "memory 1")))
    assert r["n"] == "1024" and d.worker_pids() == pids


def test_bad_memory_limit_stops_the_start(fakeapi, tgrund, procs):
    api = fakeapi()
    st, log = run_check(BUILD, procs.tmp, api.url, handler="lua",
                        conf=lua_conf(RT, lua_memory_limit="lots"))
    assert st == 2, log
    assert "lua_memory_limit = lots: a size is expected" in log


def test_busy_loop_is_caught_by_the_heartbeat(fakeapi, tgrund, procs):
    api, d = start_rt(fakeapi, tgrund, procs,
                      conf={"limits": {"heartbeat_timeout": "1s"}})
    pids = d.worker_pids()
    uid = push(api, message(78, "busy"))
    wait_log(d.proc, "no heartbeat for", 20)
    # Retried in a fresh worker, where attempt 2 does not spin.
    r = report(api, uid, 30)
    assert r["attempt"] == "2", r
    assert d.worker_pids() != pids
    assert "update %d: retrying (attempt 2)" % uid in d.log()


# ---- loading and reloading ------------------------------------------------------------------

BOT_V1 = """
bot.on_update(function(ctx, update)
  return ctx:reply("u" .. ctx.update_id .. " v1")
end)
"""
BOT_V2 = """
return {
  message = function(ctx, msg)
    return ctx:reply("u" .. ctx.update_id .. " v2 " .. msg.text)
  end,
}
"""
BOT_BROKEN = """
bot.on_update(function(ctx, update)
  return ctx:reply("u" .. ctx.update_id .. " broken"
end)
"""


def test_reload_with_a_changed_script(fakeapi, tgrund, procs):
    api, d, script = start(fakeapi, tgrund, procs, BOT_V1)
    assert report(api, push(api, message(80, "a")))["_text"].endswith(" v1")
    write(script, BOT_V2)
    d.proc.signal(signal.SIGHUP)
    wait_log(d.proc, "reload done")
    assert report(api, push(api, message(80, "b")))["_text"].endswith(" v2 b")


def test_syntax_error_is_refused_on_reload_and_the_old_script_serves(fakeapi, tgrund, procs):
    api, d, script = start(fakeapi, tgrund, procs, BOT_V1)
    write(script, BOT_BROKEN)
    d.proc.signal(signal.SIGHUP)
    wait_log(d.proc, "reload refused")
    # The error names the file and the line.
    assert "lua: cannot load the script %s: bot.lua:4: ')' expected" % script in d.log(), \
        d.log()
    assert report(api, push(api, message(81, "c")))["_text"].endswith(" v1")


def test_script_errors_stop_the_start(fakeapi, tgrund, procs):
    api = fakeapi()
    cases = {
        "syntax": (BOT_BROKEN, ":4: ')' expected"),
        "runtime": ("local x = nil\nx.y = 1\n", ":2: attempt to index a nil value"),
        "nohandler": ("local x = 1\n", "the script registers no handler"),
        "both": ("bot.on_update(print)\nreturn { message = print }\n",
                 "both calls bot.on_update and returns"),
        "badtable": ("return { message = 1 }\n", "key message holds a number"),
        "every": ("bot.on_update(function(ctx) bot.every(1, print) end)\n"
                  "bot.every(0, print)\n", "bad argument #1 to 'every'"),
    }
    for name, (src, want) in cases.items():
        path = write(os.path.join(procs.tmp, name + ".lua"), src)
        st, log = run_check(BUILD, procs.tmp, api.url, handler="lua", conf=lua_conf(path))
        assert st == 2, (name, log)
        assert want in log, (name, log)
    st, log = run_check(BUILD, procs.tmp, api.url, handler="lua",
                        conf=lua_conf(os.path.join(procs.tmp, "missing.lua")))
    assert st == 2 and "missing.lua: cannot open: No such file" in log, log


def test_check_mode_compiles_the_script(fakeapi, tgrund, procs):
    api = fakeapi()
    good = write(os.path.join(procs.tmp, "good.lua"), BOT_V1)
    st, log = run_check(BUILD, procs.tmp, api.url, handler="lua", conf=lua_conf(good),
                        args=["-t"])
    assert st == 0, log
    bad = write(os.path.join(procs.tmp, "bad.lua"), BOT_BROKEN)
    st, log = run_check(BUILD, procs.tmp, api.url, handler="lua", conf=lua_conf(bad),
                        args=["-t"])
    assert st == 2, log
    assert "lua: cannot load the script %s: bad.lua:4: ')' expected" % bad in log, log
    assert api.stats()["calls"].get("getUpdates", 0) == 0



# ---- the real bot example: keyboard, conversation, HTTP ----------------------------------

class LocalService:
    """An HTTP server on loopback, in a thread of the test, at self.url."""

    def serve(self, handler, path):
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = "http://127.0.0.1:%d%s" % (self.srv.server_address[1], path)
        self.thread = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()
        self.thread.join(10)


class RateService(LocalService):
    """A tiny exchange-rate service on loopback: GET /latest?from=EUR&to=USD."""

    def __init__(self):
        calls = self.calls = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                calls.append((q["from"][0], q["to"][0], self.headers.get("Accept")))
                body = json.dumps({"base": q["from"][0],
                                   "rates": {q["to"][0]: 1.5}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.serve(H, "/latest")


class EchoService(LocalService):
    """Answers any request with its method, headers and body, as JSON."""

    def __init__(self):
        class H(http.server.BaseHTTPRequestHandler):
            def do_PUT(self):
                n = int(self.headers.get("Content-Length", 0))
                body = json.dumps({"method": self.command,
                                   "headers": {k.lower(): v for k, v in self.headers.items()},
                                   "body": self.rfile.read(n).decode()}).encode()
                self.send_response(201)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.serve(H, "/echo")


def test_http_headers_and_json_body_reach_the_service(fakeapi, tgrund, procs):
    svc = EchoService()
    try:
        api, d = start_rt(fakeapi, tgrund, procs, echo_url=svc.url)
        r = report(api, push(api, message(64, "httpecho")))
    finally:
        svc.stop()
    assert (r["status"], r["method"], r["xa"], r["xb"]) == ("201", "PUT", "1", "2"), r
    assert r["ct"] == "application/json", r
    assert json.loads(r["body"]) == {"a": 1, "l": []}, r


@pytest.fixture
def rates(procs):
    r = RateService()
    yield r
    r.stop()


def test_converter_example_keyboard_conversation_http(fakeapi, tgrund, procs, rates):
    api = fakeapi()
    conf = lua_conf(os.path.join(EXAMPLES, "converter.lua"), rates_url=rates.url)
    d = tgrund(api, handler="lua", conf=conf).wait_ready()

    def last(chat):
        got = wait_until(lambda: [c["params"] for c in api.calls()
                                  if int(c["params"].get("chat_id", 0)) == chat], 10)
        return got[-1]

    push(api, message(90, "/convert"))
    assert wait_until(lambda: any("Which currency" in t for t in texts(api, 90)), 10)
    kb = last(90)["reply_markup"]
    kb = json.loads(kb) if isinstance(kb, str) else kb
    assert [b["callback_data"] for b in kb["inline_keyboard"][0]] == \
        ["from:EUR", "from:USD", "from:GBP"]
    n = len(api.calls("editMessageText"))
    push(api, callback_query(90, "from:EUR"))
    assert wait_until(lambda: len(api.calls("editMessageText")) > n, 10)
    edit = api.calls("editMessageText")[-1]["params"]
    assert edit["text"] == "EUR into which currency?", edit
    push(api, callback_query(90, "to:USD"))
    assert wait_until(lambda: api.calls("editMessageText")[-1]["params"]["text"] ==
                      "How much EUR?", 10)
    # Another chat's conversation is its own.
    push(api, message(91, "100"))
    assert wait_until(lambda: any(t.startswith("Send /convert") for t in texts(api, 91)), 10)
    push(api, message(90, "100"))
    assert wait_until(lambda: "100 EUR = 150.00 USD" in texts(api, 90), 10), texts(api, 90)
    assert rates.calls == [("EUR", "USD", "application/json")]
    assert len(api.calls("answerCallbackQuery")) == 2
    # The conversation is over: a number now gets the help text.
    push(api, message(90, "5"))
    assert wait_until(lambda: texts(api, 90)[-1].startswith("Send /convert"), 10)
    assert "lua: update" not in d.log(), d.log()     # no update failed


def readme_block(lang):
    """The first `lang` block of the README's "Writing a bot in Lua"."""
    text = open(os.path.join(ROOT, "README.md")).read()
    part = text.split("## Writing a bot in Lua", 1)[1]
    return part.split("```%s\n" % lang, 1)[1].split("```", 1)[0]


def readme_lua():
    return readme_block("lua")


def test_readme_lua_config_checks(fakeapi, procs):
    """The README's config, with this build's paths, passes tgrund -t."""
    api = fakeapi()
    script = write(os.path.join(procs.tmp, "mybot.lua"), readme_lua())
    ini = readme_block("ini")
    assert "/usr/local/lib/tgrun/handlers/lua.so" in ini and "/etc/tgrun/mybot.lua" in ini
    ini = ini.replace("/usr/local/lib/tgrun/handlers/lua.so",
                      os.path.join(BUILD, "handlers", "lua.so"))
    ini = ini.replace("/etc/tgrun/mybot.lua", script)
    conf = write(os.path.join(procs.tmp, "mybot.conf"),
                 "[bot]\ntoken_file = %s\napi_url = %s\n[journal]\nenabled = no\n%s"
                 % (write(os.path.join(procs.tmp, "token"), "1:abc\n"), api.url, ini))
    r = subprocess.run([os.path.join(BUILD, "tgrund"), "-t", "-c", conf],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "configuration and handler are valid" in r.stdout


def test_readme_lua_bot_runs_as_written(fakeapi, tgrund, procs):
    api, d, script = start(fakeapi, tgrund, procs, readme_lua())
    push(api, message(95, "/start"))
    assert wait_until(lambda: "Hello! Press the button." in texts(api, 95), 10), texts(api, 95)
    push(api, message(95, "hi"), callback_query(95, "pressed"))
    assert wait_until(lambda: 'You said "hi" (message 2 here)' in texts(api, 95), 10), \
        texts(api, 95)
    assert [c["params"]["text"] for c in api.calls("answerCallbackQuery")] == ["Pressed!"]
    assert len(api.calls("sendChatAction")) == 1
    # The error the README shows, with its traceback, a line each.
    write(script, readme_lua().replace("msg.chat.id] = (", "msg.chat.nope.id] = ("))
    d.proc.signal(signal.SIGHUP)
    wait_log(d.proc, "reload done")
    uid = push(api, message(95, "boom"))
    wait_log(d.proc, "lua: update %d (message) failed: bot.lua:7: attempt to index a nil "
             "value (field 'nope')" % uid)
    wait_log(d.proc, "lua: update %d (message):   bot.lua:7: in function <bot.lua:5>" % uid)
    assert "lua: update %d (message):   stack traceback:" % uid in d.log()
    assert "[C]: in ?" not in d.log()


REQUIRE_BOT = """
local found = {}
for _, m in ipairs({ "near", "far" }) do
  local ok, mod = pcall(require, m)
  found[#found + 1] = m .. "=" .. tostring(ok and mod.word)
end
bot.on_update(function(ctx, update)
  bot.log(4, "numeric-level", 1, true, nil)
  return ctx:reply("u" .. ctx.update_id .. " " .. table.concat(found, " "))
end)
"""


def test_require_next_to_the_script_or_from_lua_path(fakeapi, tgrund, procs):
    libdir = os.path.join(procs.tmp, "lib")
    os.makedirs(libdir)
    write(os.path.join(procs.tmp, "near.lua"), 'return { word = "near" }\n')
    write(os.path.join(libdir, "far.lua"), 'return { word = "far" }\n')
    api, d, _ = start(fakeapi, tgrund, procs, REQUIRE_BOT)
    uid = push(api, message(96, "x"))
    assert wait_until(lambda: "u%d near=near far=false" % uid in texts(api, 96), 10), \
        texts(api, 96)
    wait_log(d.proc, "[warn] worker 0: lua: numeric-level 1 true nil")
    # [handler] lua_path replaces the script's directory; ";;" is Lua's default.
    d.stop()
    d2 = tgrund(api, handler="lua", conf=lua_conf(os.path.join(procs.tmp, "bot.lua"),
                                                 lua_path=libdir + "/?.lua;;"))
    d2.wait_ready()
    uid = push(api, message(97, "x"))
    assert wait_until(lambda: "u%d near=false far=far" % uid in texts(api, 97), 10), \
        texts(api, 97)
