# SPDX-License-Identifier: BSD-2-Clause
#
# khyve: the whole build, non-recursive.  Objects go to $(O) (default
# build/, or build-san/ with SAN=1).
#
#   make            build khyve, khyvectl and the test guests
#   make check      install missing Debian deps, build, run every test (TAP)
#   make demo       boot the demo guest (prints CPUs, e820, PCI, RTC; exit 1)
#   make demo-linux boot Debian's kernel + busybox initramfs (VT-x/AMD-V only)
#   make bench      run the benchmarks in bench/ (not part of check)
#   make install    install binaries and man pages under $(DESTDIR)$(PREFIX)
#   make lint       clang-format check
#
# Knobs: O=dir  V=1 (show commands)  SAN=1 (ASan+UBSan)  WERROR=0

SAN ?= 0
ifeq ($(SAN),1)
O ?= build-san
else
O ?= build
endif
V ?= 0
WERROR ?= 1
PREFIX ?= /usr/local
CC ?= gcc

ifeq ($(V),1)
Q :=
else
Q := @
endif

WARNINGS := -Wall -Wextra -Wformat=2 -Wmissing-prototypes \
	-Wstrict-prototypes -Wold-style-definition -Wredundant-decls \
	-Wsign-compare -Wundef -Wwrite-strings -Wshadow -Wpointer-arith \
	-Wcast-qual -Wmissing-declarations -Wnull-dereference -Wvla
ifeq ($(WERROR),1)
WARNINGS += -Werror
endif

CPPFLAGS := -D_GNU_SOURCE -Isrc -I.
CFLAGS := -std=gnu11 -O2 -g -pthread -fno-strict-aliasing $(WARNINGS)
LDFLAGS := -pthread
LDLIBS := $(shell pkg-config --libs zlib 2>/dev/null || echo -lz) -lslirp -lmd
ifeq ($(SAN),1)
CFLAGS += -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif
DEPFLAGS = -MMD -MP

# Everything under src/ is one set of objects linked (not archived, so the
# device-model linker set is never dropped) into each binary and test.
LIB_SRCS := $(sort $(wildcard src/*/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(O)/%.o)

KHYVE_SRCS := $(sort $(wildcard cmd/khyve/*.c))
KHYVECTL_SRCS := $(sort $(wildcard cmd/khyvectl/*.c))
KHYVE := $(O)/khyve
KHYVECTL := $(O)/khyvectl
KHYVE_IMG_SRCS := $(sort $(wildcard cmd/khyve-img/*.c))
KHYVE_IMG := $(O)/khyve-img
VM_SRCS := $(sort $(wildcard cmd/vm/*.c))
VM := $(O)/vm

UNIT_SRCS := $(sort $(wildcard tests/unit/t_*.c))
DEV_SRCS := $(sort $(wildcard tests/dev/t_*.c))
UNIT_BINS := $(UNIT_SRCS:%.c=$(O)/%)
DEV_BINS := $(DEV_SRCS:%.c=$(O)/%)

all: $(KHYVE) $(KHYVECTL) $(KHYVE_IMG) $(if $(VM_SRCS),$(VM)) guests

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(KHYVE): $(KHYVE_SRCS:%.c=$(O)/%.o) $(LIB_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(KHYVECTL): $(KHYVECTL_SRCS:%.c=$(O)/%.o) $(LIB_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(KHYVE_IMG): $(KHYVE_IMG_SRCS:%.c=$(O)/%.o) $(LIB_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(VM): $(VM_SRCS:%.c=$(O)/%.o) $(LIB_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(O)/tests/%: $(O)/tests/%.o $(LIB_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

tests: $(UNIT_BINS) $(DEV_BINS)

# Benchmark helpers (bench/*.c), linked like the tests.
BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCH_BINS := $(BENCH_SRCS:%.c=$(O)/%)
$(O)/bench/%: $(O)/bench/%.o $(LIB_OBJS)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
bench-bins: $(BENCH_BINS)

# The freestanding test guests (tests/guest/), see mk/guest.mk.
include mk/guest.mk

deps:
	$(Q)tools/deps.sh check

# Every test through prove: unit and device programs, then the guest and
# end-to-end scripts (which skip with a reason when /dev/kvm is unusable).
# With SAN=1 only the unit and device tests run.
E2E_TESTS := $(sort $(wildcard tests/e2e/*.t))
ifeq ($(SAN),1)
CHECK_TESTS = $(UNIT_BINS) $(DEV_BINS)
else
CHECK_TESTS = $(UNIT_BINS) $(DEV_BINS) $(E2E_TESTS)
endif

check: deps
	$(Q)$(MAKE) --no-print-directory all tests
	$(Q)KHYVE_BUILD=$(abspath $(O)) prove -j2 --exec '' $(CHECK_TESTS)

demo:
	$(Q)tools/deps.sh demo
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tools/demo.sh $(O)

demo-linux:
	$(Q)tools/deps.sh demo-linux
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tools/demo-linux.sh $(O)

bench:
	$(Q)tools/deps.sh bench
	$(Q)$(MAKE) --no-print-directory all bench-bins
	$(Q)bench/run.sh $(O)

lint:
	$(Q)clang-format --dry-run --Werror $(LIB_SRCS) $(KHYVE_SRCS) \
		$(KHYVECTL_SRCS) $(KHYVE_IMG_SRCS) $(VM_SRCS)

install: $(KHYVE) $(KHYVECTL) $(KHYVE_IMG) $(VM)
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/share/man/man8 \
		$(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(KHYVE) $(KHYVECTL) $(KHYVE_IMG) $(VM) \
		$(DESTDIR)$(PREFIX)/sbin/
	install -m 644 docs/man/*.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 644 docs/man/*.5 $(DESTDIR)$(PREFIX)/share/man/man5/

clean:
	rm -rf $(O)

# Keep the objects of test programs (pattern-rule intermediates).
.SECONDARY:

.PHONY: all tests bench-bins check deps demo demo-linux bench lint install clean guests

-include $(shell find $(O) -name '*.d' 2>/dev/null)
