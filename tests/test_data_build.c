/* test_data_build.c: `salign data build` (src/data/build.c) without a model: the strict
 * parse of annotator answers (a table), the annotator prompt file, and the build loop with a
 * scripted upstream (struct sa_upstream_ops) and a scripted annotator (struct sa_judge_ops):
 * record contents, prefix chaining, EOS / max rounds / upstream end, retries and skips, and
 * resume after a SIGKILL in the middle (a child process) and after a torn write. */
#define _GNU_SOURCE
#include "harness.h"
#include "sa/data_build.h"
#include "sa/judge.h"
#include "sa/records.h"
#include "sa/upstream.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SA_ARRAY_LEN_T(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the parse table ---- */

struct parse_case {
    const char *text;
    int ok;
    const char *correction;
    int eos;
};

static const struct parse_case parse_cases[] = {
    {"CORRECTION: [[Hello.]]\nEOS: [[FALSE]]", 1, "Hello.", 0},
    {"CORRECTION: [[Hello.]]\nEOS: [[TRUE]]", 1, "Hello.", 1},
    {"CORRECTION:[[x]] EOS:[[true]]", 1, "x", 1},
    {"CORRECTION: [[  spaced  ]]\nEOS: [[ False ]]", 1, "spaced", 0},
    {"Sure! Here it is.\nCORRECTION: [[24 clips.]]\nEOS: [[FALSE]]\nThanks.", 1, "24 clips.", 0},
    {"EOS: [[TRUE]]\nCORRECTION: [[Order swapped.]]", 1, "Order swapped.", 1},
    {"CORRECTION:\n[[Two\nlines.]]\nEOS: [[FALSE]]", 1, "Two\nlines.", 0},
    {"CORRECTION: [[a [b] c]]\nEOS: [[FALSE]]", 1, "a [b] c", 0},
    {"CORRECTION: [[48/2 = 24]]\nEOS:\n[[TRUE]]", 1, "48/2 = 24", 1},
    {"CORRECTION: [[Unicode é ✓.]]\nEOS: [[FALSE]]", 1, "Unicode é ✓.", 0},
    /* malformed */
    {"", 0, NULL, 0},
    {"Hello.", 0, NULL, 0},
    {"CORRECTION: [[Hello.]]", 0, NULL, 0},                                   /* no EOS */
    {"EOS: [[TRUE]]", 0, NULL, 0},                                            /* no correction */
    {"CORRECTION: Hello.\nEOS: [[TRUE]]", 0, NULL, 0},                        /* no brackets */
    {"CORRECTION: [[Hello.\nEOS: [[TRUE]]", 0, NULL, 0},                      /* [[ inside / unclosed */
    {"CORRECTION: [[Hello.]]\nEOS: [[MAYBE]]", 0, NULL, 0},                   /* bad EOS value */
    {"CORRECTION: [[Hello.]]\nEOS: TRUE", 0, NULL, 0},                        /* EOS without brackets */
    {"CORRECTION: [[]]\nEOS: [[TRUE]]", 0, NULL, 0},                          /* empty */
    {"CORRECTION: [[   ]]\nEOS: [[FALSE]]", 0, NULL, 0},                      /* blank */
    {"CORRECTION: [[a]]\nCORRECTION: [[b]]\nEOS: [[TRUE]]", 0, NULL, 0},      /* twice */
    {"CORRECTION: [[a]]\nEOS: [[TRUE]]\nEOS: [[FALSE]]", 0, NULL, 0},         /* EOS twice */
    {"CORRECTION: [[a [[b]] c]]\nEOS: [[TRUE]]", 0, NULL, 0},                 /* nested [[ */
    {"CORRECTION: [[a]]\nEOS: [[TRUEISH]]", 0, NULL, 0},
    {"CORRECTION: [[a]]\nEOS: [[TRUE]", 0, NULL, 0},                          /* one bracket */
    {"correction: [[a]]\neos: [[TRUE]]", 0, NULL, 0},                         /* keys are upper case */
    {"CORRECTION: [[a EOS: [[TRUE]] ]]", 0, NULL, 0},                         /* EOS inside */
    {"CORRECTION: [a]\nEOS: [[TRUE]]", 0, NULL, 0},
};

