"""Tests of netfront.py, the real TLS front and real proxies the fake API can sit
behind: nghttpx (h2 / http/1.1), microsocks (SOCKS5) and tinyproxy (HTTP proxy),
exercised with the curl command-line tool."""
import os
import subprocess

import pytest

from procs import TEST_TOKEN
from waits import eventually
import netfront

SECRET = TEST_TOKEN.split(":", 1)[1]
GETME = "/bot%s/getMe" % TEST_TOKEN
CURL_TIMEOUT = 5
MARK = "\n@@curl-info@@ "

# curl exit codes used below
CURL_PROXY_ERROR = 97       # SOCKS5 handshake refused (7.88: CURLE_PROXY)
CURL_TUNNEL_FAILED = 56     # CONNECT answered with a non-2xx status
CURL_PEER_UNVERIFIED = 60   # certificate not signed by a trusted CA


class CurlResult:
    def __init__(self, rc, stdout, stderr):
        self.rc = rc
        body, _, info = stdout.rpartition(MARK)
        self.body = body
        fields = info.split()
        self.http_version = fields[0] if fields else ""
        self.status = int(fields[1]) if len(fields) > 1 else 0
        self.err = netfront.redact(stderr.encode()).decode("utf-8", "replace").strip()

    def __repr__(self):
        return "curl(rc=%s, http=%s, status=%s, err=%r)" % (
            self.rc, self.http_version, self.status, self.err)


@pytest.fixture
def curl():
    """curl(url, ..., *args): one curl run (never -v: the URL holds the token),
    time-limited; proxies from the environment and ~/.curlrc are ignored."""
    msg = netfront.missing_tools("curl")
    if msg:
        pytest.fail(msg, pytrace=False)
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}

    def run(*args):
        argv = ["curl", "-q", "-sS", "--max-time", str(CURL_TIMEOUT),
                "-w", MARK + "%{http_version} %{http_code}"] + list(args)
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True,
                           env=env, timeout=CURL_TIMEOUT * 3)
        return CurlResult(r.returncode, r.stdout.decode("utf-8", "replace"),
                          r.stderr.decode("utf-8", "replace"))
    return run


def ok(res, http_version):
    assert res.rc == 0 and res.status == 200, res
    assert res.http_version == http_version, res
    assert '"ok":true' in res.body, res


def getme_calls(api):
    return len(api.calls("getMe"))


def test_redact():
    assert netfront.redact(b"GET http://h:1/bot%s/getMe HTTP/1.1\n" % TEST_TOKEN.encode()) \
        == b"GET http://h:1/bot<TOKEN>/getMe HTTP/1.1\n"
    assert netfront.redact(b"/file/botX:y/photos/a.jpg") == b"/file/bot<TOKEN>/photos/a.jpg"
    assert netfront.redact(b"token 987654321:ABCdefGHIjklMNOpqrSTUvwxYZ_-0123456789 x") \
        == b"token <TOKEN> x"
    assert netfront.redact(b"client[4] 127.0.0.1: connected to 127.0.0.1:8443") \
        == b"client[4] 127.0.0.1: connected to 127.0.0.1:8443"


def test_certificates(tls_certs):
    def verify(ca, cert):
        return subprocess.run(["openssl", "verify", "-CAfile", ca, cert],
                              capture_output=True, timeout=10).returncode
    assert verify(tls_certs.ca_cert, tls_certs.server_cert) == 0
    assert verify(tls_certs.other_ca_cert, tls_certs.other_server_cert) == 0
    assert verify(tls_certs.ca_cert, tls_certs.other_server_cert) != 0
    assert verify(tls_certs.other_ca_cert, tls_certs.server_cert) != 0
    text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in", tls_certs.server_cert],
                          capture_output=True, text=True, timeout=10).stdout
    assert "IP Address:127.0.0.1" in text and "DNS:localhost" in text
    assert "Issuer: CN = tgrun test CA" in text
    assert "prime256v1" in text


