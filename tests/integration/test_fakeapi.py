"""Tests of build/tgrun-fakeapi, the fake Bot API every other test stands on."""
import http.client
import json
import os
import re
import socket
import subprocess
import threading
import time

import pytest

from conftest import BUILD
from procs import TEST_TOKEN
from waits import wait_calls, wait_until

MSG = {"message": {"message_id": 1, "date": 1, "text": "hi",
                   "chat": {"id": 5, "type": "private"},
                   "from": {"id": 5, "is_bot": False, "first_name": "A"}}}


@pytest.fixture
def fakeapi(fakeapi):
    """The conftest factory, plus: every server must exit 0 on SIGTERM (which also
    catches sanitizer reports and leaks in a SANITIZE=1 build)."""
    started = []

    def start(*args, token=None):
        api = fakeapi(*args, token=token)
        started.append(api)
        return api
    yield start
    for api in started:
        status = api.stop()
        assert status == 0, "fakeapi exited with %s: %s" % (status, api.proc.log()[-3000:])


def msg(chat_id, text="hi", uid=None):
    u = {"message": {"message_id": 1, "date": 1, "text": text,
                     "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"},
                     "from": {"id": abs(chat_id) % 1000000, "is_bot": False, "first_name": "A"}}}
    if uid is not None:
        u["update_id"] = uid
    return u


def get_updates(api, **params):
    st, body = api.api("getUpdates", params)
    assert st == 200, body
    return body["result"]


def in_thread(fn, *args, **kw):
    out = {}

    def run():
        t0 = time.monotonic()
        try:
            out["result"] = fn(*args, **kw)
        except Exception as e:  # reported by the test
            out["error"] = e
        out["end"] = time.monotonic()
        out["elapsed"] = out["end"] - t0
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def multipart(fields, files, boundary="----tgrunBoundary7MA4YWxk"):
    parts = []
    for k, v in fields.items():
        parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n"
                      % (boundary, k)).encode() + v.encode() + b"\r\n")
    for k, (name, data, ctype) in files.items():
        parts.append(("--%s\r\nContent-Disposition: form-data; name=\"%s\"; filename=\"%s\"\r\n"
                      "Content-Type: %s\r\n\r\n" % (boundary, k, name, ctype)).encode()
                     + data + b"\r\n")
    body = b"".join(parts) + ("--%s--\r\n" % boundary).encode()
    return body, "multipart/form-data; boundary=%s" % boundary


# --- process, command line ---------------------------------------------------

def test_port_line_and_sigterm(fakeapi):
    api = fakeapi()
    assert re.fullmatch(r"\d+\n", api.proc.stdout()), api.proc.stdout()
    assert 0 < api.port < 65536
    st, body = api.api("getMe")
    assert st == 200 and body["result"] == {"id": 123456789, "is_bot": True,
                                           "first_name": "FakeBot", "username": "fake_bot"}
    t0 = time.monotonic()
    assert api.stop() == 0
    assert time.monotonic() - t0 < 3
    assert TEST_TOKEN.split(":")[1] not in api.proc.log()


def test_fixed_port_and_sigint(fakeapi):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    api = fakeapi("--port", port)
    assert api.port == port
    api.proc.signal(2)
    assert api.proc.wait(5) == 0


@pytest.mark.parametrize("args", [
    ["--bogus"], ["--port", "x"], ["--port", "70000"], ["--count", "-1"],
    ["--group-fraction", "2"], ["--mix", "message=1,nope=2"], ["--fault", "sendMessage"],
    ["--fault", "sendMessage:kind=418"], ["--fault", "sendMessage:what=1"], ["--rate", "abc"],
    ["--updates", "/nonexistent/file.jsonl"], ["extra"],
])
def test_invalid_options_exit_2(args):
    p = subprocess.run([os.path.join(BUILD, "tgrun-fakeapi")] + args, capture_output=True,
                       timeout=10, stdin=subprocess.DEVNULL)
    assert p.returncode == 2, (args, p)
    err = p.stderr.decode().strip()
    assert err and len(err.splitlines()) == 1, err
    assert p.stdout == b""


def test_token_and_paths(fakeapi):
    tok = "42:OTHER-secret-token_xyz"
    api = fakeapi(token=tok)
    assert api.token == tok
    st, body = api.api("getMe", token=TEST_TOKEN)
    assert st == 401 and body == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    st, body = api.api("getMe")
    assert st == 200 and body["ok"]
    for path in ["/", "/nothing", "/bot", "/bot%s/bad-method!" % tok, "/botx"]:
        st, _, raw = api.request("GET", path)
        assert st == 404, path
        assert json.loads(raw) == {"ok": False, "error_code": 404, "description": "Not Found"}
    st, body = api.api("someUnknownMethod", {"a": 1})
    assert st == 200 and body == {"ok": True, "result": True}
    assert "OTHER-secret" not in api.proc.log()


# --- parameters in every encoding ----------------------------------------------