static void test_parse_table(void) {
    CHECK(SA_ARRAY_LEN_T(parse_cases) >= 20);
    for (size_t i = 0; i < SA_ARRAY_LEN_T(parse_cases); i++) {
        const struct parse_case *c = &parse_cases[i];
        char *corr = NULL;
        int eos = -1;
        const char *why = NULL;
        enum sa_status s = sa_annot_parse(c->text, &corr, &eos, &why);
        CHECK_MSG((s == SA_STATUS_OK) == (c->ok == 1), "case %zu (%s): status %d", i, c->text, (int)s);
        if (c->ok && !s) {
            CHECK_MSG(corr && !strcmp(corr, c->correction), "case %zu: correction '%s'", i, corr ? corr : "(null)");
            CHECK_MSG(eos == c->eos, "case %zu: eos %d", i, eos);
        }
        if (!c->ok) {
            CHECK_MSG(s == SA_STATUS_BAD_FILE && corr == NULL && why != NULL, "case %zu: malformed without reason", i);
        }
        free(corr);
    }
    char *corr = NULL;
    int eos = 0;
    CHECK_EQ_INT(sa_annot_parse(NULL, &corr, &eos, NULL), SA_STATUS_BAD_FILE);
}

/* ---- the prompt file ---- */

static void test_prompt_file(void) {
    struct sa_annot_prompt *p = NULL;
    const char *t = "# comment\n[system]\nBe careful.\n[user]\nQ={question}|P={prefix}|S={sentence}|R={reference}|{other}\n";
    CHECK_OK(sa_annot_prompt_parse(t, strlen(t), "t", &p));
    CHECK_EQ_STR(sa_annot_prompt_system(p), "Be careful.");
    CHECK(sa_annot_prompt_needs_reference(p));
    char *out = NULL;
    CHECK_OK(sa_annot_prompt_render(p, "q{prefix}", "pre", "s", NULL, &out));
    CHECK_EQ_STR(out, "Q=q{prefix}|P=pre|S=s|R=" SA_ANNOT_NO_REFERENCE "|{other}");
    free(out);
    sa_annot_prompt_free(p);
    const char *no_sys = "Q={question} P={prefix} S={sentence}";
    CHECK_OK(sa_annot_prompt_parse(no_sys, strlen(no_sys), "t", &p));
    CHECK_EQ_STR(sa_annot_prompt_system(p), "");
    CHECK(!sa_annot_prompt_needs_reference(p));
    sa_annot_prompt_free(p);
    const char *bad[] = {"Q={question} S={sentence}", "[user]\nx\n[user]\ny", "junk\n[user]\n{question}{prefix}{sentence}",
                         "[system]\n\n[user]\n{question}{prefix}{sentence}"};
    for (size_t i = 0; i < 4; i++) {
        p = NULL;
        CHECK_MSG(sa_annot_prompt_parse(bad[i], strlen(bad[i]), "t", &p) == SA_STATUS_BAD_FILE, "bad prompt %zu", i);
        CHECK(p == NULL);
    }
    /* the shipped prompt parses */
    CHECK_OK(sa_annot_prompt_load("docs/prompts/annotator.txt", &p));
    if (p) CHECK(sa_annot_prompt_needs_reference(p));
    sa_annot_prompt_free(p);
}

/* ---- a scripted upstream: question "Qi ..." answers the sentences of script i; each start
 * continues after the sentences already in the prompt's assistant part ---- */

static const char *const scripts[][4] = {
    {"Alpha one.", " Alpha two.", " Alpha three.", " Alpha four."},
    {"Beta one.", " Beta bad.", " Beta three.", NULL},
    {"Gamma one.", " Gamma retry.", " Gamma stop.", " Gamma four."},
    {"Delta one.", NULL, NULL, NULL},
};

struct fake_up {
    char buf[512];
    const char *text; /* the rest of the script to stream */
    char *gen;
    size_t pos, len;
    int n_start;
};

