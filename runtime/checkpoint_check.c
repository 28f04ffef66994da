/* checkpoint_check.c — rc_ckpt_validate (checkpoint.h): every value of a checkpoint that is not
 * covered by the spec hash but changes results, checked against the model it belongs to.
 *
 * The hash covers the model text only; the crop window, the cells, the readout positions, the
 * tensors and the normalization are plain data in the file and could be edited, corrupted or
 * written by a buggy tool, each giving plausible wrong numbers. So each is checked here, on load
 * and before save, and a failure names the file, the key and what is wrong.
 */
#include "checkpoint.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "errbuf.h"
#include "model.h"

/* First non-finite (or, with nonneg, negative) element of each view of buf: -1 on one. */
static int check_views(const rc_param *views, int n, const float *buf, const char *grp, int nonneg_var,
                       const char *fname, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        const rc_param *p = &views[i];
        const float *x = buf + p->offset;
        int want_nonneg = nonneg_var < 0 || (nonneg_var > 0 && strstr(p->name, "running_var"));
        for (int64_t k = 0; k < p->count; k++) {
            if (!isfinite(x[k]))
                return rc_errf(err, errlen, "%s: %s/%s: non-finite value (%s) at element %lld", fname,
                               grp, p->name, isnan(x[k]) ? "NaN" : x[k] > 0 ? "+Inf" : "-Inf",
                               (long long)k);
            if (want_nonneg && x[k] < 0)
                return rc_errf(err, errlen, "%s: %s/%s: negative value %g at element %lld (a variance)",
                               fname, grp, p->name, (double)x[k], (long long)k);
        }
    }
    return 0;
}

static int check_fp(const rc_checkpoint *ck, const char *fname, char *err, size_t errlen)
{
    const rc_data_fp *fp = &ck->fp;
    const rc_ir *ir = ck->ir;
    if (!fp->version) return 0;
    if (fp->frame_h != ir->height || fp->frame_w != ir->width)
        return rc_errf(err, errlen, "%s: /data: frame_h x frame_w %dx%d, but the model takes %dx%d frames",
                       fname, fp->frame_h, fp->frame_w, ir->height, ir->width);
    if (fp->file_cells < ck->cells)
        return rc_errf(err, errlen, "%s: /data: file_cells %d, fewer than the model's %d cells", fname,
                       fp->file_cells, ck->cells);
    if (fp->train_frames <= ir->history || fp->test_frames < 0)
        return rc_errf(err, errlen, "%s: /data: train_frames %lld / test_frames %lld out of range", fname,
                       (long long)fp->train_frames, (long long)fp->test_frames);
    size_t L = strlen(fp->sha256);
    if (L != 64 || strspn(fp->sha256, "0123456789abcdef") != 64)
        return rc_errf(err, errlen, "%s: /data: fingerprint '%.70s' is not a sha256 (64 hex digits)",
                       fname, fp->sha256);
    return 0;
}