def test_params_get_json_urlencoded_multipart(fakeapi):
    api = fakeapi()
    st, b = api.api("sendMessage", {"chat_id": 7, "text": "via GET ü"}, http_method="GET")
    assert st == 200 and b["result"]["text"] == "via GET ü" and b["result"]["chat"]["id"] == 7
    st, b = api.api("sendMessage", {"chat_id": 7, "text": "via JSON 你好",
                                    "reply_markup": {"inline_keyboard": []}})
    assert st == 200 and b["result"]["text"] == "via JSON 你好"
    st, _, raw = api.request("POST", "/bot%s/sendMessage" % api.token,
                             b"chat_id=-1001000000003&text=form+text%20%F0%9F%98%80",
                             {"Content-Type": "application/x-www-form-urlencoded"})
    b = json.loads(raw)
    assert st == 200 and b["result"]["text"] == "form text 😀"
    assert b["result"]["chat"]["type"] == "supergroup"
    body, ctype = multipart({"chat_id": "9", "caption": "файл"},
                            {"document": ("a.bin", b"\x00\x01binary\xff", "application/x-foo")})
    st, _, raw = api.request("POST", "/bot%s/sendDocument" % api.token, body,
                             {"Content-Type": ctype})
    b = json.loads(raw)
    assert st == 200, b
    doc = b["result"]["document"]
    assert doc["file_name"] == "a.bin" and doc["file_size"] == 9
    assert doc["mime_type"] == "application/x-foo" and b["result"]["caption"] == "файл"
    calls = api.calls()
    assert [c["method"] for c in calls] == ["sendMessage"] * 3 + ["sendDocument"]
    assert calls[0]["params"] == {"chat_id": "7", "text": "via GET ü"}
    assert calls[1]["params"]["chat_id"] == 7
    assert calls[1]["params"]["reply_markup"] == {"inline_keyboard": []}
    assert calls[2]["params"] == {"chat_id": "-1001000000003", "text": "form text 😀"}
    assert calls[3]["params"] == {"chat_id": "9", "caption": "файл",
                                  "document": {"file": "a.bin", "size": 9}}
    st, _, raw = api.request("POST", "/bot%s/sendMessage" % api.token, b"{not json",
                             {"Content-Type": "application/json"})
    assert st == 400 and json.loads(raw)["error_code"] == 400


# --- getUpdates ------------------------------------------------------------------

def test_offset_confirms_and_rehands(fakeapi):
    api = fakeapi("--count", 5, "--mix", "message=1")
    ids = [u["update_id"] for u in get_updates(api)]
    assert ids == [1, 2, 3, 4, 5]
    assert [u["update_id"] for u in get_updates(api)] == ids  # unconfirmed: again
    st = api.stats()
    assert st["handed_out"] == 5 and st["handed_out_total"] == 10 and st["confirmed"] == 0
    assert [u["update_id"] for u in get_updates(api, offset=3)] == [3, 4, 5]
    assert api.stats()["confirmed"] == 2
    assert [u["update_id"] for u in get_updates(api, offset=-1)] == [5]
    assert api.stats()["confirmed"] == 4
    assert get_updates(api, offset=6) == []
    assert api.stats()["confirmed"] == 5
    api.push_updates([MSG])
    assert [u["update_id"] for u in get_updates(api, offset=6)] == [6]


def test_first_id_and_negative_offset(fakeapi):
    api = fakeapi("--count", 10, "--first-id", 1000, "--mix", "message=1")
    assert [u["update_id"] for u in get_updates(api, offset=-3)] == [1007, 1008, 1009]
    assert get_updates(api, offset=-100)[0]["update_id"] == 1007  # forgotten stay forgotten


def test_limit_and_bounds(fakeapi):
    api = fakeapi("--count", 150, "--mix", "message=1")
    assert len(get_updates(api)) == 100
    assert len(get_updates(api, limit=2)) == 2
    assert len(get_updates(api, limit=0)) == 1
    assert len(get_updates(api, limit=-5)) == 1
    assert len(get_updates(api, limit=1000)) == 100
    assert len(get_updates(api, limit=100, offset=101)) == 50
    st, b = api.api("getUpdates", {"limit": "abc"})
    assert st == 400 and not b["ok"]


def test_long_poll_wakes_on_push(fakeapi):
    api = fakeapi()
    t, out = in_thread(get_updates, api, timeout=10)
    wait_calls(api, "getUpdates")  # the long poll is held
    assert t.is_alive()
    pushed = time.monotonic()
    r = api.push_updates([MSG, MSG])
    assert r == {"ok": True, "first_id": 1, "last_id": 2}
    t.join(5)
    assert not t.is_alive() and "error" not in out, out
    assert [u["update_id"] for u in out["result"]] == [1, 2]
    # It waited for the push, and answered at once then.
    assert out["end"] > pushed and out["elapsed"] < 2, (pushed, out)


def test_long_poll_waits_out_timeout(fakeapi):
    api = fakeapi()
    t0 = time.monotonic()
    assert get_updates(api, timeout=1) == []
    assert 0.9 < time.monotonic() - t0 < 2.5
    t0 = time.monotonic()
    assert get_updates(api, timeout=0) == []
    assert time.monotonic() - t0 < 0.5