static enum sa_status fu_start(void *impl, const char *prompt, size_t len, const struct sa_upstream_gen_params *p) {
    (void)p;
    struct fake_up *f = impl;
    f->n_start++;
    char *pr = strndup(prompt, len);
    const char *q = strstr(pr, "Q");
    int k = q ? q[1] - '0' : 0;
    if (k < 0 || k > 3) k = 0;
    /* the number of sentences already in the assistant part: count the script's sentences
     * whose corrected forms ("FIX(...)") or original forms appear after the last "assistant" */
    const char *asst = strstr(pr, "<|im_start|>assistant");
    int done = 0;
    for (const char *a = asst; a && (a = strchr(a + 1, '.'));) done++;
    free(pr);
    free(f->gen);
    size_t total = 0;
    for (int i = done; i < 4 && scripts[k][i]; i++) total += strlen(scripts[k][i]);
    f->gen = calloc(1, total + 1);
    for (int i = done; i < 4 && scripts[k][i]; i++) strcat(f->gen, scripts[k][i]);
    f->len = total;
    f->pos = 0;
    return SA_STATUS_OK;
}

static enum sa_status fu_next(void *impl, struct sa_upstream_chunk *out) {
    struct fake_up *f = impl;
    size_t n = f->len - f->pos < 3 ? f->len - f->pos : 3;
    memcpy(f->buf, f->gen + f->pos, n);
    f->buf[n] = 0;
    f->pos += n;
    out->text = f->buf;
    out->len = n;
    out->n_tokens = 1;
    out->finish = f->pos == f->len ? SA_UPSTREAM_FINISH_STOP : SA_UPSTREAM_FINISH_NONE;
    return SA_STATUS_OK;
}

static void fu_cancel(void *impl) {
    (void)impl;
}

static void fu_free(void *impl) {
    struct fake_up *f = impl;
    free(f->gen);
    f->gen = NULL;
}

static const struct sa_upstream_ops fu_ops = {"fake", fu_start, fu_next, fu_cancel, fu_free};

/* ---- a scripted annotator: the user message is "S=<sentence>|P=<prefix>"; it answers
 * "FIX(<sentence>)"; "bad" sentences are always malformed; "retry" sentences are malformed
 * on the first ask; "stop" sentences get EOS TRUE ---- */

struct fake_an {
    int n_calls;
    int kill_at; /* raise SIGKILL at this call (1-based); 0: never */
};

static enum sa_status fa_generate(void *impl, const struct sa_judge_request *req, char **out) {
    struct fake_an *a = impl;
    a->n_calls++;
    if (a->kill_at && a->n_calls == a->kill_at) raise(SIGKILL);
    const char *s = strstr(req->user, "S=") + 2;
    const char *e = strstr(s, "|P=");
    int n = (int)(e - s);
    char *t = NULL;
    if (strstr(req->user, "bad") && memmem(s, (size_t)n, "bad", 3))
        t = strdup("I think the sentence is fine.");
    else if (memmem(s, (size_t)n, "retry", 5) && req->attempt == 0)
        t = strdup("CORRECTION: [[oops]]\nCORRECTION: [[twice]]\nEOS: [[FALSE]]");
    else if (asprintf(&t, "CORRECTION: [[FIX(%.*s)]]\nEOS: [[%s]]", n, s,
                      memmem(s, (size_t)n, "stop", 4) ? "TRUE" : "FALSE") < 0)
        t = NULL;
    *out = t;
    return t ? SA_STATUS_OK : SA_STATUS_NO_MEMORY;
}

static const struct sa_judge_ops fa_ops = {"fake", fa_generate, NULL};

struct world {
    struct fake_up fu;
    struct fake_an fa;
    struct sa_upstream *up;
    struct sa_judge *an;
    struct sa_annot_prompt *prompt;
    struct sa_data_build_params bp;
};

static struct sa_data_prompt prompts[4];

static void world_init(struct world *w, const char *out) {
    memset(w, 0, sizeof *w);
    CHECK_OK(sa_upstream_init_ops(&fu_ops, &w->fu, &w->up));
    CHECK_OK(sa_judge_init_ops(&fa_ops, &w->fa, "fake-annotator", &w->an));
    const char *t = "S={sentence}|P={prefix}|Q={question}|R={reference}";
    CHECK_OK(sa_annot_prompt_parse(t, strlen(t), "t", &w->prompt));
    w->bp = sa_data_build_default_params();
    w->bp.pipeline.upstream = w->up;
    w->bp.pipeline.upstream_format = SA_CHAT_FORMAT_CHATML;
    w->bp.pipeline.max_rounds = 3;
    w->bp.annotator = w->an;
    w->bp.prompt = w->prompt;
    w->bp.retries = 2;
    w->bp.out_path = out;
}

