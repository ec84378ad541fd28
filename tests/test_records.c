/* test_records.c: record files (JSONL and JSON arrays, both kinds) round trip; a corpus of
 * broken inputs each gets a clear error naming the line/element and field (and never a
 * crash); the aligner input templates byte for byte; the split by question. */
#include "sa/records.h"

#include "harness.h"

#include <stdlib.h>

static const char *good_jsonl =
    "{\"question\": \"Q1\", \"prefix\": \"\", \"last\": \"Step 1.\", \"correction\": \"Step 1.\", \"eos\": false}\n"
    "\r\n"
    "{\"question\": \"Q1\", \"prefix\": \"Step 1.\", \"last\": \"Step 2 \\u00e9 \\\"q\\\"\", \"correction\": \"Step 2!\","
    " \"solution\": \"S\", \"eos\": true, \"source\": \"gsm8k:1:1:number\", \"extra\": {\"ignored\": [1, 2]}}\n"
    "{\"question\": \"Q2\", \"answer\": \"bad answer\", \"correction\": \"good answer\", \"eos\": null}";

static void check_good(const struct sa_records *r) {
    CHECK_EQ_INT(r->n, 3);
    if (r->n != 3) return;
    const struct sa_record *a = &r->items[0], *b = &r->items[1], *c = &r->items[2];
    CHECK(a->kind == SA_RECORD_SENTENCE);
    CHECK_EQ_STR(a->prefix, "");
    CHECK_EQ_STR(a->last, "Step 1.");
    CHECK(a->eos == 0 && a->solution == NULL && a->source == NULL && a->answer == NULL);
    CHECK_EQ_STR(b->last, "Step 2 \xC3\xA9 \"q\"");
    CHECK_EQ_STR(b->solution, "S");
    CHECK_EQ_STR(b->source, "gsm8k:1:1:number");
    CHECK(b->eos == 1);
    CHECK(c->kind == SA_RECORD_ANSWER);
    CHECK_EQ_STR(c->answer, "bad answer");
    CHECK_EQ_STR(c->correction, "good answer");
    CHECK(c->eos == -1 && c->prefix == NULL && c->last == NULL);
}