def test_allowed_updates_filter_and_persistence(tmp_path, fakeapi):
    ups = [msg(5), {"callback_query": {"id": "1", "from": {"id": 5}, "chat_instance": "x",
                                       "message": {"message_id": 1, "date": 1,
                                                   "chat": {"id": 5, "type": "private"}}}},
           {"chat_member": {"chat": {"id": -100, "type": "group"}, "date": 1}},
           {"poll": {"id": "p", "question": "q", "options": []}}]
    api = fakeapi()
    api.push_updates(ups)
    types = lambda res: [next(k for k in u if k != "update_id") for u in res]
    assert types(get_updates(api)) == ["message", "callback_query", "poll"]  # no chat_member
    assert types(get_updates(api, allowed_updates=["callback_query"])) == ["callback_query"]
    assert types(get_updates(api)) == ["callback_query"]  # persists
    # as a JSON string in a query string
    assert types(get_updates(api, allowed_updates=json.dumps(["poll", "chat_member"]))) == \
        ["chat_member", "poll"]
    st, b = api.api("getUpdates", {"allowed_updates": ["message"]}, http_method="GET")
    assert types(b["result"]) == ["message"]
    assert types(get_updates(api, allowed_updates=[])) == ["message", "callback_query", "poll"]


def test_concurrent_get_updates_conflict(fakeapi):
    api = fakeapi()
    t, out = in_thread(api.api, "getUpdates", {"timeout": 10})
    wait_calls(api, "getUpdates")  # the first long poll is held
    assert get_updates(api, timeout=0) == []
    t.join(5)
    assert not t.is_alive()
    st, b = out["result"]
    assert st == 409
    assert b == {"ok": False, "error_code": 409, "description":
                 "Conflict: terminated by other getUpdates request; make sure that only one "
                 "bot instance is running"}
    assert out["elapsed"] < 2
    assert api.stats()["conflicts"] == 1


def test_webhook_conflict_and_delete(fakeapi):
    api = fakeapi("--count", 2)
    st, b = api.api("setWebhook", {"url": "https://example.org/hook"})
    assert st == 200 and b["result"] is True
    st, b = api.api("getUpdates")
    assert st == 409 and b["description"] == (
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook "
        "to delete the webhook first")
    st, b = api.api("getWebhookInfo")
    assert b["result"]["url"] == "https://example.org/hook"
    assert b["result"]["pending_update_count"] == 2
    assert api.stats()["webhook"] == "https://example.org/hook"
    st, b = api.api("deleteWebhook")
    assert st == 200 and b["result"] is True
    assert len(get_updates(api)) == 2
    api.control("webhook", "POST", {"url": "https://x.example/y"})
    assert api.api("getUpdates")[0] == 409
    assert api.control("webhook")["url"] == "https://x.example/y"
    api.control("webhook", "POST", {"url": ""})
    assert api.stats()["webhook"] is None
    assert api.stats()["conflicts"] == 2
    api.api("deleteWebhook", {"drop_pending_updates": True})
    assert get_updates(api) == []


def test_jsonl_stream(tmp_path, fakeapi):
    f = tmp_path / "u.jsonl"
    lines = [json.dumps(msg(5, "a")), "", json.dumps(msg(6, "b", uid=10)),
             json.dumps({"inline_query": {"id": "iq1", "from": {"id": 5}, "query": "x",
                                          "offset": ""}})]
    f.write_text("\n".join(lines) + "\n")
    api = fakeapi("--updates", str(f))
    res = get_updates(api)
    assert [u["update_id"] for u in res] == [1, 10, 11]
    assert res[0]["message"]["text"] == "a" and res[2]["inline_query"]["id"] == "iq1"
    assert api.stats()["updates_total"] == 3 and api.stats()["expected_echoes"] == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(msg(5)) + "\n{oops\n")
    p = subprocess.run([os.path.join(BUILD, "tgrun-fakeapi"), "--updates", str(bad)],
                       capture_output=True, timeout=10)
    assert p.returncode == 2 and b"bad.jsonl:2" in p.stderr


def _stream(api):
    return get_updates(api, limit=100) + get_updates(api, offset=101, limit=100) + \
        get_updates(api, offset=201, limit=100) + get_updates(api, offset=301, limit=100)


def test_generated_shapes(fakeapi):
    args = ("--count", 400, "--chats", 10, "--users", 5, "--group-fraction", 0.3)
    a = fakeapi(*args, "--seed", 7)
    ups = _stream(a)
    assert [u["update_id"] for u in ups] == list(range(1, 401))
    by = {}
    for u in ups:
        by.setdefault(next(k for k in u if k != "update_id"), []).append(u)
    assert set(by) == {"message", "edited_message", "callback_query", "inline_query",
                       "my_chat_member", "poll"}
    assert len(by["message"]) > len(by["edited_message"])
    groups = {-1001000000000, -1001000000001, -1001000000002}
    users = {100000 + i for i in range(5)}
    texts = []
    for u in by["message"] + by["edited_message"]:
        m = u.get("message") or u["edited_message"]
        c = m["chat"]
        if c["type"] == "private":
            assert c["id"] == m["from"]["id"] and 100003 <= c["id"] <= 100009
        else:
            assert c["type"] == "supergroup" and c["id"] in groups and c["title"]
            assert m["from"]["id"] in users
        assert abs(m["date"] - time.time()) < 60
        texts.append(m["text"])
    assert all("edit_date" in u["edited_message"] for u in by["edited_message"])
    assert any("message_thread_id" in u["message"] and u["message"]["is_topic_message"]
               for u in by["message"])
    for u in by["callback_query"]:
        cq = u["callback_query"]
        assert isinstance(cq["id"], str) and cq["chat_instance"] and cq["data"]
        assert "chat" in cq["message"] and cq["from"]["id"] >= 100000
    for u in by["inline_query"]:
        iq = u["inline_query"]
        assert isinstance(iq["id"], str) and "chat" not in iq and "query" in iq and "offset" in iq
    for u in by["my_chat_member"]:
        m = u["my_chat_member"]
        assert {"chat", "from", "date", "old_chat_member", "new_chat_member"} <= set(m)
    for u in by["poll"]:
        assert "chat" not in u["poll"] and "from" not in u["poll"] and u["poll"]["options"]
    joined = "".join(texts)
    assert re.search("[а-яА-Я]", joined) and re.search("[\u4e00-\u9fff]", joined)
    assert re.search("[\U0001F300-\U0001FAFF]", joined) and re.search("[\u0590-\u06ff]", joined)
    assert any(3500 <= len(t) <= 4096 for t in texts)
    st = a.stats()
    assert st["expected_echoes"] == 400 - len(by["poll"])
    # deterministic per seed, different for another seed
    strip = lambda us: [re.sub(r"\"(edit_)?date\": \d+", "", json.dumps(u)) for u in us]
    b = fakeapi(*args, "--seed", 7)
    assert strip(_stream(b)) == strip(ups)
    c = fakeapi(*args, "--seed", 8)
    assert strip(_stream(c)) != strip(ups)


