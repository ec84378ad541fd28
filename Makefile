# stream-aligner: one GNU Makefile (llm.c / redis style).
#   make            build/libsalign.a, build/libsalign.so (for ctypes tests) and build/salign
#   make test       build and run the whole suite (C tests + Python reference checks);
#                   ends with "N passed, N failed, N skipped"
#   make asan       the C tests under AddressSanitizer + UBSan (build-asan/)
#   make fuzz       libFuzzer targets (clang, ASan + UBSan, the whole library) in build-fuzz/
#   make fuzz-smoke each fuzz target FUZZ_SECONDS (15) on its corpus fuzz/corpus_<name>/;
#                   any crash or sanitizer report fails (fuzz/smoke.sh)
#   make install    PREFIX=/usr/local (DESTDIR=...): headers, libsalign.a, libsalign.so, the
#                   CLI and salign.pc (pkg-config --cflags --libs salign); make uninstall
#   make bench      benchmarks (bench/)
# .ci/run runs set-up, make test, make asan and make fuzz-smoke, and sums their counts.
CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
CFLAGS  ?=
CFLAGS  += -std=c11 $(OPT) -g -Wall -Wextra -Wno-unused-parameter -pthread -fno-strict-aliasing \
           -D_FILE_OFFSET_BITS=64 -fPIC -Iinclude -Isrc -I/usr/include/cjson $(EXTRA_CFLAGS)
LDLIBS  += -lmicrohttpd -lcurl -lpcre2-8 -lcjson -lutf8proc -lopenblas -lz -lm -lpthread

LIB_SRC  := $(shell find src -name '*.c' | sort)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_SRC  := $(shell find tools/salign -name '*.c' | sort)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
HARNESS  := $(BUILD)/tests/harness.o

.PHONY: all test asan fuzz fuzz-smoke install uninstall bench clean
.SECONDARY:
all: $(BUILD)/libsalign.a $(BUILD)/libsalign.so $(BUILD)/salign $(TEST_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libsalign.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# shared library: for the Python reference tests (ctypes) and other languages. While the
# version is 0.x any minor release may change the ABI, so the soname carries major.minor.
VERSION := $(shell sed -n 's/^\#define SA_VERSION "\(.*\)"$$/\1/p' include/sa/sa.h)
SONAME  := libsalign.so.$(word 1,$(subst ., ,$(VERSION))).$(word 2,$(subst ., ,$(VERSION)))
$(BUILD)/libsalign.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) -o $@ $^ $(LDLIBS)

$(BUILD)/salign: $(CLI_OBJ) $(BUILD)/libsalign.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libsalign.a $(LDLIBS)

$(BUILD)/tests/test_%: tests/test_%.c $(HARNESS) $(BUILD)/libsalign.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -MMD -MP -o $@ $< $(HARNESS) $(BUILD)/libsalign.a $(LDLIBS)

