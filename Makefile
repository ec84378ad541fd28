# stream-aligner: one GNU Makefile (llm.c / redis style).
#   make            build/libsalign.a, build/libsalign.so (for ctypes tests) and build/salign
#   make test       build and run the whole suite (C tests + Python reference checks);
#                   ends with "N passed, N failed"
#   make asan       the C tests under AddressSanitizer + UBSan (build-asan/)
#   make fuzz       libFuzzer targets (clang) in build-fuzz/
#   make bench      benchmarks (bench/)
CC      ?= cc
BUILD   ?= build
OPT     ?= -O2
CFLAGS  ?=
CFLAGS  += -std=c11 $(OPT) -g -Wall -Wextra -Wno-unused-parameter -pthread -fno-strict-aliasing \
           -D_FILE_OFFSET_BITS=64 -fPIC -Iinclude -Isrc -I/usr/include/cjson $(EXTRA_CFLAGS)
LDLIBS  += -lcurl -lpcre2-8 -lcjson -lutf8proc -lopenblas -lz -lm -lpthread

LIB_SRC  := $(shell find src -name '*.c' | sort)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_SRC  := $(shell find tools/salign -name '*.c' | sort)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
HARNESS  := $(BUILD)/tests/harness.o

.PHONY: all test asan fuzz bench clean
.SECONDARY:
all: $(BUILD)/libsalign.a $(BUILD)/libsalign.so $(BUILD)/salign $(TEST_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libsalign.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# shared library: for the Python reference tests (ctypes) and other languages
$(BUILD)/libsalign.so: $(LIB_OBJ)
	$(CC) -shared -o $@ $^ $(LDLIBS)

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

FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=build-fuzz/%)
fuzz: $(FUZZ_BIN)
# the parsers only: the engine's SIMD kernels are gcc-specific and not fuzzed
FUZZ_LIB_SRC := $(filter-out src/backend/% src/model/% src/train/%,$(LIB_SRC))
build-fuzz/fuzz_%: fuzz/fuzz_%.c $(FUZZ_LIB_SRC)
	@mkdir -p build-fuzz
	clang -std=c11 -O1 -g -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -I/usr/include/cjson \
	    -D_FILE_OFFSET_BITS=64 -pthread -o $@ $< $(FUZZ_LIB_SRC) $(LDLIBS)

BENCH_SRC := $(sort $(wildcard bench/bench_*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
$(BUILD)/bench/bench_%: bench/bench_%.c $(BUILD)/libsalign.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(BUILD)/libsalign.a $(LDLIBS)

bench: all $(BENCH_BIN)
	@bench/run.sh

clean:
	rm -rf build build-asan build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
