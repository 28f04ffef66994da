/* torch_file.c — torch.save containers (torch_file.h): zip through libzip, the legacy pickle
 * stream by hand; storages are read into memory by key and tensors copied out as float32.
 */
#include "torch_file.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#include "errbuf.h"
#include "sha256.h"

static const uint8_t legacy_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

/* The distinct storage keys the object refers to, each with the largest size asked of it. */
static int collect_keys(rc_torch_file *F, const char *what, char *err, size_t errlen)
{
    size_t ns = F->A.n_storages;
    F->keys = calloc(ns ? ns : 1, sizeof *F->keys);
    F->data = calloc(ns ? ns : 1, sizeof *F->data);
    F->nbytes = calloc(ns ? ns : 1, sizeof *F->nbytes);
    if (!F->keys || !F->data || !F->nbytes) return rc_errf(err, errlen, "%s: out of memory", what);
    for (size_t i = 0; i < ns; i++) {
        const rc_pk *s = F->A.storages[i];
        int64_t need = s->numel * rc_dtype_size(s->dtype);
        size_t j = 0;
        while (j < F->n && strcmp(F->keys[j], s->s)) j++;
        if (j == F->n) { F->keys[F->n++] = s->s; F->nbytes[j] = need; }
        else if (need > F->nbytes[j]) F->nbytes[j] = need;
    }
    return 0;
}

/* Read one archive entry completely into *out (malloc'd; NULL after a failure). libzip checks
 * the entry's CRC when the read reaches its end. */
static int read_entry(zip_t *z, zip_uint64_t idx, const char *name, uint8_t **out, size_t *len,
                      const char *what, char *err, size_t errlen)
{
    *out = NULL;
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(z, idx, 0, &st) < 0 || !(st.valid & ZIP_STAT_SIZE))
        return rc_errf(err, errlen, "%s: %s: cannot stat the entry", what, name);
    if (st.size > RC_TORCH_MAX_BYTES)
        return rc_errf(err, errlen, "%s: %s: %llu bytes (at most %zu)", what, name, (unsigned long long)st.size, RC_TORCH_MAX_BYTES);
    uint8_t *buf = malloc(st.size ? st.size : 1);
    if (!buf) return rc_errf(err, errlen, "%s: %s: out of memory", what, name);
    zip_file_t *zf = zip_fopen_index(z, idx, 0);
    if (!zf) { free(buf); return rc_errf(err, errlen, "%s: %s: %s", what, name, zip_strerror(z)); }
    zip_int64_t got = 0, r = 1;
    while (got < (zip_int64_t)st.size && (r = zip_fread(zf, buf + got, st.size - (zip_uint64_t)got)) > 0) got += r;
    uint8_t extra;
    if (r < 0 || got != (zip_int64_t)st.size || zip_fread(zf, &extra, 1) < 0) {
        rc_errf(err, errlen, "%s: %s: %s", what, name, zip_file_strerror(zf));
        zip_fclose(zf);
        free(buf);
        return -1;
    }
    zip_fclose(zf);
    *out = buf;
    *len = (size_t)st.size;
    return 0;
}

