"""A handler that fails: its update is retried in place after a delay, then dead-lettered with its error."""
import os
import re

from test_lua import no_sanitizer_reports  # noqa: F401 (autouse: SANITIZE=1 reports fail)
from updates import message
from waits import sent_texts, wait_echoed, wait_log, wait_until


# flaky.so's tgrun_fail text for attempt N, as the master escapes it.
def flaky_error(n):
    return "the handler failed: flaky: attempt %d fails \\x1b[2J as told" % n


def conf(**limits):
    c = {"workers": {"count": 2}, "limits": {"retry_delay": "200ms"}}
    c["limits"].update(limits)
    return c


def texts(api, chat):
    return [t for t, _ in sent_texts(api, chat)]


def retry_delays(log, uid):
    """{attempt: delay in ms} from the master's "retrying" lines for `uid`."""
    return {int(a): int(ms) for a, ms in
            re.findall(r"update %d: retrying \(attempt (\d+)\) in (\d+) ms" % uid, log)}


def test_failed_update_is_retried_in_place_then_succeeds(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, handler="flaky", conf=conf(max_attempts=3)).wait_ready()
    r = api.push_updates([message(500, "#fail2 first"), message(500, "second"),
                          message(501, "other chat")])
    a = r["first_id"]
    wait_echoed(api, 3, timeout=30)
    # The chat's second update waited for the first one's third attempt.
    assert texts(api, 500) == ["u%d a3" % a, "u%d a1" % (a + 1)]
    assert api.stats()["inversions"] == 0
    # Another chat did not wait.
    (other, t_other), = sent_texts(api, 501)
    assert other == "u%d a1" % (a + 2)
    assert t_other < sent_texts(api, 500)[0][1]
    log = d.log()
    # Growing delays with jitter: [base/2, base], then [base, 2 base].
    delays = retry_delays(log, a)
    assert sorted(delays) == [2, 3], log
    assert 100 <= delays[2] <= 200 and 200 <= delays[3] <= 400, delays
    # The handler's text, escaped, cut at its first line.
    assert "update %d: retrying (attempt 2) in %d ms: %s" % (a, delays[2], flaky_error(1)) \
        in log
    assert "\x1b" not in log and "second line" not in log
    st = d.status()
    assert (st["done"], st["failed"], st["retried"], st["dead_letters"]) == (3, 2, 2, 0), st
    assert d.stop() == 0


def test_dead_lettered_after_max_attempts_with_the_last_error(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, handler="flaky", conf=conf(max_attempts=2)).wait_ready()
    r = api.push_updates([message(510, "#fail9 never"), message(510, "after"),
                          message(511, "#callfail"), message(512, "#bare")])
    a = r["first_id"]
    wait_until(lambda: d.status()["dead_letters"] == 3, 30, what="3 dead letters")
    dl = {x["update_id"]: x for x in d.ctl("dead-letters", "list")["dead_letters"]}
    assert sorted(dl) == [a, a + 2, a + 3]
    assert all(x["attempts"] == 2 for x in dl.values()), dl
    # The last attempt's error: tgrun_fail's text, else the last failed call's.
    assert dl[a]["error"] == flaky_error(2)
    assert dl[a + 2]["error"] == \
        "the handler failed: handler returned -1; last call error: Not Found"
    assert dl[a + 3]["error"] == "the handler failed: handler returned -1"
    out = d.ctl("dead-letters", "show", a, as_json=False)
    assert "error:     %s" % flaky_error(2) in out, out
    assert "\x1b" not in out and "attempts:  2" in out
    log = d.log()
    assert "update %d (message): dead-lettered after 2 attempts: %s" % (a, flaky_error(2)) \
        in log
    # Its chat goes on.
    wait_until(lambda: texts(api, 510), 10, what="the chat's next update")
    assert texts(api, 510) == ["u%d a1" % (a + 1)]
    st = d.status()
    assert (st["failed"], st["retried"], st["done"]) == (6, 3, 1), st


def test_no_retry_dead_letters_at_once(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, handler="flaky", conf=conf(max_attempts=3)).wait_ready()
    a = api.push_updates([message(515, "#final"), message(515, "after")])["first_id"]
    wait_until(lambda: texts(api, 515), 10, what="the chat's next update")
    assert texts(api, 515) == ["u%d a1" % (a + 1)]
    dl = d.ctl("dead-letters", "show", a)["dead_letter"]
    assert (dl["attempts"], dl["error"]) == \
        (1, "the handler failed: flaky: no point in trying again"), dl
    assert "update %d: retrying" % a not in d.log()
    st = d.status()
    assert (st["failed"], st["retried"], st["dead_letters"]) == (1, 0, 1), st


def test_update_timeout_is_not_retried(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, handler="flaky",
               conf=conf(max_attempts=3, update_timeout="1s")).wait_ready()
    r = api.push_updates([message(520, "#slow"), message(520, "after")])
    a = r["first_id"]
    wait_log(d.proc, "update %d (message): cancelled after update_timeout" % a, 15)
    wait_until(lambda: texts(api, 520), 10, what="the chat's next update")
    assert texts(api, 520) == ["u%d a1" % (a + 1)]
    log = d.log()
    assert "update %d: retrying" % a not in log
    st = d.status()
    assert (st["retried"], st["dead_letters"], st["failed"]) == (0, 0, 1), st


def test_without_journal_retried_then_dropped(fakeapi, tgrund):
    api = fakeapi()
    d = tgrund(api, handler="flaky", conf=dict(conf(max_attempts=2),
                                               journal={"enabled": "no"})).wait_ready()
    r = api.push_updates([message(530, "#fail1 once"), message(531, "#fail9 never"),
                          message(531, "after")])
    a = r["first_id"]
    wait_log(d.proc, "update %d (message): dropped after 2 attempts: %s"
             % (a + 1, flaky_error(2)), 15)
    wait_until(lambda: texts(api, 531), 10, what="the chat's next update")
    assert texts(api, 530) == ["u%d a2" % a]
    assert texts(api, 531) == ["u%d a1" % (a + 2)]
    assert d.stop() == 0


def test_a_stop_keeps_the_waiting_retry_journaled_with_its_attempt(fakeapi, tgrund, procs):
    api = fakeapi()
    journal = os.path.join(procs.tmp, "shared.journal.db")
    c = dict(conf(max_attempts=3, retry_delay="60s"), journal={"path": journal})
    d = tgrund(api, handler="flaky", conf=c).wait_ready()
    a = api.push_updates([message(540, "#fail1 once")])["first_id"]
    wait_log(d.proc, "update %d: retrying (attempt 2)" % a, 15)
    assert d.stop() == 0
    assert texts(api, 540) == []
    # The next start runs it from the journal at once (not after 60 s). A
    # replay counts one attempt more than the journal holds (the update may
    # have run when the master stopped): attempt 2 stored, 3 run.
    d2 = tgrund(api, handler="flaky", conf=c).wait_ready()
    wait_until(lambda: texts(api, 540), 10, what="the journaled retry")
    assert texts(api, 540) == ["u%d a3" % a]
    assert d2.stop() == 0
