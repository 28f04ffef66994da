/* json.c — streaming JSON printer (see json.h). Keeps one comma counter per nesting level;
 * a value written directly after a key takes no comma; broken[] records whether a level
 * was split over lines (then its closing bracket goes on its own line). */
#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void rc_json_init(rc_json *j, FILE *f, int pretty)
{
    memset(j, 0, sizeof *j);
    j->f = f;
    j->pretty = pretty;
}

static void put(rc_json *j, const char *s)
{
    if (fputs(s, j->f) == EOF) j->err = 1;
}

static void newline_indent(rc_json *j)
{
    if (!j->pretty) return;
    put(j, "\n");
    for (int i = 0; i < j->depth; i++) put(j, "  ");
}

/* Called before every value (scalar or container start): commas, indentation, checks.
 * Pretty arrays keep scalars on one line ([8, 36, 36]) and put containers on their own lines. */
static void before_value(rc_json *j, int container)
{
    if (j->after_key) { j->after_key = 0; return; }
    if (j->depth == 0) {
        if (j->count[0]++ > 0) j->err = 1;     /* only one top-level value */
        return;
    }
    if (j->kind[j->depth - 1] == '{') { j->err = 1; return; }   /* object needs a key first */
    int first = j->count[j->depth]++ == 0;
    if (!first) put(j, ",");
    if (container) {
        newline_indent(j);
        j->broken[j->depth] = 1;
    } else if (!first && j->pretty) {
        put(j, " ");
    }
}

static void begin(rc_json *j, char kind)
{
    before_value(j, 1);
    if (j->depth >= RC_JSON_MAX_DEPTH - 1) { j->err = 1; return; }
    put(j, kind == '{' ? "{" : "[");
    j->kind[j->depth] = kind;
    j->depth++;
    j->count[j->depth] = 0;
    j->broken[j->depth] = 0;
}

static void end(rc_json *j, char kind)
{
    if (j->depth == 0 || j->kind[j->depth - 1] != kind || j->after_key) { j->err = 1; return; }
    int had = j->broken[j->depth];
    j->depth--;
    if (had) newline_indent(j);
    put(j, kind == '{' ? "}" : "]");
}

void rc_json_begin_object(rc_json *j) { begin(j, '{'); }
void rc_json_end_object(rc_json *j) { end(j, '{'); }
void rc_json_begin_array(rc_json *j) { begin(j, '['); }
void rc_json_end_array(rc_json *j) { end(j, '['); }

int rc_json_write_string(FILE *f, const char *s)
{
    if (fputc('"', f) == EOF) return -1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int r;
        switch (*p) {
        case '"':  r = fputs("\\\"", f); break;
        case '\\': r = fputs("\\\\", f); break;
        case '\n': r = fputs("\\n", f); break;
        case '\r': r = fputs("\\r", f); break;
        case '\t': r = fputs("\\t", f); break;
        case '\b': r = fputs("\\b", f); break;
        case '\f': r = fputs("\\f", f); break;
        default:
            if (*p < 0x20 || *p == 0x7f) r = fprintf(f, "\\u%04x", *p) < 0 ? EOF : 0;
            else r = fputc(*p, f);
        }
        if (r == EOF) return -1;
    }
    return fputc('"', f) == EOF ? -1 : 0;
}

void rc_json_key(rc_json *j, const char *key)
{
    if (j->depth == 0 || j->kind[j->depth - 1] != '{' || j->after_key || !key) {
        j->err = 1;
        return;
    }
    if (j->count[j->depth]++ > 0) put(j, ",");
    newline_indent(j);
    j->broken[j->depth] = 1;
    if (rc_json_write_string(j->f, key) != 0) j->err = 1;
    put(j, j->pretty ? ": " : ":");
    j->after_key = 1;
}

void rc_json_string(rc_json *j, const char *s)
{
    if (!s) { rc_json_null(j); return; }
    before_value(j, 0);
    if (rc_json_write_string(j->f, s) != 0) j->err = 1;
}

void rc_json_number(rc_json *j, double v)
{
    if (!isfinite(v)) { rc_json_null(j); return; }
    before_value(j, 0);
    char buf[40];
    /* shortest precision that reads back exactly */
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    put(j, buf);
}

void rc_json_int(rc_json *j, int64_t v)
{
    before_value(j, 0);
    if (fprintf(j->f, "%lld", (long long)v) < 0) j->err = 1;
}

void rc_json_bool(rc_json *j, int v)
{
    before_value(j, 0);
    put(j, v ? "true" : "false");
}

void rc_json_null(rc_json *j)
{
    before_value(j, 0);
    put(j, "null");
}

int rc_json_finish(rc_json *j)
{
    if (j->depth != 0 || j->after_key || j->count[0] != 1) j->err = 1;
    put(j, "\n");
    if (fflush(j->f) == EOF) j->err = 1;
    return j->err ? -1 : 0;
}
