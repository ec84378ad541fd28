/* test_judge.c: the pairwise judge (src/eval/judge.c) with scripted test doubles, no model:
 * prompt files (sections, placeholders, one-pass rendering, the shipped prompts), both
 * orders and their aggregation, retries and invalid counting, the cache (free re-runs, a
 * different judge id misses, resume after a cancel, after a real SIGKILL and after a torn
 * last line: each key exactly once and the result of an uninterrupted run), the cache lock,
 * and the upstream engine (chat rendering, greedy first ask, sampled seeded retries). */
#define _GNU_SOURCE
#include "harness.h"
#include "sa/chat.h"
#include "sa/judge.h"
#include "sa/upstream.h"

#include <cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

static char *path_in_tmp(const char *name) {
    char *p = NULL;
    if (asprintf(&p, "%s/%s", harness_tmpdir(), name) < 0) return NULL;
    return p;
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

/* ---- prompts ----------------------------------------------------------------------- */

static void test_prompt_parse(void) {
    struct sa_judge_prompt *p = NULL;
    const char *t1 = "# a header\n# more\n[system]\nBe fair.\n\n[user]\n\nQ: {question}\nA: {answer_a}\nB: {answer_b}\n\n";
    CHECK_OK(sa_judge_prompt_parse(t1, strlen(t1), "t1", &p));
    if (p) {
        CHECK_EQ_STR(sa_judge_prompt_system(p), "Be fair.");
        CHECK(!sa_judge_prompt_needs_reference(p));
        char *u = NULL;
        /* one pass: a placeholder inside an answer stays as written */
        CHECK_OK(sa_judge_prompt_render(p, "2+2?", "{answer_b} 4", "5 {question}", NULL, &u));
        CHECK_EQ_STR(u, "Q: 2+2?\nA: {answer_b} 4\nB: 5 {question}");
        free(u);
        sa_judge_prompt_free(p);
    }
    /* no sections: all user; other braces untouched; {reference} needed */
    const char *t2 = "Solve \\boxed{x} {question} {reference} | {answer_a} | {answer_b}";
    CHECK_OK(sa_judge_prompt_parse(t2, strlen(t2), "t2", &p));
    if (p) {
        CHECK_EQ_STR(sa_judge_prompt_system(p), "");
        CHECK(sa_judge_prompt_needs_reference(p));
        char *u = NULL;
        CHECK(sa_judge_prompt_render(p, "q", "a", "b", NULL, &u) == SA_STATUS_BAD_ARGUMENT && !u);
        CHECK_OK(sa_judge_prompt_render(p, "q", "a", "b", "r", &u));
        CHECK_EQ_STR(u, "Solve \\boxed{x} q r | a | b");
        free(u);
        sa_judge_prompt_free(p);
    }
    /* errors */
    static const char *const bad[] = {
        "[user]\n{question} {answer_a}\n",                      /* no {answer_b} */
        "[system]\nx\n",                                         /* no user */
        "[system]\n\n[user]\n{question}{answer_a}{answer_b}\n", /* empty system */
        "stray\n[user]\n{question}{answer_a}{answer_b}\n",      /* text before the sections */
        "[user]\n{question}{answer_a}{answer_b}\n[user]\nx\n",  /* two user sections */
        "# only a header\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = NULL;
        enum sa_status s = sa_judge_prompt_parse(bad[i], strlen(bad[i]), "bad", &p);
        CHECK_MSG(s == SA_STATUS_BAD_FILE && !p, "bad prompt %zu parsed (status %d)", i, (int)s);
        sa_judge_prompt_free(p);
    }
    const char inv[] = "[user]\n{question}{answer_a}{answer_b}\xff\n";
    CHECK(sa_judge_prompt_parse(inv, sizeof inv - 1, "inv", &p) == SA_STATUS_BAD_FILE);
    /* the shipped prompts */
    static const char *const shipped[] = {"docs/prompts/judge_helpful.txt", "docs/prompts/judge_harmless.txt",
                                          "docs/prompts/judge_math.txt"};
    for (size_t i = 0; i < 3; i++) {
        p = NULL;
        CHECK_OK(sa_judge_prompt_load(shipped[i], &p));
        if (!p) continue;
        CHECK(*sa_judge_prompt_system(p));
        CHECK(sa_judge_prompt_needs_reference(p) == (i == 2));
        char *u = NULL;
        CHECK_OK(sa_judge_prompt_render(p, "QQ", "AAA", "BBB", "RRR", &u));
        CHECK(u && strstr(u, "QQ") && strstr(u, "AAA") && strstr(u, "BBB") && strstr(u, "[[A]]") && strstr(u, "[[C]]"));
        CHECK(u && !strstr(u, "Adapted from")); /* the header comment is not in the message */
        CHECK(u && strstr(u, "AAA") < strstr(u, "BBB"));
        free(u);
        sa_judge_prompt_free(p);
    }
    enum sa_judge_aspect a;
    CHECK(sa_judge_aspect_from_name("harmless", &a) == SA_STATUS_OK && a == SA_JUDGE_HARMLESS);
    CHECK_EQ_INT(sa_judge_aspect_from_name("honest", &a), SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "'honest'") != NULL && a == SA_JUDGE_HARMLESS);
    CHECK_EQ_INT(sa_judge_aspect_from_name(NULL, &a), SA_STATUS_BAD_ARGUMENT);
    CHECK_EQ_STR(sa_judge_aspect_name(SA_JUDGE_MATH), "math");
}