static int open_zip(rc_torch_file *F, const uint8_t *buf, size_t len, const char *what,
                    char *err, size_t errlen)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(buf, len, 0, &ze);
    zip_t *z = src ? zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze) : NULL;
    if (!z) {
        rc_errf(err, errlen, "%s: not a readable zip archive (torch.save's format): %s", what, zip_error_strerror(&ze));
        if (src) zip_source_free(src);
        zip_error_fini(&ze);
        return -1;
    }
    zip_error_fini(&ze);
    int rc = -1;
    uint8_t *pkl = NULL;
    char prefix[512] = "";
    zip_int64_t ne = zip_get_num_entries(z, 0), pk = -1;
    for (zip_int64_t i = 0; i < ne; i++) {
        const char *nm = zip_get_name(z, (zip_uint64_t)i, 0);
        if (!nm) continue;
        const char *slash = strchr(nm, '/');
        if (slash && !strcmp(slash, "/data.pkl") && (size_t)(slash - nm) < sizeof prefix) {
            if (pk >= 0) { rc_errf(err, errlen, "%s: two data.pkl entries in the archive", what); goto out; }
            pk = i;
            memcpy(prefix, nm, (size_t)(slash - nm));
            prefix[slash - nm] = 0;
        }
    }
    if (pk < 0) { rc_errf(err, errlen, "%s: a zip archive without ARCHIVE/data.pkl: not written by torch.save", what); goto out; }

    {
        char bo[600];
        snprintf(bo, sizeof bo, "%s/byteorder", prefix);
        zip_int64_t bi = zip_name_locate(z, bo, 0);
        if (bi >= 0) {
            uint8_t *b = NULL;
            size_t bl = 0;
            if (read_entry(z, (zip_uint64_t)bi, "byteorder", &b, &bl, what, err, errlen) < 0) goto out;
            int little = bl == 6 && !memcmp(b, "little", 6);
            free(b);
            if (!little) { rc_errf(err, errlen, "%s: byteorder is not 'little' (a big-endian save is not read)", what); goto out; }
        }
    }
    size_t pl = 0;
    if (read_entry(z, (zip_uint64_t)pk, "data.pkl", &pkl, &pl, what, err, errlen) < 0) goto out;
    size_t used = 0;
    char pwhat[1200];
    snprintf(pwhat, sizeof pwhat, "%s: data.pkl", what);
    if (rc_pk_load(&F->A, pkl, pl, &used, &F->root, pwhat, err, errlen) < 0) goto out;
    if (collect_keys(F, what, err, errlen) < 0) goto out;
    for (size_t i = 0; i < F->n; i++) {
        char nm[700];
        snprintf(nm, sizeof nm, "%s/data/%s", prefix, F->keys[i]);
        zip_int64_t di = zip_name_locate(z, nm, 0);
        if (di < 0) { rc_errf(err, errlen, "%s: storage %s: no entry %s in the archive", what, F->keys[i], nm); goto out; }
        size_t dl = 0;
        if (read_entry(z, (zip_uint64_t)di, nm, &F->data[i], &dl, what, err, errlen) < 0) goto out;
        if ((int64_t)dl < F->nbytes[i]) {
            rc_errf(err, errlen, "%s: storage %s: %zu bytes, a tensor needs %lld", what, F->keys[i], dl, (long long)F->nbytes[i]);
            goto out;
        }
    }
    rc = 0;
out:
    free(pkl);
    zip_discard(z);   /* frees src */
    return rc;
}

