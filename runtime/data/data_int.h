/* data_int.h — internals shared by data_src.c (layouts, validation, reading by hyperslab) and
 * data.c (statistics, split plan, iterators, test set). Not a public interface.
 *
 * A split (train or test) is a stream of frames made of segments: one for the Baccus layout,
 * one per stimulus for openretina. Stream frame t of segment s is local frame t - s.t0. Labels
 * come from each segment's rate dataset (file_cells, T). Reads apply the crop and reject
 * non-finite values; they never normalize (data.c does).
 */
#ifndef RC_DATA_INT_H
#define RC_DATA_INT_H

#include <hdf5.h>
#include "data.h"

enum { RC_TRAIN = 0, RC_TEST = 1 };
enum { RC_WIN_NONE = 0, RC_WIN_TRAIN = 1, RC_WIN_VAL = 2 };

typedef struct {
    char name[512];       /* dataset key or .npy path (messages) */
    int is_npy;
    hid_t dset;           /* h5 frames */
    int rank;             /* 3: (T,H,W); 4: (1,T,H,W) */
    int npy_fd;
    int64_t npy_off;      /* byte offset of element 0 */
    int npy_kind;         /* 'u' uint8, 'f' float32, 'd' float64 */
    int64_t t0, T;        /* place in the split stream */
    hid_t rate;           /* (file_cells, T) */
    char rate_name[160];
} rc_seg;

typedef struct {
    int n;
    rc_seg *seg;
    int64_t T;
} rc_split_src;

/* One pass over a split's frames (rc__frame_pass): moments accumulated frame by frame in stream
 * order (Chan's update in double), the pixel range, and the first non-finite value (which does
 * not fail the pass). */
typedef struct {
    double n, mean, m2;       /* pixels, mean, sum of squared deviations */
    double min, max;          /* over finite pixels */
    int bad;                  /* a NaN/Inf was found: the moments stop there */
    int64_t bad_frame;        /* its stream frame */
    int64_t bad_pixel;        /* its pixel within the (cropped) frame */
} rc_frame_scan;

struct rc_data {
    char *path;
    hid_t file;
    rc_data_info info;
    rc_split_src sp[2];
    int *sel;                 /* (n_cells) file cell index of each selected cell */
    int *centers;             /* (n_cells, 2) relative to the crop, or NULL */
    /* test extras */
    int rep_kind;             /* 0 none, 1 one (repeats,cells,T) dataset, 2 cellNN datasets */
    char rep_key[160];
    char **rep_cell_keys;     /* (file_cells) for rep_kind 2, in cell order */
    char truth_key[160];
    /* statistics */
    int have_stats;
    double mean, std;
    int labels_checked;       /* rc_data_open read every label (NaN/Inf rejected) */
    int have_scan;            /* scan: the training frame pass, done at most once per open */
    rc_frame_scan scan;
    /* split plan over windows of the training stream */
    int64_t N;                /* windows: train stream T - history */
    uint8_t *wsplit;          /* (N) RC_WIN_* */
    int64_t chunk_win;        /* windows per chunk */
    int64_t *chunk_cnt[2];    /* (n_chunks) train / val windows per chunk */
    size_t bytes_per_frame;   /* of a chunk, frame_extra included */
    size_t frame_extra;       /* bytes the consumer keeps per chunk frame (rc_data_set_frame_extra) */
    int64_t chunk_frames_max; /* frames the budget holds */
    int resident;             /* the whole training stream fits the budget */
    float *res_frames;        /* (T_train, h, w) normalized, when loaded */
    uint64_t res_gen;         /* content generation of res_frames (rc_batch.gen) */
    float *res_labels;        /* (T_train, cells) */
    int iter_live;
};

/* data_src.c */
hid_t rc__open_file(const char *path, char *err, size_t errlen);   /* read-only, checked */
int rc__probe(const char *path, hid_t file, const rc_data_opts *o, rc_data_probe *p, char *err,
              size_t errlen);
int rc__open_sources(rc_data *d, const rc_data_opts *o, const rc_data_probe *p, char *err,
                     size_t errlen);
void rc__close_sources(rc_data *d);
/* Frames [t0,t1) of a split stream, cropped, raw values: out (t1-t0, h, w). */
int rc__read_frames(rc_data *d, int split, int64_t t0, int64_t t1, float *out, char *err,
                    size_t errlen);
/* The same without the NaN/Inf check (rc_data_check and the frame pass report those). */
int rc__read_frames_raw(rc_data *d, int split, int64_t t0, int64_t t1, float *out, char *err,
                        size_t errlen);
/* Segment of stream frame t (and its frame within the segment), or -1. */
int rc__frame_seg(const rc_data *d, int split, int64_t t, int64_t *local);
/* Labels of stream frames [t0,t1) for the selected cells: out (t1-t0, cells). */
int rc__read_labels(rc_data *d, int split, int64_t t0, int64_t t1, float *out, char *err,
                    size_t errlen);
void rc__crop_origin(int H, int W, int crop, int row, int col, int *r0, int *c0);

/* data.c: the training frame pass (d->scan, once per open; resident recordings keep their frames
 * from it, so the first epoch does not read them again; sets the statistics when unset and the
 * frames are finite); and a pass over any split's frames into *s with bounded memory. */
int rc__train_frame_pass(rc_data *d, char *err, size_t errlen);
int rc__frame_pass(rc_data *d, int split, rc_frame_scan *s, char *err, size_t errlen);

#endif
