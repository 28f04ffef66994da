/* phenomena_io.c — the phenomena report file (rc_pheno_write, phenomena.h): every column's
 * traces, summary numbers and stimulus parameters in one HDF5 file, as rf.c and intr.c write
 * theirs.
 * Invariants: the file is built in memory (rc_h5_mem_create, no object times, so the same
 * results give the same bytes) and reaches the disk only through rc_h5_mem_commit, atomically:
 * a failure leaves the previous file, if any, untouched (fsutil.h). Nothing is printed.
 */
#include <hdf5.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "errbuf.h"
#include "fsutil.h"
#include "h5util.h"
#include "phenomena.h"

int rc_pheno_write(const char *path, const rc_pheno_column *cols, int n, const char *only,
                   char *err, size_t errlen)
{
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl >= 0) H5Pset_obj_track_times(fcpl, 0);
    hid_t f = rc_h5_mem_create(path, fcpl >= 0 ? fcpl : H5P_DEFAULT, err, errlen);
    if (fcpl >= 0) H5Pclose(fcpl);
    if (f < 0) return -1;
    int ok = rc_h5_attr_set_string(f, "/", "generator", "retinac phenomena") == 0 &&
             rc_h5_attr_set_string(f, "/", "only", only ? only : "") == 0 &&
             rc_h5_attr_set_string(f, "/", "units", "responses in the model's output units (spikes/s for the synthetic retina); time in 10 ms frames; positions in px (55 um)") == 0;
    char key[256] = "/";
    for (int i = 0; i < n && ok; i++) {
        const rc_pheno_column *c = &cols[i];
        const rc_pheno_out *o = &c->out;
        for (int k = 0; k < o->n_traces && ok; k++) {
            const rc_pheno_trace *t = &o->traces[k];
            snprintf(key, sizeof key, "/%s/%s", c->label, t->key);
            ok = rc_h5_write_all(f, key, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, t->rank, t->dims, t->data) == 0 &&
                 rc_h5_attr_set_string(f, key, "description", t->desc) == 0;
        }
        for (int k = 0; k < o->n_nums && ok; k++) {
            const rc_pheno_num *v = &o->nums[k];
            char ph[64];
            snprintf(ph, sizeof ph, "%s", v->key);
            char *dot = strchr(ph, '.');
            if (!dot) continue;
            *dot = 0;
            snprintf(key, sizeof key, "/%s/%s/%s", c->label, ph, dot + 1);
            int64_t one = 1;
            ok = rc_h5_write_all(f, key, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 1, &one, &v->value) == 0 &&
                 rc_h5_attr_set_string(f, key, "description", "summary number (docs/phenomena.md)") == 0;
        }
        for (int k = 0; k < o->n_params && ok; k++) {
            const rc_pheno_param *p = &o->params[k];
            char grp[64];
            snprintf(grp, sizeof grp, "%s", p->key);
            char *sl = strchr(grp, '/');
            if (!sl) continue;
            *sl = 0;
            snprintf(key, sizeof key, "/%s/%s", c->label, grp);
            ok = rc_h5_attr_set_double(f, key, sl + 1, p->value) == 0;
        }
        snprintf(key, sizeof key, "/%s", c->label);
        if (ok && rc_h5_exists(f, key) == 1)
            ok = rc_h5_attr_set_string(f, key, "source", c->source) == 0 &&
                 rc_h5_attr_set_string(f, key, "model", c->model) == 0 &&
                 rc_h5_attr_set_int64(f, key, "history", c->pm.history) == 0 &&
                 rc_h5_attr_set_int64(f, key, "height", c->pm.H) == 0 &&
                 rc_h5_attr_set_int64(f, key, "width", c->pm.W) == 0 &&
                 rc_h5_attr_set_int64(f, key, "cells", c->pm.cells) == 0;
    }
    if (!ok) rc_errf(err, errlen, "%s: %s: HDF5 could not build the file (in memory)", path, key);
    return rc_h5_mem_commit(f, path, ok, err, errlen);
}
