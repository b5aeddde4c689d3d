"""systemd/tgrun@.service checked offline: systemd-analyze verify and security, and its settings."""
import os
import re
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
UNIT = os.path.join(REPO, "systemd", "tgrun@.service")
from conftest import BUILD  # noqa: E402
INSTANCE = "tgrun@testbot.service"
INSTALLED_EXEC = "/usr/local/bin/tgrund"
MAX_EXPOSURE = 2.0

# Every process a test starts has a time limit.
TIMEOUT = 60

# Settings the unit must carry, with their exact values (see DESIGN.md "systemd").
# A list means the key is given once per element, in that order.
REQUIRED = {
    "Unit": {
        "After": "network-online.target",
        "Wants": "network-online.target",
    },
    "Service": {
        "Type": "notify",
        "NotifyAccess": "main",
        "ExecStart": INSTALLED_EXEC + " -c /etc/tgrun/%i.conf",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "LoadCredential": "token:/etc/tgrun/%i.token",
        "DynamicUser": "yes",
        "StateDirectory": "tgrun/%i",
        "RuntimeDirectory": "tgrun/%i",
        "ConfigurationDirectory": "tgrun",
        "UMask": "0077",
        "KillMode": "mixed",
        "TimeoutStopSec": "45s",
        "Restart": "on-failure",
        "RestartSec": "2s",
        "RestartPreventExitStatus": "2 3",
        "WatchdogSec": "30s",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "DevicePolicy": "closed",
        "PrivateUsers": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "SystemCallFilter": ["@system-service", "~@privileged @resources"],
        "SystemCallArchitectures": "native",
        "MemoryDenyWriteExecute": "yes",
        "LockPersonality": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "ProtectClock": "yes",
        "ProtectHostname": "yes",
        "ProtectProc": "invisible",
        "ProcSubset": "pid",
        "RestrictNamespaces": "yes",
        "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes",
        "KeyringMode": "private",
        "RemoveIPC": "yes",
    },
    "Install": {
        "WantedBy": "multi-user.target",
    },
}

# Must not be set: the daemon has to reach the Bot API, and Debian 12 ships
# systemd 252, which has neither Type=notify-reload nor ReloadSignal=.
FORBIDDEN = {"Service": ["IPAddressDeny", "IPAddressAllow", "ReloadSignal",
                         "PrivateNetwork"]}


def parse_unit(path):
    """{section: {key: [values in order]}}; comments dropped, continuations joined."""
    sections, cur, pending = {}, None, ""
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if pending:
                line, pending = pending + line.lstrip(), ""
            stripped = line.strip()
            if not stripped or stripped[0] in "#;":
                continue
            if stripped.endswith("\\"):
                pending = stripped[:-1] + " "
                continue
            m = re.fullmatch(r"\[([^\]]+)\]", stripped)
            if m:
                cur = sections.setdefault(m.group(1), {})
                continue
            assert cur is not None, "%s: assignment before any section: %r" % (path, line)
            key, sep, value = stripped.partition("=")
            assert sep, "%s: not an assignment: %r" % (path, line)
            cur.setdefault(key.strip(), []).append(value.strip())
    return sections


def analyze():
    """systemd-analyze, or a failure saying how to get it (a missing tool is not a pass)."""
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze not found: install the Debian package 'systemd' "
                    "(apt-get install -y systemd); `make deps` should do it", pytrace=False)
    return path


def run_analyze(*args):
    env = dict(os.environ)
    # Pin the log level: an inherited SYSTEMD_LOG_LEVEL=err would hide the
    # warnings we are looking for. No colours, no pager.
    env.update(SYSTEMD_LOG_LEVEL="info", SYSTEMD_LOG_COLOR="0",
               SYSTEMD_LOG_LOCATION="0", SYSTEMD_LOG_TARGET="console",
               SYSTEMD_PAGER="", SYSTEMD_COLORS="0")
    return subprocess.run([analyze()] + list(args), env=env, capture_output=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL)


