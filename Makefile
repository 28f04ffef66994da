# retinac — build, test, sanitize, generate, benchmark.
# One binary (build/retinac); the library without Lua (build/libretinac.a: common/, compiler/
# except its front end, runtime/, analysis/, sim/, search/, report/, import/); the Lua front end as its own archive
# (build/libretinac_frontend.a: compiler/frontend/); one Criterion binary per tests/test_*.c.
# Sources are picked up by wildcard from LIB_DIRS: add a file, not a rule.
# BUILD=build-asan SAN=1 gives the sanitizer build (make asan).

# The quick start's two commands (make demo, make test) need nothing installed beforehand:
# scripts/deps.sh (the one package list, shared with .ci/run) installs what is missing when run
# as root on Debian/Ubuntu, else stops here with the one apt-get command to run. It runs before
# the pkg-config lookups below, which need the packages.
ifneq ($(filter test demo asan,$(MAKECMDGOALS)),)
  ifndef RC_DEPS_CHECKED
    RC_DEPS_GROUPS := build $(if $(filter test asan,$(MAKECMDGOALS)),browser)
    RC_DEPS_STATUS := $(shell sh scripts/deps.sh $(RC_DEPS_GROUPS) >&2; echo $$?)
    ifneq ($(RC_DEPS_STATUS),0)
      $(error build dependencies missing (see the message above))
    endif
    export RC_DEPS_CHECKED := 1
  endif
endif

BUILD    ?= build
CC       ?= cc
SAN      ?= 0
OPT      ?= -O2
CUDA_HOME ?= /usr/local/cuda

PKG_CFLAGS := $(shell pkg-config --cflags hdf5 lua5.4 plplot libcjson libzip 2>/dev/null)
HDF5_LIBS  := $(shell pkg-config --libs hdf5 2>/dev/null)
LUA_LIBS   := $(shell pkg-config --libs lua5.4 2>/dev/null)
CRIT_LIBS  := $(shell pkg-config --libs criterion 2>/dev/null || echo -lcriterion)

GIT_VERSION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
CFLAGS_ALL = -std=c11 -Wall -Wextra -Werror -g $(OPT) -fopenmp -D_GNU_SOURCE \
             $(addprefix -I,$(LIB_DIRS) compiler/frontend cli) $(PKG_CFLAGS) -DRC_GIT_VERSION='"$(GIT_VERSION)"' -MMD -MP
PLOT_LIBS  := $(shell pkg-config --libs plplot libcjson libzip 2>/dev/null)
LDLIBS_ALL = $(HDF5_LIBS) $(PLOT_LIBS) -lfftw3f -ldl -lm -fopenmp -lpthread

# NVRTC is linked when the CUDA toolkit is present (it works without a GPU). The driver
# (libcuda.so.1) is never linked: runtime/backend/cuda_drv.c dlopens it.
ifneq ($(wildcard $(CUDA_HOME)/include/nvrtc.h),)
  CFLAGS_ALL += -DRC_HAVE_NVRTC=1 -I$(CUDA_HOME)/include
  LDLIBS_ALL += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lnvrtc
  $(info retinac: NVRTC found in $(CUDA_HOME))
else
  CFLAGS_ALL += -DRC_HAVE_NVRTC=0
  $(info retinac: no CUDA toolkit at $(CUDA_HOME): building without NVRTC)
endif

# Open MPI (libopenmpi-dev) for `retinac search` under mpirun: only cli/ objects and the retinac
# binary see it (libretinac.a never needs MPI); without it, search runs serially only.
MPI_CFLAGS := $(shell pkg-config --cflags ompi-c 2>/dev/null)
MPI_LIBS   := $(shell pkg-config --libs ompi-c 2>/dev/null)
CLI_MPI_FLAGS := $(if $(MPI_LIBS),-DRC_HAVE_MPI=1 $(MPI_CFLAGS),-DRC_HAVE_MPI=0)

