/* cuda_drv.h — the device layer under the CUDA backend: a small table of operations
 * (memory, module load, launch, sync) with two implementations:
 *   - the CUDA driver API, reached by dlopen("libcuda.so.1") (never linked, so retinac starts
 *     and says "no GPU" cleanly where there is none); modules are compiled by NVRTC for the
 *     device's own sm_XX (runtime/nvrtc.h) through the JIT cache;
 *   - a host emulation used by tests without a GPU (tests/cuda_emu.h): same table, kernels
 *     compiled as host C++.
 * Device addresses are uint64_t. Every operation returns 0 or -1 with one line in dev->err.
 * A device is used from one host thread at a time.
 */
#ifndef RC_CUDA_DRV_H
#define RC_CUDA_DRV_H

#include <stddef.h>
#include <stdint.h>

typedef struct rc_cuda_dev rc_cuda_dev;

typedef struct {
    const char *name;   /* "cuda" or "emu" */
    int (*alloc)(rc_cuda_dev *d, size_t bytes, uint64_t *ptr);
    int (*free)(rc_cuda_dev *d, uint64_t ptr);
    int (*htod)(rc_cuda_dev *d, uint64_t dst, const void *src, size_t bytes);
    int (*dtoh)(rc_cuda_dev *d, void *dst, uint64_t src, size_t bytes);
    int (*dtod)(rc_cuda_dev *d, uint64_t dst, uint64_t src, size_t bytes);
    int (*zero)(rc_cuda_dev *d, uint64_t dst, size_t bytes);
    /* Compile (or fetch from the cache) and load a module; name is the program name. */
    int (*module_load)(rc_cuda_dev *d, const char *src, const char *name, void **mod);
    void (*module_unload)(rc_cuda_dev *d, void *mod);
    int (*get_function)(rc_cuda_dev *d, void *mod, const char *name, void **fn);
    /* Launch fn over grid (gx, gy) of 1-D blocks; args points to the kernel's single struct
     * argument of argbytes bytes. Asynchronous on the default stream. */
    int (*launch)(rc_cuda_dev *d, void *fn, unsigned gx, unsigned gy, unsigned block,
                  void *args, size_t argbytes);
    int (*sync)(rc_cuda_dev *d);
    void (*close)(rc_cuda_dev *d);
} rc_cuda_ops;

struct rc_cuda_dev {
    const rc_cuda_ops *ops;
    int arch;            /* compute capability major*10+minor (emu: 0) */
    int sm_count;
    char desc[256];      /* "NVIDIA H100 80GB HBM3, sm_90, 132 SMs, driver 13.0" */
    char err[1024];
    void *priv;
};

/* Is a CUDA driver with at least one device present? 1 yes, 0 no (reason in why). Cheap;
 * does not keep anything open. */
int rc_cuda_probe(char *why, size_t whylen);

/* Open device `ordinal` through the driver API (primary context). Returns 0, or -1 with a
 * clear message ("no CUDA driver (libcuda.so.1 not found)", "no CUDA device", ...). */
int rc_cuda_open(int ordinal, rc_cuda_dev **out, char *err, size_t errlen);

static inline void rc_cuda_close(rc_cuda_dev *d) { if (d) d->ops->close(d); }

/* The NVRTC compile log of the last module_load on a real device (ptxas registers/spills);
 * after a failed compile, the full report (options, numbered source, log); or "".
 * Owned by the device. */
const char *rc_cuda_last_log(rc_cuda_dev *d);

#endif
