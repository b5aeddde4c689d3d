# tgrun build: programs, handlers and tests land in build/.
# Flags come from pkg-config; warnings are errors.

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec/tgrun
INCLUDEDIR ?= $(PREFIX)/include
LIBDIR     ?= $(PREFIX)/lib
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
HANDLERDIR ?= $(LIBDIR)/tgrun/handlers
UNITDIR    ?= $(LIBDIR)/systemd/system
SYSCONFDIR ?= /etc
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/tgrun
DESTDIR    ?=

B := build
CC ?= cc
PKGS := libevent jansson libcurl libsystemd inih sqlite3 openssl libnats
# Debian package that provides each pkg-config module (used by `make deps`).
DEB_libevent   := libevent-dev
DEB_jansson    := libjansson-dev
DEB_libcurl    := libcurl4-openssl-dev
DEB_libsystemd := libsystemd-dev
DEB_inih       := libinih-dev
DEB_sqlite3    := libsqlite3-dev
DEB_openssl    := libssl-dev
DEB_cmocka     := libcmocka-dev
DEB_libnats    := libnats-dev
# lua.so, the handler that runs bots written in Lua
LUA_PKG        := lua5.4
DEB_lua        := liblua5.4-dev

PYTEST ?= /usr/bin/python3 -m pytest
# Seconds one integration test may take (python3-pytest-timeout): a hang fails
# that test, not the whole run.
TEST_TIMEOUT ?= 300

OPT      ?= -O2
WARN     := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
            -Wmissing-prototypes -Wno-unused-parameter
BASEFLAGS := -std=gnu11 -g $(OPT) $(WARN) -D_GNU_SOURCE -fno-strict-aliasing \
            -fstack-protector-strong -Icommon -Iworker -Idaemon
ifeq ($(SANITIZE),1)
BASEFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer \
             -fno-sanitize-recover=undefined
SANLDFLAGS := -fsanitize=address,undefined
endif
# common/ sees only its own headers: worker/sched.h would also hide the
# system <sched.h> that <pthread.h> includes (common/throttle.c).
$(B)/obj/common/%.o: BASEFLAGS := $(filter-out -Iworker -Idaemon,$(BASEFLAGS))
# daemon/ needs no worker header either, and its NATS code includes <pthread.h>.
$(B)/obj/daemon/%.o: BASEFLAGS := $(filter-out -Iworker,$(BASEFLAGS))

# Handlers are built as tgrun.pc tells handler authors to build theirs: with
# stack clash protection, so a large frame is probed page by page and cannot
# step over the guard region below a fiber's stack into other memory.
HANDLER_CFLAGS := -fstack-clash-protection
# The test handler for the guard region shows what code built without it does.
# (private: not inherited by its prerequisites, such as $(B)/.flags)
$(B)/handlers/bigframe.so: private HANDLER_CFLAGS := -fno-stack-clash-protection

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS = $(BASEFLAGS) $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SANLDFLAGS) $(LDFLAGS)