static int open_legacy(rc_torch_file *F, const uint8_t *buf, size_t len, const char *what,
                       char *err, size_t errlen)
{
    size_t pos = 0, used = 0;
    rc_pk *magic, *proto, *sysinfo, *keys;
    char pwhat[1200];
    snprintf(pwhat, sizeof pwhat, "%s: legacy header", what);
    if (rc_pk_load(&F->A, buf, len, &used, &magic, pwhat, err, errlen) < 0) return -1;
    pos += used;
    if (magic->kind != RC_PK_BIGINT || magic->len != sizeof legacy_magic || memcmp(magic->s, legacy_magic, sizeof legacy_magic))
        return rc_errf(err, errlen, "%s: a pickle, but not torch.save's (no magic number): not a PyTorch checkpoint", what);
    if (rc_pk_load(&F->A, buf + pos, len - pos, &used, &proto, pwhat, err, errlen) < 0) return -1;
    pos += used;
    if (proto->kind != RC_PK_INT || proto->i != 1001)
        return rc_errf(err, errlen, "%s: legacy protocol version %lld (1001 is read)", what, proto->kind == RC_PK_INT ? (long long)proto->i : -1LL);
    if (rc_pk_load(&F->A, buf + pos, len - pos, &used, &sysinfo, pwhat, err, errlen) < 0) return -1;
    pos += used;
    rc_pk *le = rc_pk_dict_get(sysinfo, "little_endian");
    if (!le || le->kind != RC_PK_BOOL || !le->i)
        return rc_errf(err, errlen, "%s: sys_info says the file is not little-endian", what);
    snprintf(pwhat, sizeof pwhat, "%s: object", what);
    if (rc_pk_load(&F->A, buf + pos, len - pos, &used, &F->root, pwhat, err, errlen) < 0) return -1;
    pos += used;
    snprintf(pwhat, sizeof pwhat, "%s: storage keys", what);
    if (rc_pk_load(&F->A, buf + pos, len - pos, &used, &keys, pwhat, err, errlen) < 0) return -1;
    pos += used;
    if (keys->kind != RC_PK_LIST) return rc_errf(err, errlen, "%s: the storage key list is not a list", what);
    if (collect_keys(F, what, err, errlen) < 0) return -1;
    /* storages follow in the order of the key list; a key the object does not use is skipped */
    for (size_t k = 0; k < keys->n; k++) {
        const rc_pk *key = keys->items[k];
        if (key->kind != RC_PK_STR) return rc_errf(err, errlen, "%s: storage key %zu is not a string", what, k);
        size_t j = 0;
        while (j < F->n && strcmp(F->keys[j], key->s)) j++;
        if (j == F->n) return rc_errf(err, errlen, "%s: storage %.64s is listed but never used", what, key->s);
        if (F->data[j]) return rc_errf(err, errlen, "%s: storage %.64s listed twice", what, key->s);
        if (len - pos < 8) return rc_errf(err, errlen, "%s: truncated before storage %.64s", what, key->s);
        uint64_t cnt = 0;
        for (int b = 7; b >= 0; b--) cnt = (cnt << 8) | buf[pos + (size_t)b];
        pos += 8;
        int es = 0;
        for (size_t s = 0; s < F->A.n_storages; s++)
            if (!strcmp(F->A.storages[s]->s, key->s)) { es = rc_dtype_size(F->A.storages[s]->dtype); break; }
        if (cnt > (uint64_t)RC_TORCH_MAX_BYTES || cnt * (uint64_t)es > len - pos)
            return rc_errf(err, errlen, "%s: storage %.64s: %llu elements of %d bytes, but %zu bytes remain (truncated?)",
                           what, key->s, (unsigned long long)cnt, es, len - pos);
        int64_t nb = (int64_t)(cnt * (uint64_t)es);
        if (nb < F->nbytes[j])
            return rc_errf(err, errlen, "%s: storage %.64s: %lld bytes, a tensor needs %lld", what, key->s, (long long)nb, (long long)F->nbytes[j]);
        F->data[j] = malloc(nb ? (size_t)nb : 1);
        if (!F->data[j]) return rc_errf(err, errlen, "%s: out of memory", what);
        memcpy(F->data[j], buf + pos, (size_t)nb);
        pos += (size_t)nb;
    }
    for (size_t j = 0; j < F->n; j++)
        if (!F->data[j]) return rc_errf(err, errlen, "%s: storage %s is used but not in the file", what, F->keys[j]);
    return 0;
}

int rc_torch_open_mem(const uint8_t *buf, size_t len, const char *what, rc_torch_file *F,
                      char *err, size_t errlen)
{
    memset(F, 0, sizeof *F);
    snprintf(F->path, sizeof F->path, "%s", what);
    rc_sha256_hex(buf, len, F->sha256);
    if (len >= 4 && !memcmp(buf, "PK\x03\x04", 4)) {
        F->format = "zip";
        return open_zip(F, buf, len, what, err, errlen);
    }
    if (len >= 2 && buf[0] == 0x80 && buf[1] <= 5) {
        F->format = "legacy";
        return open_legacy(F, buf, len, what, err, errlen);
    }
    if (len >= 262 && !memcmp(buf + 257, "ustar", 5))
        return rc_errf(err, errlen, "%s: a tar archive (torch.save of PyTorch < 0.4): not read; load it "
                       "with that PyTorch and save it again", what);
    return rc_errf(err, errlen, "%s: not a PyTorch checkpoint (neither a torch.save zip archive nor a "
                   "legacy pickle stream)", what);
}

