"""Client and process wrapper for build/tgrun-fakeapi, the fake Telegram Bot API server."""
import http.client
import itertools
import json
import os
import time
import urllib.parse

from procs import TEST_TOKEN, Proc

_serial = itertools.count()


class FakeApi:
    """A private fake Bot API server on 127.0.0.1, started by __init__."""

    def __init__(self, build, tmp, args=(), token=None):
        self.token = token or TEST_TOKEN
        argv = [os.path.join(build, "tgrun-fakeapi"), "--port", "0"]
        if token is not None:
            argv += ["--token", token]
        argv += [str(a) for a in args]
        log = os.path.join(str(tmp), "fakeapi-%d.log" % next(_serial))
        self.proc = Proc(argv, log)
        self.port = self._read_port(10)
        self.url = "http://127.0.0.1:%d" % self.port

    def _read_port(self, limit):
        end = time.monotonic() + limit
        while time.monotonic() < end:
            out = self.proc.stdout()
            if "\n" in out:
                return int(out.split("\n", 1)[0])
            if not self.proc.alive():
                raise RuntimeError("fakeapi exited with %s: %s"
                                   % (self.proc.p.returncode, self.proc.log()[-2000:]))
            time.sleep(0.01)
        self.proc.stop()
        raise RuntimeError("fakeapi printed no port within %ss" % limit)

    def stop(self):
        return self.proc.stop()

    # --- raw HTTP -----------------------------------------------------------
    def request(self, method, path, body=None, headers=None, timeout=10):
        """(status, headers dict, raw body bytes) of one request on a new connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    # --- control endpoint ---------------------------------------------------
    def control(self, path, method="GET", body=None, timeout=10):
        if not path.startswith("/"):
            path = "/" + path
        if not path.startswith("/__fake/"):
            path = "/__fake" + path
        data = None
        headers = {}
        if body is not None:
            if isinstance(body, (bytes, bytearray)):
                data = bytes(body)
            else:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
        status, _, raw = self.request(method, path, data, headers, timeout)
        parsed = json.loads(raw.decode())
        if status != 200:
            raise RuntimeError("control %s %s: %s %s" % (method, path, status, parsed))
        return parsed

    def stats(self):
        return self.control("stats")

    def push_updates(self, updates):
        """A list of update objects, or a generate dict ({"count": .., ...})."""
        body = updates if isinstance(updates, list) else {"generate": updates}
        return self.control("updates", "POST", body)

    def set_fault(self, method, **fields):
        fields["method"] = method
        return self.control("faults", "POST", fields)

    def clear_faults(self):
        return self.control("faults", "DELETE")

    def calls(self, method=None, since=0):
        q = {"since": since}
        if method:
            q["method"] = method
        return self.control("calls?" + urllib.parse.urlencode(q))["calls"]

    def release(self):
        """Start releasing the updates of a server started with --hold."""
        return self.control("release", "POST")

    def polls(self, via=None, since=0):
        """The poll log: every getUpdates call since `since` (of the client that
        named itself `via` in /__via/<via>/bot...), with arrival `t_ms`, answer
        `end_ms`, `status`, `n` and `first_id`..`last_id` handed out; and `now_ms`."""
        q = {"since": since}
        if via is not None:
            q["via"] = via
        return self.control("polls?" + urllib.parse.urlencode(q))

    def clock(self):
        """The fake server's t_ms now, and time.monotonic() at that moment (the
        middle of the request): to place its records on this process's clock."""
        t0 = time.monotonic()
        now = self.polls(since=1 << 62)["now_ms"]
        t1 = time.monotonic()
        return now, (t0 + t1) / 2

    def to_fake_ms(self, t_monotonic):
        """A time.monotonic() value as the fake server's t_ms."""
        now, mono = self.clock()
        return now + (t_monotonic - mono) * 1000.0

    def reset_stats(self):
        return self.control("reset_stats", "POST")

    def wait_stats(self, pred, timeout=10):
        end = time.monotonic() + timeout
        st = self.stats()
        while not pred(st) and time.monotonic() < end:
            time.sleep(0.05)
            st = self.stats()
        return st

    # --- Bot API as a client ------------------------------------------------
    def api(self, method, params=None, token=None, http_method="POST", timeout=10):
        """Call /bot<token>/<method>; (status, parsed JSON or raw bytes)."""
        path = "/bot%s/%s" % (token or self.token, method)
        body = None
        headers = {}
        if http_method == "GET":
            if params:
                path += "?" + urllib.parse.urlencode(
                    {k: v if isinstance(v, str) else json.dumps(v)
                     for k, v in params.items()})
        elif params is not None:
            body = json.dumps(params).encode()
            headers["Content-Type"] = "application/json"
        status, _, raw = self.request(http_method, path, body, headers, timeout)
        try:
            return status, json.loads(raw.decode())
        except ValueError:
            return status, raw

    def file_url(self, file_path, token=None):
        return "/file/bot%s/%s" % (token or self.token, file_path)