def test_mix_only_messages_and_group_fraction(fakeapi):
    api = fakeapi("--count", 50, "--mix", "message=1", "--chats", 4, "--group-fraction", 0.5)
    ups = get_updates(api)
    assert all("message" in u for u in ups)
    chats = {u["message"]["chat"]["id"] for u in ups}
    assert chats <= {-1001000000000, -1001000000001, 100002, 100003} and len(chats) == 4


def test_arrival_rate(fakeapi):
    api = fakeapi("--count", 100, "--rate", 20, "--mix", "message=1")
    t0 = time.monotonic()
    first = get_updates(api, timeout=5)
    assert 1 <= len(first) <= 5, len(first)
    # About a second's worth released: the measured interval.
    wait_until(lambda: api.stats()["updates_released"] >= 20, 10,
               what="20 updates released at 20 per second")
    st = api.stats()
    elapsed = time.monotonic() - t0
    assert st["updates_total"] == 100
    assert 20 * elapsed * 0.5 <= st["updates_released"] <= 20 * elapsed * 1.5 + 3, st
    # a long poll on an exhausted queue returns when the rate timer releases more
    off = get_updates(api)[-1]["update_id"] + 1
    t1 = time.monotonic()
    more = get_updates(api, offset=off, timeout=5)
    assert more and time.monotonic() - t1 < 1


# --- recording and results ---------------------------------------------------------

def test_recorded_calls(fakeapi):
    api = fakeapi("--record-limit", 4)
    for i in range(3):
        api.api("sendMessage", {"chat_id": 1, "text": "m%d" % i})
    api.api("getUpdates")
    api.api("sendChatAction", {"chat_id": 1, "action": "typing"})
    api.api("sendMessage", {"chat_id": 1, "text": "beyond the limit"})
    calls = api.calls()
    assert [c["seq"] for c in calls] == [1, 2, 3, 4]
    assert [c["method"] for c in calls] == ["sendMessage"] * 3 + ["sendChatAction"]
    assert all(a["t_ms"] <= b["t_ms"] for a, b in zip(calls, calls[1:]))
    assert calls[0]["t_ms"] > 0
    assert [c["params"]["text"] for c in api.calls("sendMessage")] == ["m0", "m1", "m2"]
    assert [c["seq"] for c in api.calls(since=2)] == [3, 4]
    r = api.control("calls?since=1&limit=1")
    assert [c["seq"] for c in r["calls"]] == [2] and r["next"] == 2
    assert api.calls("nope") == []
    st = api.stats()
    assert st["calls"] == {"sendMessage": 4, "getUpdates": 1, "sendChatAction": 1}
    assert st["responses"] == {"200": 6}


def test_message_objects(fakeapi):
    api = fakeapi()
    r = [api.api("sendMessage", {"chat_id": c, "text": "x"})[1]["result"]
         for c in (10, 10, -1001000000005, 10)]
    assert [m["message_id"] for m in r] == [1, 2, 1, 3]
    assert r[0]["from"] == {"id": 123456789, "is_bot": True, "first_name": "FakeBot",
                            "username": "fake_bot"}
    assert r[0]["chat"]["type"] == "private" and r[2]["chat"]["type"] == "supergroup"
    assert abs(r[0]["date"] - time.time()) < 60 and r[0]["text"] == "x"
    e = api.api("editMessageText", {"chat_id": 10, "message_id": 2, "text": "new"})[1]["result"]
    assert e["message_id"] == 2 and e["text"] == "new" and "edit_date" in e
    f = api.api("forwardMessage", {"chat_id": 11, "from_chat_id": 10, "message_id": 1})[1]
    assert f["result"]["chat"]["id"] == 11 and f["result"]["forward_origin"]["type"] == "chat"
    assert api.api("copyMessage", {"chat_id": 10, "from_chat_id": 11,
                                   "message_id": 1})[1]["result"] == {"message_id": 4}
    s = api.api("sendSticker", {"chat_id": 10, "sticker": "CAACAgIAAxkBAAIB"})[1]["result"]
    assert s["sticker"]["file_id"] and s["message_id"] == 5
    p = api.api("sendPhoto", {"chat_id": 10, "photo": "https://example.org/a.jpg"})[1]["result"]
    assert p["photo"][0]["file_id"] and p["photo"][0]["width"] > 0
    th = api.api("sendMessage", {"chat_id": -1001000000005, "text": "t",
                                 "message_thread_id": 3})[1]["result"]
    assert th["message_thread_id"] == 3 and th["is_topic_message"] is True
    st, b = api.api("sendMessage", {"chat_id": 10})
    assert st == 400 and b["description"] == "Bad Request: message text is empty"
    st, b = api.api("sendMessage", {"text": "no chat"})
    assert st == 400 and not b["ok"]
    st, b = api.api("sendMessage", {"chat_id": 10, "text": "x" * 4097})
    assert st == 400
    assert api.api("answerCallbackQuery", {"callback_query_id": "1"})[1] == \
        {"ok": True, "result": True}


