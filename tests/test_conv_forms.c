/* test_conv_forms.c — the register-blocked conv kernel forms of compiler/c/emit_c_conv.c against
 * the reference backend, at shapes chosen to reach each form and its edge cases: the pair
 * forward with several column blocks and an odd remainder, with input-channel chunks
 * (weights > 16 KiB) and 16 output channels; the pair weight gradient with several column
 * blocks and an odd remainder; the kx-vector weight gradient next to a pair forward (k = 16).
 * Each model is also checked to really contain the form it is meant to test (a changed
 * blocking heuristic must not turn a case into a duplicate of another). Tiny shapes: seconds.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "codegen_cmp.h"
#include "emit_c.h"

TestSuite(conv_forms, .init = codegen_setup_env);

/* The generated module of ir contains each of the n strings. */
static void assert_forms(const rc_ir *ir, const char *const *want, int n)
{
    char *src = NULL, err[512];
    cr_assert_eq(rc_emit_c(ir, NULL, &src, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < n; i++) cr_expect(strstr(src, want[i]) != NULL, "generated code lacks \"%s\"", want[i]);
    free(src);
}

Test(conv_forms, pair_blocks_chunks_and_odd_remainders)
{
    rc_ir ir;
    /* layer 1: 2 -> 16 channels, k = 13, 16 x 83 -> 4 x 71: forward and weight gradient (pair)
     * in column blocks 24 + 24 + 23 (odd), forward in channel chunks of 1.
     * layer 4: 16 -> 8 channels, k = 3, 4 x 71 -> 2 x 69: pair forward, pair weight gradient
     * 36 + 33 (odd) over 16 input channels; its input gradient is a pair conv with 16 outputs
     * (36 + 35 columns). */
    build_ir(&ir, "history=2 height=16 width=83",
             "layer conv channels=16 kernel=13\nlayer batchnorm over=unit\nlayer relu\n"
             "layer conv channels=8 kernel=3\nlayer relu\nlayer dense bias=false\n", 2);
    const char *want[] = {
        "backward_l1_conv_dw: weight gradient of one sample, pair form", "blocks of 24 columns",
        "backward_l4_conv_dw: weight gradient of one sample, pair form", "blocks of 36 columns",
        "input channels in chunks of 1", "forward_l1_conv_p23(", "backward_l4_conv_dx: conv 8x6x73 -> 16x4x71",
    };
    assert_forms(&ir, want, (int)(sizeof want / sizeof *want));
    compare(&ir, 3, "pair forms: column blocks, odd remainders, channel chunks");
}

Test(conv_forms, kx_weight_gradient_beside_pair_forward)
{
    rc_ir ir;
    /* k = 16: the kx-vector weight gradient uses all 16 lanes, so it is kept; the forward is in
     * pair form with chunks of 1 channel over 3 inputs; the second conv's input gradient runs
     * on a 12 x 12 padded gradient. */
    build_ir(&ir, "history=3 height=20 width=21",
             "layer conv channels=8 kernel=16\nlayer relu\n"
             "layer conv channels=8 kernel=4\nlayer softplus\nlayer dense bias=true\n", 2);
    const char *want[] = {
        "backward_l1_conv_dw: weight gradient of one sample, block", "forward_l1_conv: conv 3x20x21 -> 8x5x6, kernel 16; pair form",
        "input channels in chunks of 1",
    };
    assert_forms(&ir, want, (int)(sizeof want / sizeof *want));
    compare(&ir, 2, "kx weight gradient, pair forward with k = 16");
}
