/* test_fft_backend.c — the C backend with layer 1 run by FFT (runtime/backend/fftconv.c through the
 * module's rcg_*_ext entry points, backend_c.c): every output, running statistic and gradient
 * against the reference oracle, for each way layer 1's chain can start (stored level 0 before a
 * batchnorm; unstored level 0 before dropout + rectify; folded channel BN in inference); the
 * direct fallback when a call's frames are not the declared stream; the data generations the
 * trainer uses to re-declare streams. */
#include "codegen_cmp.h"
#include "checkpoint.h"
#include "eval.h"
#include "fftconv.h"
#include "spec.h"

TestSuite(fft_backend, .init = codegen_setup_env);

Test(fft_backend, unit_bn_noise_relu)   /* level 0 stored: the FFT writes the BN input */
{
    rc_ir ir;
    build_ir(&ir, "history=5 height=16 width=15",
             "layer conv channels=4 kernel=7\nlayer batchnorm over=unit\nlayer noise std=0.1\nlayer relu\n"
             "layer conv channels=3 kernel=3\nlayer batchnorm over=unit\nlayer relu\n"
             "layer dense bias=false\nlayer batchnorm over=unit\nlayer softplus\n", 3);
    compare_mode(&ir, 6, "fft: unit BN", RC_C_FFT_ON);
}

Test(fft_backend, dropout_softplus_unstored_level0)   /* ext buffer + pass to the first stored level */
{
    rc_ir ir;
    build_ir(&ir, "history=4 height=13 width=14",
             "layer conv channels=5 kernel=6 bias=true\nlayer dropout p=0.3\nlayer softplus\n"
             "layer conv channels=2 kernel=3\nlayer relu\nlayer dense bias=true\nlayer softplus\n", 2);
    compare_mode(&ir, 5, "fft: dropout + softplus", RC_C_FFT_ON);
}

Test(fft_backend, channel_bn_folded_in_direct_inference)   /* ext inference applies the BN unfolded */
{
    rc_ir ir;
    build_ir(&ir, "history=6 height=12 width=12",
             "layer conv channels=3 kernel=5 bias=false\nlayer batchnorm over=channel abs=true\nlayer tanh\n"
             "layer gcconv kernel=3 bias=true\nlayer softplus\n", 4);
    compare_mode(&ir, 4, "fft: channel BN, gcconv", RC_C_FFT_ON);
}

Test(fft_backend, shipped_bncnn_small)
{
    char path[512], err[512];
    rc_ir ir;
    snprintf(path, sizeof path, "%s/specs/bncnn.lua", RC_SRC_DIR);
    cr_assert_eq(rc_spec_load(path, &ir, err, sizeof err), 0, "%s", err);
    ir.history = 8;
    ir.height = ir.width = 20;
    ir.crop = 0;
    ir.layers[0].kernel = 9;
    for (int i = 1; i < ir.n_layers; i++) if (ir.layers[i].kind == RC_LAYER_CONV) ir.layers[i].kernel = 3;
    cr_assert_eq(rc_ir_infer(&ir, 3, path, err, sizeof err), 0, "%s", err);
    compare_mode(&ir, 7, "fft: bncnn", RC_C_FFT_ON);
}

/* A stacked layer 1 (dropout between sub-convs in training): training stays direct, inference
 * runs the collapsed kernel by FFT. */
Test(fft_backend, stacked_inference)
{
    rc_ir ir;
    build_ir(&ir, "history=4 height=17 width=16",
             "layer conv channels=3 kernel=7 stack=3 stack_dropout=0.2\nlayer batchnorm over=channel abs=true\n"
             "layer noise std=0.05\nlayer relu\n"
             "layer conv channels=2 kernel=3 stack=3\nlayer relu\n"
             "layer gcconv kernel=3 bias=true\nlayer batchnorm over=unit abs=true\nlayer softplus\n", 3);
    compare_mode(&ir, 5, "fft: stacked layer 1", RC_C_FFT_ON);
}

/* A tiled first conv, or a model that does not start with a conv, cannot take the FFT path:
 * ON is an error that says why, AUTO quietly stays direct. */
