# ngx_http_dingtalk_module
#
#   make              the module (build/ngx_http_dingtalk_module.so) and build/dingtalk-render
#   make test         unit tests, integration tests against Debian's nginx, then image-test
#   make unit         GoogleTest unit tests of the C++ core (and curl-compat: builds with older curl)
#   make lint         clang-tidy: no function of the nginx glue over 60 lines
#   make static       checks that start no process (t/static): manifests, documents, layers
#   make integration  pytest suite: real nginx + the module + mock DingTalk
#   make run          nginx with the module on nginx.conf.example (port 5000)
#   make asan         the module built with AddressSanitizer + UndefinedBehaviorSanitizer
#   make integration-asan   the integration suite against that build
#   make valgrind     the unit tests under valgrind (no leaks, no invalid accesses)
#   make fuzz         libFuzzer over parse + render for FUZZ_SECONDS (default 60)
#   make bench        every benchmark scenario; writes bench/results.md
#   make install      into Debian's nginx layout (DESTDIR= for a staging root)
#   make image        the container image (docker, else podman; IMAGE=dingtalk-hook:latest)
#   make image-test   installs podman, builds the image and runs it against a DingTalk stand-in
#   make format       clang-format every source file
#   make clean
#
# NGINX_SRC names the nginx source tree to build against (default: Debian's nginx-dev tree).
# It is copied into build/, never written to.

NGINX_SRC ?= /usr/share/nginx/src
NGINX_BIN ?= /usr/sbin/nginx
BUILD     ?= build
PYTHON    ?= /usr/bin/python3

# Debian's own hardening flags, as its nginx binary was built with.
MODULE_CC_OPT ?= -g -O2 -fstack-protector-strong -Wformat -Werror=format-security -fPIC \
                 -D_FORTIFY_SOURCE=2
MODULE_LD_OPT ?= -Wl,-z,relro -Wl,-z,now -fPIC

CXX       ?= g++
CXXFLAGS  ?= -O2 -g
CXXFLAGS  += -std=c++17 -Wall -Wextra -Werror -fPIC
LIBS       = -lsimdjson -ljansson -lcurl -lssl -lcrypto -ldate-tz -lhiredis -lre2 -pthread

