# retinac — build, test, sanitize, generate, benchmark.
# One binary (build/retinac), one runtime library without Lua (build/libretinac.a), one
# Criterion binary per tests/test_*.c. Sources are picked up by wildcard: add a file, not a rule.
# BUILD=build-asan SAN=1 gives the sanitizer build (make asan).

BUILD    ?= build
CC       ?= cc
SAN      ?= 0
OPT      ?= -O2
CUDA_HOME ?= /usr/local/cuda

PKG_CFLAGS := $(shell pkg-config --cflags hdf5 lua5.4 2>/dev/null)
HDF5_LIBS  := $(shell pkg-config --libs hdf5 2>/dev/null)
LUA_LIBS   := $(shell pkg-config --libs lua5.4 2>/dev/null)
CRIT_LIBS  := $(shell pkg-config --libs criterion 2>/dev/null || echo -lcriterion)

GIT_VERSION := $(shell git describe --always --dirty 2>/dev/null || echo unknown)
CFLAGS_ALL = -std=c11 -Wall -Wextra -Werror -g $(OPT) -fopenmp -D_GNU_SOURCE \
             -Iruntime -Icompiler -Icli $(PKG_CFLAGS) -DRC_GIT_VERSION='"$(GIT_VERSION)"' -MMD -MP
LDLIBS_ALL = $(HDF5_LIBS) -ldl -lm -fopenmp -lpthread

# NVRTC is linked when the CUDA toolkit is present (it works without a GPU). The driver
# (libcuda.so.1) is never linked: runtime/cuda_drv.c dlopens it.
ifneq ($(wildcard $(CUDA_HOME)/include/nvrtc.h),)
  CFLAGS_ALL += -DRC_HAVE_NVRTC=1 -I$(CUDA_HOME)/include
  LDLIBS_ALL += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lnvrtc
  $(info retinac: NVRTC found in $(CUDA_HOME))
else
  CFLAGS_ALL += -DRC_HAVE_NVRTC=0
  $(info retinac: no CUDA toolkit at $(CUDA_HOME): building without NVRTC)
endif

ifeq ($(SAN),1)
  CFLAGS_ALL += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  LDLIBS_ALL += -fsanitize=address,undefined
endif
CFLAGS_ALL += $(CFLAGS)

RT_SRC   := $(sort $(wildcard runtime/*.c))
COMP_SRC := $(sort $(wildcard compiler/*.c))
CLI_SRC  := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))

RT_OBJ   := $(RT_SRC:%.c=$(BUILD)/%.o)
COMP_OBJ := $(COMP_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all test asan clean gen gen-check bench gpu-check examples
all: $(BUILD)/retinac $(BUILD)/libretinac.a

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/libretinac.a: $(RT_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libretinac_compiler.a: $(COMP_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/retinac: $(CLI_OBJ) $(BUILD)/libretinac_compiler.a $(BUILD)/libretinac.a
	$(CC) $(CFLAGS_ALL) -o $@ $(CLI_OBJ) $(BUILD)/libretinac_compiler.a $(BUILD)/libretinac.a $(LUA_LIBS) $(LDLIBS_ALL)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libretinac_compiler.a $(BUILD)/libretinac.a $(BUILD)/retinac
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itests -DRC_SRC_DIR='"$(CURDIR)"' -DRC_BIN='"$(CURDIR)/$(BUILD)/retinac"' -o $@ $< \
	    $(BUILD)/libretinac_compiler.a $(BUILD)/libretinac.a $(LUA_LIBS) $(CRIT_LIBS) $(LDLIBS_ALL)

# Each suite runs in its own Criterion binary; a failing suite fails the target after all ran.
test: all $(TEST_BIN)
	@fail=0; for t in $(TEST_BIN); do \
	    echo "== $$t"; RETINAC_CACHE_DIR=$(CURDIR)/$(BUILD)/test-cache $$t -j2 || fail=1; \
	done; exit $$fail

asan:
	$(MAKE) BUILD=build-asan SAN=1 OPT=-O1 test

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