def test_upload_getfile_download_roundtrip(fakeapi):
    api = fakeapi()
    data = bytes(range(256)) * 40 + b"\r\n--not-a-boundary\r\n"
    body, ctype = multipart({"chat_id": "3"}, {"photo": ("pic.jpg", data, "image/jpeg")})
    st, _, raw = api.request("POST", "/bot%s/sendPhoto" % api.token, body,
                             {"Content-Type": ctype})
    assert st == 200, raw
    photo = json.loads(raw)["result"]["photo"][-1]
    assert photo["file_size"] == len(data)
    st, f = api.api("getFile", {"file_id": photo["file_id"]})
    assert st == 200 and f["result"]["file_id"] == photo["file_id"]
    assert f["result"]["file_size"] == len(data) and f["result"]["file_unique_id"]
    path = f["result"]["file_path"]
    st, _, got = api.request("GET", api.file_url(path))
    assert st == 200 and got == data
    assert api.request("GET", api.file_url(path + "x"))[0] == 404
    assert api.request("GET", api.file_url("photos/file_999.jpg"))[0] == 404
    assert api.request("GET", api.file_url(path, token="1:bad"))[0] == 401
    st, b = api.api("getFile", {"file_id": "nope"})
    assert st == 400 and not b["ok"]
    # the same file sent again by file_id keeps its id
    d = api.api("sendDocument", {"chat_id": 3, "document": photo["file_id"]})[1]["result"]
    assert d["document"]["file_id"] == photo["file_id"]


def test_seeded_files(fakeapi):
    api = fakeapi()
    r = api.control("files?name=report.pdf", "POST", b"%PDF-1.4 seeded bytes")
    assert r["ok"] and r["file_size"] == 21
    st, f = api.api("getFile", {"file_id": r["file_id"]})
    assert f["result"]["file_path"].endswith(".pdf")
    st, _, got = api.request("GET", api.file_url(f["result"]["file_path"]))
    assert st == 200 and got == b"%PDF-1.4 seeded bytes"


# --- faults ---------------------------------------------------------------------------

def test_fault_429(fakeapi):
    api = fakeapi()
    api.set_fault("sendMessage", kind="429", retry_after=3)
    st, b = api.api("sendMessage", {"chat_id": 1, "text": "u1"})
    assert st == 429 and b == {"ok": False, "error_code": 429,
                               "description": "Too Many Requests: retry after 3",
                               "parameters": {"retry_after": 3}}
    assert api.api("getMe")[0] == 200  # other methods untouched


def test_fault_500_502_badjson(fakeapi):
    api = fakeapi("--fault", "getMe:kind=500", "--fault", "sendMessage:kind=502",
                  "--fault", "getChat:kind=badjson")
    st, b = api.api("getMe")
    assert st == 500 and b == {"ok": False, "error_code": 500,
                               "description": "Internal Server Error"}
    st, hdr, raw = api.request("POST", "/bot%s/sendMessage" % api.token, b"{}",
                               {"Content-Type": "application/json"})
    assert st == 502 and hdr["content-type"].startswith("text/html")
    assert b"<html>" in raw and b"Bad Gateway" in raw
    st, raw = api.api("getChat", {"chat_id": 1})
    assert st == 200 and isinstance(raw, bytes)
    with pytest.raises(ValueError):
        json.loads(raw)
    s = api.stats()
    assert s["faults_injected"] == {"getMe": 1, "sendMessage": 1, "getChat": 1}
    assert s["responses"] == {"200": 1, "500": 1, "502": 1}


def test_fault_drop_and_truncate(fakeapi):
    api = fakeapi("--fault", "sendMessage:kind=drop", "--fault", "getChat:kind=truncate")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        api.api("sendMessage", {"chat_id": 1, "text": "x"})
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=5)
    conn.request("GET", "/bot%s/getChat" % api.token)
    resp = conn.getresponse()
    assert resp.status == 200 and int(resp.getheader("Content-Length")) > 100
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    conn.close()
    assert api.api("getMe")[0] == 200  # the server lives on
    s = api.wait_stats(lambda s: s["concurrent"] == 0, 3)
    assert s["faults_injected"] == {"sendMessage": 1, "getChat": 1} and s["concurrent"] == 0