/* ---- the scripted fake judge --------------------------------------------------------- */

/* The test prompt puts each answer on its own line: "A: ...\nB: ...". Answers carry a score
 * "s=N": the higher wins ([[A]] / [[B]]), equal scores tie. Questions script the oddities:
 *   "biased"    always [[A]] (position bias: the orders disagree -> equal)
 *   "flaky"     the first ask of each order has no verdict; the retry answers
 *   "hopeless"  never a valid verdict ("[[A]] or [[B]]": two different ones)
 *   "wordy"     a valid verdict wrapped in text, repeated ("... [[X]] ... [[X]]")
 * A `kill_after` > 0 raises SIGKILL on the process at that call (a real kill). */
struct fake {
    int calls;
    int cancel_after; /* > 0: cancel fires once `calls` reached it */
    int kill_after;
    uint32_t max_attempt;
};

static int score_of(const char *user, const char *tag) {
    const char *l = strstr(user, tag);
    const char *s = l ? strstr(l, "s=") : NULL;
    return s ? atoi(s + 2) : -1;
}

static enum sa_status fake_generate(void *impl, const struct sa_judge_request *req, char **out) {
    struct fake *f = impl;
    f->calls++;
    if (f->kill_after > 0 && f->calls == f->kill_after) raise(SIGKILL);
    if (req->attempt > f->max_attempt) f->max_attempt = req->attempt;
    const char *u = req->user;
    const char *text;
    if (strstr(u, "hopeless")) text = "Either [[A]] or [[B]], hard to say.";
    else if (strstr(u, "flaky") && req->attempt == 0) text = "I think the first one is better.";
    else if (strstr(u, "biased")) text = "[[A]]";
    else {
        int a = score_of(u, "\nA: "), b = score_of(u, "\nB: ");
        const char *v = a > b ? "[[A]]" : a < b ? "[[B]]" : "[[C]]";
        static char buf[128];
        if (strstr(u, "wordy")) snprintf(buf, sizeof buf, "Comparing both... verdict %s. Final: %s", v, v);
        else snprintf(buf, sizeof buf, "%s", v);
        text = buf;
    }
    *out = strdup(text);
    return *out ? SA_STATUS_OK : SA_STATUS_NO_MEMORY;
}

static const struct sa_judge_ops fake_ops = {"fake", fake_generate, NULL};

static bool fake_cancel(void *user) {
    struct fake *f = user;
    return f->cancel_after > 0 && f->calls >= f->cancel_after;
}

static const char *const prompt_text = "[system]\nJudge.\n[user]\nQ: {question}\nA: {answer_a}\nB: {answer_b}\n";

