"""Retries never send a message twice by themselves: only calls that certainly did not run are re-sent."""
import pytest

from test_runtime import ERR_API, ERR_NETWORK, push, report, start
from updates import message


def payload_calls(api):
    """sendMessage calls of `api sendMessage` (text "payload"), faulted ones included."""
    return [c for c in api.calls("sendMessage") if c["params"].get("text") == "payload"]


@pytest.mark.parametrize("kind,code,err_kind", [
    ("drop", "0", ERR_NETWORK),       # connection closed after the request was read
    ("truncate", "0", ERR_NETWORK),   # the answer stops short
    ("500", "500", ERR_API),          # the Bot API itself failed: it may have sent
])
def test_send_that_may_have_run_is_not_repeated(fakeapi, tgrund, kind, code, err_kind):
    api, _ = start(fakeapi, tgrund)
    api.set_fault("sendMessage", kind=kind, times=1)
    r = report(api, push(api, message(61, "api sendMessage")))
    assert (r["ok"], r["kind"], r["code"], r["maybe"]) == ("0", str(err_kind), code, "1"), r
    assert len(payload_calls(api)) == 1, "a message that may have been sent was sent again"


@pytest.mark.parametrize("kind", ["429", "502"])
def test_send_refused_before_running_is_retried(fakeapi, tgrund, kind):
    """429 and a proxy's 502 say the request was not taken: re-sending is safe."""
    api, _ = start(fakeapi, tgrund)
    api.set_fault("sendMessage", kind=kind, times=1, retry_after=1)
    r = report(api, push(api, message(62, "api sendMessage")))
    assert (r["ok"], r["maybe"]) == ("1", "0"), r
    assert len(payload_calls(api)) == 2


def test_read_only_method_is_retried_after_a_lost_connection(fakeapi, tgrund):
    api, _ = start(fakeapi, tgrund)
    api.set_fault("getMe", kind="drop", times=2)
    r = report(api, push(api, message(63, "api getMe")))
    assert r["ok"] == "1", r
    assert api.stats()["calls"]["getMe"] == 3


def test_retry_ambiguous_prefers_duplicates_to_losses(fakeapi, tgrund):
    api, d = start(fakeapi, tgrund, conf={"api": {"retry_ambiguous": "yes"}})
    api.set_fault("sendMessage", kind="drop", times=1)
    r = report(api, push(api, message(64, "api sendMessage")))
    assert r["ok"] == "1", r
    assert len(payload_calls(api)) == 2


def test_ambiguous_failure_is_logged_with_the_way_out(fakeapi, tgrund):
    api, d = start(fakeapi, tgrund)
    api.set_fault("sendMessage", kind="drop", times=1)
    report(api, push(api, message(65, "api sendMessage")))
    assert d.proc.wait_log("not retried: the request may have reached the Bot API "
                           "([api] retry_ambiguous = yes retries it)", 10), d.log()


def test_update_whose_send_may_have_run_is_not_run_again(fakeapi, tgrund):
    """A handler failing after an ambiguous send is dead-lettered, not retried:
    a second run would send what retry_ambiguous = no held back."""
    api = fakeapi()
    d = tgrund(api, handler="echo_id",
               conf={"workers": {"count": 1},
                     "limits": {"max_attempts": "3", "retry_delay": "100ms"}}).wait_ready()
    api.set_fault("sendMessage", kind="drop", times=1)
    uid = push(api, message(66, "once"))
    assert d.proc.wait_log("update %d (message): dead-lettered after 1 attempts" % uid,
                           15), d.log()
    sends = [c for c in api.calls("sendMessage")
             if c["params"].get("text") == "u%d" % uid]
    assert len(sends) == 1, "the update ran again after a send that may have run"
    assert d.status()["dead_letters"] == 1
