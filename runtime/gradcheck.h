/* gradcheck.h — is a backend's training gradient right? (`retinac gradcheck`, issue 14 item 5)
 *
 * For an inferred model, rc_gradcheck_run builds a small deterministic problem (frames, window
 * starts, cell positions at the map center, params from the spec's init rules, BN state
 * initialized, random non-negative targets) and compares
 *   - the gradient under test: the backend's train_forward + train_backward with dy = dL/dy
 *     from rc_loss_train (the model's training loss, train mode, a fixed noise/dropout seed),
 *   - against central finite differences of the same L(params) on the reference backend run
 *     in double (rc_ref64_train_forward, ref.h: no float rounding anywhere, so small steps
 *     are noise-free and rarely straddle a relu kink), the BN running statistics restored
 *     before every evaluation, so L is a deterministic function of the parameters;
 * per parameter tensor, on a deterministic sample of elements (the largest gradients always
 * among them). A last tensor "input" checks the reference's eval-mode input gradient
 * (rc_ref_eval_forward / rc_ref_eval_grad, what the receptive-field analysis uses) of a random
 * projection of the outputs against finite differences of the double reference's infer on
 * the frames.
 *
 * Invariants: the check only uses the backend interface (backend.h), so defined layers
 * (RC_LAYER_DEF) are checked like built-in ones; everything is a pure function of (ir, opts,
 * backend); the backend's gradients accumulate, so the check zeroes them itself. A CUDA
 * backend (name "cuda") gets device copies of every buffer (backend_cuda.h).
 * Errors: -1 with one line in err (a backend call failed, out of memory, bad options); a
 * gradient that is off is not an error: it is a FAIL in the result.
 */
#ifndef RC_GRADCHECK_H
#define RC_GRADCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "ir.h"

/* Default tolerance on the per-element relative error (see gradcheck.c for the measurements
 * that set it) and the default number of elements checked per tensor. */
#define RC_GRADCHECK_TOL 1e-3
#define RC_GRADCHECK_SAMPLES 24
#define RC_GRADCHECK_STEP 1e-6

typedef struct {
    int batch;           /* samples per batch B (>= 2: batch statistics need two); default 4 */
    int samples;         /* elements checked per tensor (the largest-gradient quarter first);
                            0 = every element; default RC_GRADCHECK_SAMPLES */
    double tol;          /* max relative error allowed; default RC_GRADCHECK_TOL */
    double step;         /* finite-difference step relative to max(1, |p|); default RC_GRADCHECK_STEP */
    uint64_t seed;       /* data, targets, projection and noise/dropout seed; default 1 */
    int check_input;     /* also check the reference's input gradient (tensor "input"); default 1 */
} rc_gradcheck_opts;

typedef struct {
    char name[RC_NAME_MAX];  /* parameter name ("1.conv.weight") or "input" */
    int64_t count;           /* elements of the tensor */
    int checked;             /* elements compared */
    int kinks;               /* of those, elements that agreed only by a one-sided difference (a
                                kink of relu, abs, ... inside the central stencil) */
    int off;                 /* elements that agreed by no difference (any fails the tensor) */
    double scale;            /* max |finite difference| over the checked elements */
    double floor;            /* denominator floor of the relative error */
    double max_rel, max_abs; /* max |g - fd| / max(|fd|, floor) and max |g - fd| */
    int64_t worst;           /* element index of max_rel */
    double worst_g, worst_fd;
    int pass;
} rc_gradcheck_tensor;

typedef struct {
    char backend[16];
    int batch, cells;
    double tol;
    double loss_ref, loss_backend;   /* L at the initial parameters on the reference and on the
                                        backend under test (they differ by float rounding) */
    int n;                           /* tensors: the parameters in rc_ir order, then "input" */
    rc_gradcheck_tensor *t;
    int n_failed;                    /* tensors with pass == 0 */
} rc_gradcheck_result;

void rc_gradcheck_defaults(rc_gradcheck_opts *o);

/* Run the check of backend `be` (any backend built for `ir`, ir inferred) with opts (NULL:
 * defaults). res is filled (free with rc_gradcheck_free, also after a failure). Returns 0 when
 * the check ran (res->n_failed says whether it passed), -1 with a message otherwise. */
int rc_gradcheck_run(const rc_ir *ir, rc_backend *be, const rc_gradcheck_opts *opts,
                     rc_gradcheck_result *res, char *err, size_t errlen);

void rc_gradcheck_free(rc_gradcheck_result *res);

#endif