Test(fft_backend, ineligible_first_layers)
{
    const char *layers[] = {
        "layer conv channels=3 kernel=3 period=2\nlayer relu\nlayer dense\n",
        "layer batchnorm over=unit\nlayer conv channels=3 kernel=3\nlayer relu\nlayer dense\n",
    };
    for (int i = 0; i < 2; i++) {
        rc_ir ir;
        char err[1024];
        rc_backend *cb = NULL;
        build_ir(&ir, "history=3 height=12 width=12", layers[i], 2);
        cr_assert_eq(rc_c_backend_create(&ir, &cb, err, sizeof err), 0, "%s", err);
        cr_expect_eq(rc_c_backend_fft(cb), 0);
        cr_expect_eq(rc_c_backend_set_fft(cb, RC_C_FFT_ON, err, sizeof err), -1, "case %d accepted", i);
        cr_expect(strstr(err, "FFT first conv needs layer 1"), "case %d: %s", i, err);
        cr_expect_eq(rc_c_backend_set_fft(cb, RC_C_FFT_AUTO, err, sizeof err), 0, "%s", err);
        cr_expect_eq(rc_c_backend_fft(cb), 0);
        rc_backend_destroy(cb);
    }
}

/* Later convs by FFT (the conv hooks): AUTO puts bncnn's layer 2 on it (and not a small 3x3 conv,
 * where the direct kernel wins), OFF neither. The spectra of a training forward's input serve
 * its backward only while they are that input's: an inference in between (same batch size,
 * another workspace) must not leave its spectra to the backward. */
