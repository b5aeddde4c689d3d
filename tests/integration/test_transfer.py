"""Files and HTTP from handlers: tgrun_upload, tgrun_download, tgrun_http, the reupload example."""
import json
import os
import socket
import stat
import time
import urllib.parse

import pytest

from daemon import wait_until
from updates import message

CHAT = 5001
MEM_LEN = 70000  # XFER_MEM_LEN in tests/handlers/xfer.c

# enum tgrun_error_kind / enum tgrun_slot_status
ERR_API, ERR_NETWORK, ERR_CANCELLED, ERR_TIMEOUT, ERR_INVALID = 1, 2, 3, 4, 5
SLOT_TIMEOUT = 3


def mem_pattern():
    return bytes(((i * 31 + 7) & 0xff) for i in range(MEM_LEN))


def ask(api, text, timeout=30, chat=CHAT):
    """Send `text` to the xfer handler; return its report without the "u<id> " prefix."""
    uid = api.push_updates([message(chat, text)])["first_id"]
    prefix = "u%d " % uid

    def report():
        for c in api.calls("sendMessage"):
            t = c["params"].get("text", "")
            if t.startswith(prefix):
                return t[len(prefix):]
        return None
    got = wait_until(report, timeout)
    assert got is not None, "no report for %r within %ss" % (text, timeout)
    return got


def fetch_file(api, file_id):
    """getFile + GET /file/bot<token>/<path>, straight from the fake: the stored bytes."""
    status, body = api.api("getFile", {"file_id": file_id})
    assert status == 200 and body["ok"], body
    status, _, data = api.request("GET", api.file_url(body["result"]["file_path"]))
    assert status == 200
    return data


def seed(api, data, name):
    """Store a file in the fake (as if a user had sent it); its description."""
    status, _, raw = api.request("POST", "/__fake/files?" +
                                 urllib.parse.urlencode({"name": name}), data)
    assert status == 200
    return json.loads(raw)


def doc_calls(api):
    return [c["params"] for c in api.calls("sendDocument")]


@pytest.fixture
def xfer(fakeapi, tgrund):
    api = fakeapi()
    tgrund(api, handler="xfer", conf={"workers": {"count": 1},
                                      "api": {"timeout": "10s"}}).wait_ready()
    return api


