#define _GNU_SOURCE
/* test_jsonl.c: the one JSONL reader (sa_jsonl_parse: lines, blank lines, a JSON array,
 * text after an object, invalid UTF-8, \u0000, empty inputs, line numbers in messages) and
 * the pipeline trace's writer and reader (round trip, the exact bytes, field checks). */
#include "sa/jsonl.h"
#include "sa/pipeline_trace.h"

#include "harness.h"

#include <cJSON.h>
#include <stdlib.h>

struct seen {
    size_t n;
    size_t lines[16];
    char names[16][32];
};

static enum sa_status collect(void *user, const struct sa_jsonl_item *it) {
    struct seen *s = user;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(it->object, "q");
    if (s->n < 16) {
        s->lines[s->n] = it->line;
        snprintf(s->names[s->n], sizeof s->names[s->n], "%s", cJSON_IsString(q) ? q->valuestring : "?");
    }
    if (it->index != s->n) return sa_error(SA_STATUS_ERROR, "index %zu, expected %zu", it->index, s->n);
    s->n++;
    return SA_STATUS_OK;
}

static enum sa_status stop_at_second(void *user, const struct sa_jsonl_item *it) {
    (void)user;
    return it->index == 1 ? sa_error(SA_STATUS_NOT_FOUND, "%s: stopped", it->where) : SA_STATUS_OK;
}

static void test_lines(void) {
    struct seen s = {0};
    size_t n = 99;
    const char *t = "\xEF\xBB\xBF{\"q\": \"a\"}\n\n  \t\r\n {\"q\": \"b\\u00e9\"} \r\n{\"q\": \"c\"}";
    CHECK_OK(sa_jsonl_parse(t, strlen(t), "x.jsonl", 0, collect, &s, &n));
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(s.n, 3);
    CHECK_EQ_INT(s.lines[0], 1);
    CHECK_EQ_INT(s.lines[1], 4);
    CHECK_EQ_INT(s.lines[2], 5);
    CHECK_EQ_STR(s.names[1], "b\xC3\xA9");
    /* the text need not be NUL-terminated: len bounds it */
    memset(&s, 0, sizeof s);
    CHECK_OK(sa_jsonl_parse("{\"q\": \"a\"}\n{\"q\": \"b\"}garbage", 21, "x", 0, collect, &s, NULL));
    CHECK_EQ_INT(s.n, 2);
    /* empty inputs: fine unless SA_JSONL_NOT_EMPTY */
    memset(&s, 0, sizeof s);
    CHECK_OK(sa_jsonl_parse("", 0, "e", 0, collect, &s, &n));
    CHECK_OK(sa_jsonl_parse(" \n\r\n\n", 5, "e", 0, collect, &s, &n));
    CHECK_EQ_INT(n, 0);
    CHECK(sa_jsonl_parse("", 0, "empty.jsonl", SA_JSONL_NOT_EMPTY, collect, &s, &n) == SA_STATUS_BAD_JSON);
    CHECK(strstr(sa_last_error(), "empty.jsonl: no JSON objects") != NULL);
    CHECK(sa_jsonl_parse("\n \n", 3, "e", SA_JSONL_NOT_EMPTY, collect, &s, NULL) == SA_STATUS_BAD_JSON);
    CHECK(sa_jsonl_parse("[]", 2, "e", SA_JSONL_ARRAY | SA_JSONL_NOT_EMPTY, collect, &s, NULL) == SA_STATUS_BAD_JSON);
    CHECK_EQ_INT(s.n, 0);
    /* the callback's status stops the read and comes back as it is */
    CHECK(sa_jsonl_parse("{}\n{}\n{}", 8, "x.jsonl", 0, stop_at_second, NULL, &n) == SA_STATUS_NOT_FOUND);
    CHECK_EQ_STR(sa_last_error(), "x.jsonl:2: stopped");
    CHECK(sa_jsonl_parse(NULL, 3, "x", 0, collect, &s, NULL) == SA_STATUS_BAD_ARGUMENT);
    CHECK(sa_jsonl_parse("{}", 2, "x", 0, NULL, NULL, NULL) == SA_STATUS_BAD_ARGUMENT);
}