/* 12 pairs with known outcomes (ours = answer_a). */
enum { N_PAIRS = 12 };
static struct sa_judge_pair pairs[N_PAIRS];
static char pair_buf[N_PAIRS][3][96];
static const enum sa_pair_outcome want_outcome[N_PAIRS] = {
    SA_PAIR_WIN,  SA_PAIR_WIN,   SA_PAIR_WIN,   SA_PAIR_LOSS,  SA_PAIR_LOSS, SA_PAIR_EQUAL,
    SA_PAIR_EQUAL, SA_PAIR_WIN, SA_PAIR_INVALID, SA_PAIR_WIN, SA_PAIR_LOSS, SA_PAIR_WIN,
};

static void make_pairs(void) {
    /* question kind, score a, score b */
    static const struct {
        const char *kind;
        int a, b;
    } spec[N_PAIRS] = {
        {"plain", 3, 1}, {"plain", 5, 2}, {"wordy", 4, 0}, {"plain", 1, 3}, {"wordy", 0, 9}, {"plain", 2, 2},
        {"biased", 3, 1}, {"flaky", 7, 1}, {"hopeless", 9, 0}, {"plain", 6, 5}, {"flaky", 1, 8}, {"plain", 8, 1},
    };
    for (int i = 0; i < N_PAIRS; i++) {
        snprintf(pair_buf[i][0], 96, "question %d (%s)", i, spec[i].kind);
        snprintf(pair_buf[i][1], 96, "answer a%d s=%d", i, spec[i].a);
        snprintf(pair_buf[i][2], 96, "answer b%d s=%d", i, spec[i].b);
        pairs[i] = (struct sa_judge_pair){.key = pair_buf[i][0],
                                          .question = pair_buf[i][0],
                                          .answer_a = pair_buf[i][1],
                                          .answer_b = pair_buf[i][2]};
    }
}

struct seen {
    enum sa_pair_outcome outcome[N_PAIRS];
    enum sa_verdict ab[N_PAIRS], ba[N_PAIRS];
    uint32_t att_ab[N_PAIRS];
    int n;
};

static bool record_pair(void *user, size_t i, const struct sa_judge_pair *pair, const struct sa_judge_pair_result *r) {
    struct seen *s = user;
    (void)pair;
    if (i < N_PAIRS) {
        s->outcome[i] = r->outcome;
        s->ab[i] = r->ab;
        s->ba[i] = r->ba;
        s->att_ab[i] = r->attempts_ab;
        CHECK(r->text_ab && r->text_ba);
    }
    s->n++;
    return true;
}

static struct sa_judge *fake_judge(struct fake *f, const char *id) {
    struct sa_judge *j = NULL;
    CHECK_OK(sa_judge_init_ops(&fake_ops, f, id, &j));
    return j;
}

static struct sa_judge_prompt *test_prompt(void) {
    struct sa_judge_prompt *p = NULL;
    CHECK_OK(sa_judge_prompt_parse(prompt_text, strlen(prompt_text), "test", &p));
    return p;
}

