"""A JetStream cluster of nats-server processes on loopback, for the cluster tests.

NatsCluster(tmp, size=3) writes one config file and one store directory per
server under `tmp`, picks free client, route and monitoring ports, starts the
servers with routes to each other and waits until JetStream has elected its
meta leader. Every wait is bounded; every server is stopped by PID.
"""
import json
import os
import shutil
import signal
import socket
import time
import urllib.error
import urllib.request

from procs import Proc
from waits import wait_until

_serial = [0]


def node_conf(name, nats_urls, api_url, lease="2s", replicas=3):
    """The config sections of one tgrund cluster node named `name`: its
    [cluster] and an api_url under which the fake Bot API records it as `via`."""
    return {"bot": {"api_url": "%s/__via/%s" % (api_url, name)},
            "cluster": {"nats": ", ".join(nats_urls), "node": name,
                        "replicas": replicas, "lease": lease}}

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def missing():
    """Why the cluster cannot start here, or None."""
    if not os.access(NATS_SERVER, os.X_OK):
        return "nats-server is not installed (make deps installs it)"
    return None


def free_ports(n):
    """`n` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


class NatsServer:
    """One nats-server of the cluster: its ports, config, store dir and process."""

    def __init__(self, tmp, prefix, cluster_name, index, size, ports):
        self.index = index
        self.name = "n%d" % index
        self.port, self.route_port, self.http_port = ports[index]
        self.dir = os.path.join(tmp, "%s-%s" % (prefix, self.name))
        self.store = os.path.join(self.dir, "store")
        os.makedirs(self.store, exist_ok=True)
        self.conf_path = os.path.join(self.dir, "server.conf")
        self.log_path = os.path.join(tmp, "%s-%s.log" % (prefix, self.name))
        self.url = "nats://127.0.0.1:%d" % self.port
        self.alone = size == 1
        routes = ["nats-route://127.0.0.1:%d" % ports[j][1]
                  for j in range(size) if j != index]
        cluster = ""
        if size > 1:
            # no_advertise: clients learn no other servers' URLs, so a client
            # given one URL stays cut off when that server is down.
            cluster = ("cluster {\n  name: %s\n  listen: 127.0.0.1:%d\n"
                       "  no_advertise: true\n  routes: [\n%s\n  ]\n}\n"
                       % (cluster_name, self.route_port,
                          "\n".join("    " + r for r in routes)))
        with open(self.conf_path, "w") as f:
            f.write("server_name: %s\n"
                    "listen: 127.0.0.1:%d\n"
                    "http: 127.0.0.1:%d\n"
                    "jetstream {\n  store_dir: \"%s\"\n  max_memory_store: 64MB\n"
                    "  max_file_store: 2GB\n}\n"
                    "%s"
                    % (self.name, self.port, self.http_port, self.store, cluster))
        self.proc = None

    def start(self):
        assert not self.alive(), "nats server %s is already running" % self.name
        if self.proc is not None:
            self.proc.stop(0)
        self.proc = Proc([NATS_SERVER, "-c", self.conf_path], self.log_path)
        return self

    def alive(self):
        return self.proc is not None and self.proc.alive()

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def kill(self):
        """SIGKILL by PID; waits (bounded) until it is gone."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            assert self.proc.wait(10) is not None, "nats server %s outlived SIGKILL" % self.name

    def stop(self, timeout=10):
        """SIGTERM (SIGKILL after `timeout` s); returns the exit status."""
        return self.proc.stop(timeout) if self.proc else None

    def monitor(self, path, timeout=2):
        """The monitoring endpoint's JSON (e.g. "jsz", "healthz"), or None."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/%s" % (self.http_port, path),
                                        timeout=timeout) as r:
                return json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            try:
                return json.loads(e.read().decode())
            except ValueError:
                return None
        except (OSError, ValueError):
            return None

    def meta(self):
        """(meta leader name or None, cluster size) as this server sees JetStream;
        a server alone is its own leader once healthy."""
        j = self.monitor("jsz") or {}
        if self.alone:
            return (self.name, 1) if j.get("config") else (None, 0)
        mc = j.get("meta_cluster") or {}
        return mc.get("leader") or None, mc.get("cluster_size", 0)

    def healthy(self):
        h = self.monitor("healthz")
        return bool(h) and h.get("status") == "ok"

    def routes(self):
        r = self.monitor("routez") or {}
        return r.get("num_routes", 0)

    def log(self):
        return self.proc.log() if self.proc else ""


class NatsCluster:
    """`size` nats-server processes with JetStream, clustered on loopback."""

    def __init__(self, tmp, size=3, name="tgrun-test", start=True, timeout=30):
        self.tmp = str(tmp)
        self.size = size
        ports = free_ports(3 * size)
        ports = [tuple(ports[3 * i:3 * i + 3]) for i in range(size)]
        self.down = set()      # indexes of servers stopped or killed on purpose
        _serial[0] += 1
        prefix = "nats%d" % _serial[0]
        self.servers = [NatsServer(self.tmp, prefix, name, i, size, ports)
                        for i in range(size)]
        if start:
            self.start_all(timeout)

    # --- lifetime ---------------------------------------------------------
    def start_all(self, timeout=30):
        for s in self.servers:
            s.start()
        self.wait_ready(timeout)
        return self

    def stop_all(self):
        for s in self.servers:
            try:
                s.stop()
            except Exception as e:  # keep stopping the others
                print("stopping nats server %s failed: %s" % (s.name, e))

    # ProcGroup calls stop() at teardown.
    def stop(self, i=None):
        """stop(i): SIGTERM server i (SIGKILL after 10 s); stop(): all of them."""
        if i is None:
            return self.stop_all()
        self.down.add(i)
        return self.servers[i].stop()

    def kill(self, i):
        """SIGKILL server i by PID."""
        self.down.add(i)
        self.servers[i].kill()

    def start(self, i, timeout=30):
        """Start server i again, same ports and store dir; waits until it is healthy
        and sees the meta leader."""
        s = self.servers[i].start()
        self.down.discard(i)
        wait_until(lambda: s.healthy() and s.meta()[0], timeout,
                   what="nats server %s to rejoin (log: %s)" % (s.name, s.log_path))
        return s

    # --- state ------------------------------------------------------------
    @property
    def urls(self):
        return [s.url for s in self.servers]

    @property
    def procs(self):
        """The servers' current processes (ProcGroup shows their logs on failure)."""
        return [s.proc for s in self.servers if s.proc is not None]

    @property
    def pids(self):
        return [s.pid for s in self.servers]

    def alive(self):
        return [s for s in self.servers if s.alive()]

    def meta_leader(self):
        """The meta leader's server name if every live server agrees on one, else None."""
        views = [s.meta() for s in self.alive()]
        leaders = {lead for lead, _ in views}
        if len(views) == 0 or len(leaders) != 1 or None in leaders:
            return None
        return leaders.pop()

    def wait_ready(self, timeout=30):
        """Until every live server is healthy, routed to the other live ones and
        agrees on a JetStream meta leader; returns the leader's name."""
        def ready():
            live = self.alive()
            dead = [s.name for s in self.servers
                    if s.proc is not None and not s.alive() and s.index not in self.down]
            if dead:
                raise AssertionError("nats server(s) %s exited:\n%s" % (
                    dead, "\n".join(s.log()[-2000:] for s in self.servers
                                    if s.name in dead)))
            if self.size > 1 and any(s.routes() < len(live) - 1 for s in live):
                return None
            if not all(s.healthy() for s in live):
                return None
            return self.meta_leader()
        try:
            return wait_until(ready, timeout, interval=0.1,
                              what="the JetStream meta leader of %d nats servers" % self.size)
        except AssertionError:
            for s in self.servers:
                print("----- log of nats server %s -----\n%s" % (s.name, s.log()[-3000:]))
            raise

    def index_of(self, name):
        return [s.name for s in self.servers].index(name)


