/* bias_bn.h — shared by the backend comparisons (codegen_cmp.h) and the finite-difference
 * checks (test_ref.c): a conv/dense bias that feeds a batchnorm (through noise/dropout only) has
 * an exactly zero gradient in theory (BN removes the mean), so tests check it is negligible
 * rather than compare rounding noise relatively. */
#ifndef RC_TEST_BIAS_BN_H
#define RC_TEST_BIAS_BN_H

#include <string.h>
#include "ir.h"

/* Is p the bias of a layer whose output goes into a batchnorm through noise/dropout only? */
static inline int bias_before_bn(const rc_ir *ir, const rc_param *p)
{
    if (!strstr(p->name, ".bias")) return 0;
    for (int i = p->layer + 1; i < ir->n_layers; i++) {
        rc_layer_kind k = ir->layers[i].kind;
        if (k == RC_LAYER_BATCHNORM) return 1;
        if (k != RC_LAYER_NOISE && k != RC_LAYER_DROPOUT) return 0;
    }
    return 0;
}

#endif
