"""Real TLS and real proxies in front of the fake Bot API, for integration tests.

- make_ca(dir): throwaway CAs and server certificates (openssl CLI, EC keys).
- Nghttpx: a TLS-terminating reverse proxy (h2 + http/1.1, or http/1.1 only)
  in front of a plain HTTP backend such as build/tgrun-fakeapi.
- Microsocks: a SOCKS5 proxy, optionally with a user and password.
- Tinyproxy: an HTTP proxy (plain forwarding and CONNECT), optionally with
  Basic authentication.

Every server listens on 127.0.0.1 only, runs in the foreground as a procs.Proc
(so a ProcGroup stops it by PID and shows its log on failure), and is waited
for until its port accepts connections.

What nghttpx and tinyproxy log includes request paths, and a Bot API path
contains the bot token. Their output therefore goes through a pipe into
RedactingProc, which replaces anything token-like before it reaches a file.
"""
import os
import re
import shutil
import socket
import subprocess
import threading
import time

from procs import TEST_TOKEN, Proc

NGHTTPX = "/usr/sbin/nghttpx"
MICROSOCKS = "/usr/bin/microsocks"
TINYPROXY = "/usr/bin/tinyproxy"

# Debian package providing each tool (`make deps` installs them).
PACKAGES = {"nghttpx": "nghttp2-proxy", "microsocks": "microsocks",
            "tinyproxy": "tinyproxy", "openssl": "openssl", "curl": "curl"}

START_TIMEOUT = 10      # seconds for a server to accept connections
OPENSSL_TIMEOUT = 20    # seconds for one openssl call

_serial = [0]


def _next(name):
    _serial[0] += 1
    return "%s-%d" % (name, _serial[0])


def tool_path(name):
    """Absolute path of a tool (also looked for in /usr/sbin), or None."""
    fixed = {"nghttpx": NGHTTPX, "microsocks": MICROSOCKS, "tinyproxy": TINYPROXY}
    if name in fixed and os.access(fixed[name], os.X_OK):
        return fixed[name]
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")


def _require(name):
    path = tool_path(name)
    if path is None:
        raise RuntimeError(missing_tools(name))
    return path


def missing_tools(*names):
    """A message naming the missing tools and how to get them, or None."""
    missing = [n for n in names if tool_path(n) is None]
    if not missing:
        return None
    return ("missing %s (Debian: %s); run `make deps` to install"
            % (", ".join(missing), " ".join(PACKAGES.get(n, n) for n in missing)))


# --- token redaction ---------------------------------------------------------

_TOKEN_RES = [
    # /bot<token>/method and /file/bot<token>/path, whatever the token looks like
    (re.compile(rb"(/bot)[^/\s?#\"]+"), rb"\1<TOKEN>"),
    # anything shaped like a Bot API token: digits ':' 20+ token characters
    (re.compile(rb"\b\d{3,}:[A-Za-z0-9_-]{20,}"), rb"<TOKEN>"),
]


def redact(data):
    """`data` (bytes) with bot tokens replaced by <TOKEN>."""
    data = data.replace(TEST_TOKEN.encode(), b"<TOKEN>")
    data = data.replace(TEST_TOKEN.split(":", 1)[1].encode(), b"<TOKEN>")
    for rx, repl in _TOKEN_RES:
        data = rx.sub(repl, data)
    return data


class RedactingProc(Proc):
    """A Proc whose stdout and stderr reach their files through pipes, with
    bot tokens redacted line by line. Same files, same API as Proc."""

    def __init__(self, argv, log_path, env=None, cwd=None, merge_stdout=False):
        self.argv = argv
        self.log_path = log_path
        self.out_path = log_path + ".out"
        self._log = open(log_path, "ab")
        self._out = open(self.out_path, "ab")
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT if merge_stdout else subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        self.pid = self.p.pid
        pipes = [(self.p.stdout, self._log if merge_stdout else self._out)]
        if not merge_stdout:
            pipes.append((self.p.stderr, self._log))
        self._pumps = [threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                       for src, dst in pipes]
        for t in self._pumps:
            t.start()

    @staticmethod
    def _pump(src, dst):
        try:
            for line in iter(src.readline, b""):
                dst.write(redact(line))
                dst.flush()
        except (OSError, ValueError):
            pass
        finally:
            src.close()

    def stop(self, timeout=10):
        self.end(timeout)
        for t in self._pumps:       # the pipes reach EOF once the process is gone
            t.join(5)
        return Proc.stop(self, timeout)