static void test_aggregation(void) {
    make_pairs();
    struct fake f = {0};
    struct sa_judge *j = fake_judge(&f, "fake-1");
    struct sa_judge_prompt *p = test_prompt();
    struct seen seen = {0};
    struct sa_judge_run_params rp = sa_judge_run_default_params();
    rp.retries = 2;
    rp.on_pair = record_pair;
    rp.user = &seen;
    struct sa_judge_run_stats st;
    CHECK_OK(sa_judge_run(j, p, pairs, N_PAIRS, &rp, &st));
    CHECK_EQ_INT(seen.n, N_PAIRS);
    for (int i = 0; i < N_PAIRS; i++) CHECK_MSG(seen.outcome[i] == want_outcome[i], "pair %d: outcome %d, want %d", i, seen.outcome[i], want_outcome[i]);
    /* the verdicts of each order as the judge gave them: a win is [[A]] then [[B]] */
    CHECK(seen.ab[0] == SA_VERDICT_A && seen.ba[0] == SA_VERDICT_B);
    CHECK(seen.ab[3] == SA_VERDICT_B && seen.ba[3] == SA_VERDICT_A);
    CHECK(seen.ab[5] == SA_VERDICT_TIE && seen.ba[5] == SA_VERDICT_TIE);
    CHECK(seen.ab[6] == SA_VERDICT_A && seen.ba[6] == SA_VERDICT_A);
    CHECK_EQ_INT(seen.att_ab[7], 2); /* flaky: answered on the retry */
    CHECK_EQ_INT(seen.att_ab[8], 3); /* hopeless: 1 + 2 retries */
    /* W 6, L 3, E 2, invalid 1 */
    CHECK_EQ_INT(st.wr.n_win, 6);
    CHECK_EQ_INT(st.wr.n_loss, 3);
    CHECK_EQ_INT(st.wr.n_equal, 2);
    CHECK_EQ_INT(st.wr.n_invalid, 1);
    CHECK_NEAR(st.wr.rate, (6.0 - 3.0) / 11.0 * 100.0, 1e-9);
    CHECK(st.wr.lo <= st.wr.rate && st.wr.rate <= st.wr.hi && st.wr.lo < st.wr.hi);
    /* requests: 12 pairs x 2 orders = 24 first asks; flaky pairs (2) retry once per order (+4);
     * the hopeless pair retries twice per order (+4) */
    CHECK_EQ_INT(st.n_requests, 32);
    CHECK_EQ_INT(f.calls, 32);
    CHECK_EQ_INT(st.n_retries, 8);
    CHECK_EQ_INT(st.n_invalid_orders, 2);
    CHECK_EQ_INT(st.n_cached, 0);
    CHECK_EQ_INT(st.n_pairs, N_PAIRS);
    CHECK_EQ_INT(f.max_attempt, 2);
    /* the same with no retries: the flaky pairs become invalid too */
    struct fake f0 = {0};
    struct sa_judge *j0 = fake_judge(&f0, "fake-1");
    rp.retries = 0;
    rp.on_pair = NULL;
    CHECK_OK(sa_judge_run(j0, p, pairs, N_PAIRS, &rp, &st));
    CHECK_EQ_INT(st.wr.n_invalid, 3);
    CHECK_EQ_INT(st.wr.n_win, 5);
    CHECK_EQ_INT(st.wr.n_loss, 2);
    CHECK_EQ_INT(st.n_requests, 24);
    CHECK_EQ_INT(st.n_invalid_orders, 6);
    CHECK_EQ_INT(f0.max_attempt, 0);
    /* a pair without an answer, a prompt needing a reference */
    struct sa_judge_pair badp = {.key = "x", .question = "q", .answer_a = "a", .answer_b = NULL};
    CHECK(sa_judge_run(j0, p, &badp, 1, &rp, NULL) == SA_STATUS_BAD_ARGUMENT);
    struct sa_judge_prompt *pr = NULL;
    const char *tr = "{question} {reference} {answer_a} {answer_b}";
    CHECK_OK(sa_judge_prompt_parse(tr, strlen(tr), "r", &pr));
    CHECK(sa_judge_run(j0, pr, pairs, 1, &rp, NULL) == SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "reference") != NULL);
    sa_judge_prompt_free(pr);
    sa_judge_free(j0);
    sa_judge_free(j);
    sa_judge_prompt_free(p);
}

/* Lines of a cache file: checks each is an entry and each key appears once. */
static int cache_lines(const char *path, bool *unique) {
    char *t = slurp(path);
    *unique = true;
    if (!t) return -1;
    char **keys = NULL;
    int n = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(o, "key");
        if (!cJSON_IsString(k) || strlen(k->valuestring) != 64) *unique = false;
        for (int i = 0; cJSON_IsString(k) && i < n; i++)
            if (!strcmp(keys[i], k->valuestring)) *unique = false;
        keys = realloc(keys, (size_t)(n + 1) * sizeof *keys);
        keys[n++] = strdup(cJSON_IsString(k) ? k->valuestring : "");
        cJSON_Delete(o);
    }
    for (int i = 0; i < n; i++) free(keys[i]);
    free(keys);
    free(t);
    return n;
}