# test_spm links spm.o and the core with test doubles of the tokenizer core defined in
# tests/test_spm.c (a hand-made vocabulary), not the whole library.
SPM_TEST_OBJ := $(BUILD)/src/tokenizer/spm.o $(filter $(BUILD)/src/core/%,$(LIB_OBJ))
$(BUILD)/tests/test_spm: tests/test_spm.c $(HARNESS) $(SPM_TEST_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -MMD -MP -o $@ $< $(HARNESS) $(SPM_TEST_OBJ) $(LDLIBS)

# test_cli_opts links the CLI's objects (all but main.o: the option parser and every
# command's table) over the library.
CLI_TEST_OBJ := $(filter-out $(BUILD)/tools/salign/main.o,$(CLI_OBJ))
$(BUILD)/tests/test_cli_opts: tests/test_cli_opts.c $(HARNESS) $(CLI_TEST_OBJ) $(BUILD)/libsalign.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -Itools/salign -MMD -MP -o $@ $< $(HARNESS) $(CLI_TEST_OBJ) $(BUILD)/libsalign.a $(LDLIBS)

test: all
	@BUILD=$(BUILD) tests/run.sh

asan:
	$(MAKE) BUILD=build-asan OPT=-O1 EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" all
	@BUILD=build-asan SA_C_ONLY=1 ASAN_OPTIONS=detect_leaks=1 tests/run.sh

# ---- fuzzing: libFuzzer targets linked against the whole library, built with clang under
# ASan + UBSan (build-fuzz/libsalign.a, coverage-instrumented with fuzzer-no-link). The SIMD
# kernel files are x86 target code throughout (a `#pragma GCC target` at their top, which
# clang ignores): they get the same ISA as -m flags here (they only run after the CPU check),
# and no instrumentation: no fuzz target reaches them, `make asan` checks them, and clang 14
# takes many minutes on gemm_avx512.c under the sanitizers.
FUZZ_CC     ?= clang
FUZZ_BUILD  := build-fuzz
FUZZ_CFLAGS := -std=c11 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               -fno-omit-frame-pointer -Wall -Wextra -Wno-unused-parameter -Wno-unknown-pragmas \
               -pthread -fno-strict-aliasing -D_FILE_OFFSET_BITS=64 -Iinclude -Isrc -I/usr/include/cjson
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
fuzz: $(FUZZ_BIN)
FUZZ_INSTR := -fsanitize=fuzzer-no-link
X86_AVX2   := -mavx2 -mfma -mf16c
X86_AVX512 := $(X86_AVX2) -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vnni
$(FUZZ_BUILD)/src/backend/cpu/arch/x86/kernels_avx2.o:   FUZZ_INSTR := -fno-sanitize=all $(X86_AVX2)
$(FUZZ_BUILD)/src/backend/cpu/arch/x86/gemm_avx2.o:      FUZZ_INSTR := -fno-sanitize=all $(X86_AVX2)
$(FUZZ_BUILD)/src/backend/cpu/arch/x86/kernels_avx512.o: FUZZ_INSTR := -fno-sanitize=all $(X86_AVX512)
$(FUZZ_BUILD)/src/backend/cpu/arch/x86/gemm_avx512.o:    FUZZ_INSTR := -fno-sanitize=all $(X86_AVX512) -mavx512bf16
$(FUZZ_BUILD)/src/train/gemm_bf16_avx512.o:              FUZZ_INSTR := -fno-sanitize=all -mavx2 -mfma -mavx512f \
                                                            -mavx512bw -mavx512dq -mavx512vl -mavx512bf16
$(FUZZ_BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_INSTR) -MMD -MP -c $< -o $@
$(FUZZ_BUILD)/libsalign.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_BUILD)/libsalign.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -o $@ $< $(FUZZ_BUILD)/libsalign.a $(LDLIBS)

# each target for FUZZ_SECONDS on its seed corpus fuzz/corpus_<name>/ (fuzz/smoke.sh)
FUZZ_SECONDS ?= 15
fuzz-smoke: fuzz
	@FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/smoke.sh

# ---- install: make install PREFIX=/usr/local (DESTDIR=... for staging), make uninstall ----
PREFIX       ?= /usr/local
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
PUB_HDR      := $(sort $(wildcard include/sa/*.h))
SO_FILE      := $(SONAME).$(word 3,$(subst ., ,$(VERSION)))
# salign.pc, written at install time (it names the prefix). Libs.private is the link line
# that the static libsalign.a needs (pkg-config --static --libs salign).
SALIGN_PC    := 'prefix=$(PREFIX)' 'libdir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))' \
    'includedir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))' '' 'Name: salign' \
    'Description: Stream Aligner: LLM engine, aligner pipeline and training (stream-aligner)' \
    'Version: $(VERSION)' 'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lsalign' \
    'Libs.private: $(strip $(LDLIBS))'

install: $(BUILD)/libsalign.a $(BUILD)/libsalign.so $(BUILD)/salign
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/sa $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 $(PUB_HDR) $(DESTDIR)$(INCLUDEDIR)/sa/
	install -m 644 $(BUILD)/libsalign.a $(DESTDIR)$(LIBDIR)/libsalign.a
	install -m 755 $(BUILD)/libsalign.so $(DESTDIR)$(LIBDIR)/$(SO_FILE)
	ln -sf $(SO_FILE) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libsalign.so
	printf '%s\n' $(SALIGN_PC) >$(DESTDIR)$(PKGCONFIGDIR)/salign.pc
	install -m 755 $(BUILD)/salign $(DESTDIR)$(BINDIR)/salign

uninstall:
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/sa/,$(notdir $(PUB_HDR))) $(DESTDIR)$(BINDIR)/salign \
	    $(DESTDIR)$(LIBDIR)/libsalign.a $(DESTDIR)$(LIBDIR)/libsalign.so $(DESTDIR)$(LIBDIR)/$(SONAME) \
	    $(DESTDIR)$(LIBDIR)/$(SO_FILE) $(DESTDIR)$(PKGCONFIGDIR)/salign.pc
	-rmdir $(DESTDIR)$(INCLUDEDIR)/sa 2>/dev/null

BENCH_SRC := $(sort $(wildcard bench/bench_*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
$(BUILD)/bench/bench_%: bench/bench_%.c $(BUILD)/libsalign.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(BUILD)/libsalign.a $(LDLIBS)

bench: all $(BENCH_BIN)
	@bench/run.sh

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