# --- certificates -------------------------------------------------------------

class TlsCerts:
    """Paths of the files make_ca() wrote (attributes, or cert["name"])."""

    FIELDS = ("ca_cert", "ca_key", "server_key", "server_cert",
              "other_ca_cert", "other_ca_key", "other_server_key", "other_server_cert")

    def __init__(self, **paths):
        for k in self.FIELDS:
            setattr(self, k, paths[k])

    def __getitem__(self, key):
        return getattr(self, key)

    def as_dict(self):
        return {k: getattr(self, k) for k in self.FIELDS}

    def __repr__(self):
        return "TlsCerts(%r)" % self.as_dict()


def _openssl(*args, cwd):
    openssl = _require("openssl")
    r = subprocess.run([openssl] + list(args), cwd=cwd, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=OPENSSL_TIMEOUT)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed (%d):\n%s"
                           % (" ".join(args), r.returncode, r.stdout.decode("utf-8", "replace")))


def _write(path, text):
    with open(path, "w") as f:
        f.write(text)


_CA_CNF = """[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = %s
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""

_SERVER_CNF = """[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _make_pair(d, prefix, ca_name, days):
    """CA <prefix>ca.{key,pem} and server <prefix>server.{key,pem} signed by it."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_cnf = os.path.join(d, prefix + "ca.cnf")
    srv_cnf = os.path.join(d, prefix + "server.cnf")
    _write(ca_cnf, _CA_CNF % ca_name)
    _write(srv_cnf, _SERVER_CNF)
    ca_key, ca_cert = (os.path.join(d, prefix + "ca" + e) for e in (".key", ".pem"))
    key, csr, cert = (os.path.join(d, prefix + "server" + e) for e in (".key", ".csr", ".pem"))
    _openssl("req", "-x509", "-config", ca_cnf, *ec, "-keyout", ca_key, "-out", ca_cert,
             "-days", str(days), "-sha256", cwd=d)
    _openssl("req", "-new", "-config", srv_cnf, *ec, "-keyout", key, "-out", csr, cwd=d)
    _openssl("x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
             "-set_serial", "0x" + os.urandom(8).hex(), "-days", str(days), "-sha256",
             "-extfile", srv_cnf, "-extensions", "v3_server", "-out", cert, cwd=d)
    for p in (ca_key, key):
        os.chmod(p, 0o600)
    return ca_key, ca_cert, key, cert


def make_ca(dirpath, days=30):
    """A throwaway CA "tgrun test CA" with a server certificate for 127.0.0.1 and
    localhost, and an unrelated "tgrun other CA" with its own such certificate
    (for "unknown CA" failures). Returns TlsCerts with absolute paths."""
    d = os.path.abspath(str(dirpath))
    os.makedirs(d, exist_ok=True)
    ca_key, ca_cert, key, cert = _make_pair(d, "", "tgrun test CA", days)
    o_ca_key, o_ca_cert, o_key, o_cert = _make_pair(d, "other-", "tgrun other CA", days)
    return TlsCerts(ca_cert=ca_cert, ca_key=ca_key, server_key=key, server_cert=cert,
                    other_ca_cert=o_ca_cert, other_ca_key=o_ca_key,
                    other_server_key=o_key, other_server_cert=o_cert)


# --- ports and readiness ------------------------------------------------------

def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_accepting(port, proc, timeout=START_TIMEOUT, what="server"):
    """Wait until 127.0.0.1:port accepts a TCP connection while `proc` lives."""
    end = time.monotonic() + timeout
    while True:
        if not proc.alive():
            raise RuntimeError("%s exited with %s before accepting on port %d:\n%s"
                               % (what, proc.p.returncode, port, proc.log()[-3000:]))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            pass
        if time.monotonic() > end:
            raise RuntimeError("%s did not accept on port %d within %ss:\n%s"
                               % (what, port, timeout, proc.log()[-3000:]))
        time.sleep(0.02)


class _Server:
    """Common part: start on a free port (retried if someone took it), stop."""

    name = "server"

    def _start(self, make_proc, attempts=3):
        last = None
        for _ in range(attempts):
            self.port = free_port()
            self.proc = make_proc(self.port)
            try:
                wait_accepting(self.port, self.proc, what=self.name)
                return
            except RuntimeError as e:
                last = e
                self.proc.stop()
                if "before accepting" not in str(e):
                    break
        raise last

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        return self.proc.log()

    def stop(self):
        return self.proc.stop()


# --- nghttpx ------------------------------------------------------------------

# key=value fields; values never contain spaces. The path is redacted by
# RedactingProc before it reaches a file.
_ACCESS_FIELDS = ("remote_addr", "remote_port", "alpn", "tls_session_reused",
                  "tls_protocol", "tls_cipher", "tls_sni", "protocol_version", "method",
                  "path_without_query", "status", "body_bytes_sent", "request_time")
ACCESS_MARK = "access:"
ACCESS_FORMAT = ACCESS_MARK + "".join(" %s=$%s" % (f, f) for f in _ACCESS_FIELDS)
# For benchmarks: no path (so no token to redact), written by nghttpx itself to
# a file, with no Python pipe taking CPU from what is measured.
BENCH_ACCESS_FORMAT = ACCESS_MARK + "".join(
    " %s=$%s" % (f, f) for f in _ACCESS_FIELDS if f != "path_without_query")


class Nghttpx(_Server):
    """nghttpx terminating TLS on 127.0.0.1:<port> in front of the plain HTTP/1.1
    backend 127.0.0.1:<backend_port>. ALPN offers h2 and http/1.1, or only
    http/1.1 when http2=False. Single process, foreground; its error log and its
    access log (lines starting with "access:") both go to self.proc's log."""

    name = "nghttpx"

    def __init__(self, tmp, backend_port, key, cert, http2=True, workers=1,
                 max_streams=None, extra_args=(), bench=False):
        self.tmp = str(tmp)
        self.backend_port = int(backend_port)
        self.http2 = http2
        self.key = os.path.abspath(key)
        self.cert = os.path.abspath(cert)
        base = os.path.join(self.tmp, _next("nghttpx"))
        # nghttpx reads /etc/nghttpx/nghttpx.conf unless --conf is given; Debian's
        # has errorlog-syslog=yes and a frontend of its own.
        self.conf_path = base + ".conf"
        _write(self.conf_path, "# empty: everything is on the command line\n")
        self.log_path = base + ".log"
        self.access_path = base + ".access" if bench else None
        exe = _require("nghttpx")

        def argv(port):
            a = [exe,
                 "--conf=" + self.conf_path,
                 "--frontend=127.0.0.1,%d" % port,
                 "--backend=127.0.0.1,%d" % self.backend_port,
                 "--npn-list=" + ("h2,http/1.1" if http2 else "http/1.1"),
                 "--workers=%d" % workers,
                 "--single-process",       # one PID to stop, no worker process left over
                 "--no-ocsp",
                 "--errorlog-file=/dev/stderr",
                 "--accesslog-file=" + (self.access_path or "/dev/stderr"),
                 "--accesslog-format=" + (BENCH_ACCESS_FORMAT if bench else ACCESS_FORMAT),
                 "--log-level=NOTICE"]
            if max_streams is not None:
                a.append("--frontend-http2-max-concurrent-streams=%d" % max_streams)
            return a + list(extra_args) + [self.key, self.cert]

        self._start(lambda port: (Proc if bench else RedactingProc)(argv(port), self.log_path))
        self.url = "https://127.0.0.1:%d" % self.port

    def access_entries(self):
        """One dict per request nghttpx answered, in order: the fields of
        _ACCESS_FIELDS ("-" when unknown), plus "path" (= path_without_query,
        token redacted) and "api_method" (its last segment, e.g. "getUpdates")."""
        out = []
        if self.access_path is not None:
            with open(self.access_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        else:
            text = self.log()
        for line in text.splitlines():
            if not line.startswith(ACCESS_MARK):
                continue
            e = dict(kv.split("=", 1) for kv in line[len(ACCESS_MARK):].split() if "=" in kv)
            e["path"] = e.get("path_without_query", "-")
            e["api_method"] = e["path"].rstrip("/").rsplit("/", 1)[-1]
            out.append(e)
        return out

    def connections(self):
        """Distinct client connections that carried at least one request."""
        return len({(e["remote_addr"], e["remote_port"]) for e in self.access_entries()})

    def _per_connection(self, field):
        counts = {}
        seen = set()
        for e in self.access_entries():
            conn = (e["remote_addr"], e["remote_port"])
            if conn not in seen:
                seen.add(conn)
                counts[e[field]] = counts.get(e[field], 0) + 1
        return counts

    def alpn_counts(self, per="connection"):
        """{"h2": n, "http/1.1": m}: connections (or requests, per="request") by
        protocol. nghttpx logs "http/1.1" for any HTTP/1, negotiated or not."""
        if per == "request":
            counts = {}
            for e in self.access_entries():
                counts[e["alpn"]] = counts.get(e["alpn"], 0) + 1
            return counts
        return self._per_connection("alpn")

    def session_reuse_counts(self):
        """{"reused": n, "new": m} over connections: TLS sessions resumed or not."""
        raw = self._per_connection("tls_session_reused")
        return {"reused": raw.get("r", 0), "new": sum(v for k, v in raw.items() if k != "r")}


# --- microsocks ---------------------------------------------------------------

class Microsocks(_Server):
    """microsocks (SOCKS5) on 127.0.0.1:<port>; with user and password it
    requires them. .url is socks5h:// (the proxy resolves host names)."""

    name = "microsocks"

    def __init__(self, tmp, user=None, password=None):
        if (user is None) != (password is None):
            raise ValueError("give both user and password, or neither")
        self.tmp = str(tmp)
        self.user, self.password = user, password
        self.log_path = os.path.join(self.tmp, _next("microsocks") + ".log")

        exe = _require("microsocks")

        def argv(port):
            a = [exe, "-i", "127.0.0.1", "-p", str(port)]
            if user is not None:
                a += ["-u", user, "-P", password]
            return a

        # microsocks sees host:port only, never a path: a plain Proc is enough.
        self._start(lambda port: Proc(argv(port), self.log_path))
        cred = "%s:%s@" % (user, password) if user is not None else ""
        self.url = "socks5h://%s127.0.0.1:%d" % (cred, self.port)
        self.url_noauth = "socks5h://127.0.0.1:%d" % self.port

    def connects(self):
        """(host, port) of every connection the proxy opened for a client, in
        order (microsocks logs "client[fd] ip: connected to host:port")."""
        out = []
        for m in re.finditer(r"connected to (\S+):(\d+)", self.log()):
            out.append((m.group(1), int(m.group(2))))
        return out

    def connections(self):
        return len(self.connects())


# --- tinyproxy ----------------------------------------------------------------

_TP_REQUEST = re.compile(r"Request \(file descriptor \d+\): (\S+) (\S+)")


class Tinyproxy(_Server):
    """tinyproxy (HTTP proxy: plain forwarding and CONNECT to any port) on
    127.0.0.1:<port>, foreground, config and log under tmp; with user and
    password it requires Basic authentication."""

    name = "tinyproxy"

    def __init__(self, tmp, user=None, password=None, max_clients=100, timeout=600):
        if (user is None) != (password is None):
            raise ValueError("give both user and password, or neither")
        self.tmp = str(tmp)
        self.user, self.password = user, password
        base = os.path.join(self.tmp, _next("tinyproxy"))
        self.conf_path = base + ".conf"
        self.log_path = base + ".log"
        exe = _require("tinyproxy")

        def make(port):
            lines = [
                "Port %d" % port,
                "Listen 127.0.0.1",
                "Allow 127.0.0.1",
                "Timeout %d" % timeout,
                "MaxClients %d" % max_clients,
                # No LogFile and no Syslog: with -d tinyproxy logs to its
                # stdout, which RedactingProc pipes into self.log_path without
                # tokens (plain proxied request lines carry the full URL).
                "LogLevel Connect",
                # No ConnectPort line: CONNECT to every port is allowed (the
                # packaged config restricts it to 443 and 563). No PidFile.
            ]
            if user is not None:
                lines.append("BasicAuth %s %s" % (user, password))
            _write(self.conf_path, "\n".join(lines) + "\n")
            # Without a LogFile, tinyproxy -d logs to stdout: merge it into the log.
            return RedactingProc([exe, "-d", "-c", self.conf_path], self.log_path,
                                 merge_stdout=True)

        self._start(make)
        cred = "%s:%s@" % (user, password) if user is not None else ""
        self.url = "http://%s127.0.0.1:%d" % (cred, self.port)
        self.url_noauth = "http://127.0.0.1:%d" % self.port

    def requests(self):
        """(method, target) of every request line tinyproxy read, in order; the
        target is host:port for CONNECT, the (token-redacted) URL otherwise.
        Includes requests refused with 407."""
        return [(m.group(1), m.group(2)) for m in _TP_REQUEST.finditer(self.log())]

    def requests_seen(self, method=None):
        """How many requests (of `method`, e.g. "CONNECT" or "GET") it read."""
        return sum(1 for m, _ in self.requests() if method is None or m == method)

    def forwarded(self):
        """How many upstream connections it opened (requests it let through)."""
        return self.log().count("Established connection to host")
