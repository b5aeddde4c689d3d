"""Waiting in tests: poll for something observable, and say what did not happen."""
import time


def wait_until(pred, timeout, interval=0.05, what=None):
    """pred()'s first true value within `timeout` seconds. When it never comes:
    the last (false) value, or, if `what` says what was awaited, an
    AssertionError naming it."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    v = pred()
    if not v and what is not None:
        raise AssertionError("timed out after %gs waiting for %s" % (timeout, what))
    return v


def wait_echoed(api, n, timeout=120):
    """The fake API's statistics once `n` updates were echoed; fails naming what is missing."""
    st = api.wait_stats(lambda s: s["echoed"] >= n, timeout)
    assert st["echoed"] >= n, "only %d of %d updates echoed within %gs: %r" \
        % (st["echoed"], n, timeout, st)
    return st


def wait_calls(api, method, n=1, timeout=10):
    """The fake API's statistics once it has received `n` calls of `method`
    (counted on arrival: a long poll is then held); fails naming what is missing."""
    st = api.wait_stats(lambda s: s["calls"].get(method, 0) >= n, timeout)
    got = st["calls"].get(method, 0)
    assert got >= n, "only %d of %d %s calls within %gs: %r" % (got, n, method, timeout, st)
    return st


def wait_log(proc, needle, timeout=10):
    """Wait for `needle` in a process's log; fails with the log's tail."""
    if not proc.wait_log(needle, timeout):
        raise AssertionError("timed out after %gs waiting for %r in the log:\n%s"
                             % (timeout, needle, "\n".join(proc.log().splitlines()[-40:])))


def eventually(fn, expected, timeout=5, interval=0.05):
    """fn()'s value once it equals `expected`, or its last value after `timeout`
    seconds: for counts read from logs that another process writes a moment
    after the event (assert eventually(...) == expected)."""
    end = time.monotonic() + timeout
    v = fn()
    while v != expected and time.monotonic() < end:
        time.sleep(interval)
        v = fn()
    return v


def sent_texts(api, chat=None):
    """[(text, t_ms)] of every sendMessage the fake API took, optionally to one chat."""
    out = []
    for c in api.calls("sendMessage"):
        p = c["params"]
        if chat is not None and int(p.get("chat_id", 0)) != chat:
            continue
        out.append((p.get("text", ""), c["t_ms"]))
    return out