CORE_SRCS  = $(filter-out src/ngx_http_dingtalk%,$(wildcard src/*.cpp))
CORE_HDRS  = $(wildcard src/*.hpp)
GLUE_SRCS  = $(wildcard src/ngx_http_dingtalk*.cpp)
UNIT_SRCS  = $(wildcard t/unit/*.cpp)

NGX_TREE   = $(BUILD)/nginx
MODULE     = $(BUILD)/ngx_http_dingtalk_module.so
UNIT_BIN   = $(BUILD)/unit_tests
CORE_OBJS  = $(CORE_SRCS:src/%.cpp=$(BUILD)/core/%.o)

.PHONY: all module tools install uninstall test unit static integration run format format-check clean check-nginx-src \
        curl-compat lint \
        asan integration-asan valgrind fuzz bench image image-test

TOOL       = $(BUILD)/dingtalk-render

all: module tools

module: $(MODULE)

tools: $(TOOL)

# dingtalk-render: the module's renderer on the command line (same core objects)
$(TOOL): tools/dingtalk-render.cpp $(CORE_OBJS) $(CORE_HDRS)
	$(CXX) $(CXXFLAGS) -Isrc tools/dingtalk-render.cpp $(CORE_OBJS) -o $@ $(LIBS)

# --- the nginx module --------------------------------------------------------------------------

check-nginx-src:
	@test -f "$(NGINX_SRC)/configure" -a -f "$(NGINX_SRC)/auto/module" \
	      -a -f "$(NGINX_SRC)/src/core/nginx.h" || { \
	    echo "error: $(NGINX_SRC) is not an nginx source tree (configure, auto/module and"; \
	    echo "       src/core/nginx.h are needed). Install Debian's nginx-dev, or set"; \
	    echo "       NGINX_SRC=/path/to/nginx-1.x.y"; exit 1; }
	@v=$$(sed -n 's/^#define NGINX_VERSION *"\(.*\)"/\1/p' "$(NGINX_SRC)/src/core/nginx.h"); \
	 case "$$v" in 1.1[89].*|1.[2-9][0-9].*) ;; \
	   *) echo "error: nginx $$v in $(NGINX_SRC) is too old: 1.18 or newer is needed"; exit 1;; \
	 esac

# The names of the source files, rewritten only when one is added or removed: nginx's configure
# takes them from `config`, so a new file means configuring again.
SRC_LIST  := $(BUILD)/sources.txt
SRC_NAMES := $(sort $(wildcard src/*.cpp src/*.hpp))
$(shell mkdir -p $(BUILD) && echo "$(SRC_NAMES)" | cmp -s - $(SRC_LIST) || echo "$(SRC_NAMES)" > $(SRC_LIST))

# configure once per tree; flags from Debian's conf_flags when present (they match its binary,
# --with-compat and --with-threads included), else the two flags a dynamic module needs.
$(NGX_TREE)/objs/Makefile: config $(SRC_LIST) | check-nginx-src
	rm -rf $(NGX_TREE)
	mkdir -p $(BUILD)
	cp -a $(NGINX_SRC) $(NGX_TREE)
	cd $(NGX_TREE) && \
	  if [ -f conf_flags ]; then . ./conf_flags; else NGX_CONF_FLAGS=(--with-compat --with-threads); fi; \
	  ./configure "$${NGX_CONF_FLAGS[@]}" $(NGINX_CONFIGURE_EXTRA) \
	    --with-cc-opt="$(MODULE_CC_OPT)" --with-ld-opt="$(MODULE_LD_OPT)" \
	    --add-dynamic-module=$(CURDIR) > configure.log 2>&1 || \
	  { tail -n 20 configure.log; echo "error: nginx configure failed (full log: $(NGX_TREE)/configure.log)"; exit 1; }

$(MODULE): SHELL = /bin/bash
$(NGX_TREE)/objs/Makefile: SHELL = /bin/bash
$(MODULE): $(NGX_TREE)/objs/Makefile $(CORE_SRCS) $(GLUE_SRCS) $(CORE_HDRS)
	$(MAKE) -C $(NGX_TREE) -f objs/Makefile modules
	# replace, never overwrite in place: a running nginx has the old file mapped
	cp $(NGX_TREE)/objs/ngx_http_dingtalk_module.so $@.tmp && mv -f $@.tmp $@

# --- unit tests of the core (no nginx) ---------------------------------------------------------

$(BUILD)/core/%.o: src/%.cpp $(CORE_HDRS)
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(UNIT_BIN): $(CORE_OBJS) $(UNIT_SRCS) $(wildcard t/unit/*.hpp)
	$(CXX) $(CXXFLAGS) -Isrc $(UNIT_SRCS) $(CORE_OBJS) -o $@ -lgtest -lgtest_main $(LIBS)

unit: $(UNIT_BIN) curl-compat
	cd t/unit && ../../$(UNIT_BIN) --gtest_brief=1

# The HTTP client must still build where libcurl is older than the one here (7.77 to 7.84).
curl-compat:
	$(CXX) $(CXXFLAGS) -Wno-deprecated-declarations -include t/unit/compat/old_curl.hpp \
	  -fsyntax-only src/sender.cpp

# --- static checks: the repository's files read, no process started, nothing built -------------

static:
	$(PYTHON) -m pytest -q -p no:cacheprovider t/static $(PYTEST_ARGS)

# --- integration tests: the real nginx binary loading the module --------------------------------

integration: $(MODULE) $(TOOL)
	DINGTALK_MODULE=$(CURDIR)/$(MODULE) NGINX_BIN=$(NGINX_BIN) \
	  $(PYTHON) -m pytest -q -p no:cacheprovider t/integration $(PYTEST_ARGS)

# --- sanitizers, valgrind, fuzzing -------------------------------------------------------------

SAN_FLAGS   = -fsanitize=address,undefined -fno-omit-frame-pointer
ASAN_MODULE = $(BUILD)/asan/ngx_http_dingtalk_module.so

asan: $(ASAN_MODULE)

$(ASAN_MODULE): $(CORE_SRCS) $(GLUE_SRCS) $(CORE_HDRS) config
	$(MAKE) BUILD=$(BUILD)/asan MODULE_CC_OPT="-g -O1 -fPIC $(SAN_FLAGS) -DDINGTALK_FAULTS" \
	    MODULE_LD_OPT="-fPIC $(SAN_FLAGS)" module

# Debian's nginx is not instrumented, so the sanitizer runtimes are preloaded into it (only into
# nginx: the harness passes DINGTALK_NGINX_PRELOAD as LD_PRELOAD to nginx alone). Reports land
# in nginx's error log, where the harness fails on them. The long rate-limit scenario runs once,
# in the plain build. This build also has the injected failures t/integration/test_faults.py
# arms (DINGTALK_FAULTS).
integration-asan: $(ASAN_MODULE)
	DINGTALK_MODULE=$(CURDIR)/$(ASAN_MODULE) NGINX_BIN=$(NGINX_BIN) DINGTALK_FAULTS=1 \
	  DINGTALK_NGINX_PRELOAD="$$($(CXX) -print-file-name=libasan.so) $$($(CXX) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(PYTHON) -m pytest -q -p no:cacheprovider -m "not slow" t/integration $(PYTEST_ARGS)

valgrind: $(UNIT_BIN)
	cd t/unit && DINGTALK_SKIP_HUGE=1 valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect \
	  --suppressions=valgrind.supp --error-exitcode=1 ../../$(UNIT_BIN) --gtest_brief=1

# --- benchmarks ---------------------------------------------------------------------------------

RENDER_BENCH = $(BUILD)/render_bench

$(RENDER_BENCH): bench/render_bench.cpp $(CORE_OBJS) $(CORE_HDRS)
	$(CXX) $(CXXFLAGS) -Isrc bench/render_bench.cpp $(CORE_OBJS) -o $@ -lbenchmark $(LIBS)

STORE_BENCH = $(BUILD)/store_bench

# dingtalk_store's scripts alone: bench/store.py (make bench's store section) runs it.
$(STORE_BENCH): bench/store_bench.cpp $(CORE_OBJS) $(CORE_HDRS)
	$(CXX) $(CXXFLAGS) -Isrc bench/store_bench.cpp $(CORE_OBJS) -o $@ $(LIBS)

HANDOFF_BENCH = $(BUILD)/handoff_bench

$(HANDOFF_BENCH): bench/handoff.cpp
	$(CXX) $(CXXFLAGS) bench/handoff.cpp -o $@ -pthread

# The module as it was before issue 14 (connections, memory), for the before/after rows.
BENCH_BEFORE  ?= 71d696d
BEFORE_MODULE  = $(BUILD)/before/ngx_http_dingtalk_module.so
$(BEFORE_MODULE):
	rm -rf $(BUILD)/before-src && mkdir -p $(BUILD)/before-src $(dir $@)
	git archive $(BENCH_BEFORE) | tar -x -C $(BUILD)/before-src
	$(MAKE) -C $(BUILD)/before-src module NGINX_SRC=$(NGINX_SRC)
	cp $(BUILD)/before-src/build/ngx_http_dingtalk_module.so $@

bench: $(MODULE) $(RENDER_BENCH) $(HANDOFF_BENCH) $(STORE_BENCH) $(BEFORE_MODULE)
	BENCH_BEFORE=$(BENCH_BEFORE) $(PYTHON) bench/run.py $(BENCH_ARGS)

FUZZ_SECONDS ?= 60
fuzz:
	t/fuzz/run.sh $(FUZZ_SECONDS)

test: format-check static lint unit valgrind integration integration-asan
	t/fuzz/run.sh 20
	$(MAKE) image-test

# --- running it --------------------------------------------------------------------------------

run: $(MODULE)
	scripts/run-example.sh

# --- the container image -------------------------------------------------------------------------
# scripts/image.sh: docker if its engine answers, else podman, with base images made from the
# machine's Debian mirror where no registry answers. t/image runs the image with podman.

IMAGE ?= dingtalk-hook:latest

image:
	IMAGE=$(IMAGE) scripts/image.sh

image-test:
	scripts/install-deps.sh image
	IMAGE=$(IMAGE) scripts/image.sh
	IMAGE=$(IMAGE) $(PYTHON) -m pytest -q -rs -p no:cacheprovider t/image $(PYTEST_ARGS)

# --- installing, Debian's way ------------------------------------------------------------------
# The module where Debian's nginx looks for modules, and a load snippet in the layout Debian's
# libnginx-mod-* packages use, so the stock /etc/nginx/nginx.conf (which includes
# modules-enabled/*.conf) loads it.

PREFIX      ?= /usr
MODULES_DIR  = /usr/lib/nginx/modules
SNIPPET      = /usr/share/nginx/modules-available/mod-http-dingtalk.conf
ENABLED      = /etc/nginx/modules-enabled/50-mod-http-dingtalk.conf
DATA_DIR     = /usr/share/ngx-dingtalk

install: $(MODULE) $(TOOL)
	install -D -m 0644 $(MODULE) $(DESTDIR)$(MODULES_DIR)/ngx_http_dingtalk_module.so
	install -d $(DESTDIR)$(dir $(SNIPPET)) $(DESTDIR)$(dir $(ENABLED))
	echo 'load_module modules/ngx_http_dingtalk_module.so;' > $(DESTDIR)$(SNIPPET)
	chmod 0644 $(DESTDIR)$(SNIPPET)
	ln -sfn $(SNIPPET) $(DESTDIR)$(ENABLED)
	install -D -m 0755 $(TOOL) $(DESTDIR)$(PREFIX)/bin/dingtalk-render
	install -d $(DESTDIR)$(DATA_DIR)/templates
	install -m 0644 templates/*.mustache $(DESTDIR)$(DATA_DIR)/templates/
	install -m 0644 nginx.conf.example $(DESTDIR)$(DATA_DIR)/nginx.conf.example

uninstall:
	rm -f $(DESTDIR)$(MODULES_DIR)/ngx_http_dingtalk_module.so $(DESTDIR)$(SNIPPET) \
	      $(DESTDIR)$(ENABLED) $(DESTDIR)$(PREFIX)/bin/dingtalk-render
	rm -rf $(DESTDIR)$(DATA_DIR)

# --- housekeeping ------------------------------------------------------------------------------

FORMAT_FILES = $(wildcard src/*.cpp src/*.hpp t/unit/*.cpp t/unit/*.hpp tools/*.cpp t/fuzz/*.cpp bench/*.cpp)

format:
	clang-format -i $(FORMAT_FILES)

# Functions of the nginx glue short enough to read at once: clang-tidy's readability-function-size
# at 60 lines. Needs the configured tree (for nginx's headers).
NGX_INCS = $(addprefix -I$(NGX_TREE)/,src/core src/event src/event/modules src/os/unix objs src/http \
             src/http/modules src/http/v2)
lint: $(NGX_TREE)/objs/Makefile
	clang-tidy $(GLUE_SRCS) -quiet -checks='-*,readability-function-size' -warnings-as-errors='*' \
	  -config='{CheckOptions: [{key: readability-function-size.LineThreshold, value: 60}]}' \
	  -- -x c++ -std=c++17 $(NGX_INCS) -Isrc

format-check:
	@clang-format --dry-run --Werror $(FORMAT_FILES) || \
	  { echo "error: run 'make format' (clang-format) before committing"; exit 1; }

clean:
	rm -rf $(BUILD)