static void test_read_write(void) {
    struct sa_records r;
    sa_records_init(&r);
    CHECK_OK(sa_records_parse(good_jsonl, strlen(good_jsonl), "good.jsonl", SA_RECORD_ANY, &r));
    check_good(&r);
    /* JSONL -> text -> records, and as a JSON array */
    for (int f = 0; f < 2; f++) {
        char *s = NULL;
        size_t n = 0;
        CHECK_OK(sa_records_serialize(&r, (enum sa_records_format)f, &s, &n));
        CHECK(s && n == strlen(s));
        if (f == 1) CHECK(s[0] == '[');
        struct sa_records r2;
        sa_records_init(&r2);
        CHECK_OK(sa_records_parse(s, n, "rt", SA_RECORD_ANY, &r2));
        check_good(&r2);
        /* serialising again gives the same bytes */
        char *s2 = NULL;
        CHECK_OK(sa_records_serialize(&r2, (enum sa_records_format)f, &s2, NULL));
        CHECK_EQ_STR(s2, s);
        free(s2);
        free(s);
        sa_records_free(&r2);
    }
    /* the exact JSONL line format */
    char *s = NULL;
    struct sa_records one = {.items = r.items, .n = 1};
    CHECK_OK(sa_records_serialize(&one, SA_RECORDS_JSONL, &s, NULL));
    CHECK_EQ_STR(s, "{\"question\":\"Q1\",\"prefix\":\"\",\"last\":\"Step 1.\",\"correction\":\"Step 1.\",\"eos\":false}\n");
    free(s);
    /* a file, through save and load */
    char path[4096];
    snprintf(path, sizeof path, "%s/records.json", harness_tmpdir());
    CHECK_OK(sa_records_save(path, &r, SA_RECORDS_JSON_ARRAY));
    struct sa_records r3;
    sa_records_init(&r3);
    CHECK_OK(sa_records_load(path, SA_RECORD_ANY, &r3));
    check_good(&r3);
    sa_records_free(&r3);
    /* empty inputs and outputs */
    struct sa_records e;
    sa_records_init(&e);
    CHECK_OK(sa_records_parse("", 0, "e", SA_RECORD_ANY, &e));
    CHECK_OK(sa_records_parse("[]", 2, "e", SA_RECORD_ANY, &e));
    CHECK_OK(sa_records_parse("\xEF\xBB\xBF \n\n", 5, "e", SA_RECORD_ANY, &e));
    CHECK_EQ_INT(e.n, 0);
    CHECK_OK(sa_records_serialize(&e, SA_RECORDS_JSON_ARRAY, &s, NULL));
    CHECK_EQ_STR(s, "[]\n");
    free(s);
    CHECK_OK(sa_records_serialize(&e, SA_RECORDS_JSONL, &s, NULL));
    CHECK_EQ_STR(s, "");
    free(s);
    /* push: deep copy, required fields */
    struct sa_record rec = {.kind = SA_RECORD_SENTENCE, .question = "q", .prefix = "p", .last = "l", .correction = "c", .eos = 5};
    CHECK_OK(sa_records_push(&e, &rec));
    CHECK(e.items[0].question != rec.question && e.items[0].eos == 1);
    rec.last = NULL;
    CHECK(sa_records_push(&e, &rec) == SA_STATUS_BAD_ARGUMENT);
    struct sa_record ans = {.kind = SA_RECORD_ANSWER, .question = "q", .correction = "c"};
    CHECK(sa_records_push(&e, &ans) == SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_INT(e.n, 1);
    sa_records_free(&e);
    sa_records_free(&r);
    sa_records_free(NULL);
}

/* Broken inputs: each must fail with SA_STATUS_BAD_JSON, a message containing `want`, and
 * leave the record set as it was. */
struct bad_case {
    const char *text;
    enum sa_record_kind expect;
    const char *want;
};

#define S1 "{\"question\": \"q\", \"prefix\": \"p\", \"last\": \"l\", \"correction\": \"c\"}"

static const struct bad_case bad_cases[] = {
    {"{\"question\": \"q\", \"prefix\": \"p\", \"last\": \"l\"}", SA_RECORD_ANY, "b.jsonl:1: missing field \"correction\""},
    {S1 "\n{\"question\": \"q\", \"last\": \"l\", \"correction\": \"c\"}", SA_RECORD_ANY, "b.jsonl:2: missing field \"prefix\""},
    {S1 "\n\n{\"prefix\": \"\", \"last\": \"l\", \"correction\": \"c\"}", SA_RECORD_ANY, "b.jsonl:3: missing field \"question\""},
    {"{\"question\": 3, \"prefix\": \"\", \"last\": \"l\", \"correction\": \"c\"}", SA_RECORD_ANY,
     "b.jsonl:1: field \"question\" is a number, expected a string"},
    {"{\"question\": \"q\", \"prefix\": null, \"last\": \"l\", \"correction\": \"c\"}", SA_RECORD_ANY,
     "field \"prefix\" is null, expected a string"},
    {"{\"question\": \"q\", \"prefix\": \"\", \"last\": [\"l\"], \"correction\": \"c\"}", SA_RECORD_ANY,
     "field \"last\" is an array"},
    {"{\"question\": \"q\", \"prefix\": \"\", \"last\": \"l\", \"correction\": {}}", SA_RECORD_ANY,
     "field \"correction\" is an object"},
    {"{\"question\": \"q\", \"prefix\": \"\", \"last\": \"l\", \"correction\": \"c\", \"eos\": 1}", SA_RECORD_ANY,
     "field \"eos\" is a number, expected true or false"},
    {"{\"question\": \"q\", \"prefix\": \"\", \"last\": \"l\", \"correction\": \"c\", \"source\": 7}", SA_RECORD_ANY,
     "field \"source\" is a number"},
    {"{\"question\": \"q\", \"prefix\": \"\", \"last\": \"l\", \"correction\": \"c\", \"solution\": true}", SA_RECORD_ANY,
     "field \"solution\" is a boolean"},
    {"{\"question\": \"q\", \"correction\": \"c\"}", SA_RECORD_ANY, "b.jsonl:1: missing field \"last\""},
    {"{\"question\": \"q\", \"answer\": \"a\", \"correction\": \"c\"}", SA_RECORD_SENTENCE, "missing field \"prefix\""},
    {S1, SA_RECORD_ANSWER, "missing field \"answer\""},
    {"{\"question\": \"q\", \"answer\": 5, \"correction\": \"c\"}", SA_RECORD_ANY, "field \"answer\" is a number"},
    {"{\"question\": \"q\\ud800\", \"prefix\": \"\", \"last\": \"l\", \"correction\": \"c\"}", SA_RECORD_ANY,
     "b.jsonl:1: malformed JSON"},
    {"{\"question\": \"\xff\xfe\", \"prefix\": \"\", \"last\": \"l\", \"correction\": \"c\"}", SA_RECORD_ANY,
     "field \"question\" is not valid UTF-8"},
    {S1 "\n{\"question\": \"q\", ", SA_RECORD_ANY, "b.jsonl:2: malformed JSON"},
    {S1 " " S1, SA_RECORD_ANY, "b.jsonl:1: text after the JSON object"},
    {"{\"question\": \"q\" \"prefix\": \"\"}", SA_RECORD_ANY, "b.jsonl:1: malformed JSON near column"},
    {"\"just a string\"", SA_RECORD_ANY, "b.jsonl:1: expected a JSON object, got a string"},
    {"42", SA_RECORD_ANY, "b.jsonl:1: expected a JSON object, got a number"},
    {"null", SA_RECORD_ANY, "b.jsonl:1: expected a JSON object, got null"},
    {"{", SA_RECORD_ANY, "b.jsonl:1: malformed JSON"},
    {"}", SA_RECORD_ANY, "b.jsonl:1: malformed JSON"},
    {"[" S1 ",\n" S1 ",\n{\"question\": \"q\"}]", SA_RECORD_ANY, "b.jsonl: element 2: missing field \"last\""},
    {"[" S1 ",\n 5]", SA_RECORD_ANY, "b.jsonl: element 1: expected a JSON object, got a number"},
    {"[" S1 ",\n" S1 "\n", SA_RECORD_ANY, "b.jsonl:2:"},
    {"[" S1 "]\n[]", SA_RECORD_ANY, "b.jsonl:2:1: text after the JSON array"},
    {"[" S1 ",]", SA_RECORD_ANY, "b.jsonl:1:"},
    {"\n\n  [1", SA_RECORD_ANY, "b.jsonl:3:"},
    /* issue 16: a \u0000 would cut the question there: rejected, naming the line or element */
    {S1 "\n{\"question\": \"What is\\u0000 2+2?\", \"prefix\": \"\", \"last\": \"l\", \"correction\": \"c\"}", SA_RECORD_ANY,
     "b.jsonl:2: a string holds \\u0000"},
    {"[" S1 ",\n{\"question\": \"q\", \"prefix\": \"\\u0000\", \"last\": \"l\", \"correction\": \"c\"}]", SA_RECORD_ANY,
     "b.jsonl:2:"},
};

static void test_broken_corpus(void) {
    struct sa_records r;
    sa_records_init(&r);
    CHECK_OK(sa_records_parse(S1, strlen(S1), "pre", SA_RECORD_ANY, &r));
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *c = &bad_cases[i];
        enum sa_status st = sa_records_parse(c->text, strlen(c->text), "b.jsonl", c->expect, &r);
        CHECK_MSG(st == SA_STATUS_BAD_JSON, "bad case %zu accepted (status %d)", i, (int)st);
        CHECK_MSG(strstr(sa_last_error(), c->want) != NULL, "bad case %zu: message \"%s\" lacks \"%s\"", i,
                  sa_last_error(), c->want);
        CHECK_MSG(r.n == 1, "bad case %zu: the record set changed (%zu records)", i, r.n);
    }
    /* every truncation of a good file either parses or fails cleanly */
    size_t n = strlen(good_jsonl);
    for (size_t k = 0; k <= n; k++) {
        struct sa_records t;
        sa_records_init(&t);
        enum sa_status st = sa_records_parse(good_jsonl, k, "trunc", SA_RECORD_ANY, &t);
        CHECK(st == SA_STATUS_OK || st == SA_STATUS_BAD_JSON);
        sa_records_free(&t);
    }
    CHECK(sa_records_load("/nonexistent/x.jsonl", SA_RECORD_ANY, &r) == SA_STATUS_IO);
    /* issue 16: an empty records file is an error (parsing empty text stays fine) */
    char path[4096];
    snprintf(path, sizeof path, "%s/empty.jsonl", harness_tmpdir());
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("\n \n", f);
        fclose(f);
    }
    CHECK(sa_records_load(path, SA_RECORD_ANY, &r) == SA_STATUS_BAD_JSON);
    CHECK(strstr(sa_last_error(), "empty.jsonl: no records") != NULL);
    CHECK_EQ_INT(r.n, 1);
    sa_records_free(&r);
}

