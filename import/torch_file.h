/* torch_file.h — read a file written by torch.save into inert values and float tensors.
 *
 * Formats (detected from the first bytes, never from the file name):
 *   zip     torch >= 1.6 default: ARCHIVE/data.pkl (the object, protocol 2 pickle whose
 *           persistent ids name storages), ARCHIVE/data/<key> (raw little-endian storage bytes),
 *           ARCHIVE/byteorder ("little"; absent in older files). Read with libzip from memory.
 *   legacy  torch < 1.6, or _use_new_zipfile_serialization=False: a stream of pickles — the magic
 *           number 0x1950a86a20f9469cfc6c, the protocol version 1001, sys_info (little_endian must
 *           be True), the object, the list of storage keys — then each storage in that order as
 *           an int64 element count followed by its bytes.
 *   The tar format of torch < 0.4 and anything else are refused by name.
 * The object is unpickled by pickle.h (nothing executed). Every storage a tensor uses must exist
 * with at least the size its persistent id states; tensors are copied out as float32
 * (rc_torch_tensor_f32), with their strides and offset checked against the storage.
 * Limits: files up to RC_TORCH_MAX_BYTES. Errors: -1 with "FILE: what" in err.
 */
#ifndef RC_TORCH_FILE_H
#define RC_TORCH_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "pickle.h"

#define RC_TORCH_MAX_BYTES ((size_t)2 << 30)

typedef struct {
    char path[1024];
    const char *format;        /* "zip" or "legacy" */
    char sha256[65];           /* of the whole file */
    rc_pk_arena A;
    rc_pk *root;               /* the object torch.save was given */
    /* storage data by key, parallel to the distinct keys of A.storages */
    char **keys;
    uint8_t **data;
    int64_t *nbytes;
    size_t n;
} rc_torch_file;

/* Read path completely (storages included). F is overwritten; rc_torch_close frees it even
 * after a failure. */
int rc_torch_open(const char *path, rc_torch_file *F, char *err, size_t errlen);
void rc_torch_close(rc_torch_file *F);

/* Open from memory (the fuzz harness; what names it in messages). */
int rc_torch_open_mem(const uint8_t *buf, size_t len, const char *what, rc_torch_file *F,
                      char *err, size_t errlen);

/* Copy tensor t (RC_PK_TENSOR of a floating dtype) into a new contiguous float32 array of
 * t->numel elements (row-major in t's sizes). name is used in messages. */
int rc_torch_tensor_f32(const rc_torch_file *F, const rc_pk *t, const char *name, float **out,
                        char *err, size_t errlen);

#endif
