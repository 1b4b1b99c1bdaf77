# gcsmount build. `make` leaves ./gcsmount at the repository root.
#   make            the mount binary
#   make unit       unit tests (plain and under ASan/UBSan)
#   make check      unit tests + the pytest suite against real mounts (plain and ASan)
#   make test       installs the Debian packages needed, then `make check`
#   make demo       installs them, then mounts the bundled emulator's demo bucket
#   make asan       ./gcsmount built with AddressSanitizer/UBSan (into build/asan/)
#   make bench      the benchmark (tests/bench/), results in tests/bench/RESULTS.md
#   make fuzz       libFuzzer targets (tests/fuzz/), FUZZ_SECONDS each
#   make deb        the Debian package (into build/deb/)

CC      ?= cc
PKGS    := fuse3 libcurl libcjson openssl
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
           -I. $(shell pkg-config --cflags $(PKGS))
LDLIBS  += $(shell pkg-config --libs $(PKGS)) -lpthread
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
CFLAGS  += -DGCSMOUNT_VERSION=\"$(VERSION)\"

LIB_SRC := $(wildcard common/*.c auth/*.c gcs/*.c) $(filter-out fs/main.c,$(wildcard fs/*.c))
LIB_OBJ := $(LIB_SRC:%.c=build/obj/%.o)
ASAN_OBJ := $(LIB_SRC:%.c=build/asan/%.o)
HDRS    := $(wildcard common/*.h auth/*.h gcs/*.h fs/*.h)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_HDRS := $(wildcard tests/unit/*.h)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/unit/%)
UNIT_ASAN := $(UNIT_SRC:tests/unit/%.c=build/unit-asan/%)

.PHONY: all unit check asan bench clean deps test demo fuzz deb

all: gcsmount

gcsmount: build/obj/fs/main.o $(LIB_OBJ)
	@echo "  CC $@"; $(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

build/obj/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC $@"; $(CC) $(CFLAGS) -c -o $@ $<

build/asan/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC $@"; $(CC) $(CFLAGS) $(SAN) -c -o $@ $<

asan: build/asan/gcsmount

build/asan/gcsmount: build/asan/fs/main.o $(ASAN_OBJ)
	@echo "  CC $@"; $(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

build/unit/%: tests/unit/%.c $(LIB_OBJ) $(HDRS) $(UNIT_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC $@"; $(CC) $(CFLAGS) -o $@ $< $(LIB_OBJ) $(LDLIBS) -lcmocka

build/unit-asan/%: tests/unit/%.c $(ASAN_OBJ) $(HDRS) $(UNIT_HDRS)
	@mkdir -p $(dir $@)
	@echo "  CC $@"; $(CC) $(CFLAGS) $(SAN) -o $@ $< $(ASAN_OBJ) $(LDLIBS) -lcmocka

unit: $(UNIT_BIN) $(UNIT_ASAN)
	@set -e; for t in $(UNIT_BIN) $(UNIT_ASAN); do echo "== $$t"; $$t; done

check: gcsmount asan unit
	cd tests && GCSMOUNT_BIN=$(CURDIR)/gcsmount /usr/bin/python3 -m pytest -q
	cd tests && GCSMOUNT_BIN=$(CURDIR)/build/asan/gcsmount ASAN_OPTIONS=detect_leaks=1 \
		/usr/bin/python3 -m pytest -q -m "not slow"

deps:
	packaging/install-deps.sh

# Recursive so that the build starts after deps installed pkg-config's files.
test: deps
	$(MAKE) check
	$(MAKE) -C tests/fuzz SECONDS=$(CI_FUZZ_SECONDS)

demo: deps
	$(MAKE) gcsmount
	packaging/demo.sh

# The benchmark: gcsmount beside curl and rclone mount on the same emulator.
bench: deps
	$(MAKE) gcsmount
	/usr/bin/python3 tests/bench/bench.py
	/usr/bin/python3 tests/bench/live_publish.py

# The Debian package, built out of tree: build/deb/gcsmount_VERSION_ARCH.deb
deb: deps
	packaging/build-deb.sh

# libFuzzer targets over every parser of outside input, FUZZ_SECONDS each.
FUZZ_SECONDS ?= 20
CI_FUZZ_SECONDS ?= 10
fuzz: deps
	$(MAKE) -C tests/fuzz SECONDS=$(FUZZ_SECONDS)

clean:
	rm -rf build gcsmount
