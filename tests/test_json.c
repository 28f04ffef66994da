/* test_json.c — the JSON printer (common/json.c): escaping, number formatting, nesting and
 * layout, and misuse detection. Output goes to an in-memory stream. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

typedef struct {
    char *buf;
    size_t len;
    FILE *f;
    rc_json j;
} sink;

static void open_sink(sink *s, int pretty)
{
    s->buf = NULL;
    s->len = 0;
    s->f = open_memstream(&s->buf, &s->len);
    cr_assert_not_null(s->f);
    rc_json_init(&s->j, s->f, pretty);
}

static int close_sink(sink *s)
{
    int rc = rc_json_finish(&s->j);
    fclose(s->f);
    return rc;
}

Test(json, compact_document)
{
    sink s;
    open_sink(&s, 0);
    rc_json_begin_object(&s.j);
    rc_json_key(&s.j, "a"); rc_json_int(&s.j, -3);
    rc_json_key(&s.j, "b"); rc_json_begin_array(&s.j);
    rc_json_number(&s.j, 0.1); rc_json_bool(&s.j, 1); rc_json_null(&s.j); rc_json_string(&s.j, "x");
    rc_json_begin_object(&s.j); rc_json_end_object(&s.j);
    rc_json_begin_array(&s.j); rc_json_end_array(&s.j);
    rc_json_end_array(&s.j);
    rc_json_key(&s.j, "c"); rc_json_number(&s.j, NAN);
    rc_json_key(&s.j, "d"); rc_json_int(&s.j, 9007199254740993LL);
    rc_json_end_object(&s.j);
    cr_assert_eq(close_sink(&s), 0);
    cr_assert_str_eq(s.buf, "{\"a\":-3,\"b\":[0.1,true,null,\"x\",{},[]],\"c\":null,\"d\":9007199254740993}\n");
    free(s.buf);
}

Test(json, pretty_layout_keeps_scalar_arrays_inline)
{
    sink s;
    open_sink(&s, 1);
    rc_json_begin_object(&s.j);
    rc_json_key(&s.j, "shape");
    rc_json_begin_array(&s.j); rc_json_int(&s.j, 8); rc_json_int(&s.j, 36); rc_json_int(&s.j, 36); rc_json_end_array(&s.j);
    rc_json_key(&s.j, "layers");
    rc_json_begin_array(&s.j);
    rc_json_begin_object(&s.j); rc_json_key(&s.j, "k"); rc_json_string(&s.j, "conv"); rc_json_end_object(&s.j);
    rc_json_end_array(&s.j);
    rc_json_end_object(&s.j);
    cr_assert_eq(close_sink(&s), 0);
    cr_assert_str_eq(s.buf, "{\n  \"shape\": [8, 36, 36],\n  \"layers\": [\n    {\n      \"k\": \"conv\"\n    }\n  ]\n}\n");
    free(s.buf);
}

Test(json, string_escaping)
{
    sink s;
    open_sink(&s, 0);
    rc_json_string(&s.j, "q\"b\\s/\n\r\t\b\f\x01\x7f" "\xc3\xa9");
    cr_assert_eq(close_sink(&s), 0);
    cr_assert_str_eq(s.buf, "\"q\\\"b\\\\s/\\n\\r\\t\\b\\f\\u0001\\u007f\xc3\xa9\"\n");
    free(s.buf);
}

Test(json, numbers_round_trip_shortest)
{
    static const double v[] = {0.1, 1e-3, 5e-3, 1.0 / 3.0, 197290240.0, -2.5e-300, 1e300, 0};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        sink s;
        open_sink(&s, 0);
        rc_json_number(&s.j, v[i]);
        cr_assert_eq(close_sink(&s), 0);
        cr_assert_eq(strtod(s.buf, NULL), v[i], "%s", s.buf);
        cr_assert_leq(strlen(s.buf), 25);
        free(s.buf);
    }
    sink s;
    open_sink(&s, 0);
    rc_json_number(&s.j, 0.005);
    cr_assert_eq(close_sink(&s), 0);
    cr_assert_str_eq(s.buf, "0.005\n");
    free(s.buf);
}

Test(json, misuse_is_reported)
{
    sink s;
    /* value without key inside an object */
    open_sink(&s, 0);
    rc_json_begin_object(&s.j); rc_json_int(&s.j, 1); rc_json_end_object(&s.j);
    cr_assert_neq(close_sink(&s), 0);
    free(s.buf);
    /* unbalanced */
    open_sink(&s, 0);
    rc_json_begin_array(&s.j);
    cr_assert_neq(close_sink(&s), 0);
    free(s.buf);
    /* wrong closer */
    open_sink(&s, 0);
    rc_json_begin_array(&s.j); rc_json_end_object(&s.j);
    cr_assert_neq(close_sink(&s), 0);
    free(s.buf);
    /* key in an array, key without value, two top-level values, empty document */
    open_sink(&s, 0);
    rc_json_begin_array(&s.j); rc_json_key(&s.j, "k"); rc_json_end_array(&s.j);
    cr_assert_neq(close_sink(&s), 0);
    free(s.buf);
    open_sink(&s, 0);
    rc_json_begin_object(&s.j); rc_json_key(&s.j, "k"); rc_json_end_object(&s.j);
    cr_assert_neq(close_sink(&s), 0);
    free(s.buf);
    open_sink(&s, 0);
    rc_json_int(&s.j, 1); rc_json_int(&s.j, 2);
    cr_assert_neq(close_sink(&s), 0);
    free(s.buf);
    open_sink(&s, 0);
    cr_assert_neq(close_sink(&s), 0);
    free(s.buf);
    /* too deep */
    open_sink(&s, 0);
    for (int i = 0; i < RC_JSON_MAX_DEPTH + 2; i++) rc_json_begin_array(&s.j);
    for (int i = 0; i < RC_JSON_MAX_DEPTH + 2; i++) rc_json_end_array(&s.j);
    cr_assert_neq(close_sink(&s), 0);
    free(s.buf);
}