def test_fault_latency_and_peak_concurrency(fakeapi):
    api = fakeapi("--fault", "sendMessage:latency_ms=400,jitter_ms=100")
    ths = [in_thread(api.api, "sendMessage", {"chat_id": i + 1, "text": "x"}) for i in range(6)]
    mid = api.wait_stats(lambda s: s["concurrent"] == 6, 5)
    assert mid["concurrent"] == 6, mid
    t0 = time.monotonic()
    assert api.api("getMe")[0] == 200 and time.monotonic() - t0 < 0.2  # loop not blocked
    for t, out in ths:
        t.join(5)
        assert out["result"][0] == 200 and 0.38 <= out["elapsed"] < 1.5, out
    s = api.stats()
    assert s["peak_concurrent"] >= 6 and s["concurrent"] == 0
    assert s["faults_injected"] == {}  # latency alone is not an injected error


def test_fault_every_times_prob(fakeapi):
    api = fakeapi()
    api.set_fault("sendMessage", kind="500", every=3)
    codes = [api.api("sendMessage", {"chat_id": 1, "text": "x"})[0] for _ in range(7)]
    assert codes == [200, 200, 500, 200, 200, 500, 200]
    api.set_fault("sendMessage", kind="500", times=2)
    codes = [api.api("sendMessage", {"chat_id": 1, "text": "x"})[0] for _ in range(4)]
    assert codes == [500, 500, 200, 200]
    api.set_fault("sendMessage", kind="429", prob=0.5)
    codes = [api.api("sendMessage", {"chat_id": 1, "text": "x"})[0] for _ in range(200)]
    assert 50 <= codes.count(429) <= 150 and codes.count(200) == 200 - codes.count(429)
    api.set_fault("sendMessage", kind="500", prob=0)
    assert all(api.api("sendMessage", {"chat_id": 1, "text": "x"})[0] == 200 for _ in range(20))
    assert api.stats()["faults_injected"]["sendMessage"] == 4 + codes.count(429)


def test_fault_wildcard_and_faulted_get_updates(fakeapi):
    api = fakeapi("--count", 3, "--mix", "message=1", "--fault", "*:kind=drop,times=2")
    for _ in range(2):
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            api.api("getMe")
    assert api.stats()["faults_injected"] == {"getMe": 2}  # control endpoint not faulted
    assert api.api("getMe")[0] == 200
    api.set_fault("getUpdates", kind="500", every=2)
    assert len(get_updates(api)) == 3
    st, b = api.api("getUpdates", {"offset": 3})  # faulted: offset not applied
    assert st == 500
    s = api.stats()
    assert s["confirmed"] == 0 and s["handed_out_total"] == 3
    assert [u["update_id"] for u in get_updates(api)] == [1, 2, 3]


def test_fault_control_endpoints(fakeapi):
    api = fakeapi("--fault", "sendMessage:kind=429,prob=0.1,retry_after=1")
    lst = api.control("faults")["faults"]
    assert len(lst) == 1 and lst[0]["method"] == "sendMessage" and lst[0]["kind"] == "429"
    api.set_fault("sendMessage", kind="500")  # replaces
    api.set_fault("getMe", latency_ms=10)
    lst = api.control("faults")["faults"]
    assert sorted((f["method"], f["kind"]) for f in lst) == [("getMe", "none"),
                                                             ("sendMessage", "500")]
    api.clear_faults()
    assert api.control("faults")["faults"] == []
    api.set_fault("getMe", kind="500")
    api.control("faults/clear", "POST")
    assert api.api("getMe")[0] == 200
    with pytest.raises(RuntimeError):
        api.set_fault("getMe", kind="teapot")


# --- control endpoint and statistics --------------------------------------------------------

def test_push_updates_control(fakeapi):
    api = fakeapi()
    assert api.push_updates([MSG, dict(MSG, update_id=0)]) == {"ok": True, "first_id": 1,
                                                                "last_id": 2}
    r = api.push_updates({"count": 5, "chats": 2, "mix": "message=1", "seed": 3})
    assert r == {"ok": True, "first_id": 3, "last_id": 7}
    assert len(get_updates(api)) == 7
    with pytest.raises(RuntimeError):
        api.push_updates([dict(MSG, update_id=5)])  # ids must increase
    with pytest.raises(RuntimeError):
        api.control("updates", "POST", {"nope": 1})
    with pytest.raises(RuntimeError):
        api.control("unknown")
    assert api.stats()["updates_total"] == 7