static void world_free(struct world *w) {
    sa_judge_free(w->an);
    sa_upstream_free(w->up);
    sa_annot_prompt_free(w->prompt);
}

static void init_prompts(void) {
    static char q[4][64], r[4][32];
    for (int i = 0; i < 4; i++) {
        snprintf(q[i], sizeof q[i], "Q%d: what is %d + %d?", i, i, i);
        snprintf(r[i], sizeof r[i], "ref %d", 2 * i);
        prompts[i].question = q[i];
        prompts[i].reference = i == 3 ? NULL : r[i];
    }
}

static char *path_in_tmp(const char *name) {
    char *p = NULL;
    if (asprintf(&p, "%s/%s", harness_tmpdir(), name) < 0) return NULL;
    unlink(p);
    char *ck = NULL;
    if (asprintf(&ck, "%s.ckpt", p) >= 0) unlink(ck);
    free(ck);
    return p;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc(1, (size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) s[0] = 0;
    fclose(f);
    return s;
}

/* A complete uninterrupted build into `out`; returns the stats. */
static struct sa_data_build_stats full_build(const char *out) {
    struct world w;
    world_init(&w, out);
    struct sa_data_build_stats st;
    CHECK_OK(sa_data_build_run(prompts, 4, &w.bp, &st));
    world_free(&w);
    return st;
}

static void test_build_records(void) {
    init_prompts();
    char *out = path_in_tmp("full.jsonl");
    struct sa_data_build_stats st = full_build(out);
    CHECK_EQ_INT(st.n_prompts, 4);
    CHECK_EQ_INT(st.n_done, 4);
    /* Q0: 4 sentences, max rounds 3; Q1: "bad" skipped (3 asks), 2 records, upstream end;
     * Q2: retry then stop (EOS) at sentence 3; Q3: one sentence, upstream end */
    CHECK_EQ_INT(st.n_sentences, 3 + 3 + 3 + 1);
    CHECK_EQ_INT(st.n_records, 3 + 2 + 3 + 1);
    CHECK_EQ_INT(st.n_skipped, 1);
    CHECK_EQ_INT(st.n_malformed, 3 + 1);
    CHECK_EQ_INT(st.n_retries, 2 + 1);
    CHECK_EQ_INT(st.n_requests, 10 + 2 + 1);
    CHECK_EQ_INT(st.n_stop_eos, 1);
    CHECK_EQ_INT(st.n_stop_rounds, 1);
    CHECK_EQ_INT(st.n_stop_upstream, 2);
    struct sa_records r;
    sa_records_init(&r);
    CHECK_OK(sa_records_load(out, SA_RECORD_SENTENCE, &r));
    CHECK_EQ_INT(r.n, 9);
    if (r.n == 9) {
        /* Q0: the prefix follows the corrected sentences */
        CHECK_EQ_STR(r.items[0].question, "Q0: what is 0 + 0?");
        CHECK_EQ_STR(r.items[0].prefix, "");
        CHECK_EQ_STR(r.items[0].last, "Alpha one.");
        CHECK_EQ_STR(r.items[0].correction, "FIX(Alpha one.)");
        CHECK_EQ_INT(r.items[0].eos, 0);
        CHECK_EQ_STR(r.items[0].source, "build:0:1");
        CHECK_EQ_STR(r.items[1].prefix, "FIX(Alpha one.)");
        CHECK_EQ_STR(r.items[1].last, "Alpha two.");
        CHECK_EQ_STR(r.items[2].prefix, "FIX(Alpha one.) FIX(Alpha two.)");
        CHECK_EQ_STR(r.items[2].source, "build:0:3");
        /* Q1: the skipped sentence keeps the upstream's text in the prefix, no record */
        CHECK_EQ_STR(r.items[3].last, "Beta one.");
        CHECK_EQ_STR(r.items[4].last, "Beta three.");
        CHECK_EQ_STR(r.items[4].prefix, "FIX(Beta one.) Beta bad.");
        CHECK_EQ_STR(r.items[4].source, "build:1:3");
        /* Q2: the retried sentence is written once; EOS TRUE ends the prompt */
        CHECK_EQ_STR(r.items[6].last, "Gamma retry.");
        CHECK_EQ_STR(r.items[6].correction, "FIX(Gamma retry.)");
        CHECK_EQ_STR(r.items[7].last, "Gamma stop.");
        CHECK_EQ_INT(r.items[7].eos, 1);
        /* Q3 */
        CHECK_EQ_STR(r.items[8].last, "Delta one.");
        CHECK_EQ_STR(r.items[8].source, "build:3:1");
    }
    sa_records_free(&r);
    /* idempotent: a second run does nothing */
    char *before = slurp(out);
    struct world w;
    world_init(&w, out);
    struct sa_data_build_stats st2;
    CHECK_OK(sa_data_build_run(prompts, 4, &w.bp, &st2));
    CHECK_EQ_INT(st2.n_skipped_done, 4);
    CHECK_EQ_INT(st2.n_done, 0);
    CHECK_EQ_INT(w.fa.n_calls, 0);
    world_free(&w);
    char *after = slurp(out);
    CHECK(before && after && !strcmp(before, after));
    free(before);
    free(after);
    free(out);
}

static void test_refusals(void) {
    init_prompts();
    char *out = path_in_tmp("refuse.jsonl");
    FILE *f = fopen(out, "w");
    fputs("{\"not\": \"ours\"}\n", f);
    fclose(f);
    struct world w;
    world_init(&w, out);
    CHECK_EQ_INT(sa_data_build_run(prompts, 4, &w.bp, NULL), SA_STATUS_BAD_ARGUMENT);
    world_free(&w);
    unlink(out);
    /* other prompts against an existing checkpoint: refused */
    world_init(&w, out);
    CHECK_OK(sa_data_build_run(prompts, 2, &w.bp, NULL));
    world_free(&w);
    world_init(&w, out);
    CHECK_EQ_INT(sa_data_build_run(prompts, 4, &w.bp, NULL), SA_STATUS_BAD_ARGUMENT);
    world_free(&w);
    free(out);
}

static void test_stop_after_and_resume(void) {
    init_prompts();
    char *ref = path_in_tmp("ref.jsonl");
    full_build(ref);
    char *out = path_in_tmp("stop.jsonl");
    struct world w;
    world_init(&w, out);
    w.bp.stop_after = 1;
    struct sa_data_build_stats st;
    CHECK_OK(sa_data_build_run(prompts, 4, &w.bp, &st));
    CHECK_EQ_INT(st.n_done, 1);
    world_free(&w);
    world_init(&w, out);
    CHECK_OK(sa_data_build_run(prompts, 4, &w.bp, &st));
    CHECK_EQ_INT(st.n_skipped_done, 1);
    CHECK_EQ_INT(st.n_done, 3);
    world_free(&w);
    char *a = slurp(ref), *b = slurp(out);
    CHECK(a && b && !strcmp(a, b));
    free(a);
    free(b);
    free(ref);
    free(out);
}

/* A child builds and SIGKILLs itself at annotator call `kill_at`; then the parent appends a
 * torn record (a crash in the middle of a write) and resumes: the output equals an
 * uninterrupted build's, byte for byte. */
static void kill_and_resume(int kill_at, bool torn) {
    char *ref = path_in_tmp("ref2.jsonl");
    full_build(ref);
    char *out = path_in_tmp("killed.jsonl");
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct world w;
        world_init(&w, out);
        w.fa.kill_at = kill_at;
        enum sa_status s = sa_data_build_run(prompts, 4, &w.bp, NULL);
        _exit(s == SA_STATUS_OK ? 0 : 3);
    }
    int wst = 0;
    CHECK(pid > 0 && waitpid(pid, &wst, 0) == pid);
    CHECK_MSG(WIFSIGNALED(wst) && WTERMSIG(wst) == SIGKILL, "the child was not killed (status %d)", wst);
    char *part = slurp(out);
    CHECK(part != NULL);
    char *a = slurp(ref);
    CHECK(part && a && strlen(part) < strlen(a) && !strncmp(a, part, strlen(part)));
    if (torn) {
        FILE *f = fopen(out, "a");
        fputs("{\"question\":\"Q2: what is 2 + 2?\",\"prefix\":\"\",\"la", f);
        fclose(f);
        char *ck = NULL;
        CHECK(asprintf(&ck, "%s.ckpt", out) > 0);
        f = fopen(ck, "a");
        fputs("{\"prompt\":2,\"si", f); /* a torn checkpoint line too */
        fclose(f);
        free(ck);
    }
    struct world w;
    world_init(&w, out);
    struct sa_data_build_stats st;
    CHECK_OK(sa_data_build_run(prompts, 4, &w.bp, &st));
    CHECK(st.n_skipped_done >= 1 && st.n_skipped_done < 4);
    if (torn) CHECK(st.n_dropped_bytes > 0);
    world_free(&w);
    char *b = slurp(out);
    CHECK_MSG(a && b && !strcmp(a, b), "resumed output differs:\n%s\n---\n%s", a ? a : "", b ? b : "");
    struct sa_records r;
    sa_records_init(&r);
    CHECK_OK(sa_records_load(out, SA_RECORD_SENTENCE, &r));
    CHECK_EQ_INT(r.n, 9);
    sa_records_free(&r);
    free(part);
    free(a);
    free(b);
    free(ref);
    free(out);
}