static void test_array(void) {
    struct seen s = {0};
    size_t n = 0;
    const char *t = "\n [{\"q\": \"a\"},\n {\"q\": \"b\"}]\n";
    CHECK_OK(sa_jsonl_parse(t, strlen(t), "a.json", SA_JSONL_ARRAY, collect, &s, &n));
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_STR(s.names[1], "b");
    CHECK_EQ_INT(s.lines[0], 0);
    /* without SA_JSONL_ARRAY an array is one line that is not an object */
    const char *one = "\n[{\"q\": \"a\"}, {\"q\": \"b\"}]\n";
    memset(&s, 0, sizeof s);
    CHECK_OK(sa_jsonl_parse(one, strlen(one), "a.json", SA_JSONL_ARRAY, collect, &s, &n));
    CHECK_EQ_INT(n, 2);
    CHECK(sa_jsonl_parse(one, strlen(one), "a.json", 0, collect, &s, NULL) == SA_STATUS_BAD_JSON);
    CHECK(strstr(sa_last_error(), "a.json:2: expected a JSON object, got an array") != NULL);
    memset(&s, 0, sizeof s);
    CHECK(sa_jsonl_parse("[{}, 3]", 7, "a.json", SA_JSONL_ARRAY, collect, &s, NULL) == SA_STATUS_BAD_JSON);
    CHECK(strstr(sa_last_error(), "a.json: element 1: expected a JSON object, got a number") != NULL);
    CHECK(sa_jsonl_parse("[{}]\n{}", 7, "a.json", SA_JSONL_ARRAY, collect, &s, NULL) == SA_STATUS_BAD_JSON);
    CHECK(strstr(sa_last_error(), "a.json:2:1: text after the JSON array") != NULL);
    CHECK(sa_jsonl_parse("[{},\n{]", 7, "a.json", SA_JSONL_ARRAY, collect, &s, NULL) == SA_STATUS_BAD_JSON);
    CHECK(strstr(sa_last_error(), "a.json:2:") && strstr(sa_last_error(), "malformed JSON"));
    const char *nul = "[{\"q\": \"a\"},\n {\"q\": \"b\\u0000c\"}]";
    CHECK(sa_jsonl_parse(nul, strlen(nul), "a.json", SA_JSONL_ARRAY, collect, &s, NULL) == SA_STATUS_BAD_JSON);
    CHECK(strstr(sa_last_error(), "a.json:2:") && strstr(sa_last_error(), "\\u0000"));
}