def test_echo_statistics(fakeapi):
    api = fakeapi()
    a, b = 100001, -1001000000007
    ups = [msg(a), msg(a), msg(b), msg(b), msg(a),
           {"inline_query": {"id": "777", "from": {"id": 1}, "query": "", "offset": ""}},
           {"poll": {"id": "p1", "question": "q", "options": []}}]
    api.push_updates(ups)  # ids 1..7
    assert len(get_updates(api)) == 7
    time.sleep(0.05)  # kept: the latency under test (p50 >= 40 ms below), not a wait
    send = lambda chat, text: api.api("sendMessage", {"chat_id": chat, "text": text})
    send(a, "u2")       # 2 before 1 in chat a: inversion when 1 arrives
    send(a, "u1 late")
    send(a, "u2 again")  # duplicate
    send(b, "u3")
    send(b, "u4\nmore")
    send(a, "u999")     # unknown update: ignored
    send(a, "u5x")      # not an echo: no separator
    api.api("answerInlineQuery", {"inline_query_id": "777", "results": []})
    send(a, "u7")       # the poll: echoed but never expected
    s = api.stats()
    assert s["expected_echoes"] == 6
    assert s["echoed"] == 6 and s["missing"] == 1  # update 5 never echoed
    assert s["duplicates"] == 1 and s["inversions"] == 1
    lat = s["latency_ms"]
    assert lat["count"] == 6 and 40 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"] < 5000
    e = api.control("echoes?id=2")
    assert e["id"] == 2 and e["chat_id"] == a
    assert [x["method"] for x in e["echoes"]] == ["sendMessage", "sendMessage"]
    assert e["echoes"][0]["t_ms"] <= e["echoes"][1]["t_ms"]
    assert api.control("echoes?id=6")["echoes"][0]["method"] == "answerInlineQuery"
    assert api.control("echoes?id=5")["echoes"] == []
    assert api.control("chatlog?chat_id=%d" % a)["ids"] == [2, 1]
    assert api.control("chatlog?chat_id=%d" % b)["ids"] == [3, 4]
    with pytest.raises(RuntimeError):
        api.control("echoes?id=12345")
    # a fault-injected call does not echo
    api.set_fault("sendMessage", kind="429")
    assert send(a, "u5")[0] == 429
    assert api.stats()["missing"] == 1
    api.clear_faults()
    send(a, "u5")
    s = api.stats()
    assert s["missing"] == 0 and s["inversions"] == 1
    assert api.control("chatlog?chat_id=%d" % a)["ids"] == [2, 1, 5]
    assert set(s) == {"updates_total", "updates_released", "handed_out", "handed_out_total",
                      "confirmed", "expected_echoes", "echoed", "missing", "duplicates",
                      "inversions", "latency_ms", "arrival_latency_ms", "peak_concurrent", "concurrent", "calls",
                      "responses", "faults_injected", "conflicts", "connections",
                      "api_connections", "api_connections_peak", "webhook", "uptime_ms"}
    # This test's client made every call on connections of its own.
    assert 1 <= s["api_connections"] <= s["connections"]


