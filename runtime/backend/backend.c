/* backend.c — the one place a backend is chosen and built (rc_backend_open, backend.h).
 *
 * Callers name what they want ("c", "ref", or NULL for the automatic choice) and the device
 * ("cpu" or "cuda"); this file alone knows which constructor serves it: rc_c_backend_create
 * (backend_c.c), rc_ref_backend_create (ref.c), rc_cuda_backend_create (backend_cuda.c).
 * Invariants: on success *out is a backend whose name is the one that was built ("c", "ref",
 * "cuda"); on failure *out is NULL and err holds the message of the last constructor tried.
 */
#include "backend.h"

#include <string.h>

#include "backend_c.h"
#include "backend_cuda.h"
#include "errbuf.h"
#include "ref.h"

static int open_ref(const rc_ir *ir, rc_backend **out, char *err, size_t errlen)
{
    if (rc_ref_backend_create(ir, out) != 0) return rc_errf(err, errlen, "ref backend: out of memory");
    return 0;
}

int rc_backend_open(const rc_ir *ir, const char *name, const char *device, rc_backend **out,
                    char *err, size_t errlen)
{
    *out = NULL;
    if (device && !strcmp(device, "cuda")) return rc_cuda_backend_create(ir, out, err, errlen);
    if (device && *device && strcmp(device, "cpu"))
        return rc_errf(err, errlen, "device '%s': expected cpu or cuda", device);
    if (!name) {                       /* automatic: the generated C, else the reference */
        if (rc_c_backend_create(ir, out, err, errlen) == 0) return 0;
        return open_ref(ir, out, err, errlen);
    }
    if (!*name || !strcmp(name, "c")) return rc_c_backend_create(ir, out, err, errlen);
    if (!strcmp(name, "ref")) return open_ref(ir, out, err, errlen);
    return rc_errf(err, errlen, "backend '%s': expected c or ref", name);
}