static bool same_wr(const struct sa_eval_winrate *a, const struct sa_eval_winrate *b) {
    return a->n_win == b->n_win && a->n_loss == b->n_loss && a->n_equal == b->n_equal && a->n_invalid == b->n_invalid &&
           a->rate == b->rate && a->lo == b->lo && a->hi == b->hi;
}

static void test_cache(void) {
    make_pairs();
    struct sa_judge_prompt *p = test_prompt();
    char *cpath = path_in_tmp("cache_basic.jsonl");
    unlink(cpath);
    struct sa_judge_run_params rp = sa_judge_run_default_params();
    rp.cache_path = cpath;
    struct sa_judge_run_stats st1, st2, st3;
    struct fake f1 = {0}, f2 = {0}, f3 = {0};
    struct sa_judge *j1 = fake_judge(&f1, "fake-1");
    CHECK_OK(sa_judge_run(j1, p, pairs, N_PAIRS, &rp, &st1));
    CHECK_EQ_INT(st1.n_requests, 32);
    bool uniq;
    CHECK_EQ_INT(cache_lines(cpath, &uniq), 32);
    CHECK(uniq);
    /* a re-run is free and gives the same result */
    struct sa_judge *j2 = fake_judge(&f2, "fake-1");
    CHECK_OK(sa_judge_run(j2, p, pairs, N_PAIRS, &rp, &st2));
    CHECK_EQ_INT(f2.calls, 0);
    CHECK_EQ_INT(st2.n_requests, 0);
    CHECK_EQ_INT(st2.n_cached, 32);
    CHECK_EQ_INT(st2.n_retries, 8);
    CHECK(same_wr(&st1.wr, &st2.wr));
    CHECK_EQ_INT(cache_lines(cpath, &uniq), 32);
    /* another judge id shares nothing */
    struct sa_judge *j3 = fake_judge(&f3, "fake-2");
    CHECK_OK(sa_judge_run(j3, p, pairs, 2, &rp, &st3));
    CHECK_EQ_INT(st3.n_cached, 0);
    CHECK_EQ_INT(f3.calls, 4);
    CHECK_EQ_INT(cache_lines(cpath, &uniq), 36);
    CHECK(uniq);
    /* more retries later: only the new attempts are asked */
    struct fake f4 = {0};
    struct sa_judge *j4 = fake_judge(&f4, "fake-1");
    rp.retries = 3;
    CHECK_OK(sa_judge_run(j4, p, pairs, N_PAIRS, &rp, &st3));
    CHECK_EQ_INT(f4.calls, 2); /* the hopeless pair, attempt 3 of each order */
    CHECK_EQ_INT(cache_lines(cpath, &uniq), 38);
    CHECK(uniq);
    /* the cache is locked while a run holds it */
    FILE *lf = fopen(cpath, "r");
    CHECK(lf && flock(fileno(lf), LOCK_EX | LOCK_NB) == 0);
    CHECK(sa_judge_run(j4, p, pairs, 1, &rp, NULL) == SA_STATUS_IO);
    CHECK(strstr(sa_last_error(), "in use") != NULL);
    if (lf) fclose(lf);
    /* a line that is not an entry (not the torn last one) is an error */
    char *bpath = path_in_tmp("cache_bad.jsonl");
    FILE *bf = fopen(bpath, "w");
    fputs("{\"not\": \"an entry\"}\n", bf);
    fclose(bf);
    CHECK(sa_judge_run(j4, p, pairs, 1, &rp, NULL) == SA_STATUS_OK); /* rp points at cpath */
    rp.cache_path = bpath;
    CHECK(sa_judge_run(j4, p, pairs, 1, &rp, NULL) == SA_STATUS_BAD_FILE);
    CHECK(strstr(sa_last_error(), ":1:") != NULL);
    free(bpath);
    sa_judge_free(j1);
    sa_judge_free(j2);
    sa_judge_free(j3);
    sa_judge_free(j4);
    sa_judge_prompt_free(p);
    free(cpath);
}

/* Interrupted runs resume: (1) a cancel after 9 requests, (2) a torn last line as a kill in
 * the middle of a write leaves it, (3) a real SIGKILL of a child process after 20. Each
 * resumed cache holds every key once, and the result equals an uninterrupted run. */