def test_reply_to_a_message_is_its_echo(fakeapi):
    """A reply (reply_parameters or reply_to_message_id) echoes the message it answers."""
    api = fakeapi()
    a, b = 100001, 100002
    ups = [msg(a, "one"), msg(a, "two"), msg(b, "three")]
    ups[0]["message"]["message_id"] = 11
    ups[1]["message"]["message_id"] = 12
    ups[2]["message"]["message_id"] = 11
    api.push_updates(ups)  # ids 1..3
    assert len(get_updates(api)) == 3
    send = lambda params: api.api("sendMessage", params)
    send({"chat_id": a, "text": "one", "reply_parameters": {"message_id": 11}})
    send({"chat_id": a, "text": "nope", "reply_parameters": {"message_id": 99}})
    send({"chat_id": b, "text": "three", "reply_to_message_id": 11})
    s = api.stats()
    assert s["echoed"] == 2 and s["missing"] == 1
    assert api.control("echoes?id=1")["echoes"] and api.control("echoes?id=3")["echoes"]
    assert api.control("echoes?id=2")["echoes"] == []
    # The same message_id in another chat is another message.
    send({"chat_id": b, "text": "x", "reply_parameters": {"message_id": 12}})
    assert api.stats()["echoed"] == 2
    # urlencoded bodies carry reply_parameters as JSON text.
    st, _, _ = api.request("POST", "/bot%s/sendMessage" % api.token,
                        body=b"chat_id=100001&text=two&reply_parameters=%7B%22message_id%22%3A12%7D",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert st == 200
    assert api.stats()["missing"] == 0


def test_latency_percentiles(fakeapi):
    api = fakeapi("--count", 20, "--mix", "message=1", "--chats", 20, "--group-fraction", 0)
    get_updates(api)
    for i in range(1, 21):
        if i in (12, 20):
            time.sleep(0.3)  # kept: the latencies under test (p90 >= 300, max >= 600)
        api.api("sendMessage", {"chat_id": 1, "text": "u%d" % i})
    lat = api.stats()["latency_ms"]
    assert lat["count"] == 20
    assert lat["p50"] < 300 <= lat["p90"] and 600 <= lat["max"] == lat["p99"]


def test_arrival_latency_counts_the_wait_before_the_hand_out(fakeapi):
    """An update that waited 300 ms for a getUpdates: hand-out latency is small,
    arrival latency includes the wait."""
    api = fakeapi("--count", 1, "--mix", "message=1", "--chats", 1)
    time.sleep(0.3)  # kept: the wait under test (arrival latency >= 300 ms)
    get_updates(api)
    api.api("sendMessage", {"chat_id": 1, "text": "u1"})
    st = api.stats()
    assert st["latency_ms"]["count"] == st["arrival_latency_ms"]["count"] == 1
    assert st["latency_ms"]["max"] < 300 <= st["arrival_latency_ms"]["max"] < 5000


def test_reset_stats(fakeapi):
    api = fakeapi("--count", 3, "--mix", "message=1")
    get_updates(api, offset=2)
    api.api("sendMessage", {"chat_id": 1, "text": "u2"})
    api.control("reset_stats", "POST")
    s = api.stats()
    assert s["updates_total"] == 3 and s["echoed"] == 0 and s["handed_out"] == 0
    assert s["calls"] == {} and s["responses"] == {} and s["missing"] == 3
    assert api.calls() == []
    assert [u["update_id"] for u in get_updates(api)] == [2, 3]  # the stream is untouched
    api.api("sendMessage", {"chat_id": 1, "text": "u3"})
    assert api.calls()[0]["seq"] == 1 and api.stats()["echoed"] == 1


def test_stop_with_requests_pending(fakeapi):
    api = fakeapi("--fault", "sendMessage:latency_ms=5000")
    t1, _ = in_thread(api.api, "getUpdates", {"timeout": 30})
    t2, _ = in_thread(api.api, "sendMessage", {"chat_id": 1, "text": "x"})
    st = api.wait_stats(lambda s: s["calls"].get("getUpdates", 0) == 1 and
                        s["concurrent"] == 1, 5)
    assert st["concurrent"] == 1 and st["calls"].get("getUpdates", 0) == 1, st
    t0 = time.monotonic()
    assert api.stop() == 0
    assert time.monotonic() - t0 < 3
    t1.join(5)
    t2.join(5)


def test_client_gone_during_long_poll(fakeapi):
    api = fakeapi()
    for i in range(3):
        s = socket.create_connection(("127.0.0.1", api.port), timeout=5)
        s.sendall(("GET /bot%s/getUpdates?timeout=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                   % api.token).encode())
        wait_calls(api, "getUpdates", i + 1)  # held, then its client goes
        s.close()
    api.push_updates([MSG])  # answers (or drops) the orphaned poll
    # A negative window: a 1 s poll timer left behind by an orphan fires in it.
    time.sleep(1.2)
    assert [u["update_id"] for u in get_updates(api)] == [1]
    assert api.api("getMe")[0] == 200


def test_via_names_the_client_in_calls_and_the_poll_log(fakeapi):
    api = fakeapi()
    api.push_updates([msg(5, "a"), msg(6, "b"), msg(7, "c")])
    path = "/__via/node-a_1/bot%s/" % TEST_TOKEN
    st, _, raw = api.request("GET", path + "getUpdates?limit=2&offset=0")
    b = json.loads(raw)
    assert st == 200 and len(b["result"]) == 2
    first = b["result"][0]["update_id"]
    st, _, raw = api.request("POST", path + "sendMessage",
                             json.dumps({"chat_id": 5, "text": "u%d" % first}).encode(),
                             {"Content-Type": "application/json"})
    assert st == 200
    api.api("getUpdates", {"offset": first + 2, "timeout": 0})
    api.api("sendMessage", {"chat_id": 6, "text": "plain"})
    calls = api.calls("sendMessage")
    assert [c.get("via") for c in calls] == ["node-a_1", None]
    log = api.polls()
    assert [(p["via"], p["offset"], p["status"], p["n"]) for p in log["polls"]] == \
        [("node-a_1", 0, 200, 2), ("", first + 2, 200, 1)]
    assert log["polls"][0]["first_id"] == first and log["polls"][0]["last_id"] == first + 1
    assert log["polls"][1]["first_id"] == first + 2
    assert all(p["t_ms"] <= p["end_ms"] for p in log["polls"])
    assert log["next"] == 2 and log["now_ms"] >= log["polls"][1]["end_ms"]
    assert [p["seq"] for p in api.polls(via="node-a_1")["polls"]] == [1]
    assert api.polls(since=1)["polls"][0]["seq"] == 2
    # A long poll is in the log at once, answered later.
    t, out = in_thread(api.api, "getUpdates", {"offset": first + 3, "timeout": 1})
    wait_until(lambda: len(api.polls()["polls"]) == 3, 5)
    held = api.polls(since=2)["polls"][0]
    assert (held["status"], held["end_ms"], held["n"]) == (0, -1, 0)
    t.join(5)
    done = api.polls(since=2)["polls"][0]
    assert done["status"] == 200 and done["end_ms"] - done["t_ms"] >= 900
    # Its clock maps onto this process's monotonic clock.
    now, mono = api.clock()
    assert abs(api.to_fake_ms(mono) - now) < 50
    # Bad names are not routed.
    for bad in ("/__via//bot", "/__via/a.b/bot", "/__via/" + "x" * 33 + "/bot", "/__via/abc"):
        st, _, _ = api.request("GET", bad + TEST_TOKEN + "/getMe")
        assert st == 404, bad
    assert api.stats()["calls"]["getUpdates"] == 3


@pytest.mark.parametrize("rate", [0, 2000])
def test_hold_releases_nothing_until_release(fakeapi, rate):
    api = fakeapi("--count", "200", "--chats", "10", "--rate", rate, "--hold")
    time.sleep(0.3)
    assert get_updates(api, timeout=0) == []
    assert api.stats()["updates_released"] == 0
    t0 = time.monotonic()
    api.release()
    ids = []
    while len(ids) < 200 and time.monotonic() - t0 < 5:
        got = get_updates(api, offset=ids[-1] + 1 if ids else 0, timeout=1)
        ids += [u["update_id"] for u in got]
    assert ids == list(range(1, 201))
    # At the rate, counted from the release.
    assert time.monotonic() - t0 >= (0.09 if rate else 0)