int rc_ckpt_validate(const rc_checkpoint *ck, const char *fname, char *err, size_t errlen)
{
    const rc_ir *ir = ck->ir;
    if (!ir || !ck->params || !ck->cell_ids)
        return rc_errf(err, errlen, "%s: incomplete checkpoint (model, params or cells)", fname);
    /* the crop window inside the frame the spec declares; none without a crop */
    if (ir->crop > 0) {
        if (ck->crop_row0 < 0 || ck->crop_row0 > ir->height - ir->crop ||
            ck->crop_col0 < 0 || ck->crop_col0 > ir->width - ir->crop)
            return rc_errf(err, errlen, "%s: /: crop_row0, crop_col0: (%d,%d) puts the %dx%d crop outside "
                           "the model's %dx%d frame", fname, ck->crop_row0, ck->crop_col0, ir->crop,
                           ir->crop, ir->height, ir->width);
    } else if (ck->crop_row0 != 0 || ck->crop_col0 != 0) {
        return rc_errf(err, errlen, "%s: /: crop_row0, crop_col0: (%d,%d), but the model has no crop "
                       "(expected 0,0)", fname, ck->crop_row0, ck->crop_col0);
    }
    if (check_fp(ck, fname, err, errlen) < 0) return -1;
    /* cells */
    for (int c = 0; c < ck->cells; c++) {
        int id = ck->cell_ids[c];
        if (id < 0 || (ck->fp.version && id >= ck->fp.file_cells))
            return rc_errf(err, errlen, "%s: /data/cell_ids: cell %d is %d, outside the recording's cells "
                           "0..%d", fname, c, id, ck->fp.version ? ck->fp.file_cells - 1 : 999999);
        for (int j = 0; j < c; j++)
            if (ck->cell_ids[j] == id)
                return rc_errf(err, errlen, "%s: /data/cell_ids: cell %d listed twice (entries %d and %d)",
                               fname, id, j, c);
    }
    int g = rc_gc_layer(ir);
    if (g >= 0 && !ck->cell_pos)
        return rc_errf(err, errlen, "%s: /data/cell_pos: missing (the model reads out a gcconv layer)", fname);
    if (g < 0 && ck->cell_pos)
        return rc_errf(err, errlen, "%s: /data/cell_pos: present, but the model has no gcconv layer", fname);
    if (g >= 0) {
        const rc_layer *L = &ir->layers[g];
        int Ho = L->readout_h, Wo = L->readout_w;
        for (int c = 0; c < ck->cells; c++)
            if (ck->cell_pos[2 * c] < 0 || ck->cell_pos[2 * c] >= Ho || ck->cell_pos[2 * c + 1] < 0 ||
                ck->cell_pos[2 * c + 1] >= Wo)
                return rc_errf(err, errlen, "%s: /data/cell_pos: cell %d at (%d,%d), outside layer %d's "
                               "%dx%d output", fname, c, ck->cell_pos[2 * c], ck->cell_pos[2 * c + 1],
                               g + 1, Ho, Wo);
    }
    if (ck->centers)     /* relative to the crop window; anywhere in the full frame */
        for (int c = 0; c < ck->cells; c++) {
            int r = ck->centers[2 * c] + ck->crop_row0, q = ck->centers[2 * c + 1] + ck->crop_col0;
            if (r < 0 || r >= ir->height || q < 0 || q >= ir->width)
                return rc_errf(err, errlen, "%s: /data/centers: cell %d at (%d,%d) (frame (%d,%d)), outside "
                               "the model's %dx%d frame", fname, c, ck->centers[2 * c],
                               ck->centers[2 * c + 1], r, q, ir->height, ir->width);
        }
    /* tensors */
    if (check_views(ir->params, ir->n_params, ck->params, "/params", 0, fname, err, errlen) < 0)
        return -1;
    if (ir->n_state && (!ck->state ||
                        check_views(ir->state, ir->n_state, ck->state, "/state", 1, fname, err, errlen) < 0))
        return ck->state ? -1 : rc_errf(err, errlen, "%s: /state: missing", fname);
    if (ck->has_optim && ck->moments &&
        (check_views(ir->params, ir->n_params, ck->moments, "/optim/m", 0, fname, err, errlen) < 0 ||
         check_views(ir->params, ir->n_params, ck->moments + ir->params_total, "/optim/v", -1, fname,
                     err, errlen) < 0))
        return -1;
    /* normalization, schedule and optimizer state */
    if (!isfinite(ck->norm_mean))
        return rc_errf(err, errlen, "%s: /: norm_mean: %g, expected a finite number", fname, ck->norm_mean);
    if (!isfinite(ck->norm_std) || !(ck->norm_std > 0))
        return rc_errf(err, errlen, "%s: /: norm_std: %g, expected a finite number > 0", fname, ck->norm_std);
    if (!isfinite(ck->lr) || ck->lr < 0)
        return rc_errf(err, errlen, "%s: /: lr: %g, expected a finite number >= 0", fname, ck->lr);
    if (ck->epoch < 0 || ck->rng_step < 0 || ck->best_epoch < 0 || ck->best_epoch > ck->epoch)
        return rc_errf(err, errlen, "%s: /: epoch %lld, rng_step %lld, best_epoch %lld: expected "
                       "0 <= best_epoch <= epoch and rng_step >= 0", fname, (long long)ck->epoch,
                       (long long)ck->rng_step, (long long)ck->best_epoch);
    if (ck->early_bad < 0 || ck->plateau_bad < 0 || ck->threads < 0)
        return rc_errf(err, errlen, "%s: /: early_bad %d, plateau_bad %d, threads %d: expected >= 0",
                       fname, ck->early_bad, ck->plateau_bad, ck->threads);
    if (isnan(ck->best_val_loss) || isnan(ck->plateau_best))
        return rc_errf(err, errlen, "%s: /: best_val_loss or plateau_best is NaN", fname);
    if (ck->has_optim) {
        if (ck->opt_step < 0)
            return rc_errf(err, errlen, "%s: /optim: step %lld < 0", fname, (long long)ck->opt_step);
        if (!(ck->beta1 >= 0 && ck->beta1 < 1) || !(ck->beta2 >= 0 && ck->beta2 < 1) ||
            !(isfinite(ck->eps) && ck->eps > 0))
            return rc_errf(err, errlen, "%s: /optim: beta1 %g, beta2 %g, eps %g: expected betas in "
                           "[0,1) and eps > 0", fname, ck->beta1, ck->beta2, ck->eps);
    }
    return 0;
}