static void test_rejected(void) {
    static const struct {
        const char *text, *want;
    } bad[] = {
        /* one rule everywhere: text after the object on its line is an error */
        {"{\"q\": \"a\"}\n{\"q\": \"b\"} {\"q\": \"c\"}", "x.jsonl:2: text after the JSON object"},
        {"{\"q\": \"a\"} x", "x.jsonl:1: text after the JSON object"},
        {"{\"q\": \"a\"}\n\n{\"q\": ", "x.jsonl:3: malformed JSON near column"},
        {"{not json", "x.jsonl:1: malformed JSON"},
        {"\n42", "x.jsonl:2: expected a JSON object, got a number"},
        {"\"s\"", "x.jsonl:1: expected a JSON object, got a string"},
        /* invalid UTF-8, named by its (top-level) field */
        {"{\"q\": \"\xff\"}", "x.jsonl:1: field \"q\" is not valid UTF-8"},
        {"{\"q\": \"ok\"}\n{\"q\": \"ok\", \"deep\": {\"x\": [\"\xc3\"]}}", "x.jsonl:2: field \"deep\" is not valid UTF-8"},
        {"{\"\xfe\": 1}", "x.jsonl:1: a field name is not valid UTF-8"},
        /* \u0000 would cut the C string: rejected, naming the line */
        {"{\"q\": \"a\"}\n{\"q\": \"before\\u0000after\"}", "x.jsonl:2: a string holds \\u0000"},
        {"{\"k\\u0000\": 1}", "x.jsonl:1: a string holds \\u0000"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct seen s = {0};
        enum sa_status st = sa_jsonl_parse(bad[i].text, strlen(bad[i].text), "x.jsonl", SA_JSONL_ARRAY, collect, &s, NULL);
        CHECK_MSG(st == SA_STATUS_BAD_JSON, "bad %zu accepted (status %d)", i, (int)st);
        CHECK_MSG(strstr(sa_last_error(), bad[i].want) != NULL, "bad %zu: \"%s\" lacks \"%s\"", i, sa_last_error(),
                  bad[i].want);
    }
    /* an escaped backslash before "u0000" is no NUL; \u0001 is fine */
    struct seen s = {0};
    const char *ok = "{\"q\": \"a\\\\u0000b\\u0001\"}";
    CHECK_OK(sa_jsonl_parse(ok, strlen(ok), "x", 0, collect, &s, NULL));
    CHECK_EQ_STR(s.names[0], "a\\u0000b\x01");
}

static void test_load(void) {
    char path[4096];
    snprintf(path, sizeof path, "%s/in.jsonl", harness_tmpdir());
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("{\"q\": \"a\"}\n\n{\"q\": 1} junk\n", f);
    fclose(f);
    struct seen s = {0};
    CHECK(sa_jsonl_load(path, 0, collect, &s, NULL) == SA_STATUS_BAD_JSON);
    CHECK(strstr(sa_last_error(), "in.jsonl:3: text after the JSON object") != NULL);
    CHECK(sa_jsonl_load("/nonexistent/in.jsonl", 0, collect, &s, NULL) == SA_STATUS_IO);
}

/* ---- traces ----------------------------------------------------------------------------- */

struct rounds {
    size_t n;
    struct sa_trace_round r[4];
    char *str[4][6]; /* copies of id, id_json, question, answer_so_far, y1, y2 */
};

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static enum sa_status keep_round(void *user, const struct sa_trace_round *r, const char *where) {
    struct rounds *R = user;
    if (R->n >= 4) return sa_error(SA_STATUS_ERROR, "%s: too many", where);
    R->r[R->n] = *r;
    const char *src[6] = {r->id, r->id_json, r->question, r->answer_so_far, r->y1, r->y2};
    for (int k = 0; k < 6; k++) R->str[R->n][k] = dup_or_null(src[k]);
    R->n++;
    return SA_STATUS_OK;
}

static void rounds_free(struct rounds *R) {
    for (size_t i = 0; i < R->n; i++)
        for (int k = 0; k < 6; k++) free(R->str[i][k]);
}

static void test_trace_round_trip(void) {
    struct sa_pipeline_sentence s = {.index = 2,
                                     .aligned = true,
                                     .original = "It is 5.",
                                     .text = " \nIt is 4.",
                                     .len = 10,
                                     .copied = false,
                                     .edit_ratio = 0.125,
                                     .answer = "2 + 2.\nIt is 4.",
                                     .upstream_done = true,
                                     .upstream_tokens = 5,
                                     .upstream_prefill = 12,
                                     .upstream_ms = 10.5,
                                     .aligner_tokens = 6,
                                     .aligner_draft = 4,
                                     .aligner_accepted = 3,
                                     .aligner_prefill = 30,
                                     .aligner_ms = 20.25,
                                     .t_ms = 31};
    struct sa_trace_round w = sa_trace_round_of_sentence(&s, "\"q-7\"", "What is 2 + 2?");
    char *line = NULL;
    size_t len = 0;
    CHECK_OK(sa_trace_round_format(&w, &line, &len));
    /* the exact bytes `salign align --trace` has always written */
    CHECK_EQ_STR(line, "{\"id\":\"q-7\",\"question\":\"What is 2 + 2?\",\"round\":2,\"answer_so_far\":\"2 + 2.\\nIt is 4.\","
                       "\"y1\":\"It is 5.\",\"y2\":\"It is 4.\",\"text\":\" \\nIt is 4.\",\"aligned\":true,\"copied\":false,"
                       "\"edit_ratio\":0.125,\"eos\":true,\"upstream_tokens\":5,\"upstream_prefill\":12,\"upstream_ms\":10.5,"
                       "\"aligner_tokens\":6,\"aligner_draft\":4,\"aligner_accepted\":3,\"aligner_prefill\":30,"
                       "\"aligner_ms\":20.25,\"t_ms\":31}\n");
    CHECK(line && len == strlen(line));
    /* a numeric id, no question (single-question runs have no id) */
    struct sa_trace_round w2 = sa_trace_round_of_sentence(&s, "12", NULL), w3 = sa_trace_round_of_sentence(&s, NULL, "q");
    char *l2 = NULL, *l3 = NULL;
    CHECK_OK(sa_trace_round_format(&w2, &l2, NULL));
    CHECK_OK(sa_trace_round_format(&w3, &l3, NULL));
    CHECK(l2 && !strncmp(l2, "{\"id\":12,\"round\":2,", 19));
    CHECK(l3 && !strncmp(l3, "{\"question\":\"q\",\"round\":2,", 26));
    size_t n_all = strlen(line) + (l2 ? strlen(l2) : 0) + (l3 ? strlen(l3) : 0) + 2;
    char *all = malloc(n_all);
    snprintf(all, n_all, "%s\n%s%s", line, l2 ? l2 : "", l3 ? l3 : "");
    struct rounds R = {0};
    size_t n = 0;
    CHECK_OK(sa_trace_read(all, strlen(all), "t.jsonl", keep_round, &R, &n));
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(R.n, 3);
    if (R.n == 3) {
        const struct sa_trace_round *r = &R.r[0];
        CHECK_EQ_INT(r->has, SA_TRACE_ALL);
        CHECK_EQ_STR(R.str[0][0], "q-7");
        CHECK_EQ_STR(R.str[0][1], "\"q-7\"");
        CHECK_EQ_STR(R.str[0][2], "What is 2 + 2?");
        CHECK_EQ_STR(R.str[0][3], "2 + 2.\nIt is 4.");
        CHECK_EQ_STR(R.str[0][4], "It is 5.");
        CHECK_EQ_STR(R.str[0][5], "It is 4.");
        CHECK(r->round == 2 && r->aligned && !r->copied && r->eos);
        CHECK(r->edit_ratio == 0.125 && r->upstream_ms == 10.5 && r->aligner_ms == 20.25 && r->t_ms == 31);
        CHECK(r->upstream_tokens == 5 && r->upstream_prefill == 12 && r->aligner_tokens == 6);
        CHECK(r->aligner_draft == 4 && r->aligner_accepted == 3 && r->aligner_prefill == 30);
        CHECK_EQ_INT(R.r[1].has, SA_TRACE_ALL & ~SA_TRACE_QUESTION);
        CHECK_EQ_STR(R.str[1][0], "12");
        CHECK_EQ_STR(R.str[1][1], "12");
        CHECK_EQ_INT(R.r[2].has, SA_TRACE_ALL & ~SA_TRACE_ID);
        CHECK(R.str[2][0] == NULL);
        /* what was read writes the same bytes again */
        for (size_t i = 0; i < 3; i++) {
            struct sa_trace_round x = R.r[i];
            x.id_json = R.str[i][1];
            x.question = R.str[i][2];
            x.answer_so_far = R.str[i][3];
            x.y1 = R.str[i][4];
            x.y2 = R.str[i][5];
            x.text = s.text;
            char *again = NULL;
            CHECK_OK(sa_trace_round_format(&x, &again, NULL));
            const char *want = i == 0 ? line : i == 1 ? l2 : l3;
            CHECK_EQ_STR(again, want);
            free(again);
        }
    }
    rounds_free(&R);
    free(all);
    free(line);
    free(l2);
    free(l3);
    /* the writer's own checks */
    struct sa_trace_round bad = {.has = SA_TRACE_ID, .id_json = "{nope"};
    CHECK(sa_trace_round_format(&bad, &line, NULL) == SA_STATUS_BAD_ARGUMENT && line == NULL);
    bad = (struct sa_trace_round){.has = SA_TRACE_Y1};
    CHECK(sa_trace_round_format(&bad, &line, NULL) == SA_STATUS_BAD_ARGUMENT && line == NULL);
}

static void test_trace_reader_checks(void) {
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"{\"round\": -1}", "t.jsonl:1: field \"round\" must be an integer >= 0"},
        {"\n{\"round\": 1.5}", "t.jsonl:2: field \"round\""},
        {"{\"id\": [1]}", "t.jsonl:1: field \"id\" must be a string or an integer >= 0"},
        {"{\"id\": -3}", "t.jsonl:1: field \"id\""},
        {"{\"answer_so_far\": 3}", "t.jsonl:1: field \"answer_so_far\" must be a string"},
        {"{\"aligned\": 1}", "t.jsonl:1: field \"aligned\" must be true or false"},
        {"{\"edit_ratio\": 7}", "t.jsonl:1: field \"edit_ratio\" must be a number in [0, 1]"},
        {"{\"upstream_ms\": -1}", "t.jsonl:1: field \"upstream_ms\" must be a number >= 0"},
        {"{\"aligner_ms\": \"x\"}", "t.jsonl:1: field \"aligner_ms\""},
        {"{\"round\": 1} {\"round\": 2}", "t.jsonl:1: text after the JSON object"},
        {"[{\"round\": 1}]", "t.jsonl:1: expected a JSON object, got an array"},
        {"{\"round\": 1, \"answer_so_far\": \"a\\u0000b\"}", "t.jsonl:1: a string holds \\u0000"},
        {"{\"refused\": true, \"refused_by\": \"sum\"}",
         "t.jsonl:1: field \"refused_by\" must name an edit check (arith, format, cut, judge)"},
        {"{\"refused_by\": \"none\"}", "t.jsonl:1: field \"refused_by\" must name an edit check"},
        {"{\"refused_by\": \"arith,format\"}", "t.jsonl:1: field \"refused_by\""},
        {"{\"refused_by\": 1}", "t.jsonl:1: field \"refused_by\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rounds R = {0};
        enum sa_status st = sa_trace_read(bad[i].text, strlen(bad[i].text), "t.jsonl", keep_round, &R, NULL);
        CHECK_MSG(st == SA_STATUS_BAD_JSON, "bad trace %zu accepted", i);
        CHECK_MSG(strstr(sa_last_error(), bad[i].want) != NULL, "bad trace %zu: \"%s\" lacks \"%s\"", i,
                  sa_last_error(), bad[i].want);
        rounds_free(&R);
    }
    /* null reads as absent; unknown fields are ignored */
    struct rounds R = {0};
    const char *t = "{\"id\": null, \"question\": null, \"round\": 0, \"extra\": [1, {}]}";
    CHECK_OK(sa_trace_read(t, strlen(t), "t.jsonl", keep_round, &R, NULL));
    CHECK(R.n == 1 && R.r[0].has == SA_TRACE_ROUND && R.r[0].round == 0);
    rounds_free(&R);
    /* a refused line of before "refused_by" reads as it did; one with it reads the check's bit */
    R = (struct rounds){0};
    t = "{\"round\": 1, \"refused\": true, \"proposed\": \"x\"}\n"
        "{\"round\": 2, \"refused\": true, \"refused_by\": \"cut\", \"proposed\": \"y\"}";
    CHECK_OK(sa_trace_read(t, strlen(t), "t.jsonl", keep_round, &R, NULL));
    CHECK_EQ_INT(R.n, 2);
    if (R.n == 2) {
        CHECK(R.r[0].has == (SA_TRACE_ROUND | SA_TRACE_REFUSED | SA_TRACE_PROPOSED) && R.r[0].refused);
        CHECK_EQ_INT(R.r[0].refused_by, 0);
        CHECK(R.r[1].has == (SA_TRACE_ROUND | SA_TRACE_REFUSED | SA_TRACE_REFUSED_BY | SA_TRACE_PROPOSED));
        CHECK_EQ_INT(R.r[1].refused_by, SA_PIPELINE_EDIT_CHECK_CUT);
    }
    rounds_free(&R);
}

