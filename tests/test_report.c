/* test_report.c: `salign eval report` (src/eval/report.c): a report from every kind of input
 * (eval math with rounds, eval judge, a pipeline trace) and from a directory with a stray
 * file; the Markdown sections and links, the SVG files (XML declaration, one root, the
 * expected marks: bars, interval paths, polylines, escaped labels, balanced tags), and the
 * errors (an unknown named file, a bad field naming the file). The XML itself is parsed by
 * tests/py/test_eval_judge_cli.py. */
#define _GNU_SOURCE
#include "harness.h"
#include "sa/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *tmp(const char *name) {
    char *p = NULL;
    if (asprintf(&p, "%s/%s", harness_tmpdir(), name) < 0) return NULL;
    return p;
}

static void put(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (s) s[n] = 0;
    fclose(f);
    return s;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Every "<name" has its "</name>" or ends in "/>": a cheap balance check of our writer. */
static bool balanced(const char *svg) {
    int depth = 0;
    for (const char *p = svg; (p = strchr(p, '<')); p++) {
        if (p[1] == '?') continue;
        const char *e = strchr(p, '>');
        if (!e) return false;
        if (p[1] == '/') depth--;
        else if (e[-1] != '/') depth++;
        if (depth < 0) return false;
    }
    return depth == 0;
}

static const char *const math_json =
    "{\"dataset\": \"gsm8k\", \"label\": \"up + <aligner> & co é\", \"n\": 300, \"correct\": 120, "
    "\"accuracy\": 0.4, \"ci95\": [0.346, 0.457], \"rounds\": ["
    "{\"round\": 1, \"n\": 300, \"correct\": 30, \"accuracy\": 0.1, \"ci95\": [0.07, 0.14]},"
    "{\"round\": 2, \"n\": 300, \"correct\": 90, \"accuracy\": 0.3, \"ci95\": [0.25, 0.35]},"
    "{\"round\": 3, \"n\": 300, \"correct\": 120, \"accuracy\": 0.4, \"ci95\": [0.346, 0.457]}]}\n";
static const char *const math2_json =
    "{\"dataset\": \"gsm8k\", \"n\": 300, \"correct\": 99, \"accuracy\": 0.33, \"ci95\": [0.28, 0.39]}\n";
static const char *const judge_json =
    "{\"aspect\": \"helpful\", \"judge\": \"x\", \"pairs\": 10, \"win\": 5, \"loss\": 2, \"equal\": 2, "
    "\"invalid\": 1, \"win_rate\": 33.33, \"ci95\": [-11.1, 77.8]}\n";
static const char *const trace_jsonl =
    "{\"id\": 0, \"round\": 1, \"answer_so_far\": \"a\", \"y1\": \"a\", \"y2\": \"a\", \"aligned\": true, "
    "\"copied\": true, \"edit_ratio\": 0, \"upstream_ms\": 100, \"aligner_ms\": 50}\n"
    "{\"id\": 0, \"round\": 2, \"answer_so_far\": \"a b\", \"aligned\": true, \"copied\": false, "
    "\"edit_ratio\": 0.25, \"upstream_ms\": 120, \"aligner_ms\": 60}\n"
    "\n"
    "{\"id\": 1, \"round\": 1, \"answer_so_far\": \"c\", \"aligned\": true, \"copied\": false, "
    "\"edit_ratio\": 1.0, \"upstream_ms\": 80, \"aligner_ms\": 40}\n"
    "{\"id\": 1, \"round\": 2, \"answer_so_far\": \"c d\", \"aligned\": false, \"copied\": false, "
    "\"edit_ratio\": 0, \"upstream_ms\": 90, \"aligner_ms\": 0}\n";

static void test_report_files(void) {
    char *m1 = tmp("stream.json"), *m2 = tmp("upstream.json"), *j = tmp("judge_helpful.json"),
         *t = tmp("trace.jsonl"), *out = tmp("rep.md");
    put(m1, math_json);
    put(m2, math2_json);
    put(j, judge_json);
    put(t, trace_jsonl);
    const char *in[] = {m1, m2, j, t};
    struct sa_report_summary sum;
    struct sa_report_params rp = sa_report_default_params();
    rp.title = "Test | report";
    CHECK_OK(sa_eval_report(in, 4, out, &rp, &sum));
    CHECK_EQ_INT(sum.n_accuracy, 2);
    CHECK_EQ_INT(sum.n_rounds, 1);
    CHECK_EQ_INT(sum.n_winrate, 1);
    CHECK_EQ_INT(sum.n_traces, 1);
    CHECK_EQ_INT(sum.n_plots, 5);
    char *md = slurp(out);
    CHECK(md != NULL);
    if (md) {
        CHECK(strstr(md, "# Test \\| report\n") == md);
        static const char *const want[] = {"## Accuracy\n", "## Accuracy by round\n", "## Win rate\n",
                                           "## Edit ratio\n", "## Latency\n", "(rep-accuracy.svg)",
                                           "(rep-accuracy-rounds.svg)", "(rep-winrate.svg)", "(rep-edit-ratio.svg)",
                                           "(rep-latency.svg)", "| upstream | 300 | 99 | 33.00% |",
                                           "| judge_helpful | helpful | 5 | 2 | 2 | 1 | 33.33 | [-11.10, 77.80] |",
                                           "| 2 | 30.00% |",
                                           /* 3 aligned rounds, 1 copied; mean (0 + .25 + 1) / 3 */
                                           "| trace | 3 | 1 (33.3%) | 0.417 | 0.250 |",
                                           /* 4 lines: totals 150, 180, 120, 90 */
                                           "| trace | 4 | 97.5 | 37.5 | 135.0 | 135.0 | 171.0 |"};
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
            CHECK_MSG(strstr(md, want[i]) != NULL, "report lacks \"%s\"", want[i]);
    }
    free(md);
    static const struct {
        const char *name, *mark;
        int n_mark;
    } plots[] = {{"rep-accuracy.svg", "class=\"bar\"", 2},      {"rep-accuracy-rounds.svg", "class=\"series\"", 1},
                 {"rep-winrate.svg", "class=\"interval\"", 1},  {"rep-edit-ratio.svg", "class=\"bar\"", 11},
                 {"rep-latency.svg", "class=\"series\"", 1}};
    for (size_t i = 0; i < 5; i++) {
        char *p = tmp(plots[i].name);
        char *svg = slurp(p);
        CHECK_MSG(svg != NULL, "%s not written", plots[i].name);
        if (svg) {
            CHECK(strncmp(svg, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"", 74) == 0);
            CHECK_EQ_INT(count(svg, "<svg"), 1);
            CHECK(strstr(svg, "</svg>\n") != NULL);
            CHECK_MSG(count(svg, plots[i].mark) == plots[i].n_mark, "%s: %d x %s, want %d", plots[i].name,
                      count(svg, plots[i].mark), plots[i].mark, plots[i].n_mark);
            CHECK_MSG(balanced(svg), "%s: unbalanced tags", plots[i].name);
            CHECK(!strstr(svg, "nan") && !strstr(svg, "inf"));
        }
        free(svg);
        free(p);
    }
    /* labels are escaped in the SVG */
    char *p = tmp("rep-accuracy.svg");
    char *svg = slurp(p);
    CHECK(svg && strstr(svg, "up + &lt;aligner&gt; &amp; co é") && !strstr(svg, "<aligner>"));
    free(svg);
    free(p);
    free(m1);
    free(m2);
    free(j);
    free(t);
    free(out);
}

static void test_report_dir_and_errors(void) {
    char *dir = tmp("results");
    mkdir(dir, 0755);
    char *a = NULL, *b = NULL, *c = NULL, *d = NULL, *out = tmp("dirrep.md");
    if (asprintf(&a, "%s/a.json", dir) < 0 || asprintf(&b, "%s/b.jsonl", dir) < 0 ||
        asprintf(&c, "%s/notes.json", dir) < 0 || asprintf(&d, "%s/readme.txt", dir) < 0)
        return;
    put(a, judge_json);
    put(b, trace_jsonl);
    put(c, "{\"something\": \"else\"}\n");
    put(d, "not read");
    const char *in[] = {dir};
    struct sa_report_summary sum;
    CHECK_OK(sa_eval_report(in, 1, out, NULL, &sum));
    CHECK_EQ_INT(sum.n_winrate, 1);
    CHECK_EQ_INT(sum.n_traces, 1);
    CHECK_EQ_INT(sum.n_skipped, 1);
    CHECK_EQ_INT(sum.n_plots, 3);
    char *md = slurp(out);
    CHECK(md && strstr(md, "## Skipped") && strstr(md, "notes.json") && !strstr(md, "readme.txt"));
    CHECK(md && strstr(md, "# Stream Aligner evaluation\n") == md && !strstr(md, "## Accuracy"));
    free(md);
    /* a named file of no known kind is an error */
    const char *in2[] = {c};
    CHECK(sa_eval_report(in2, 1, out, NULL, NULL) == SA_STATUS_BAD_FILE);
    CHECK(strstr(sa_last_error(), "notes.json") != NULL);
    /* a bad field names the file */
    put(c, "{\"win\": 1, \"loss\": 0, \"equal\": 0, \"invalid\": 0, \"win_rate\": 250, \"ci95\": [0, 1]}");
    CHECK(sa_eval_report(in2, 1, out, NULL, NULL) == SA_STATUS_BAD_JSON);
    CHECK(strstr(sa_last_error(), "notes.json") && strstr(sa_last_error(), "win_rate"));
    put(c, "{\"edit_ratio\": 0.5, \"round\": 1}\n{\"edit_ratio\": 7, \"round\": 2}\n");
    CHECK(sa_eval_report(in2, 1, out, NULL, NULL) == SA_STATUS_BAD_JSON);
    CHECK(strstr(sa_last_error(), "notes.json:2") != NULL);
    /* nothing to report */
    put(c, "{\"x\": 1}\n");
    const char *in3[] = {d};
    CHECK(sa_eval_report(in3, 1, out, NULL, NULL) == SA_STATUS_BAD_FILE);
    CHECK(sa_eval_report(in, 0, out, NULL, NULL) == SA_STATUS_BAD_ARGUMENT);
    const char *in4[] = {"/nonexistent/x.json"};
    CHECK(sa_eval_report(in4, 1, out, NULL, NULL) == SA_STATUS_IO);
    free(a);
    free(b);
    free(c);
    free(d);
    free(dir);
    free(out);
}

int main(void) {
    RUN(test_report_files);
    RUN(test_report_dir_and_errors);
    return harness_summary();
}