@pytest.fixture
def silent_port():
    """A loopback port that accepts connections (kernel backlog) and never answers."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    yield s.getsockname()[1]
    s.close()


def closed_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- uploads ----------------------------------------------------------------

def test_upload_from_memory_round_trips(xfer):
    api = xfer
    rep = ask(api, "upload mem").split()
    assert rep[0] == "ok", rep
    file_id, size, name = rep[1], int(rep[2]), rep[3]
    assert (size, name) == (MEM_LEN, "mem.bin")
    calls = doc_calls(api)
    assert len(calls) == 1
    p = calls[0]
    # The fake records each file part as {"file": filename, "size": bytes}.
    assert p["document"] == {"file": "mem.bin", "size": MEM_LEN}
    # Strings as they are, other JSON values JSON-encoded.
    assert p["chat_id"] == str(CHAT)
    assert p["caption"] == "from memory"
    assert p["disable_notification"] == "true"
    assert fetch_file(api, file_id) == mem_pattern()


def test_upload_from_path_round_trips_and_downloads(xfer, tmp_path):
    api = xfer
    data = os.urandom(123457)
    src = tmp_path / "data.txt"
    src.write_bytes(data)
    rep = ask(api, "upload path %s" % src).split()
    assert rep[0] == "ok", rep
    file_id = rep[1]
    assert (int(rep[2]), rep[3]) == (len(data), "data.txt")
    assert doc_calls(api)[0]["document"] == {"file": "data.txt", "size": len(data)}
    assert fetch_file(api, file_id) == data
    # ... and back through tgrun_download.
    dst = tmp_path / "back.txt"
    assert ask(api, "download %s %s" % (file_id, dst)) == "ok"
    assert dst.read_bytes() == data


def test_upload_of_missing_path_is_invalid_and_sends_nothing(xfer, tmp_path):
    api = xfer
    rep = ask(api, "upload path %s" % (tmp_path / "nope.bin")).split(" ", 3)
    assert rep[:3] == ["err", str(ERR_INVALID), "2"], rep  # ENOENT
    assert doc_calls(api) == []


def test_upload_retried_after_a_proxy_502(xfer):
    api = xfer
    api.set_fault("sendDocument", kind="502", times=1)
    rep = ask(api, "upload mem").split()
    assert rep[0] == "ok", rep
    calls = doc_calls(api)
    assert len(calls) == 2
    # The second attempt re-sent the whole file.
    assert [c["document"] for c in calls] == [{"file": "mem.bin", "size": MEM_LEN}] * 2
    assert fetch_file(api, rep[1]) == mem_pattern()


def test_upload_4xx_not_retried(xfer):
    api = xfer
    rep = ask(api, "upload bad").split(" ", 3)
    assert rep[:3] == ["err", str(ERR_API), "400"], rep
    assert "chat_id" in rep[3]
    assert len(doc_calls(api)) == 1


def test_upload_cancelled_mid_transfer(xfer):
    api = xfer
    api.set_fault("sendDocument", latency_ms=8000)
    t0 = time.monotonic()
    rep = ask(api, "upload cancel").split()
    assert rep[0] == "cancelled", rep
    assert (int(rep[1]), int(rep[2])) == (SLOT_TIMEOUT, ERR_CANCELLED)
    # Cancelled at tgrun_all's 1 s, not after the 8 s answer.
    assert 900 <= int(rep[3]) < 3000
    assert time.monotonic() - t0 < 6


# ---- downloads --------------------------------------------------------------

def leftovers(d, keep):
    return sorted(n for n in os.listdir(d) if n not in keep)


def test_download_replaces_target_atomically(xfer, tmp_path):
    api = xfer
    data = os.urandom(300001)
    f = seed(api, data, "seed.bin")
    dst = tmp_path / "out" / "target.bin"
    dst.parent.mkdir()
    dst.write_bytes(b"old contents")
    assert ask(api, "download %s %s" % (f["file_id"], dst)) == "ok"
    assert dst.read_bytes() == data
    assert stat.S_IMODE(dst.stat().st_mode) == 0o600
    assert leftovers(dst.parent, {"target.bin"}) == []
    assert len(api.calls("getFile")) == 1


def test_failed_download_leaves_target_untouched(xfer, tmp_path):
    api = xfer
    good = seed(api, b"x" * 10, "a.bin")
    d = tmp_path / "out"
    d.mkdir()
    dst = d / "keep.bin"
    dst.write_bytes(b"precious")
    bogus = good["file_id"][:-4] + "0000"
    rep = ask(api, "download %s %s" % (bogus, dst)).split(" ", 3)
    assert rep[:3] == ["err", str(ERR_API), "400"], rep
    assert dst.read_bytes() == b"precious"
    assert leftovers(d, {"keep.bin"}) == []
    # A directory that does not exist: a local error, nothing created.
    rep = ask(api, "download %s %s" % (good["file_id"], d / "no" / "x")).split(" ", 3)
    assert rep[:3] == ["err", str(ERR_INVALID), "2"], rep
    assert leftovers(d, {"keep.bin"}) == []


# ---- the reupload example -----------------------------------------------------

def test_reupload_example(fakeapi, tgrund, tmp_path):
    api = fakeapi()
    work = tmp_path / "reupload"
    work.mkdir()
    d = tgrund(api, handler="reupload", conf={"workers": {"count": 1},
                                              "handler": {"dir": str(work)}}).wait_ready()
    data = os.urandom(54321)
    f = seed(api, data, "report.pdf")
    upd = message(CHAT, "ignored")
    msg = upd["message"]
    del msg["text"]
    msg["document"] = {"file_id": f["file_id"], "file_unique_id": f["file_unique_id"],
                       "file_name": "report.pdf", "file_size": len(data),
                       "mime_type": "application/pdf"}
    api.push_updates([upd, message(CHAT, "just text")])
    calls = wait_until(lambda: doc_calls(api), 20)
    assert calls, "reupload sent no document"
    p = calls[0]
    assert p["document"] == {"file": "report.pdf", "size": len(data)}
    assert p["chat_id"] == str(CHAT)
    assert p["caption"] == "here is your file back"
    assert '"message_id":%d' % msg["message_id"] in p["reply_parameters"]
    # The uploaded copy is the next file in the fake's store; same bytes.
    index = int(f["file_path"].rsplit("_", 1)[1].split(".")[0])
    status, _, got = api.request("GET", api.file_url("documents/file_%d.pdf" % (index + 1)))
    assert status == 200 and got == data
    # Its temporary copy is gone, and the text message sent nothing.
    assert wait_until(lambda: os.listdir(work) == [], 5), os.listdir(work)
    # Both updates are done: every call their handler made is recorded by now.
    wait_until(lambda: d.status()["done"] == 2, 10, what="both updates done")
    assert len(doc_calls(api)) == 1
    assert api.calls("sendMessage") == []


# ---- tgrun_http ---------------------------------------------------------------

def test_http_get_and_post_against_fake(xfer):
    api = xfer
    rep = ask(api, "http get %s/__fake/stats" % api.url).split(" ", 3)
    assert rep[0] == "http" and rep[1] == "200", rep
    assert int(rep[2]) > 10 and rep[3].startswith("application/json {")
    assert '"echoed"' in rep[3]
    # A 404 is an answer, not an error.
    rep = ask(api, "http get %s/no/such/path" % api.url).split(" ", 3)
    assert rep[:2] == ["http", "404"], rep
    # POST: the body reaches the server (it sets a fault rule we can read back).
    body = '{"method":"getChat","kind":"500","times":7}'
    rep = ask(api, "http post %s/__fake/faults %s" % (api.url, body)).split(" ", 3)
    assert rep[:2] == ["http", "200"], rep
    assert "getChat" in rep[3]
    rules = api.control("faults")["faults"]
    assert any(r["method"] == "getChat" and r["times"] == 7 for r in rules), rules


def test_http_errors(xfer, silent_port):
    api = xfer
    rep = ask(api, "http get http://127.0.0.1:%d/" % closed_port()).split(" ", 3)
    assert rep[:3] == ["err", str(ERR_NETWORK), "0"], rep
    rep = ask(api, "http get ftp://127.0.0.1:%d/x" % closed_port()).split(" ", 3)
    assert rep[:2] == ["err", str(ERR_INVALID)], rep
    t0 = time.monotonic()
    rep = ask(api, "http get http://127.0.0.1:%d/ 1" % silent_port).split(" ", 3)
    assert rep[:2] == ["err", str(ERR_TIMEOUT)], rep
    assert time.monotonic() - t0 < 5
    # Cancelled by tgrun_all after 1 s, long before the [api] timeout of 10 s.
    rep = ask(api, "http cancel http://127.0.0.1:%d/" % silent_port).split()
    assert rep[0] == "cancelled", rep
    assert (int(rep[1]), int(rep[2])) == (SLOT_TIMEOUT, ERR_CANCELLED)
    assert 900 <= int(rep[3]) < 3000