Test(fft_backend, later_convs_through_the_hooks)
{
    char path[512], err[1024];
    rc_ir big;
    rc_backend *cb = NULL;
    snprintf(path, sizeof path, "%s/specs/bncnn.lua", RC_SRC_DIR);
    cr_assert_eq(rc_spec_load(path, &big, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_ir_infer(&big, 5, path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_c_backend_create(&big, &cb, err, sizeof err), 0, "%s", err);
    cr_expect_eq(rc_c_backend_hook_calls(cb, 4), 0, "bncnn layer 5 (the second conv) planned by AUTO");
    cr_expect_eq(rc_c_backend_hook_calls(cb, 0), -1, "layer 1 is not a hooked layer");
    cr_assert_eq(rc_c_backend_set_fft(cb, RC_C_FFT_OFF, err, sizeof err), 0, "%s", err);
    cr_expect_eq(rc_c_backend_hook_calls(cb, 4), -1, "OFF: direct");
    rc_backend_destroy(cb);

    rc_ir ir;
    build_ir(&ir, "history=3 height=14 width=14",
             "layer conv channels=3 kernel=5\nlayer relu\n"
             "layer conv channels=4 kernel=3\nlayer batchnorm over=channel\nlayer relu\nlayer dense\nlayer softplus\n", 2);
    cr_assert_eq(rc_c_backend_create(&ir, &cb, err, sizeof err), 0, "%s", err);
    cr_expect_eq(rc_c_backend_hook_calls(cb, 2), -1, "AUTO keeps a small 3x3 conv direct");
    cr_assert_eq(rc_c_backend_set_fft(cb, RC_C_FFT_ON, err, sizeof err), 0, "%s", err);
    cr_expect_eq(rc_c_backend_hook_calls(cb, 2), 0, "ON: hooked");
    const int B = 6, B2 = B, T = 40, HW = 14 * 14;
    int64_t P = ir.params_total;
    float *fr = malloc(sizeof(float) * T * HW), *params = malloc(sizeof(float) * P);
    float *state = malloc(sizeof(float) * (ir.state_total + 1)), *y = malloc(sizeof(float) * B * 2);
    float *dy = malloc(sizeof(float) * B * 2), *g1 = calloc(P, sizeof(float)), *g2 = calloc(P, sizeof(float));
    float *ws = malloc(sizeof(float) * cb->ws_floats(cb, B)), *ws2 = malloc(sizeof(float) * cb->ws_floats(cb, B2));
    int64_t starts[6] = {0, 7, 13, 20, 29, 37}, starts2[6] = {3, 5, 30, 2, 9, 11};
    uint64_t rs = 5;
    cr_assert(fr && params && state && y && dy && g1 && g2 && ws && ws2);
    for (int i = 0; i < T * HW; i++) fr[i] = urand(&rs);
    for (int i = 0; i < B * 2; i++) dy[i] = urand(&rs);
    rc_params_init(&ir, 3, params, state);
    cr_assert_eq(cb->set_stream(cb, fr, T), 0, "%s", cb->err);
    cr_assert_eq(cb->train_forward(cb, B, params, state, NULL, 1, fr, starts, y, ws), 0, "%s", cb->err);
    cr_assert_eq(cb->train_backward(cb, B, params, NULL, fr, starts, dy, g1, ws), 0, "%s", cb->err);
    cr_assert_eq(cb->train_forward(cb, B, params, state, NULL, 1, fr, starts, y, ws), 0, "%s", cb->err);
    cr_assert_eq(cb->infer(cb, B2, params, state, NULL, fr, starts2, y, ws2), 0, "%s", cb->err);
    cr_assert_eq(cb->train_backward(cb, B, params, NULL, fr, starts, dy, g2, ws), 0, "%s", cb->err);
    cr_expect_eq(memcmp(g1, g2, sizeof(float) * P), 0, "an inference between forward and backward changed the gradients");
    cr_expect_eq(rc_c_backend_hook_calls(cb, 2), 5, "every call of layer 3 through the hooks");
    free(fr); free(params); free(state); free(y); free(dy); free(g1); free(g2); free(ws); free(ws2);
    rc_backend_destroy(cb);
}

/* Infer through the FFT path, then with a copy of the frames (not the declared stream: direct
 * path), then after re-declaring changed content: all three agree with the reference. */
Test(fft_backend, stream_contract)
{
    rc_ir ir;
    char err[1024];
    build_ir(&ir, "history=4 height=14 width=14",
             "layer conv channels=3 kernel=6\nlayer batchnorm over=channel\nlayer relu\nlayer dense\nlayer softplus\n", 2);
    rc_backend *ref = NULL, *cb = NULL;
    cr_assert_eq(rc_ref_backend_create(&ir, &ref), 0);
    cr_assert_eq(rc_c_backend_create(&ir, &cb, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_c_backend_set_fft(cb, RC_C_FFT_ON, err, sizeof err), 0, "%s", err);
    const int B = 5, T = 600, HW = 14 * 14;   /* T > 2 spectra blocks: windows straddle a block edge */
    float *fr = malloc(sizeof(float) * T * HW), *copy = malloc(sizeof(float) * T * HW);
    float *params = malloc(sizeof(float) * ir.params_total), *state = malloc(sizeof(float) * (ir.state_total + 1));
    float *yr = malloc(sizeof(float) * B * 2), *yc = malloc(sizeof(float) * B * 2);
    float *wr = malloc(sizeof(float) * ref->ws_floats(ref, B)), *wc = malloc(sizeof(float) * cb->ws_floats(cb, B));
    int64_t starts[5] = {0, 254, 255, 511, 596};
    uint64_t rs = 77;
    for (int i = 0; i < T * HW; i++) fr[i] = urand(&rs);
    memcpy(copy, fr, sizeof(float) * T * HW);
    rc_params_init(&ir, 3, params, state);
    cr_assert_eq(cb->set_stream(cb, fr, T), 0, "%s", cb->err);
    for (int round = 0; round < 3; round++) {
        const float *use = round == 1 ? copy : fr;
        if (round == 2) {   /* new content in the same buffer, re-declared */
            for (int i = 0; i < T * HW; i++) fr[i] = urand(&rs);
            cr_assert_eq(cb->set_stream(cb, fr, T), 0, "%s", cb->err);
        }
        cr_assert_eq(ref->infer(ref, B, params, state, NULL, use, starts, yr, wr), 0, "%s", ref->err);
        int64_t before = rc_c_backend_fft_calls(cb);
        cr_assert_eq(cb->infer(cb, B, params, state, NULL, use, starts, yc, wc), 0, "%s", cb->err);
        cr_expect_eq(rc_c_backend_fft_calls(cb) - before, round == 1 ? 0 : 1, "round %d: FFT path taken?", round);
        double e = kit_rel_l2(yc, yr, B * 2);
        cr_expect_leq(e, TOL, "round %d: rel L2 %g", round, e);
    }
    free(fr); free(copy); free(params); free(state); free(yr); free(yc); free(wr); free(wc);
    rc_backend_destroy(ref);
    rc_backend_destroy(cb);
}

/* The spectra a stream may take follow the owner's budget (stream_budget: the trainer's
 * --mem-budget), not only the environment's; the per-frame size the trainer counts in its data
 * chunks is the plan's, for a model whose layer 1 can take the FFT path, and 0 otherwise. */
Test(fft_backend, stream_budget_and_per_frame_bytes)
{
    rc_ir ir, dense_first;
    char err[1024];
    build_ir(&ir, "history=4 height=14 width=14",
             "layer conv channels=3 kernel=6\nlayer relu\nlayer dense\nlayer softplus\n", 2);
    build_ir(&dense_first, "history=4 height=14 width=14", "layer dense\nlayer softplus\n", 2);
    rc_fftconv *p = NULL;
    cr_assert_eq(rc_fftconv_create(4, 14, 14, 3, 6, 1, &p, err, sizeof err), 0, "%s", err);
    const size_t per = rc_fftconv_spectra_floats(p, 1) * sizeof(float);
    rc_fftconv_destroy(p);
    cr_expect_eq(rc_c_stream_bytes_per_frame(&ir), per);
    cr_expect_eq(rc_fftconv_frame_floats(14, 14) * sizeof(float), per);
    cr_expect_eq(rc_c_stream_bytes_per_frame(&dense_first), 0);
    rc_backend *cb = NULL;
    cr_assert_eq(rc_c_backend_create(&ir, &cb, err, sizeof err), 0, "%s", err);
    cr_assert_eq(rc_c_backend_set_fft(cb, RC_C_FFT_ON, err, sizeof err), 0, "%s", err);
    const int B = 3, T = 300, HW = 14 * 14;
    float *fr = calloc((size_t)T * HW, sizeof(float)), *params = malloc(sizeof(float) * ir.params_total);
    float *y = malloc(sizeof(float) * B * 2), *ws = malloc(sizeof(float) * cb->ws_floats(cb, B));
    int64_t starts[3] = {0, 100, 296};
    rc_params_init(&ir, 3, params, NULL);
    for (int round = 0; round < 2; round++) {
        cb->stream_budget = round == 0 ? per * T - 1 : per * T;   /* one byte short, then just enough */
        cr_assert_eq(cb->set_stream(cb, fr, T), 0, "%s", cb->err);
        int64_t before = rc_c_backend_fft_calls(cb);
        cr_assert_eq(cb->infer(cb, B, params, NULL, NULL, fr, starts, y, ws), 0, "%s", cb->err);
        cr_expect_eq(rc_c_backend_fft_calls(cb) - before, round, "budget %zu: FFT path taken?", cb->stream_budget);
    }
    free(fr); free(params); free(y); free(ws);
    rc_backend_destroy(cb);
}

/* rc_predict_frames hands a long stimulus to the backend in streams of EVAL_SEG windows (eval.c):
 * over a stimulus longer than two of them the FFT path is taken in every batch and the
 * predictions equal the direct path's, at the segment edges too. */
Test(fft_backend, predict_over_a_long_stimulus_in_streams)
{
    static rc_ir ir;
    char err[1024];
    build_ir(&ir, "history=4 height=10 width=10",
             "layer conv channels=2 kernel=5\nlayer relu\nlayer dense\nlayer softplus\n", 2);
    const int64_t T = 2 * 16384 + 700, HW = 100, n = T - 4;
    float *fr = malloc(sizeof(float) * (size_t)(T * HW)), *params = malloc(sizeof(float) * ir.params_total);
    float *yf = malloc(sizeof(float) * (size_t)n * 2), *yd = malloc(sizeof(float) * (size_t)n * 2);
    uint64_t rs = 5;
    for (int64_t i = 0; i < T * HW; i++) fr[i] = urand(&rs);
    rc_params_init(&ir, 3, params, NULL);
    rc_checkpoint ck;
    memset(&ck, 0, sizeof ck);
    ck.ir = &ir;
    ck.params = params;
    ck.cells = 2;
    for (int fft = 1; fft >= 0; fft--) {
        rc_backend *cb = NULL;
        cr_assert_eq(rc_c_backend_create(&ir, &cb, err, sizeof err), 0, "%s", err);
        cr_assert_eq(rc_c_backend_set_fft(cb, fft ? RC_C_FFT_ON : RC_C_FFT_OFF, err, sizeof err), 0, "%s", err);
        cb->stream_budget = 12u << 20;   /* one segment's spectra fit (9.4 MB), the whole stimulus's (19 MB) would not */
        cr_assert_eq(rc_predict_frames(cb, &ck, fr, T, fft ? yf : yd, err, sizeof err), 0, "%s", err);
        if (fft) cr_expect_eq(rc_c_backend_fft_calls(cb), (n + 255) / 256, "every batch on the FFT path");
        rc_backend_destroy(cb);
    }
    double e = kit_rel_l2(yf, yd, n * 2);
    cr_expect_leq(e, TOL, "FFT vs direct over %lld windows: rel L2 %g", (long long)n, e);
    for (int64_t w = 16380; w < 16390; w++)   /* across the first segment edge */
        cr_expect_leq(fabsf(yf[w * 2] - yd[w * 2]), 1e-4f * (1.0f + fabsf(yd[w * 2])), "window %lld", (long long)w);
    free(fr); free(params); free(yf); free(yd);
}