class NatsClient:
    """A minimal NATS client over one socket (the text protocol), enough for
    JetStream API requests in tests: request(subject, payload) -> reply bytes."""

    def __init__(self, url, timeout=5):
        host, port = url.split("://", 1)[-1].rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""
        self.sid = 0
        self.timeout = timeout
        line = self._line(time.monotonic() + timeout)
        assert line.startswith(b"INFO "), line
        self.info = json.loads(line[5:].decode())
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true,'
                          b'"no_responders":true,"protocol":1}\r\nPING\r\n')
        end = time.monotonic() + timeout
        while True:
            line = self._line(end)
            if line == b"PONG":
                break
            if line.startswith(b"-ERR"):
                raise RuntimeError("nats: " + line.decode())

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _fill(self, end):
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError("nats: no answer in time")
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("nats: connection closed")
        self.buf += data

    def _line(self, end):
        while b"\r\n" not in self.buf:
            self._fill(end)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n, end):
        while len(self.buf) < n + 2:
            self._fill(end)
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def request(self, subject, payload=b"", timeout=None, headers=None):
        """Publish (with `headers`, a dict, if given) with a fresh inbox as reply
        subject; the first reply's body. A "no responders" status raises RuntimeError."""
        if isinstance(payload, str):
            payload = payload.encode()
        self.sid += 1
        inbox = "_INBOX.tgruntest.%d.%d" % (os.getpid(), self.sid)
        sub = b"SUB %s %d\r\nUNSUB %d 1\r\n" % (inbox.encode(), self.sid, self.sid)
        if headers:
            head = ("NATS/1.0\r\n" + "".join("%s: %s\r\n" % kv for kv in headers.items())
                    + "\r\n").encode()
            pub = b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
                subject.encode(), inbox.encode(), len(head), len(head) + len(payload),
                head, payload)
        else:
            pub = b"PUB %s %s %d\r\n%s\r\n" % (subject.encode(), inbox.encode(),
                                                len(payload), payload)
        self.sock.sendall(sub + pub)
        end = time.monotonic() + (timeout or self.timeout)
        while True:
            line = self._line(end)
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
            elif line.startswith(b"-ERR"):
                raise RuntimeError("nats: " + line.decode())
            elif line.startswith(b"MSG "):
                parts = line.split()
                body = self._take(int(parts[-1]), end)
                if parts[2] == str(self.sid).encode():
                    return body
            elif line.startswith(b"HMSG "):
                parts = line.split()
                hlen, total = int(parts[-2]), int(parts[-1])
                data = self._take(total, end)
                if parts[2] != str(self.sid).encode():
                    continue
                head = data[:hlen]
                if b" 503" in head.split(b"\r\n", 1)[0]:
                    raise RuntimeError("nats: no responders for " + subject)
                return data[hlen:]

    def js(self, api, body=None, timeout=None):
        """A JetStream API request ($JS.API.<api>) with a JSON body; the parsed reply."""
        payload = json.dumps(body).encode() if body is not None else b""
        return json.loads(self.request("$JS.API." + api, payload, timeout).decode())