static void test_resume(void) {
    make_pairs();
    struct sa_judge_prompt *p = test_prompt();
    struct sa_judge_run_params rp = sa_judge_run_default_params();
    struct sa_judge_run_stats ref, st;
    struct fake fr = {0};
    struct sa_judge *jr = fake_judge(&fr, "fake-1");
    CHECK_OK(sa_judge_run(jr, p, pairs, N_PAIRS, &rp, &ref)); /* uninterrupted, no cache */
    sa_judge_free(jr);

    char *cpath = path_in_tmp("cache_resume.jsonl");
    unlink(cpath);
    rp.cache_path = cpath;
    /* (1) cancelled after 9 generations */
    struct fake f1 = {.cancel_after = 9};
    struct sa_judge *j1 = fake_judge(&f1, "fake-1");
    rp.cancel = fake_cancel;
    rp.cancel_user = &f1;
    CHECK(sa_judge_run(j1, p, pairs, N_PAIRS, &rp, &st) == SA_STATUS_CANCELLED);
    CHECK_EQ_INT(f1.calls, 9);
    CHECK(st.n_pairs < N_PAIRS);
    bool uniq;
    CHECK_EQ_INT(cache_lines(cpath, &uniq), 9);
    sa_judge_free(j1);
    /* (2) a torn last line */
    FILE *f = fopen(cpath, "a");
    fputs("{\"key\": \"0123456789abcdef0123", f);
    fclose(f);
    rp.cancel = NULL;
    struct fake f2 = {0};
    struct sa_judge *j2 = fake_judge(&f2, "fake-1");
    CHECK_OK(sa_judge_run(j2, p, pairs, N_PAIRS, &rp, &st));
    CHECK_EQ_INT(f2.calls, 32 - 9);
    CHECK_EQ_INT(st.n_cached, 9);
    CHECK(same_wr(&st.wr, &ref.wr));
    CHECK_EQ_INT(cache_lines(cpath, &uniq), 32);
    CHECK(uniq);
    char *t = slurp(cpath);
    CHECK(t && !strstr(t, "0123456789abcdef0123\"") && !strstr(t, "\"0123456789abcdef0123{"));
    CHECK(t && t[strlen(t) - 1] == '\n');
    free(t);
    sa_judge_free(j2);

    /* (3) a real kill: a child process dies (SIGKILL) at its 21st generation */
    char *kpath = path_in_tmp("cache_kill.jsonl");
    unlink(kpath);
    rp.cache_path = kpath;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        struct fake fk = {.kill_after = 21};
        struct sa_judge *jk = NULL;
        if (sa_judge_init_ops(&fake_ops, &fk, "fake-1", &jk)) _exit(3);
        enum sa_status ks = sa_judge_run(jk, p, pairs, N_PAIRS, &rp, NULL);
        (void)ks;
        _exit(4); /* not reached */
    }
    int ws = 0;
    CHECK(pid > 0 && waitpid(pid, &ws, 0) == pid);
    CHECK(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    CHECK_EQ_INT(cache_lines(kpath, &uniq), 20);
    struct fake f3 = {0};
    struct sa_judge *j3 = fake_judge(&f3, "fake-1");
    CHECK_OK(sa_judge_run(j3, p, pairs, N_PAIRS, &rp, &st));
    CHECK_EQ_INT(f3.calls, 12);
    CHECK(same_wr(&st.wr, &ref.wr));
    CHECK_EQ_INT(cache_lines(kpath, &uniq), 32);
    CHECK(uniq);
    /* both resumed caches hold the same entries (the same keys in the same order) */
    char *a = slurp(cpath), *b = slurp(kpath);
    CHECK(a && b && !strcmp(a, b));
    free(a);
    free(b);
    sa_judge_free(j3);
    sa_judge_prompt_free(p);
    free(cpath);
    free(kpath);
}

/* ---- the upstream engine, over a scripted upstream ------------------------------------- */

struct fake_up {
    char prompt[2048];
    struct sa_upstream_gen_params last;
    char stop0[32];
    int starts;
    int sent;
};