static void test_templates(void) {
    char *s = NULL;
    CHECK_OK(sa_aligner_input("What is 2+2?", "First, 2+2.", "It is 5.", &s));
    CHECK_EQ_STR(s, "##Question: What is 2+2? | ##Answer_Prefix: First, 2+2. | ##Answer_Last_Sentence: It is 5. | "
                    "##Your_Revision: ");
    free(s);
    CHECK_OK(sa_aligner_input("q", "", "l", &s));
    CHECK_EQ_STR(s, "##Question: q | ##Answer_Prefix:  | ##Answer_Last_Sentence: l | ##Your_Revision: ");
    free(s);
    CHECK_OK(sa_aligner_baseline_input("Why?", "Because.\nReally.", &s));
    CHECK_EQ_STR(s, "##Question: Why?\n##Answer: Because.\nReally.\n##Correction: ");
    free(s);
    struct sa_record rec = {.kind = SA_RECORD_ANSWER, .question = "q", .answer = "a", .correction = "c"};
    CHECK_OK(sa_record_input(&rec, &s));
    CHECK_EQ_STR(s, "##Question: q\n##Answer: a\n##Correction: ");
    free(s);
    rec = (struct sa_record){.kind = SA_RECORD_SENTENCE, .question = "q", .prefix = "p", .last = "l", .correction = "c"};
    CHECK_OK(sa_record_input(&rec, &s));
    CHECK_EQ_STR(s, "##Question: q | ##Answer_Prefix: p | ##Answer_Last_Sentence: l | ##Your_Revision: ");
    free(s);
    CHECK(sa_aligner_input(NULL, "", "", &s) == SA_STATUS_BAD_ARGUMENT && s == NULL);
    rec.kind = (enum sa_record_kind)9;
    CHECK(sa_record_input(&rec, &s) == SA_STATUS_BAD_ARGUMENT);
}