/* "refused_by": written after "refused" as the check's name, only when the sentence names one;
 * the writer refuses a value that is not one known check. */
static void test_trace_refused_by(void) {
    struct sa_pipeline_sentence s = {.index = 1, .aligned = true, .original = "It is 4.", .text = " It is 4.",
                                     .len = 9, .answer = "It is 4.", .refused = true,
                                     .refused_by = SA_PIPELINE_EDIT_CHECK_FORMAT, .proposed = "It is 4. |"};
    struct sa_trace_round w = sa_trace_round_of_sentence(&s, NULL, NULL);
    char *line = NULL;
    CHECK_OK(sa_trace_round_format(&w, &line, NULL));
    CHECK(line && strstr(line, ",\"t_ms\":0,\"refused\":true,\"refused_by\":\"format\",\"proposed\":\"It is 4. |\"}\n"));
    free(line);
    s.refused_by = 0; /* a caller that does not name the check: the line of before */
    w = sa_trace_round_of_sentence(&s, NULL, NULL);
    CHECK_OK(sa_trace_round_format(&w, &line, NULL));
    CHECK(line && strstr(line, "\"refused\":true,\"proposed\"") && !strstr(line, "refused_by"));
    free(line);
    static const unsigned bad[] = {0, SA_PIPELINE_EDIT_CHECK_ARITH | SA_PIPELINE_EDIT_CHECK_CUT, 1u << 4};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        w.has |= SA_TRACE_REFUSED_BY;
        w.refused_by = bad[i];
        line = NULL;
        CHECK(sa_trace_round_format(&w, &line, NULL) == SA_STATUS_BAD_ARGUMENT && line == NULL);
        CHECK(strstr(sa_last_error(), "refused_by") != NULL);
    }
}

int main(void) {
    RUN(test_lines);
    RUN(test_array);
    RUN(test_rejected);
    RUN(test_load);
    RUN(test_trace_round_trip);
    RUN(test_trace_reader_checks);
    RUN(test_trace_refused_by);
    return harness_summary();
}