COMMON_SRC  := $(wildcard common/*.c)
DAEMON_SRC  := $(filter-out daemon/main.c daemon/tgrunctl.c,$(wildcard daemon/*.c))
WORKER_SRC  := $(filter-out worker/main.c,$(wildcard worker/*.c))
WORKER_ASM  := $(wildcard worker/*.S)
CTL_SRC     := daemon/tgrunctl.c
FAKEAPI_SRC := $(wildcard tests/fakeapi/*.c)
HANDLER_SRC := $(wildcard worker/examples/*.c tests/handlers/*.c)
UNIT_SRC    := $(wildcard tests/unit/test_*.c)
BENCH_SRC   := $(wildcard tests/bench/*.c)

obj = $(patsubst %.c,$(B)/obj/%.o,$(1))
COMMON_OBJ  := $(call obj,$(COMMON_SRC))
DAEMON_OBJ  := $(call obj,$(DAEMON_SRC))
WORKER_OBJ  := $(call obj,$(WORKER_SRC)) $(patsubst %.S,$(B)/obj/%.o,$(WORKER_ASM))
FAKEAPI_OBJ := $(call obj,$(FAKEAPI_SRC))
HANDLERS    := $(patsubst %.c,$(B)/handlers/%.so,$(notdir $(HANDLER_SRC)))
LUA_SRC     := $(wildcard worker/lua/*.c)
HANDLERS    += $(B)/handlers/lua.so
UNIT_BINS   := $(patsubst tests/unit/%.c,$(B)/tests/%,$(UNIT_SRC))
# The scheduler tests again on the ucontext fallback of worker/fiber.c.
UNIT_BINS   += $(B)/tests/test_sched_ucontext
BENCH_BINS  := $(patsubst tests/bench/%.c,$(B)/bench/%,$(BENCH_SRC))

PROGRAMS := $(B)/tgrund $(B)/tgrun-worker $(B)/tgrun-fakeapi
PROGRAMS += $(B)/tgrunctl

.PHONY: all deps check unit integration fuzz fuzz-build fuzz-check demo bench install clean
.DEFAULT_GOAL := all

all: deps
	@$(MAKE) --no-print-directory build-all

.PHONY: build-all
build-all: $(PROGRAMS) $(HANDLERS) $(UNIT_BINS) $(BENCH_BINS)
# The JetStream modules' tests need a nats-server: test_nats_modules.py runs them.
build-all: $(B)/tests/jetstream

# Rebuild everything when the flags change (e.g. switching SANITIZE on or off).
$(B)/.flags: FORCE
	@mkdir -p $(B)
	@echo '$(ALL_CFLAGS) $(ALL_LDFLAGS) $(HANDLER_CFLAGS)' | cmp -s - $@ || \
		echo '$(ALL_CFLAGS) $(ALL_LDFLAGS) $(HANDLER_CFLAGS)' > $@
.PHONY: FORCE
FORCE:

ifneq ($(V),1)
Q := @
endif

$(B)/obj/%.o: %.c $(B)/.flags
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -fPIC -MMD -MP -c $< -o $@

$(B)/obj/%.o: %.S $(B)/.flags
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  AS      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -fPIC -MMD -MP -c $< -o $@

$(B)/libcommon.a: $(COMMON_OBJ)
	@rm -f $@; ar rcs $@ $^
$(B)/libdaemon.a: $(DAEMON_OBJ)
	@rm -f $@; ar rcs $@ $^
$(B)/libworker.a: $(WORKER_OBJ)
	@rm -f $@; ar rcs $@ $^

$(B)/tgrund: $(B)/obj/daemon/main.o $(B)/libdaemon.a $(B)/libcommon.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

# The worker exports its API (tgrun_*) to the handlers it dlopen()s.
$(B)/tgrun-worker: $(B)/obj/worker/main.o $(B)/libworker.a $(B)/libcommon.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -rdynamic -o $@ -Wl,--whole-archive $(B)/libworker.a \
		-Wl,--no-whole-archive $(B)/obj/worker/main.o $(B)/libcommon.a $(PKG_LIBS) -ldl -lm

$(B)/tgrunctl: $(call obj,$(CTL_SRC)) $(B)/libdaemon.a $(B)/libcommon.a
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(B)/tgrun-fakeapi: $(FAKEAPI_OBJ)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

# Handlers: position-independent, no executable stack (MemoryDenyWriteExecute).
$(B)/handlers/%.so: worker/examples/%.c worker/tgrun.h $(B)/.flags
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  SO      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(HANDLER_CFLAGS) -fPIC -shared -Wl,-z,noexecstack -o $@ $< \
		$(ALL_LDFLAGS)
	$(Q)sh tests/noexecstack.sh $@ || { rm -f $@; exit 1; }
$(B)/handlers/%.so: tests/handlers/%.c worker/tgrun.h $(wildcard tests/handlers/*.h) $(B)/.flags
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  SO      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(HANDLER_CFLAGS) -fPIC -shared -Wl,-z,noexecstack -o $@ $< \
		$(ALL_LDFLAGS)
	$(Q)sh tests/noexecstack.sh $@ || { rm -f $@; exit 1; }

# The Lua handler: several files, and liblua.
$(B)/handlers/lua.so: $(LUA_SRC) worker/lua/lh.h worker/tgrun.h $(B)/.flags
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  SO      $@")
	$(Q)$(CC) $(ALL_CFLAGS) $(shell pkg-config --cflags $(LUA_PKG) 2>/dev/null) \
		$(HANDLER_CFLAGS) -fPIC -shared -Wl,-z,noexecstack -o $@ $(LUA_SRC) \
		$(ALL_LDFLAGS) $(shell pkg-config --libs $(LUA_PKG) 2>/dev/null) -ldl -lm
	$(Q)sh tests/noexecstack.sh $@ || { rm -f $@; exit 1; }

$(B)/tests/%: tests/unit/%.c $(wildcard tests/unit/*.h) $(B)/libdaemon.a $(B)/libworker.a \
		$(B)/libcommon.a $(B)/.flags
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libdaemon.a $(B)/libworker.a $(B)/libcommon.a \
		$(ALL_LDFLAGS) $(PKG_LIBS) $(shell pkg-config --libs cmocka 2>/dev/null) -ldl -lm

$(B)/obj/worker/fiber_ucontext.o: worker/fiber.c $(B)/.flags
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -DTGRUN_FIBER_UCONTEXT -MMD -MP -c $< -o $@

$(B)/tests/test_sched_ucontext: tests/unit/test_sched.c $(B)/obj/worker/fiber_ucontext.o \
		$(B)/libworker.a $(B)/libcommon.a $(B)/.flags
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/obj/worker/fiber_ucontext.o $(B)/libworker.a \
		$(B)/libcommon.a $(ALL_LDFLAGS) $(PKG_LIBS) $(shell pkg-config --libs cmocka 2>/dev/null) -ldl -lm

# What lua.so adds to an update, measured alone: with its JSON code and liblua.
$(B)/bench/lua_update: tests/bench/lua_update.c worker/lua/lh_json.c worker/lua/lh.h $(B)/.flags
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  BENCH   $@")
	$(Q)$(CC) $(ALL_CFLAGS) -Iworker/lua $(shell pkg-config --cflags $(LUA_PKG) 2>/dev/null) \
		-o $@ $< worker/lua/lh_json.c $(ALL_LDFLAGS) $(PKG_LIBS) \
		$(shell pkg-config --libs $(LUA_PKG) 2>/dev/null) -lm

$(B)/bench/%: tests/bench/%.c $(B)/libworker.a $(B)/libcommon.a $(B)/.flags
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  BENCH   $@")
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(B)/libworker.a $(B)/libcommon.a \
		$(ALL_LDFLAGS) $(PKG_LIBS) -ldl -lm

-include $(shell find $(B)/obj $(B)/fuzz/obj -name '*.d' 2>/dev/null)

# ---- fuzzing: libFuzzer targets in tests/fuzz/, built apart with clang ------
# Every source is rebuilt instrumented (coverage, ASan, UBSan) under
# build/fuzz/; seeds live in tests/fuzz/corpus/<target>/, what a run finds
# goes to build/fuzz/corpus/<target>/ and crashes to build/fuzz/.
FUZZ_CC   ?= clang
FUZZ_TIME ?= 60
# Seconds per target in `make check`: enough to replay the seeds and mutate a bit.
FUZZ_CHECK_TIME ?= 3
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))
FUZZ_BINS := $(patsubst %,$(B)/fuzz/fuzz_%,$(FUZZ_NAMES))
FUZZ_SAN  := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_BASE := -std=gnu11 -g -O1 $(WARN) -D_GNU_SOURCE -fno-strict-aliasing \
	-fno-omit-frame-pointer $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_CFLAGS = $(FUZZ_BASE) -Icommon -Iworker -Idaemon $(PKG_CFLAGS)
# As above: common/ sees only its own headers.
$(B)/fuzz/obj/common/%.o: FUZZ_CFLAGS = $(FUZZ_BASE) -Icommon $(PKG_CFLAGS)
$(B)/fuzz/obj/daemon/%.o: FUZZ_CFLAGS = $(FUZZ_BASE) -Icommon -Idaemon $(PKG_CFLAGS)
fobj = $(patsubst %.c,$(B)/fuzz/obj/%.o,$(1))

$(B)/fuzz/obj/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -MMD -MP -c $< -o $@

$(B)/fuzz/libcommon.a: $(call fobj,$(COMMON_SRC))
	@rm -f $@; ar rcs $@ $^
$(B)/fuzz/libdaemon.a: $(call fobj,$(DAEMON_SRC))
	@rm -f $@; ar rcs $@ $^

.PRECIOUS: $(B)/fuzz/obj/tests/fuzz/%.o
$(B)/fuzz/fuzz_%: $(B)/fuzz/obj/tests/fuzz/fuzz_%.o $(B)/fuzz/libdaemon.a $(B)/fuzz/libcommon.a
	@$(if $(Q),echo "  FUZZLD  $@")
	$(Q)$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(PKG_LIBS) -lm

fuzz-build: deps
	@$(MAKE) --no-print-directory $(FUZZ_BINS)

# Run every target for FUZZ_TIME seconds (make fuzz FUZZ_TIME=300); a crash
# fails the run and leaves its input as build/fuzz/crash-*.
fuzz: fuzz-build
	@for t in $(FUZZ_NAMES); do \
		mkdir -p $(B)/fuzz/corpus/$$t; \
		dict=""; [ -f tests/fuzz/$$t.dict ] && dict="-dict=tests/fuzz/$$t.dict"; \
		echo "== fuzz_$$t for $(FUZZ_TIME) s"; \
		$(B)/fuzz/fuzz_$$t $$dict -max_total_time=$(FUZZ_TIME) -timeout=10 \
			-print_final_stats=1 -artifact_prefix=$(B)/fuzz/ \
			$(B)/fuzz/corpus/$$t tests/fuzz/corpus/$$t || exit 1; \
	done

# The short run `make check` does: the seeds, then FUZZ_CHECK_TIME seconds of
# mutation each, from a fresh directory so every run starts alike.
fuzz-check: fuzz-build
	@for t in $(FUZZ_NAMES); do \
		rm -rf $(B)/fuzz/check/$$t; mkdir -p $(B)/fuzz/check/$$t; \
		dict=""; [ -f tests/fuzz/$$t.dict ] && dict="-dict=tests/fuzz/$$t.dict"; \
		echo "== fuzz_$$t (check, $(FUZZ_CHECK_TIME) s)"; \
		$(B)/fuzz/fuzz_$$t $$dict -max_total_time=$(FUZZ_CHECK_TIME) -timeout=10 \
			-artifact_prefix=$(B)/fuzz/ $(B)/fuzz/check/$$t \
			tests/fuzz/corpus/$$t 2>$(B)/fuzz/check/$$t.log || \
			{ tail -n 40 $(B)/fuzz/check/$$t.log; echo "fuzz_$$t FAILED"; exit 1; }; \
		tail -n 1 $(B)/fuzz/check/$$t.log; \
	done

# Install the Debian development packages pkg-config cannot find, and the test tools.
deps:
	@missing=""; \
	for p in $(PKGS) cmocka $(LUA_PKG); do \
		pkg-config --exists $$p 2>/dev/null || case $$p in \
			libevent) missing="$$missing $(DEB_libevent)";; \
			jansson) missing="$$missing $(DEB_jansson)";; \
			libcurl) missing="$$missing $(DEB_libcurl)";; \
			libsystemd) missing="$$missing $(DEB_libsystemd)";; \
			inih) missing="$$missing $(DEB_inih)";; \
			sqlite3) missing="$$missing $(DEB_sqlite3)";; \
			openssl) missing="$$missing $(DEB_openssl)";; \
			libnats) missing="$$missing $(DEB_libnats)";; \
			cmocka) missing="$$missing $(DEB_cmocka)";; \
			$(LUA_PKG)) missing="$$missing $(DEB_lua)";; \
		esac; \
	done; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	command -v cc >/dev/null || missing="$$missing gcc"; \
	command -v readelf >/dev/null || missing="$$missing binutils"; \
	command -v systemd-analyze >/dev/null || missing="$$missing systemd"; \
	/usr/bin/python3 -c 'import pytest' 2>/dev/null || missing="$$missing python3-pytest"; \
	/usr/bin/python3 -c 'import pytest_timeout' 2>/dev/null || missing="$$missing python3-pytest-timeout"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	{ command -v nghttpx || test -x /usr/sbin/nghttpx; } >/dev/null || missing="$$missing nghttp2-proxy"; \
	command -v microsocks >/dev/null || missing="$$missing microsocks"; \
	command -v tinyproxy >/dev/null || missing="$$missing tinyproxy"; \
	command -v strace >/dev/null || missing="$$missing strace"; \
	{ command -v nats-server || test -x /usr/sbin/nats-server; } >/dev/null || missing="$$missing nats-server"; \
	{ command -v clang >/dev/null && test -f "$$(clang -print-file-name=libclang_rt.fuzzer-$$(uname -m).a)"; } || \
		missing="$$missing clang libclang-rt-dev"; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing </dev/null; \
	fi

# The integration tests go last: pytest's closing line gives the counts.
check: all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory fuzz-check
	@$(MAKE) --no-print-directory integration

unit: build-all
	@fail=0; for t in $(UNIT_BINS); do echo "== $$t"; $$t || fail=1; done; \
	if [ $$fail != 0 ]; then echo "unit tests FAILED"; exit 1; fi

integration: build-all
	TGRUN_BUILD=$(CURDIR)/$(B) $(PYTEST) -q -p no:cacheprovider --timeout=$(TEST_TIMEOUT) \
		tests/integration $(PYTEST_ARGS)

demo: all
	/usr/bin/python3 tests/demo.py --build $(B)

bench: all
	@command -v wrk >/dev/null || { SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk </dev/null; }
	/usr/bin/python3 tests/bench/run.py --build $(B)

install: build-all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(INCLUDEDIR) \
		$(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(HANDLERDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSCONFDIR)/tgrun $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8
	install -m 755 $(B)/tgrund $(DESTDIR)$(BINDIR)/
	install -m 755 $(B)/tgrunctl $(DESTDIR)$(BINDIR)/
	install -m 755 $(B)/tgrun-worker $(DESTDIR)$(LIBEXECDIR)/
	install -m 644 worker/tgrun.h $(DESTDIR)$(INCLUDEDIR)/
	printf 'prefix=%s\nincludedir=%s\n\nName: tgrun\nDescription: tgrun handler API\nVersion: 0.1\nRequires: jansson\nCflags: -I$${includedir} -fstack-clash-protection\n' \
		'$(PREFIX)' '$(INCLUDEDIR)' > $(DESTDIR)$(PKGCONFIGDIR)/tgrun.pc
	chmod 644 $(DESTDIR)$(PKGCONFIGDIR)/tgrun.pc
	install -m 755 $(patsubst %,$(B)/handlers/%.so,$(basename $(notdir $(wildcard worker/examples/*.c)))) \
		$(B)/handlers/lua.so $(DESTDIR)$(HANDLERDIR)/
	install -d $(DESTDIR)$(DOCDIR)/examples
	install -m 644 $(wildcard worker/examples/*.lua) $(DESTDIR)$(DOCDIR)/examples/
	for u in systemd/*.service; do \
		sed -e 's#/usr/local/bin/#$(BINDIR)/#' -e 's#/usr/local/share/doc/tgrun#$(DOCDIR)#' \
			-e 's#/etc/tgrun#$(SYSCONFDIR)/tgrun#g' "$$u" > $(DESTDIR)$(UNITDIR)/$$(basename "$$u"); \
		chmod 644 $(DESTDIR)$(UNITDIR)/$$(basename "$$u"); \
	done
	install -m 644 conf/example.conf $(DESTDIR)$(SYSCONFDIR)/tgrun/example.conf.sample
	install -m 644 README.md $(DESTDIR)$(DOCDIR)/
	install -m 644 worker/tgrun.3 worker/lua/tgrun-lua.3 $(DESTDIR)$(MANDIR)/man3/
	install -m 644 daemon/tgrun.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 644 $(wildcard daemon/*.8) $(DESTDIR)$(MANDIR)/man8/

clean:
	rm -rf $(B)