@pytest.fixture
def unit_copy(tmp_path):
    """The unit as an instance file whose ExecStart is the freshly built tgrund.

    verify insists that ExecStart's binary exists, and /usr/local/bin/tgrund is
    only there after `make install`.
    """
    analyze()
    tgrund = os.path.abspath(os.path.join(BUILD, "tgrund"))
    assert os.access(tgrund, os.X_OK), "%s is missing: run make first" % tgrund
    with open(UNIT, encoding="utf-8") as f:
        text = f.read()
    text, n = re.subn(r"^ExecStart=%s " % re.escape(INSTALLED_EXEC),
                      "ExecStart=%s " % tgrund, text, flags=re.M)
    assert n == 1, "expected one ExecStart=%s line in %s" % (INSTALLED_EXEC, UNIT)
    path = tmp_path / INSTANCE
    path.write_text(text, encoding="utf-8")
    return path


def output_lines(proc):
    text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    return [l for l in text.splitlines() if l.strip()]


def is_other_units_noise(line, path):
    """True for a message that names some other unit or unit file.

    verify also loads what the unit pulls in (network-online.target,
    multi-user.target and whatever the host hangs off them), and reports
    problems in the host's own unit files as "<file>:<line>: ..." or
    "<unit>: ...". Those are not ours. Anything naming our file or
    instance, or naming nothing, counts against the unit.
    """
    if str(path) in line or INSTANCE in line or "tgrun@" in line:
        return False
    m = re.match(r"(\S+?)(?::\d+)?: ", line)
    if m is None:
        return False
    who = m.group(1)
    return who.startswith("/") or re.fullmatch(
        r"[\w:.@\\-]+\.(service|socket|target|device|mount|automount|swap|"
        r"timer|path|slice|scope)", who) is not None


def test_verify_no_warnings(unit_copy):
    # --recursive-errors=no: a non-zero exit for problems in our unit only
    # (the default exits 0 even with warnings); the output check below
    # catches the rest.
    proc = run_analyze("verify", "--man=no", "--recursive-errors=no", str(unit_copy))
    lines = output_lines(proc)
    ours = [l for l in lines if not is_other_units_noise(l, unit_copy)]
    noise = [l for l in lines if is_other_units_noise(l, unit_copy)]
    if noise:
        print("ignored, about other units:\n  " + "\n  ".join(noise))
    assert proc.returncode == 0 and not ours, \
        "systemd-analyze verify (exit %d):\n  %s" % (proc.returncode, "\n  ".join(ours))


def test_security_exposure_at_most_2(unit_copy):
    proc = run_analyze("security", "--offline=yes", "--no-pager", str(unit_copy))
    out = proc.stdout.decode("utf-8", "replace")
    m = re.search(r"Overall exposure level for %s: (\d+(?:\.\d+)?)" % re.escape(INSTANCE),
                  out)
    assert proc.returncode == 0 and m, "systemd-analyze security (exit %d):\n%s%s" % (
        proc.returncode, out, proc.stderr.decode("utf-8", "replace"))
    exposure = float(m.group(1))
    print("overall exposure %.1f" % exposure)
    assert exposure <= MAX_EXPOSURE, "exposure %.1f > %.1f:\n%s" % (
        exposure, MAX_EXPOSURE, "\n".join(l for l in out.splitlines() if "✗" in l))


def test_required_settings():
    unit = parse_unit(UNIT)
    problems = []
    for section, want in REQUIRED.items():
        have = unit.get(section, {})
        for key, value in want.items():
            expect = value if isinstance(value, list) else [value]
            got = have.get(key)
            if got != expect:
                problems.append("[%s] %s: want %r, have %r" % (section, key, expect, got))
    for key in ("Description", "Documentation"):
        if not any(unit.get("Unit", {}).get(key, [])):
            problems.append("[Unit] %s missing" % key)
    for section, keys in FORBIDDEN.items():
        for key in keys:
            if key in unit.get(section, {}):
                problems.append("[%s] %s must not be set" % (section, key))
    assert not problems, "%s:\n  %s" % (UNIT, "\n  ".join(problems))
