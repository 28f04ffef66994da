/* json.h — a small streaming JSON printer for --json output of the retinac commands.
 *
 * Usage: rc_json j; rc_json_init(&j, stdout, 1); rc_json_begin_object(&j);
 *        rc_json_key(&j, "params"); rc_json_int(&j, 128000); ... rc_json_end_object(&j);
 *        if (rc_json_finish(&j) != 0) -> error (unbalanced nesting or a write error).
 * Invariants: commas and (when pretty) newlines/indentation are inserted by the printer
 * (pretty arrays of scalars stay on one line: [8, 36, 36]);
 * strings are escaped per RFC 8259 (control characters as \u00XX, bytes >= 0x80 passed
 * through, so UTF-8 stays UTF-8); non-finite numbers print as null (JSON has no NaN/inf);
 * doubles print in the shortest "%.Ng" form that reads back to the same value.
 * Misuse (a value where a key is expected, too deep nesting) sets an error flag that
 * rc_json_finish reports; the printer never aborts. No Lua, no allocation.
 */
#ifndef RC_JSON_H
#define RC_JSON_H

#include <stdint.h>
#include <stdio.h>

#define RC_JSON_MAX_DEPTH 32

typedef struct {
    FILE *f;
    int pretty;                      /* 1: newline + two-space indent per level */
    int depth;
    int count[RC_JSON_MAX_DEPTH];    /* items written at each level (for commas) */
    char kind[RC_JSON_MAX_DEPTH];    /* '{' or '[' */
    char broken[RC_JSON_MAX_DEPTH];  /* level was split over lines (pretty) */
    int after_key;                   /* a key was written; its value comes next */
    int err;                         /* misuse or write error seen */
} rc_json;

void rc_json_init(rc_json *j, FILE *f, int pretty);
void rc_json_begin_object(rc_json *j);
void rc_json_end_object(rc_json *j);
void rc_json_begin_array(rc_json *j);
void rc_json_end_array(rc_json *j);
void rc_json_key(rc_json *j, const char *key);
void rc_json_string(rc_json *j, const char *s);     /* NULL prints null */
void rc_json_number(rc_json *j, double v);
void rc_json_int(rc_json *j, int64_t v);
void rc_json_bool(rc_json *j, int v);
void rc_json_null(rc_json *j);
/* Write an escaped JSON string literal (with quotes) to f; returns 0 or -1 on write error. */
int rc_json_write_string(FILE *f, const char *s);
/* Ends the document (a trailing newline); 0 if it was well formed and written, else -1. */
int rc_json_finish(rc_json *j);

#endif