static void test_split(void) {
    struct sa_records r;
    sa_records_init(&r);
    char q[32];
    /* 200 questions with 1..5 records each, interleaved */
    for (int round = 0; round < 5; round++)
        for (int i = 0; i < 200; i++) {
            if (round > i % 5) continue;
            snprintf(q, sizeof q, "question %d", i);
            struct sa_record rec = {.kind = SA_RECORD_SENTENCE, .question = q, .prefix = "", .last = "l", .correction = "c", .eos = -1};
            CHECK_OK(sa_records_push(&r, &rec));
        }
    bool *d = calloc(r.n, 1), *d2 = calloc(r.n, 1);
    CHECK_OK(sa_records_split(&r, 0.1, 5, d));
    CHECK_OK(sa_records_split(&r, 0.1, 5, d2));
    CHECK(!memcmp(d, d2, r.n)); /* deterministic */
    /* no question on both sides; 20 of 200 questions in dev */
    int side[200];
    for (int i = 0; i < 200; i++) side[i] = -1;
    bool mixed = false;
    for (size_t k = 0; k < r.n; k++) {
        int i = atoi(r.items[k].question + 9);
        if (side[i] >= 0 && side[i] != d[k]) mixed = true;
        side[i] = d[k];
    }
    CHECK(!mixed);
    int n_dev = 0;
    for (int i = 0; i < 200; i++) n_dev += side[i] == 1;
    CHECK_EQ_INT(n_dev, 20);
    CHECK_OK(sa_records_split(&r, 0.1, 6, d2));
    CHECK(memcmp(d, d2, r.n) != 0); /* another seed, another split */
    CHECK_OK(sa_records_split(&r, 0, 5, d2));
    for (size_t k = 0; k < r.n; k++) CHECK(!d2[k]);
    CHECK_OK(sa_records_split(&r, 1, 5, d2));
    for (size_t k = 0; k < r.n; k++) CHECK(d2[k]);
    CHECK(sa_records_split(&r, 1.5, 5, d2) == SA_STATUS_BAD_ARGUMENT);
    CHECK(sa_records_split(&r, -0.1, 5, d2) == SA_STATUS_BAD_ARGUMENT);
    free(d);
    free(d2);
    sa_records_free(&r);
}

int main(void) {
    printf("broken inputs: %zu\n", sizeof bad_cases / sizeof bad_cases[0]);
    RUN(test_read_write);
    RUN(test_broken_corpus);
    RUN(test_templates);
    RUN(test_split);
    return harness_summary();
}