static void test_kill_resume(void) {
    init_prompts();
    kill_and_resume(8, false); /* at Q1's last call (Q0: calls 1-3, Q1: 4-8) */
}

static void test_kill_torn_resume(void) {
    init_prompts();
    kill_and_resume(9, true); /* at Q2's first call, then a torn record and checkpoint line */
}

static void test_prompts_load(void) {
    char *p = path_in_tmp("prompts.jsonl");
    FILE *f = fopen(p, "w");
    fputs("{\"question\": \"Q1?\", \"answer\": \"2 * 3 = <<2*3=6>>6\\n#### 6\"}\n\n{\"question\": \"Q2?\", \"answer\": \"x\"}\n", f);
    fclose(f);
    struct sa_data_prompt *v = NULL;
    size_t n = 0;
    CHECK_OK(sa_data_prompts_load(p, "answer", &v, &n));
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK_EQ_STR(v[0].question, "Q1?");
        CHECK_EQ_STR(v[0].reference, "2 * 3 = 6\n#### 6");
    }
    sa_data_prompts_free(v, n);
    CHECK_OK(sa_data_prompts_load(p, NULL, &v, &n));
    CHECK(n == 2 && v[1].reference == NULL);
    sa_data_prompts_free(v, n);
    CHECK_EQ_INT(sa_data_prompts_load(p, "solution", &v, &n), SA_STATUS_BAD_JSON);
    f = fopen(p, "w");
    fputs("{\"question\": 3}\n", f);
    fclose(f);
    CHECK_EQ_INT(sa_data_prompts_load(p, NULL, &v, &n), SA_STATUS_BAD_JSON);
    /* issue 16: the one JSONL rule: no text after the object; an empty file is an error */
    f = fopen(p, "w");
    fputs("{\"question\": \"Q1?\"} {\"question\": \"Q2?\"}\n", f);
    fclose(f);
    CHECK_EQ_INT(sa_data_prompts_load(p, NULL, &v, &n), SA_STATUS_BAD_JSON);
    CHECK(strstr(sa_last_error(), "prompts.jsonl:1: text after the JSON object") != NULL);
    f = fopen(p, "w");
    fputs("\n\n", f);
    fclose(f);
    CHECK_EQ_INT(sa_data_prompts_load(p, NULL, &v, &n), SA_STATUS_BAD_JSON);
    CHECK(strstr(sa_last_error(), "no JSON objects") != NULL && v == NULL && n == 0);
    free(p);
}

int main(void) {
    RUN(test_parse_table);
    RUN(test_prompt_file);
    RUN(test_prompts_load);
    RUN(test_build_records);
    RUN(test_refusals);
    RUN(test_stop_after_and_resume);
    RUN(test_kill_resume);
    RUN(test_kill_torn_resume);
    return harness_summary();
}