def test_nghttpx_h2(fakeapi, nghttpx, curl, tls_certs):
    api = fakeapi()
    ng = nghttpx(api)
    assert ng.url == "https://127.0.0.1:%d" % ng.port
    res = curl("--cacert", tls_certs.ca_cert, "--http2", ng.url + GETME, ng.url + GETME)
    # two responses on one connection; -w is printed after each
    assert res.rc == 0 and res.body.count('"ok":true') == 2, res
    assert res.http_version == "2", res
    assert getme_calls(api) == 2
    entries = ng.access_entries()
    assert [(e["alpn"], e["protocol_version"], e["method"], e["api_method"], e["status"])
            for e in entries] == [("h2", "HTTP/2", "GET", "getMe", "200")] * 2
    assert entries[0]["path"] == "/bot<TOKEN>/getMe"
    assert entries[0]["tls_protocol"].startswith("TLS")
    assert eventually(lambda: ng.connections(), 1) == 1
    assert eventually(lambda: ng.alpn_counts(), {"h2": 1}) == {"h2": 1}
    assert eventually(lambda: ng.alpn_counts(per="request"), {"h2": 2}) == {"h2": 2}
    assert eventually(lambda: ng.session_reuse_counts(), {"reused": 0, "new": 1}) == {"reused": 0, "new": 1}
    assert SECRET not in ng.log()


def test_nghttpx_http11_only_and_session_reuse(fakeapi, nghttpx, curl, tls_certs):
    api = fakeapi()
    ng = nghttpx(api, http2=False)
    ok(curl("--cacert", tls_certs.ca_cert, "--http2", ng.url + GETME), "1.1")
    # a new connection per request; curl resumes the TLS session on the second
    res = curl("--cacert", tls_certs.ca_cert, "--http1.1", "-H", "Connection: close",
               ng.url + GETME, ng.url + GETME)
    assert res.rc == 0 and res.body.count('"ok":true') == 2, res
    assert getme_calls(api) == 3
    assert eventually(lambda: ng.connections(), 3) == 3
    assert eventually(lambda: ng.alpn_counts(), {"http/1.1": 3}) == {"http/1.1": 3}
    assert eventually(lambda: ng.session_reuse_counts(), {"reused": 1, "new": 2}) == {"reused": 1, "new": 2}


def test_unknown_ca_refused(fakeapi, nghttpx, curl, tls_certs):
    api = fakeapi()
    other = nghttpx(api, other_ca=True)
    ours = nghttpx(api)
    res = curl("--cacert", tls_certs.ca_cert, other.url + GETME)
    assert res.rc == CURL_PEER_UNVERIFIED, res
    res = curl("--cacert", tls_certs.other_ca_cert, ours.url + GETME)
    assert res.rc == CURL_PEER_UNVERIFIED, res
    assert getme_calls(api) == 0
    assert eventually(lambda: other.connections(), 0) == 0
    assert eventually(lambda: ours.connections(), 0) == 0
    # the same fronts are fine with the right CA
    ok(curl("--cacert", tls_certs.other_ca_cert, other.url + GETME), "2")
    ok(curl("--cacert", tls_certs.ca_cert, "--resolve", "localhost:%d:127.0.0.1" % ours.port,
            "https://localhost:%d%s" % (ours.port, GETME)), "2")
    assert getme_calls(api) == 2


def test_microsocks(fakeapi, nghttpx, microsocks, curl, tls_certs):
    api = fakeapi()
    ng = nghttpx(api)
    ms = microsocks()
    assert ms.url == "socks5h://127.0.0.1:%d" % ms.port
    ok(curl("--proxy", ms.url, api.url + GETME), "1.1")
    ok(curl("--proxy", ms.url, "--cacert", tls_certs.ca_cert, ng.url + GETME), "2")
    # socks5h: the proxy resolves the name
    ok(curl("--proxy", ms.url, "http://localhost:%d%s" % (api.port, GETME)), "1.1")
    # microsocks logs the host as the client named it
    want = [("127.0.0.1", api.port), ("127.0.0.1", ng.port), ("localhost", api.port)]
    assert eventually(ms.connects, want) == want
    assert eventually(lambda: ng.connections(), 1) == 1
    assert getme_calls(api) == 3