int rc_torch_open(const char *path, rc_torch_file *F, char *err, size_t errlen)
{
    memset(F, 0, sizeof *F);
    FILE *f = fopen(path, "rb");
    if (!f) return rc_errf(err, errlen, "%s: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;
    for (;;) {
        if (len == cap) {
            if (cap >= RC_TORCH_MAX_BYTES) { rc_errf(err, errlen, "%s: larger than %zu bytes", path, RC_TORCH_MAX_BYTES); goto out; }
            size_t nc = cap ? 2 * cap : 1 << 16;
            uint8_t *p = realloc(buf, nc);
            if (!p) { rc_errf(err, errlen, "%s: out of memory", path); goto out; }
            buf = p; cap = nc;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) {
            if (ferror(f)) { rc_errf(err, errlen, "%s: read: %s", path, strerror(errno)); goto out; }
            break;
        }
    }
    rc = rc_torch_open_mem(buf, len, path, F, err, errlen);
out:
    fclose(f);
    free(buf);
    return rc;
}

void rc_torch_close(rc_torch_file *F)
{
    for (size_t i = 0; i < F->n; i++) free(F->data[i]);
    free(F->data);
    free(F->keys);
    free(F->nbytes);
    rc_pk_arena_free(&F->A);
    memset(F, 0, sizeof *F);
}

static float half_to_float(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v = e == 0 ? ldexpf((float)m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexpf((float)(m | 1024), e - 25);
    return s ? -v : v;
}

int rc_torch_tensor_f32(const rc_torch_file *F, const rc_pk *t, const char *name, float **out,
                        char *err, size_t errlen)
{
    *out = NULL;
    if (!t || t->kind != RC_PK_TENSOR) return rc_errf(err, errlen, "%s: %s: not a tensor", F->path, name);
    if (t->dtype != RC_DT_F32 && t->dtype != RC_DT_F64 && t->dtype != RC_DT_F16 && t->dtype != RC_DT_BF16)
        return rc_errf(err, errlen, "%s: %s: a %s tensor where a floating one is expected", F->path, name, rc_dtype_name(t->dtype));
    size_t j = 0;
    while (j < F->n && strcmp(F->keys[j], t->storage->s)) j++;
    if (j == F->n) return rc_errf(err, errlen, "%s: %s: storage %s not loaded", F->path, name, t->storage->s);
    const uint8_t *base = F->data[j];
    const int es = rc_dtype_size(t->dtype);
    const int64_t avail = F->nbytes[j] / es;
    float *o = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *o);
    if (!o) return rc_errf(err, errlen, "%s: %s: out of memory", F->path, name);
    int64_t idx[RC_PK_MAX_DIMS] = {0};
    for (int64_t k = 0; k < t->numel; k++) {
        int64_t e = t->offset;
        for (int d = 0; d < t->ndim; d++) e += idx[d] * t->stride[d];
        if (e < 0 || e >= avail) {   /* rebuild_tensor checked this against the persistent id */
            free(o);
            return rc_errf(err, errlen, "%s: %s: element outside its storage", F->path, name);
        }
        const uint8_t *p = base + e * es;
        switch (t->dtype) {
        case RC_DT_F32: memcpy(&o[k], p, 4); break;
        case RC_DT_F64: { double v; memcpy(&v, p, 8); o[k] = (float)v; break; }
        case RC_DT_F16: o[k] = half_to_float((uint16_t)(p[0] | p[1] << 8)); break;
        default: { uint32_t w = (uint32_t)(p[0] | p[1] << 8) << 16; memcpy(&o[k], &w, 4); break; }
        }
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->size[d]) break;
            idx[d] = 0;
        }
    }
    *out = o;
    return 0;
}