ifeq ($(SAN),1)
  CFLAGS_ALL += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDLIBS_ALL += -fsanitize=address,undefined
endif
CFLAGS_ALL += $(CFLAGS)

# The folders of the library, in the order of the data flow (DESIGN.md): shared pieces, the
# compiler (IR, emitters per target, JIT and caches), the runtime (backends, data, training),
# then what sits above it.
LIB_DIRS := common compiler compiler/c compiler/cuda runtime runtime/backend runtime/data \
            analysis sim search report import
RT_SRC   := $(sort $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c)))
COMP_SRC := $(sort $(wildcard compiler/frontend/*.c))
CLI_SRC  := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))

RT_OBJ   := $(RT_SRC:%.c=$(BUILD)/%.o)
COMP_OBJ := $(COMP_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all test asan clean gen gen-check bench gpu-check gpu-profile gpu-bundle examples bench-fftconv bench-conv bench-epoch demo
all: $(BUILD)/retinac $(BUILD)/libretinac.a

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# The standard prelude of layer definitions (compiler/frontend/prelude.lua) is compiled into the
# front end as a C string: sed makes each line a "...\n" literal (escaping \ and ", and ? against
# trigraphs); compiler/frontend/spec_layer.c includes it.
$(BUILD)/gen/prelude_lua.inc: compiler/frontend/prelude.lua
	@mkdir -p $(dir $@)
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/^/"/' -e 's/$$/\\n"/' $< > $@.tmp && mv $@.tmp $@
$(BUILD)/compiler/frontend/spec_layer.o: $(BUILD)/gen/prelude_lua.inc
$(BUILD)/compiler/frontend/spec_layer.o: CFLAGS_ALL += -I$(BUILD)/gen
# Adam's element loop vectorizes only without errno semantics for sqrt (runtime/optim.c)
$(BUILD)/runtime/optim.o: CFLAGS_ALL += -fno-math-errno

$(BUILD)/libretinac.a: $(RT_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libretinac_frontend.a: $(COMP_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(CLI_OBJ): CFLAGS_ALL += $(CLI_MPI_FLAGS)
$(BUILD)/retinac: $(CLI_OBJ) $(BUILD)/libretinac_frontend.a $(BUILD)/libretinac.a
	$(CC) $(CFLAGS_ALL) -o $@ $(CLI_OBJ) $(BUILD)/libretinac_frontend.a $(BUILD)/libretinac.a $(LUA_LIBS) $(LDLIBS_ALL) $(MPI_LIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libretinac_frontend.a $(BUILD)/libretinac.a $(BUILD)/retinac
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests -DRC_SRC_DIR='"$(CURDIR)"' -DRC_BIN='"$(CURDIR)/$(BUILD)/retinac"' -o $@ $< \
	    $(BUILD)/libretinac_frontend.a $(BUILD)/libretinac.a $(LUA_LIBS) $(CRIT_LIBS) $(LDLIBS_ALL)

# Each suite runs in its own Criterion binary; a failing suite fails the target after all ran,
# and the failing suites are named again at the end (CI logs keep only the tail).
test: all $(TEST_BIN)
	@failed=""; for t in $(TEST_BIN); do \
	    echo "== $$t"; RETINAC_CACHE_DIR=$(CURDIR)/$(BUILD)/test-cache $$t -j2 || failed="$$failed $$t"; \
	done; if [ -n "$$failed" ]; then echo "FAILED suites:$$failed" >&2; exit 1; fi

# Generated sources of the shipped specs (5 cells) under generated/<model>/; gen-check
# regenerates them into a temp dir and fails on any difference (the generators are
# deterministic). GEN_TARGETS lists the emitters `retinac gen --target` knows.
SPECS       := $(sort $(wildcard specs/*.lua))
GEN_TARGETS ?= c cuda
gen: $(BUILD)/retinac
	@for t in $(GEN_TARGETS); do for s in $(SPECS); do \
	    $(BUILD)/retinac gen $$s --target $$t -o generated || exit 1; done; done

gen-check: $(BUILD)/retinac
	@tmp=$$(mktemp -d) || exit 1; \
	for t in $(GEN_TARGETS); do for s in $(SPECS); do \
	    $(BUILD)/retinac gen $$s --target $$t -o $$tmp >/dev/null || { rm -rf $$tmp; exit 1; }; done; done; \
	if diff -r generated $$tmp > $$tmp.diff; then echo "gen-check: generated/ matches the generators"; rm -rf $$tmp $$tmp.diff; \
	else head -40 $$tmp.diff; rm -rf $$tmp $$tmp.diff; echo "gen-check: generated/ drifted from the generators: run 'make gen'"; exit 1; fi

# CPU benchmark: bncnn (5 cells, batch 512, all cores) with retinac and PyTorch in one run, and
# the machine's FMA peak; writes results/cpu_bench.md.
bench: $(BUILD)/retinac
	@sh bench/run.sh $(BUILD)

# FFT first-conv benchmark (runtime/backend/fftconv.c vs a direct conv, same run): make bench-fftconv
$(BUILD)/bench/fftconv_bench: bench/fftconv_bench.c $(BUILD)/libretinac.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -O3 -march=native -ffp-contract=fast -o $@ $< $(BUILD)/libretinac.a $(LDLIBS_ALL)

bench-fftconv: $(BUILD)/bench/fftconv_bench
	$(BUILD)/bench/fftconv_bench

# Generated direct-conv kernels one at a time, one thread, vs the core's FMA peak:
# make bench-conv [CONV_ARGS="specs/nips_cnn.lua --reps 9"]
$(BUILD)/bench/conv_kernels: bench/conv_kernels.c $(BUILD)/libretinac_frontend.a $(BUILD)/libretinac.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -O3 -march=native -ffp-contract=fast -o $@ $< $(BUILD)/libretinac_frontend.a $(BUILD)/libretinac.a $(LUA_LIBS) $(LDLIBS_ALL)

# One real training epoch on a 300k-frame synthetic recording, next to PyTorch's (bench/epoch.sh)
bench-epoch: $(BUILD)/retinac
	sh bench/epoch.sh $(BUILD)

bench-conv: $(BUILD)/bench/conv_kernels
	OMP_NUM_THREADS=1 RETINAC_CACHE_DIR=$(CURDIR)/$(BUILD)/bench-cache $(BUILD)/bench/conv_kernels $(CONV_ARGS)

# The runtime as a library: public header build/include/retinac.h, pkg-config file
# build/retinac.pc, and examples/predict.c built against them (make examples).
$(BUILD)/include/retinac.h: runtime/retinac.h
	@mkdir -p $(dir $@)
	cp $< $@

$(BUILD)/retinac.pc: Makefile
	@mkdir -p $(dir $@)
	@printf '%s\n' 'prefix=$(CURDIR)/$(BUILD)' 'libdir=$${prefix}' 'includedir=$${prefix}/include' '' \
	    'Name: retinac' 'Description: CNN models of the retina: load checkpoints, predict, train' \
	    'Version: 0.1.0' 'Requires: hdf5' 'Cflags: -I$${includedir}' \
	    'Libs: -L$${libdir} -lretinac $(filter-out $(HDF5_LIBS),$(LDLIBS_ALL))' > $@

$(BUILD)/examples/predict: examples/predict.c $(BUILD)/libretinac.a $(BUILD)/include/retinac.h $(BUILD)/retinac.pc
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -Wall -Wextra -Werror -O2 -o $@ $< $$(PKG_CONFIG_PATH=$(BUILD) pkg-config --cflags --libs retinac)

# examples/search.c runs a search through the library code `retinac search` calls (spec loading,
# search/search_run.h): internal headers and the Lua front end, so it is built with the flags
# of the tests rather than against the public header.
$(BUILD)/examples/search: examples/search.c $(BUILD)/libretinac_frontend.a $(BUILD)/libretinac.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/libretinac_frontend.a $(BUILD)/libretinac.a $(LUA_LIBS) $(LDLIBS_ALL)

examples: $(BUILD)/examples/predict $(BUILD)/examples/search

# The README's main job: synthesize the default recording if absent, train the BN-CNN and the
# LN baseline, print the comparison table (scripts/main_job.sh; its header lists the knobs).
demo:
	sh scripts/main_job.sh

asan:
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/asan.lsan.supp $(MAKE) BUILD=build-asan SAN=1 OPT=-O1 test

clean:
	rm -rf build build-asan

# ---- GPU (issue #6). gpu-bundle: binaries + their non-glibc shared libraries in
# build-gpu/bundle, for a GPU machine without the dev packages (libnvrtc, ~110 MB, is left out:
# tests/gpu/gpu_check.sh finds the machine's own). gpu-check: that bundle's one-run check
# (numerics vs the reference, one training epoch, throughput vs PyTorch); no GPU: clear exit 2.
GPU_BUILD  ?= build-gpu
GPU_BUNDLE := $(GPU_BUILD)/bundle
$(BUILD)/tests/gpu/%: tests/gpu/%.c tests/cuda_cases.h tests/cuda_emu.h $(BUILD)/libretinac_frontend.a $(BUILD)/libretinac.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests -o $@ $< $(BUILD)/libretinac_frontend.a $(BUILD)/libretinac.a $(LUA_LIBS) $(LDLIBS_ALL)

gpu-bundle:
	$(MAKE) BUILD=$(GPU_BUILD) all $(GPU_BUILD)/tests/gpu/gpu_numerics $(GPU_BUILD)/tests/gpu/gpu_bench
	rm -rf $(GPU_BUNDLE) && mkdir -p $(GPU_BUNDLE)/bin $(GPU_BUNDLE)/lib
	cp $(GPU_BUILD)/retinac $(GPU_BUILD)/tests/gpu/gpu_numerics $(GPU_BUILD)/tests/gpu/gpu_bench $(GPU_BUNDLE)/bin/
	for b in $(GPU_BUNDLE)/bin/*; do ldd $$b; done | awk '/=> \//{print $$3}' | sort -u | \
	    grep -Ev '/(libc|libm|libpthread|libdl|librt|libresolv|libutil|ld-linux[^/]*|libnvrtc[^/]*)\.so' | \
	    while read -r l; do cp -L "$$l" $(GPU_BUNDLE)/lib/ || exit 1; done
	@du -sh $(GPU_BUNDLE)

gpu-check: gpu-bundle
	tests/gpu/gpu_check.sh $(GPU_BUNDLE)

# per-kernel times of gpu_bench on bncnn and stacked_bncnn (RETINAC_CUDA_PROFILE=1)
gpu-profile: gpu-bundle
	tests/gpu/gpu_profile.sh $(GPU_BUNDLE)

# ---- Fuzzing (issue 16): libFuzzer harnesses fuzz/fuzz_<target>.c for the spec loader (spec),
# the IR text parser (ir_text), a defined layer's primitive-graph text with autodiff, the
# reference interpreter and the emitters behind it (prim), the checkpoint loader (checkpoint)
# the recording prober of `retinac info` (probe) and the torch.save readers of `retinac import`
# (torch), seeds in fuzz/corpus/<target>/,
# dictionaries fuzz/<target>.dict.
# fuzz: clang build in build-fuzz/ (library and harnesses with ASan + UBSan + coverage).
# fuzz-run: each harness FUZZ_SECONDS on its seeds, one at a time; new inputs go to
#   build-fuzz/corpus/<target>/ (the committed seeds are only read), crashes to build-fuzz/artifacts/.
# fuzz-regress: each harness once over its committed seeds (no fuzzing; for CI).
# runtime/backend/fftconv*.c are left out of the fuzz library: they use GCC's __builtin_shuffle, which
# clang lacks, and no fuzz target reaches them.
FUZZ_BUILD   ?= build-fuzz
FUZZ_TARGETS := spec ir_text prim checkpoint probe torch
FUZZ_SECONDS ?= 60
FUZZ_ARGS    ?=
FUZZ_TIMEOUT_spec := 30
# HDF5 1.10.8 itself crashes, leaks and asks malloc for petabytes on some corrupt files (its bugs,
# fixed upstream later; fuzz/hdf5_known/). So the HDF5 harnesses run in fork mode and go on after
# a crash, OOM or timeout: each one is saved in build-fuzz/artifacts/ and fuzz-run fails at the end
# if there is any, to be triaged (sh fuzz/triage.sh). HDF5's own leaks are suppressed in fuzz-run
# (fuzz/hdf5.lsan.supp). malloc returns NULL as glibc does for absurd sizes (retinac must then
# report "out of memory").
FUZZ_ENV_checkpoint := ASAN_OPTIONS=allocator_may_return_null=1
FUZZ_ENV_probe := $(FUZZ_ENV_checkpoint)
FUZZ_FORK_checkpoint := -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1
FUZZ_FORK_probe := $(FUZZ_FORK_checkpoint)
FUZZ_LSAN_checkpoint := LSAN_OPTIONS=suppressions=fuzz/hdf5.lsan.supp
FUZZ_LSAN_probe := $(FUZZ_LSAN_checkpoint)
FUZZ_SAN     := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
                -fno-sanitize-recover=undefined -Wno-pass-failed
FUZZ_OPTS     = -rss_limit_mb=2048 -timeout=$(or $(FUZZ_TIMEOUT_$(1)),10) \
                $(if $(wildcard fuzz/$(1).dict),-dict=fuzz/$(1).dict) $(FUZZ_ARGS)
FUZZ_BIN     := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz/fuzz_%)
.PHONY: fuzz fuzz-run fuzz-regress

$(BUILD)/libretinac_fuzz.a: $(filter-out $(BUILD)/runtime/backend/fftconv%.o,$(RT_OBJ))
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_h5.h fuzz/fuzz_prim.h $(BUILD)/libretinac_frontend.a $(BUILD)/libretinac_fuzz.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Ifuzz -fsanitize=fuzzer -o $@ $< $(BUILD)/libretinac_frontend.a \
	    $(BUILD)/libretinac_fuzz.a $(LUA_LIBS) $(LDLIBS_ALL)

fuzz:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=clang OPT=-O1 SAN=0 CFLAGS='$(FUZZ_SAN)' $(FUZZ_BIN)

fuzz-run: fuzz
	$(foreach t,$(FUZZ_TARGETS),mkdir -p $(FUZZ_BUILD)/corpus/$(t) $(FUZZ_BUILD)/artifacts && \
	    $(FUZZ_ENV_$(t)) $(FUZZ_LSAN_$(t)) $(FUZZ_BUILD)/fuzz/fuzz_$(t) $(FUZZ_BUILD)/corpus/$(t) fuzz/corpus/$(t) \
	    -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_BUILD)/artifacts/$(t)- \
	    $(FUZZ_FORK_$(t)) $(call FUZZ_OPTS,$(t)) $(if $(FUZZ_FORK_$(t)),|| true) &&) true
	@n=$$(ls $(FUZZ_BUILD)/artifacts | wc -l); [ $$n -eq 0 ] || { \
	    echo "fuzz-run: $$n artifact(s) in $(FUZZ_BUILD)/artifacts: sh fuzz/triage.sh sorts them (retinac or HDF5)"; exit 1; }

fuzz-regress: fuzz
	$(foreach t,$(FUZZ_TARGETS),$(FUZZ_ENV_$(t)) $(FUZZ_BUILD)/fuzz/fuzz_$(t) -runs=0 $(call FUZZ_OPTS,$(t)) fuzz/corpus/$(t) &&) true

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
