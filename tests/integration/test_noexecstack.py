"""How handlers are built: never with an executable stack (MemoryDenyWriteExecute=),
always with stack clash protection (a fiber's guard region cannot be stepped over)."""
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECK = os.path.join(ROOT, "tests", "noexecstack.sh")


def build(tmp_path, flag):
    src = tmp_path / "h.c"
    src.write_text("int tgrun_handle(void *c, const void *u) { return 0; }\n")
    so = str(tmp_path / ("h%s.so" % flag.replace(",", "_")))
    subprocess.run(["cc", "-shared", "-fPIC", "-Wl," + flag, "-o", so, str(src)],
                   check=True, capture_output=True, timeout=60)
    return so


def test_check_refuses_an_executable_stack(tmp_path):
    bad = build(tmp_path, "-z,execstack")
    r = subprocess.run(["sh", CHECK, bad], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "executable stack" in r.stderr


def test_check_accepts_noexecstack_and_every_built_handler(tmp_path):
    good = build(tmp_path, "-z,noexecstack")
    build_dir = os.environ.get("TGRUN_BUILD", os.path.join(ROOT, "build"))
    handlers = [os.path.join(build_dir, "handlers", f)
                for f in os.listdir(os.path.join(build_dir, "handlers")) if f.endswith(".so")]
    assert len(handlers) >= 5
    r = subprocess.run(["sh", CHECK, good] + handlers, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr


def test_handlers_are_built_with_stack_clash_protection():
    build_dir = os.environ.get("TGRUN_BUILD", os.path.join(ROOT, "build"))
    # bigframe.so is the one exception: it tests what code built without it does.
    for name, want in (("echo.so", "-fstack-clash-protection"),
                       ("rt_cmds.so", "-fstack-clash-protection"),
                       ("bigframe.so", "-fno-stack-clash-protection")):
        info = subprocess.run(["readelf", "--debug-dump=info",
                               os.path.join(build_dir, "handlers", name)],
                              capture_output=True, text=True, timeout=60, check=True).stdout
        producers = re.findall(r"DW_AT_producer\s*:.*", info)
        ours = [p for p in producers if "-fPIC" in p]
        assert ours, "%s: no compile flags in its debug info" % name
        assert all(want in p.split() for p in ours), (name, ours)