def test_microsocks_credentials(fakeapi, microsocks, curl):
    api = fakeapi()
    ms = microsocks("bob", "s3cret")
    assert ms.url == "socks5h://bob:s3cret@127.0.0.1:%d" % ms.port
    ok(curl("--proxy", ms.url, api.url + GETME), "1.1")
    assert curl("--proxy", ms.url_noauth, api.url + GETME).rc == CURL_PROXY_ERROR
    bad = ms.url.replace("s3cret", "wrong")
    assert curl("--proxy", bad, api.url + GETME).rc == CURL_PROXY_ERROR
    assert eventually(lambda: ms.connections(), 1) == 1
    assert getme_calls(api) == 1


def test_tinyproxy_plain_and_connect(fakeapi, nghttpx, tinyproxy, curl, tls_certs):
    api = fakeapi()
    ng = nghttpx(api)
    tp = tinyproxy()
    assert tp.url == "http://127.0.0.1:%d" % tp.port
    ok(curl("--proxy", tp.url, api.url + GETME), "1.1")
    # https through CONNECT to a port that is not 443, h2 inside the tunnel
    ok(curl("--proxy", tp.url, "--cacert", tls_certs.ca_cert, ng.url + GETME), "2")
    # CONNECT to the plain fake API as well
    ok(curl("--proxy", tp.url, "--proxytunnel", api.url + GETME), "1.1")
    assert tp.requests() == [
        ("GET", "http://127.0.0.1:%d/bot<TOKEN>/getMe" % api.port),
        ("CONNECT", "127.0.0.1:%d" % ng.port),
        ("CONNECT", "127.0.0.1:%d" % api.port)]
    assert eventually(lambda: tp.requests_seen("CONNECT"), 2) == 2
    assert eventually(lambda: tp.requests_seen("GET"), 1) == 1
    assert eventually(lambda: tp.forwarded(), 3) == 3
    assert eventually(lambda: ng.connections(), 1) == 1
    assert eventually(lambda: ng.alpn_counts(), {"h2": 1}) == {"h2": 1}
    assert getme_calls(api) == 3
    log = tp.log()
    assert SECRET not in log and "/bot<TOKEN>/getMe" in log


def test_tinyproxy_credentials(fakeapi, nghttpx, tinyproxy, curl, tls_certs):
    api = fakeapi()
    ng = nghttpx(api, http2=False)
    tp = tinyproxy("alice", "pw0rd")
    assert tp.url == "http://alice:pw0rd@127.0.0.1:%d" % tp.port
    ok(curl("--proxy", tp.url, api.url + GETME), "1.1")
    ok(curl("--proxy", tp.url, "--cacert", tls_certs.ca_cert, ng.url + GETME), "1.1")
    # tinyproxy 1.11.1 refuses a plain proxied request with 401, not 407
    # (tinyproxy issue #532, fixed upstream later); CONNECT gets 407.
    res = curl("--proxy", tp.url_noauth, api.url + GETME)
    assert res.rc == 0 and res.status in (401, 407), res
    res = curl("--proxy", tp.url_noauth, "--cacert", tls_certs.ca_cert, ng.url + GETME)
    assert res.rc == CURL_TUNNEL_FAILED, res
    res = curl("--proxy", tp.url.replace("pw0rd", "nope"), api.url + GETME)
    assert res.rc == 0 and res.status in (401, 407), res
    res = curl("--proxy", tp.url.replace("pw0rd", "nope"), "--proxytunnel", api.url + GETME)
    assert res.rc == CURL_TUNNEL_FAILED, res
    assert eventually(lambda: tp.requests_seen("GET"), 3) == 3
    assert eventually(lambda: tp.requests_seen("CONNECT"), 3) == 3
    assert eventually(lambda: tp.forwarded(), 2) == 2
    assert eventually(lambda: ng.connections(), 1) == 1
    assert getme_calls(api) == 2
