# SPDX-License-Identifier: BSD-2-Clause
#
# The freestanding test guests (tests/guest/): each tests/guest/NAME.c is
# linked with the guest library (tests/guest/lib/) into
# $(O)/tests/guest/NAME.elf, a PVH-bootable ELF loaded at 1 MiB.  Included
# by the top Makefile; `make guests` builds them all.  The guests use
# their own flags, not the host CFLAGS: freestanding, no SSE, no red zone,
# no PIC, warnings are errors.

GUEST_NAMES := hello demo smp rtc acpi halt triplefault poweroff reset \
	ring3 pio-loop mmio-loop libtest idle unclaimed cpuid msr \
	pcienum vrng vblk vcons vblk-bench \
	vahci vatapi vnvme storage-bench net-echo net-bench

GUEST_LIB_C := $(sort $(wildcard tests/guest/lib/*.c))
GUEST_LIB_S := $(sort $(wildcard tests/guest/lib/*.S))
GUEST_LIB_OBJS := $(GUEST_LIB_S:%.S=$(O)/%.o) $(GUEST_LIB_C:%.c=$(O)/%.o)
GUEST_MAIN_OBJS := $(GUEST_NAMES:%=$(O)/tests/guest/%.o)
GUEST_ELFS := $(GUEST_NAMES:%=$(O)/tests/guest/%.elf)
GUEST_LDS := tests/guest/guest.ld

GUEST_CC ?= $(CC)
# GCC turns byte loops into memcpy/memset calls even when freestanding
# (which would make our memcpy call itself); clang does not and lacks the
# flag.
GUEST_NOLDP := $(shell $(GUEST_CC) -fno-tree-loop-distribute-patterns \
	-x c -c -o /dev/null /dev/null 2>/dev/null && \
	echo -fno-tree-loop-distribute-patterns)
GUEST_CPPFLAGS := -Itests/guest/lib
GUEST_CFLAGS := -std=gnu11 -O2 -g -m64 -march=x86-64 -ffreestanding \
	-fno-pic -fno-pie -mno-red-zone -mgeneral-regs-only \
	-fno-stack-protector -fno-asynchronous-unwind-tables \
	-fno-unwind-tables -fcf-protection=none -fno-strict-aliasing \
	$(GUEST_NOLDP) -fno-common \
	-Wall -Wextra -Werror
GUEST_ASFLAGS := -m64 -fno-pic -fno-pie -Wa,--fatal-warnings
GUEST_LDFLAGS := -m64 -nostdlib -static -no-pie -Wl,-T,$(GUEST_LDS) \
	-Wl,--build-id=none -Wl,-z,max-page-size=4096 -Wl,-z,noexecstack \
	-Wl,--fatal-warnings

guests: $(GUEST_ELFS)

$(GUEST_MAIN_OBJS) $(GUEST_LIB_C:%.c=$(O)/%.o): $(O)/tests/guest/%.o: \
		tests/guest/%.c mk/guest.mk
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GUESTCC $<")
	$(Q)$(GUEST_CC) $(GUEST_CPPFLAGS) $(GUEST_CFLAGS) -MMD -MP -c -o $@ $<

$(GUEST_LIB_S:%.S=$(O)/%.o): $(O)/tests/guest/%.o: tests/guest/%.S \
		mk/guest.mk
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GUESTAS $<")
	$(Q)$(GUEST_CC) $(GUEST_CPPFLAGS) $(GUEST_ASFLAGS) -MMD -MP -c -o $@ $<

$(GUEST_ELFS): $(O)/tests/guest/%.elf: $(O)/tests/guest/%.o \
		$(GUEST_LIB_OBJS) $(GUEST_LDS)
	@$(if $(Q),echo "  GUESTLD $@")
	$(Q)$(GUEST_CC) $(GUEST_LDFLAGS) -o $@ $< $(GUEST_LIB_OBJS)