static enum sa_status fu_start(void *impl, const char *prompt, size_t len, const struct sa_upstream_gen_params *p) {
    struct fake_up *u = impl;
    snprintf(u->prompt, sizeof u->prompt, "%.*s", (int)len, prompt);
    u->last = *p;
    u->stop0[0] = 0;
    if (p->n_stop) snprintf(u->stop0, sizeof u->stop0, "%s", p->stop[0]);
    u->starts++;
    u->sent = 0;
    return SA_STATUS_OK;
}

static enum sa_status fu_next(void *impl, struct sa_upstream_chunk *out) {
    struct fake_up *u = impl;
    static const char *const pieces[] = {"Response A is ", "better. ", "[[A]]"};
    if (u->sent < 3) {
        *out = (struct sa_upstream_chunk){pieces[u->sent], strlen(pieces[u->sent]), 1, SA_UPSTREAM_FINISH_NONE};
        u->sent++;
    } else {
        *out = (struct sa_upstream_chunk){"", 0, 0, SA_UPSTREAM_FINISH_STOP};
    }
    return SA_STATUS_OK;
}

static void fu_cancel(void *impl) {
    (void)impl;
}
static void fu_free(void *impl) {
    (void)impl;
}

static const struct sa_upstream_ops fake_up_ops = {"fake", fu_start, fu_next, fu_cancel, fu_free};

static void test_upstream_engine(void) {
    struct fake_up fu = {0};
    struct sa_upstream *up = NULL;
    CHECK_OK(sa_upstream_init_ops(&fake_up_ops, &fu, &up));
    struct sa_judge_upstream_params jp = sa_judge_upstream_default_params();
    jp.format = SA_CHAT_FORMAT_CHATML;
    jp.model_id = "local:test.gguf:123";
    jp.max_tokens = 64;
    jp.seed = 10;
    jp.stop_at_eot = true;
    struct sa_judge *j = NULL;
    CHECK_OK(sa_judge_init_upstream(up, &jp, &j));
    if (!j) return;
    const char *id = sa_judge_id(j);
    CHECK(strstr(id, "local:test.gguf:123|chatml|") == id);
    CHECK(strstr(id, "max_tokens=64") && strstr(id, "seed=10") && strstr(id, "retry_temp=0.7"));
    struct sa_judge_request req = {.system = "Be fair.", .user = "Which is better?", .attempt = 0};
    char *out = NULL;
    CHECK_OK(sa_judge_generate(j, &req, &out));
    CHECK_EQ_STR(out, "Response A is better. [[A]]");
    free(out);
    CHECK_EQ_STR(fu.prompt, "<|im_start|>system\nBe fair.<|im_end|>\n<|im_start|>user\nWhich is better?<|im_end|>\n"
                            "<|im_start|>assistant\n");
    CHECK(fu.last.temperature == 0 && fu.last.max_tokens == 64);
    CHECK_EQ_STR(fu.stop0, "<|im_end|>");
    req.attempt = 2;
    req.system = "";
    CHECK_OK(sa_judge_generate(j, &req, &out));
    free(out);
    CHECK(fu.last.temperature > 0.69f && fu.last.temperature < 0.71f && fu.last.seed == 12);
    CHECK(fu.last.top_p > 0.94f && fu.last.top_p < 0.96f);
    CHECK(strstr(fu.prompt, "<|im_start|>system") == NULL); /* no system message given */
    sa_judge_free(j);
    /* bad params free the upstream and fail */
    struct fake_up fu2 = {0};
    CHECK_OK(sa_upstream_init_ops(&fake_up_ops, &fu2, &up));
    jp.format = SA_CHAT_FORMAT_UNKNOWN;
    CHECK(sa_judge_init_upstream(up, &jp, &j) == SA_STATUS_BAD_ARGUMENT && !j);
    CHECK(sa_judge_init_ops(&fake_ops, NULL, "", &j) == SA_STATUS_BAD_ARGUMENT && !j);
}

int main(void) {
    RUN(test_prompt_parse);
    RUN(test_aggregation);
    RUN(test_cache);
    RUN(test_resume);
    RUN(test_upstream_engine);
    return harness_summary();
}
