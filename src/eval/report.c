/* report.c: `salign eval report`: reads evaluation results (eval math / judge / winrate
 * JSON, pipeline traces), writes a Markdown report and its SVG plots with a small SVG
 * writer of our own: bar charts with 95% intervals, line charts by round, a grouped
 * histogram. The input formats are in docs/EVAL.md ("Report"). */
#define _GNU_SOURCE
#include "sa/eval.h"
#include "sa/jsonl.h"
#include "sa/pipeline_trace.h"

#include "core/core_impl.h"
#include "core/svg_impl.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the results read ---------------------------------------------------------------- */

struct round_acc {
    int32_t round;
    double acc, lo, hi; /* fractions in [0, 1] */
};

struct acc_res {
    char *label;
    bool has_overall;
    double acc, lo, hi;
    size_t n, n_correct;
    struct round_acc *rounds; /* (n_rounds) */
    size_t n_rounds;
};

struct win_res {
    char *label, *aspect; /* aspect may be NULL */
    double rate, lo, hi;
    size_t w, l, e, inv;
};

struct trace_res {
    char *label;
    double *edit;       /* (n_edit) edit ratios of aligned rounds */
    size_t n_edit, n_copied, cap_edit;
    double *sum_ms;     /* (n_round_slots) upstream + aligner ms summed by round */
    size_t *cnt_ms;     /* (n_round_slots) */
    size_t n_round_slots;
    double *tot, *up, *al; /* (n_lat) per-line latencies */
    size_t n_lat, cap_lat;
};

struct report {
    struct acc_res *acc;
    size_t n_acc;
    struct win_res *win;
    size_t n_win;
    struct trace_res *tr;
    size_t n_tr;
    char **skipped; /* "file: why" */
    size_t n_skipped;
    char **files;   /* "file\tkind\tlabel" rows of the inputs table */
    size_t n_files;
};

static void trace_free(struct trace_res *t) {
    free(t->label);
    free(t->edit);
    free(t->sum_ms);
    free(t->cnt_ms);
    free(t->tot);
    free(t->up);
    free(t->al);
}

static void report_free(struct report *r) {
    for (size_t i = 0; i < r->n_acc; i++) {
        free(r->acc[i].label);
        free(r->acc[i].rounds);
    }
    for (size_t i = 0; i < r->n_win; i++) {
        free(r->win[i].label);
        free(r->win[i].aspect);
    }
    for (size_t i = 0; i < r->n_tr; i++) trace_free(&r->tr[i]);
    for (size_t i = 0; i < r->n_skipped; i++) free(r->skipped[i]);
    for (size_t i = 0; i < r->n_files; i++) free(r->files[i]);
    free(r->acc);
    free(r->win);
    free(r->tr);
    free(r->skipped);
    free(r->files);
}

/* Grows *arr (of `size`-byte elements) to hold n + 1. */
static bool grow(void **arr, size_t n, size_t size) {
    /* capacity 4, doubled whenever n reaches a power of two >= 4: always >= n + 1 */
    if (n != 0 && (n < 4 || (n & (n - 1)))) return true;
    size_t cap = n ? 2 * n : 4;
    void *p = realloc(*arr, cap * size);
    if (!p) return false;
    *arr = p;
    return true;
}

static bool push_str(char ***arr, size_t *n, char *s) {
    if (!s || !grow((void **)arr, *n, sizeof **arr)) {
        free(s);
        return false;
    }
    (*arr)[(*n)++] = s;
    return true;
}

static char *file_stem(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    const char *dot = strrchr(b, '.');
    return strndup(b, dot && dot > b ? (size_t)(dot - b) : strlen(b));
}

static bool num(const cJSON *o, const char *k, double *v) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble)) return false;
    *v = j->valuedouble;
    return true;
}

static bool interval(const cJSON *o, double *lo, double *hi) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, "ci95");
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != 2) return false;
    const cJSON *a = cJSON_GetArrayItem(j, 0), *b = cJSON_GetArrayItem(j, 1);
    if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b)) return false;
    *lo = a->valuedouble;
    *hi = b->valuedouble;
    return isfinite(*lo) && isfinite(*hi);
}

static char *label_of(const cJSON *o, const char *path) {
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "label");
    return cJSON_IsString(l) && *l->valuestring ? strdup(l->valuestring) : file_stem(path);
}

/* `eval math --json`: {n, correct, accuracy, ci95, rounds?: [{round, accuracy, ci95}]} */
static enum sa_status read_accuracy(struct report *r, const cJSON *o, const char *path) {
    if (!grow((void **)&r->acc, r->n_acc, sizeof *r->acc)) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    struct acc_res *a = &r->acc[r->n_acc];
    memset(a, 0, sizeof *a);
    if (!(a->label = label_of(o, path))) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    r->n_acc++;
    double v, n = 0, k = 0;
    if (num(o, "accuracy", &v)) {
        if (v < 0 || v > 1 || !interval(o, &a->lo, &a->hi))
            return sa_error(SA_STATUS_BAD_JSON, "%s: \"accuracy\" must be in [0, 1] with \"ci95\": [lo, hi]", path);
        a->has_overall = true;
        a->acc = v;
        if (num(o, "n", &n)) a->n = (size_t)n;
        if (num(o, "correct", &k)) a->n_correct = (size_t)k;
    }
    const cJSON *rounds = cJSON_GetObjectItemCaseSensitive(o, "rounds");
    if (!rounds) return SA_STATUS_OK;
    if (!cJSON_IsArray(rounds)) return sa_error(SA_STATUS_BAD_JSON, "%s: \"rounds\" is not an array", path);
    size_t m = (size_t)cJSON_GetArraySize(rounds), i = 0;
    if (!(a->rounds = calloc(m ? m : 1, sizeof *a->rounds))) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, rounds) {
        struct round_acc *ra = &a->rounds[i];
        double rd;
        if (!num(e, "round", &rd) || rd != floor(rd) || rd < 0 || rd > 1e6 || !num(e, "accuracy", &ra->acc) ||
            ra->acc < 0 || ra->acc > 1 || !interval(e, &ra->lo, &ra->hi))
            return sa_error(SA_STATUS_BAD_JSON,
                            "%s: rounds[%zu] needs \"round\" (integer >= 0), \"accuracy\" in [0, 1] and \"ci95\"", path,
                            i);
        ra->round = (int32_t)rd;
        i++;
    }
    a->n_rounds = m;
    return SA_STATUS_OK;
}

/* `eval judge --json` / `eval winrate --json`: {win, loss, equal, invalid, win_rate, ci95} */
static enum sa_status read_winrate(struct report *r, const cJSON *o, const char *path) {
    if (!grow((void **)&r->win, r->n_win, sizeof *r->win)) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    struct win_res *w = &r->win[r->n_win];
    memset(w, 0, sizeof *w);
    if (!(w->label = label_of(o, path))) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    r->n_win++;
    const cJSON *asp = cJSON_GetObjectItemCaseSensitive(o, "aspect");
    if (cJSON_IsString(asp) && !(w->aspect = strdup(asp->valuestring)))
        return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    double c[4] = {0};
    const char *names[4] = {"win", "loss", "equal", "invalid"};
    for (int i = 0; i < 4; i++)
        if (!num(o, names[i], &c[i]) || c[i] < 0)
            return sa_error(SA_STATUS_BAD_JSON, "%s: \"%s\" must be a count", path, names[i]);
    if (!num(o, "win_rate", &w->rate) || w->rate < -100 || w->rate > 100 || !interval(o, &w->lo, &w->hi))
        return sa_error(SA_STATUS_BAD_JSON, "%s: \"win_rate\" must be in [-100, 100] with \"ci95\": [lo, hi]", path);
    w->w = (size_t)c[0];
    w->l = (size_t)c[1];
    w->e = (size_t)c[2];
    w->inv = (size_t)c[3];
    return SA_STATUS_OK;
}

static bool push_d(double **arr, size_t n, double v) {
    if (!grow((void **)arr, n, sizeof **arr)) return false;
    (*arr)[n] = v;
    return true;
}

/* One line of a pipeline trace (`salign align --trace`, read by sa_trace_read); lines
 * without edit_ratio, upstream_ms or aligner_ms are not counted (not "known"). */
static enum sa_status trace_line(void *user, const struct sa_trace_round *r, const char *where) {
    struct trace_res *t = user;
    const uint32_t known = SA_TRACE_EDIT_RATIO | SA_TRACE_UPSTREAM_MS | SA_TRACE_ALIGNER_MS;
    if (!(r->has & known)) return SA_STATUS_OK;
    /* rounds index the latency slots: bounded here, where they become memory */
    double rd = (r->has & SA_TRACE_ROUND) ? r->round : 0;
    if (rd > 1e6) return sa_error(SA_STATUS_BAD_JSON, "%s: \"round\" %.0f is over 1000000", where, rd);
    bool has_er = r->has & SA_TRACE_EDIT_RATIO;
    double er = r->edit_ratio;
    bool aligned = (r->has & SA_TRACE_ALIGNED) ? r->aligned : has_er;
    if (aligned && has_er) {
        if (!push_d(&t->edit, t->n_edit, er)) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        t->n_edit++;
        t->n_copied += ((r->has & SA_TRACE_COPIED) && r->copied) || er == 0;
    }
    bool has_up = r->has & SA_TRACE_UPSTREAM_MS, has_al = r->has & SA_TRACE_ALIGNER_MS;
    double up = has_up ? r->upstream_ms : 0, al = has_al ? r->aligner_ms : 0;
    if (has_up || has_al) {
        size_t n = t->n_lat;
        if (!push_d(&t->tot, n, up + al) || !push_d(&t->up, n, up) || !push_d(&t->al, n, al))
            return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        t->n_lat++;
        size_t slot = (size_t)rd;
        if (slot >= t->n_round_slots) {
            size_t m = slot + 1;
            double *s = realloc(t->sum_ms, m * sizeof *s);
            if (s) t->sum_ms = s;
            size_t *c = realloc(t->cnt_ms, m * sizeof *c);
            if (c) t->cnt_ms = c;
            if (!s || !c) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
            for (size_t i = t->n_round_slots; i < m; i++) t->sum_ms[i] = 0, t->cnt_ms[i] = 0;
            t->n_round_slots = m;
        }
        t->sum_ms[slot] += up + al;
        t->cnt_ms[slot]++;
    }
    return SA_STATUS_OK;
}

/* Stops (SA_STATUS_CANCELLED) at the first line with a field only traces have. */
static enum sa_status sniff_trace(void *user, const struct sa_jsonl_item *it) {
    (void)user;
    static const char *const keys[] = {"edit_ratio", "upstream_ms", "aligner_ms"};
    for (size_t k = 0; k < SA_ARRAY_LEN(keys); k++)
        if (cJSON_GetObjectItemCaseSensitive(it->object, keys[k])) return SA_STATUS_CANCELLED;
    return SA_STATUS_OK;
}

/* *is_trace 1: the text is a trace (added to r); 0: it is not one (nothing added). A trace
 * is JSONL where a line with edit_ratio, upstream_ms or aligner_ms comes before any line
 * that fails to read; from there on, every line must be a good trace line. */
static enum sa_status read_trace(struct report *r, const char *text, size_t len, const char *path, int *is_trace) {
    *is_trace = 0;
    if (sa_jsonl_parse(text, len, path, 0, sniff_trace, NULL, NULL) != SA_STATUS_CANCELLED) return SA_STATUS_OK;
    struct trace_res t = {0};
    enum sa_status s = sa_trace_read(text, len, path, trace_line, &t, NULL);
    if (!s && (!(t.label = file_stem(path)) || !grow((void **)&r->tr, r->n_tr, sizeof *r->tr)))
        s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    if (s) {
        trace_free(&t);
        return s;
    }
    r->tr[r->n_tr++] = t;
    *is_trace = 1;
    return SA_STATUS_OK;
}

/* Reads one file; `from_dir`: a file found in a directory (skipped, not an error, when it
 * is none of the kinds). */
static enum sa_status read_input(struct report *r, const char *path, bool from_dir) {
    char *text = NULL;
    size_t len = 0;
    enum sa_status s = sa_read_file(path, 1u << 30, &text, &len);
    if (s) return sa_error_wrap(s, "report");
    const char *kind = NULL;
    char *label = NULL;
    /* one JSON object (nothing but spaces after it), else maybe JSONL */
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    while (o && end && end < text + len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')) end++;
    if (o && end != text + len) {
        cJSON_Delete(o);
        o = NULL;
    }
    if (cJSON_IsObject(o)) {
        const cJSON *rounds = cJSON_GetObjectItemCaseSensitive(o, "rounds");
        if (cJSON_GetObjectItemCaseSensitive(o, "win_rate")) {
            kind = "win rate";
            s = read_winrate(r, o, path);
            if (!s) label = strdup(r->win[r->n_win - 1].label);
        } else if (rounds || cJSON_GetObjectItemCaseSensitive(o, "accuracy")) {
            kind = rounds ? "accuracy by round" : "accuracy";
            s = read_accuracy(r, o, path);
            if (!s) label = strdup(r->acc[r->n_acc - 1].label);
        }
    }
    cJSON_Delete(o);
    if (!s && !kind) {
        int is_trace = 0;
        s = read_trace(r, text, len, path, &is_trace);
        if (!s && is_trace) {
            kind = "trace";
            label = strdup(r->tr[r->n_tr - 1].label);
        }
    }
    free(text);
    if (s) {
        free(label);
        return s;
    }
    if (!kind) {
        if (!from_dir)
            return sa_error(SA_STATUS_BAD_FILE,
                            "%s: not a result the report reads (eval math/judge/winrate --json output, or a "
                            "pipeline trace); see docs/EVAL.md",
                            path);
        char *m = NULL;
        if (asprintf(&m, "%s: not a result the report reads", path) < 0) m = NULL;
        if (!push_str(&r->skipped, &r->n_skipped, m)) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        return SA_STATUS_OK;
    }
    char *row = NULL;
    if (!label || asprintf(&row, "%s\t%s\t%s", path, kind, label) < 0) row = NULL;
    free(label);
    if (!push_str(&r->files, &r->n_files, row)) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    return SA_STATUS_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static enum sa_status read_dir(struct report *r, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return sa_error(SA_STATUS_IO, "report: %s: cannot open the directory: %s", dir, strerror(errno));
    char **names = NULL;
    size_t n = 0;
    enum sa_status s = SA_STATUS_OK;
    struct dirent *e;
    while (!s && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        bool json = l > 5 && !strcmp(e->d_name + l - 5, ".json");
        bool jsonl = l > 6 && !strcmp(e->d_name + l - 6, ".jsonl");
        if (!json && !jsonl) continue;
        char *p = NULL;
        if (asprintf(&p, "%s/%s", dir, e->d_name) < 0) p = NULL;
        if (!push_str(&names, &n, p)) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && !s; i++) s = read_input(r, names[i], true);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return s;
}

/* ---- the charts (drawn with the SVG writer of core/svg_impl.h) ------------------------ */

/* label cut to at most max_chars characters (whole UTF-8 sequences) + "..." when cut. */
static void short_label(char *dst, size_t size, const char *src, size_t max_chars) {
    size_t i = 0, chars = 0, n = strlen(src);
    while (i < n && chars < max_chars) {
        int l = sa_utf8_seq_len((unsigned char)src[i]);
        if (l <= 0 || i + (size_t)l > n) l = 1;
        i += (size_t)l;
        chars++;
    }
    snprintf(dst, size, "%.*s%s", (int)i, src, i < n ? "..." : "");
}

static const char *const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                      "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
#define COLOR(i) palette[(i) % SA_ARRAY_LEN(palette)]

enum { SVG_W = 720, SVG_H = 400 };

static void svg_begin(struct sa_svg *g, const char *title) {
    sa_svg_init(g);
    sa_svg_printf(g,
                  "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                  "font-family=\"sans-serif\">\n"
                  "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n",
                  SVG_W, SVG_H, SVG_W, SVG_H, SVG_W, SVG_H);
    sa_svg_printf(g, "<title>");
    sa_svg_escaped(g, title);
    sa_svg_printf(g, "</title>\n");
    sa_svg_text(g, SVG_W / 2.0, 24, "middle", 16, "font-weight=\"bold\"", title);
}

/* Y grid, ticks and labels, the axis titles, the frame. */
static void svg_axes(struct sa_svg *g, const struct sa_svg_frame *f, const char *xtitle, const char *ytitle) {
    double step = sa_svg_nice_step(f->ymax - f->ymin, 5);
    for (double y = ceil(f->ymin / step - 1e-9) * step; y <= f->ymax + 1e-9 * step; y += step) {
        double py = sa_svg_fy(f, y);
        sa_svg_printf(g, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>\n", f->x0, py,
                      f->x1, py);
        char lab[32];
        snprintf(lab, sizeof lab, "%g", fabs(y) < 1e-9 * step ? 0.0 : y);
        sa_svg_text(g, f->x0 - 6, py + 4, "end", 11, NULL, lab);
    }
    sa_svg_printf(g, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333333\"/>\n",
                  f->x0, f->y0, f->x1 - f->x0, f->y1 - f->y0);
    if (xtitle) sa_svg_text(g, (f->x0 + f->x1) / 2, SVG_H - 8, "middle", 12, NULL, xtitle);
    if (ytitle) {
        char tr[96];
        snprintf(tr, sizeof tr, "transform=\"rotate(-90 16 %.1f)\"", (f->y0 + f->y1) / 2);
        sa_svg_text(g, 16, (f->y0 + f->y1) / 2, "middle", 12, tr, ytitle);
    }
}

static void svg_legend(struct sa_svg *g, const struct sa_svg_frame *f, const char *const *labels, size_t n) {
    double x = f->x1 + 12, y = f->y0 + 8;
    for (size_t i = 0; i < n; i++, y += 18) {
        sa_svg_printf(g, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"12\" fill=\"%s\"/>\n", x, y, COLOR(i));
        char lab[160];
        short_label(lab, sizeof lab, labels[i], 24);
        sa_svg_text(g, x + 16, y + 10, "start", 11, NULL, lab);
    }
}

/* Bars with 95% intervals, one per category, over [ymin, ymax] (a zero line if inside). */
static enum sa_status bar_chart(const char *path, const char *title, const char *ytitle, const char *const *labels,
                                const double *v, const double *lo, const double *hi, size_t n, double ymin,
                                double ymax) {
    struct sa_svg g;
    svg_begin(&g, title);
    struct sa_svg_frame f = {70, 44, SVG_W - 20, SVG_H - 90, 0, (double)n, ymin, ymax};
    svg_axes(&g, &f, NULL, ytitle);
    double bw = (f.x1 - f.x0) / (double)n;
    for (size_t i = 0; i < n; i++) {
        double cx = f.x0 + bw * ((double)i + 0.5), w = SA_MIN(bw * 0.6, 80.0);
        double base = sa_svg_fy(&f, SA_MAX(ymin, SA_MIN(0.0, ymax))), top = sa_svg_fy(&f, v[i]);
        sa_svg_printf(&g, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n",
                      cx - w / 2, SA_MIN(base, top), w, fabs(base - top), COLOR(i));
        double plo = sa_svg_fy(&f, SA_MAX(lo[i], ymin)), phi = sa_svg_fy(&f, SA_MIN(hi[i], ymax));
        sa_svg_printf(&g,
                      "<path class=\"interval\" d=\"M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f\" stroke=\"black\" "
                      "stroke-width=\"1.5\" fill=\"none\"/>\n",
                      cx, plo, phi, cx - 6, plo, cx + 6, cx - 6, phi, cx + 6);
        char val[32];
        snprintf(val, sizeof val, "%.1f", v[i]);
        sa_svg_text(&g, cx + 10, top + (v[i] >= 0 ? -4 : 12), "start", 11, NULL, val);
        char lab[160];
        short_label(lab, sizeof lab, labels[i], 24);
        char tr[96];
        snprintf(tr, sizeof tr, "transform=\"rotate(-20 %.1f %.1f)\"", cx, f.y1 + 16);
        sa_svg_text(&g, cx, f.y1 + 16, "end", 11, tr, lab);
    }
    if (ymin < 0 && ymax > 0)
        sa_svg_printf(&g, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333333\"/>\n", f.x0,
                      sa_svg_fy(&f, 0), f.x1, sa_svg_fy(&f, 0));
    return sa_svg_finish(&g, path);
}

/* One line per series over integer x; lo/hi (may be NULL) draw a shaded band. ymax <= ymin:
 * the y range goes from ymin to the largest value. */
struct series {
    const char *label;
    const double *x, *y, *lo, *hi;
    size_t n;
};

static enum sa_status line_chart(const char *path, const char *title, const char *xtitle, const char *ytitle,
                                 const struct series *s, size_t ns, double ymin, double ymax) {
    double xmin = INFINITY, xmax = -INFINITY;
    const bool auto_y = ymax <= ymin; /* from ymin up to the largest value, with headroom */
    for (size_t i = 0; i < ns; i++)
        for (size_t k = 0; k < s[i].n; k++) {
            xmin = SA_MIN(xmin, s[i].x[k]);
            xmax = SA_MAX(xmax, s[i].x[k]);
            if (auto_y) ymax = SA_MAX(ymax, s[i].y[k]);
        }
    if (!(xmin <= xmax)) xmin = xmax = 0;
    if (xmax == xmin) xmax = xmin + 1;
    if (auto_y) ymax = ymax > ymin ? ymin + (ymax - ymin) * 1.1 : ymin + 1;
    struct sa_svg g;
    svg_begin(&g, title);
    struct sa_svg_frame f = {70, 44, SVG_W - 170, SVG_H - 50, xmin, xmax, ymin, ymax};
    svg_axes(&g, &f, xtitle, ytitle);
    double step = SA_MAX(1.0, sa_svg_nice_step(xmax - xmin, 8));
    for (double x = ceil(xmin / step) * step; x <= xmax + 1e-9; x += step) {
        char lab[32];
        snprintf(lab, sizeof lab, "%g", x);
        sa_svg_text(&g, sa_svg_fx(&f, x), f.y1 + 16, "middle", 11, NULL, lab);
    }
    const char **labels = malloc((ns ? ns : 1) * sizeof *labels);
    if (!labels) g.s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < ns && !g.s; i++) {
        labels[i] = s[i].label;
        if (s[i].lo && s[i].hi && s[i].n > 1) {
            sa_svg_printf(&g, "<polygon class=\"band\" fill=\"%s\" fill-opacity=\"0.15\" stroke=\"none\" points=\"",
                          COLOR(i));
            for (size_t k = 0; k < s[i].n; k++)
                sa_svg_printf(&g, "%.1f,%.1f ", sa_svg_fx(&f, s[i].x[k]), sa_svg_fy(&f, s[i].hi[k]));
            for (size_t k = s[i].n; k-- > 0;)
                sa_svg_printf(&g, "%.1f,%.1f ", sa_svg_fx(&f, s[i].x[k]), sa_svg_fy(&f, s[i].lo[k]));
            sa_svg_printf(&g, "\"/>\n");
        }
        char attrs[96];
        snprintf(attrs, sizeof attrs, "class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"", COLOR(i));
        sa_svg_polyline(&g, &f, s[i].x, s[i].y, s[i].n, attrs);
        sa_svg_markers(&g, &f, s[i].x, s[i].y, s[i].n, COLOR(i));
    }
    if (!g.s) svg_legend(&g, &f, labels, ns);
    free(labels);
    return sa_svg_finish(&g, path);
}

/* Grouped bars: values[s * n_cat + c] for series s and category c. */
static enum sa_status grouped_bars(const char *path, const char *title, const char *xtitle, const char *ytitle,
                                   const char *const *cats, size_t n_cat, const char *const *labels, size_t ns,
                                   const double *values) {
    double ymax = 0;
    for (size_t i = 0; i < ns * n_cat; i++) ymax = SA_MAX(ymax, values[i]);
    ymax = ymax > 0 ? SA_MIN(100.0, ymax * 1.1) : 1;
    struct sa_svg g;
    svg_begin(&g, title);
    struct sa_svg_frame f = {70, 44, SVG_W - 170, SVG_H - 50, 0, (double)n_cat, 0, ymax};
    svg_axes(&g, &f, xtitle, ytitle);
    double cw = (f.x1 - f.x0) / (double)n_cat, bw = cw * 0.8 / (double)(ns ? ns : 1);
    for (size_t c = 0; c < n_cat; c++) {
        sa_svg_text(&g, f.x0 + cw * ((double)c + 0.5), f.y1 + 16, "middle", 10, NULL, cats[c]);
        for (size_t s = 0; s < ns; s++) {
            double v = values[s * n_cat + c], x = f.x0 + cw * (double)c + cw * 0.1 + bw * (double)s;
            sa_svg_printf(&g, "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n",
                          x, sa_svg_fy(&f, v), bw, f.y1 - sa_svg_fy(&f, v), COLOR(s));
        }
    }
    svg_legend(&g, &f, labels, ns);
    return sa_svg_finish(&g, path);
}

/* ---- the Markdown report --------------------------------------------------------------- */

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (linear interpolation) of v[0..n), sorting a copy. */
static double quantile(const double *v, size_t n, double q) {
    if (!n) return 0;
    double *c = malloc(n * sizeof *c);
    if (!c) return NAN;
    memcpy(c, v, n * sizeof *c);
    qsort(c, n, sizeof *c, cmp_d);
    double pos = q * (double)(n - 1), fl = floor(pos);
    size_t i = (size_t)fl;
    double r = i + 1 < n ? c[i] + (pos - fl) * (c[i + 1] - c[i]) : c[i];
    free(c);
    return r;
}

static double mean(const double *v, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += v[i];
    return n ? s / (double)n : 0;
}

/* Markdown table cell text: '|' escaped, newlines as spaces. */
static enum sa_status md_cell(struct sa_buf *b, const char *s) {
    enum sa_status st = SA_STATUS_OK;
    for (; *s && !st; s++) {
        if (*s == '|') st = sa_buf_puts(b, "\\|");
        else if (*s == '\n' || *s == '\r') st = sa_buf_puts(b, " ");
        else st = sa_buf_append(b, s, 1);
    }
    return st;
}

struct writer {
    struct sa_buf md;
    char *dir, *stem; /* where the SVGs go, and their name prefix */
    const struct sa_report_params *p;
    size_t n_plots;
    enum sa_status s;
};

static void md(struct writer *w, const char *fmt, ...) SA_PRINTF(2, 3);
static void md(struct writer *w, const char *fmt, ...) {
    if (w->s) return;
    va_list ap;
    va_start(ap, fmt);
    char *p = NULL;
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    w->s = n < 0 ? sa_error(SA_STATUS_NO_MEMORY, "out of memory") : sa_buf_append(&w->md, p, (size_t)n);
    free(p);
}

static void md_text(struct writer *w, const char *s) {
    if (!w->s) w->s = md_cell(&w->md, s);
}

/* Writes one plot (through `draw`'s status) and links it. */
static void plot_link(struct writer *w, const char *name, const char *alt, enum sa_status drawn) {
    if (w->s) return;
    if (drawn) {
        w->s = drawn;
        return;
    }
    w->n_plots++;
    md(w, "![%s](%s-%s.svg)\n\n", alt, w->stem, name);
}

static char *plot_path(struct writer *w, const char *name) {
    char *p = NULL;
    if (asprintf(&p, "%s/%s-%s.svg", w->dir, w->stem, name) < 0) return NULL;
    return p;
}

static void section_accuracy(struct writer *w, const struct report *r) {
    size_t n = 0;
    for (size_t i = 0; i < r->n_acc; i++) n += r->acc[i].has_overall;
    if (!n || w->s) return;
    md(w, "## Accuracy\n\n");
    const char **labels = calloc(n, sizeof *labels);
    double *v = calloc(3 * n, sizeof *v);
    char *path = plot_path(w, "accuracy");
    if (!labels || !v || !path) w->s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < r->n_acc && !w->s; i++)
        if (r->acc[i].has_overall) {
            labels[k] = r->acc[i].label;
            v[k] = 100 * r->acc[i].acc;
            v[n + k] = 100 * r->acc[i].lo;
            v[2 * n + k] = 100 * r->acc[i].hi;
            k++;
        }
    if (!w->s)
        plot_link(w, "accuracy", "accuracy with 95% intervals",
                  bar_chart(path, "Accuracy (95% Wilson interval)", "accuracy (%)", labels, v, v + n, v + 2 * n, n, 0,
                            100));
    md(w, "| result | n | correct | accuracy | 95%% CI |\n|---|---:|---:|---:|---|\n");
    for (size_t i = 0; i < r->n_acc; i++) {
        const struct acc_res *a = &r->acc[i];
        if (!a->has_overall) continue;
        md(w, "| ");
        md_text(w, a->label);
        md(w, " | %zu | %zu | %.2f%% | [%.2f%%, %.2f%%] |\n", a->n, a->n_correct, 100 * a->acc, 100 * a->lo,
           100 * a->hi);
    }
    md(w, "\n");
    free(labels);
    free(v);
    free(path);
}

static void section_rounds(struct writer *w, const struct report *r) {
    size_t ns = 0;
    for (size_t i = 0; i < r->n_acc; i++) ns += r->acc[i].n_rounds > 0;
    if (!ns || w->s) return;
    md(w, "## Accuracy by round\n\nThe accuracy of the answers as they stood after each round (sentence) of the "
          "pipeline; a question that finished earlier keeps its final answer.\n\n");
    struct series *s = calloc(ns, sizeof *s);
    double **bufs = calloc(4 * ns, sizeof *bufs);
    char *path = plot_path(w, "accuracy-rounds");
    if (!s || !bufs || !path) w->s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    int32_t rmin = INT32_MAX, rmax = -1;
    size_t k = 0;
    for (size_t i = 0; i < r->n_acc && !w->s; i++) {
        const struct acc_res *a = &r->acc[i];
        if (!a->n_rounds) continue;
        double **b = &bufs[4 * k];
        for (int j = 0; j < 4; j++)
            if (!(b[j] = calloc(a->n_rounds, sizeof(double)))) w->s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        size_t m = 0;
        for (size_t j = 0; j < a->n_rounds && !w->s; j++) {
            const struct round_acc *ra = &a->rounds[j];
            if (w->p->max_round > 0 && ra->round > w->p->max_round) continue;
            b[0][m] = ra->round;
            b[1][m] = 100 * ra->acc;
            b[2][m] = 100 * ra->lo;
            b[3][m] = 100 * ra->hi;
            m++;
            rmin = SA_MIN(rmin, ra->round);
            rmax = SA_MAX(rmax, ra->round);
        }
        s[k] = (struct series){a->label, b[0], b[1], b[2], b[3], m};
        k++;
    }
    if (!w->s)
        plot_link(w, "accuracy-rounds", "accuracy by round",
                  line_chart(path, "Accuracy by round (95% Wilson band)", "round", "accuracy (%)", s, ns, 0, 100));
    /* the table: one row per round, one column per result */
    md(w, "| round |");
    for (size_t i = 0; i < ns; i++) {
        md(w, " ");
        md_text(w, s[i].label);
        md(w, " |");
    }
    md(w, "\n|---:|");
    for (size_t i = 0; i < ns; i++) md(w, "---:|");
    md(w, "\n");
    for (int32_t rd = rmin; rd <= rmax && !w->s; rd++) {
        md(w, "| %d |", (int)rd);
        for (size_t i = 0; i < ns; i++) {
            size_t j = 0;
            while (j < s[i].n && s[i].x[j] != rd) j++;
            if (j < s[i].n) md(w, " %.2f%% |", s[i].y[j]);
            else md(w, " |");
        }
        md(w, "\n");
    }
    md(w, "\n");
    for (size_t i = 0; i < 4 * ns && bufs; i++) free(bufs[i]);
    free(bufs);
    free(s);
    free(path);
}

static void section_winrate(struct writer *w, const struct report *r) {
    size_t n = r->n_win;
    if (!n || w->s) return;
    md(w, "## Win rate\n\nWin rate = (W - L) / (W + L + E) x 100 of the first answers against the second, each "
          "pair judged in both orders; 95%% percentile bootstrap interval over the pairs.\n\n");
    const char **labels = calloc(n, sizeof *labels);
    double *v = calloc(3 * n, sizeof *v);
    char *path = plot_path(w, "winrate");
    if (!labels || !v || !path) w->s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    for (size_t i = 0; i < n && !w->s; i++) {
        labels[i] = r->win[i].label;
        v[i] = r->win[i].rate;
        v[n + i] = r->win[i].lo;
        v[2 * n + i] = r->win[i].hi;
    }
    if (!w->s)
        plot_link(w, "winrate", "win rates with 95% intervals",
                  bar_chart(path, "Win rate (95% bootstrap interval)", "win rate", labels, v, v + n, v + 2 * n, n,
                            -100, 100));
    md(w, "| result | aspect | W | L | E | invalid | win rate | 95%% CI |\n|---|---|---:|---:|---:|---:|---:|---|\n");
    for (size_t i = 0; i < n; i++) {
        const struct win_res *x = &r->win[i];
        md(w, "| ");
        md_text(w, x->label);
        md(w, " | ");
        md_text(w, x->aspect ? x->aspect : "");
        md(w, " | %zu | %zu | %zu | %zu | %.2f | [%.2f, %.2f] |\n", x->w, x->l, x->e, x->inv, x->rate, x->lo, x->hi);
    }
    md(w, "\n");
    free(labels);
    free(v);
    free(path);
}

enum { N_EDIT_BINS = 11 };

static void section_edit(struct writer *w, const struct report *r) {
    size_t ns = 0;
    for (size_t i = 0; i < r->n_tr; i++) ns += r->tr[i].n_edit > 0;
    if (!ns || w->s) return;
    md(w, "## Edit ratio\n\nThe aligner's edit of each sentence: Levenshtein distance between the upstream's "
          "sentence (y1) and the revision (y2) over the longer length; 0 is a copy. Share of the aligned "
          "rounds in each bin.\n\n");
    static const char *const cats[N_EDIT_BINS] = {"0 (copy)", "\u22640.1", "\u22640.2", "\u22640.3",
                                                  "\u22640.4", "\u22640.5", "\u22640.6", "\u22640.7",
                                                  "\u22640.8", "\u22640.9", "\u22641.0"}; /* "<= x" */
    const char **labels = calloc(ns, sizeof *labels);
    double *v = calloc(ns * N_EDIT_BINS, sizeof *v);
    char *path = plot_path(w, "edit-ratio");
    if (!labels || !v || !path) w->s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < r->n_tr && !w->s; i++) {
        const struct trace_res *t = &r->tr[i];
        if (!t->n_edit) continue;
        labels[k] = t->label;
        for (size_t j = 0; j < t->n_edit; j++) {
            double e = t->edit[j];
            /* bin 0: exactly 0; bin b (1..10): (0.1 (b-1), 0.1 b] */
            int b = e <= 0 ? 0 : (int)ceil(e * 10 - 1e-9);
            if (b < 1 && e > 0) b = 1;
            if (b > 10) b = 10;
            v[k * N_EDIT_BINS + (size_t)b] += 100.0 / (double)t->n_edit;
        }
        k++;
    }
    if (!w->s)
        plot_link(w, "edit-ratio", "edit-ratio distribution",
                  grouped_bars(path, "Edit ratio of the aligned sentences", "edit ratio (bins of 0.1, upper bound included)",
                               "share of rounds (%)", cats, N_EDIT_BINS, labels, ns, v));
    md(w, "| trace | aligned rounds | copied | mean edit ratio | median |\n|---|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < r->n_tr; i++) {
        const struct trace_res *t = &r->tr[i];
        if (!t->n_edit) continue;
        md(w, "| ");
        md_text(w, t->label);
        md(w, " | %zu | %zu (%.1f%%) | %.3f | %.3f |\n", t->n_edit, t->n_copied,
           100.0 * (double)t->n_copied / (double)t->n_edit, mean(t->edit, t->n_edit), quantile(t->edit, t->n_edit, 0.5));
    }
    md(w, "\n");
    free(labels);
    free(v);
    free(path);
}

static void section_latency(struct writer *w, const struct report *r) {
    size_t ns = 0;
    for (size_t i = 0; i < r->n_tr; i++) ns += r->tr[i].n_lat > 0;
    if (!ns || w->s) return;
    md(w, "## Latency\n\nMilliseconds per round: the upstream's time for the sentence plus the aligner's "
          "(`upstream_ms + aligner_ms` of each trace line), mean by round.\n\n");
    struct series *s = calloc(ns, sizeof *s);
    double **bufs = calloc(2 * ns, sizeof *bufs);
    char *path = plot_path(w, "latency");
    if (!s || !bufs || !path) w->s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < r->n_tr && !w->s; i++) {
        const struct trace_res *t = &r->tr[i];
        if (!t->n_lat) continue;
        double *x = calloc(t->n_round_slots, sizeof *x), *y = calloc(t->n_round_slots, sizeof *y);
        bufs[2 * k] = x;
        bufs[2 * k + 1] = y;
        if (!x || !y) {
            w->s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
            break;
        }
        size_t m = 0;
        for (size_t rd = 0; rd < t->n_round_slots; rd++) {
            if (!t->cnt_ms[rd] || (w->p->max_round > 0 && rd > (size_t)w->p->max_round)) continue;
            x[m] = (double)rd;
            y[m] = t->sum_ms[rd] / (double)t->cnt_ms[rd];
            m++;
        }
        s[k++] = (struct series){t->label, x, y, NULL, NULL, m};
    }
    if (!w->s)
        plot_link(w, "latency", "latency by round",
                  line_chart(path, "Latency per round (mean)", "round", "ms per round", s, ns, 0, 0));
    md(w, "| trace | rounds | upstream ms (mean) | aligner ms (mean) | total ms (mean) | median | p90 |\n"
          "|---|---:|---:|---:|---:|---:|---:|\n");
    for (size_t i = 0; i < r->n_tr; i++) {
        const struct trace_res *t = &r->tr[i];
        if (!t->n_lat) continue;
        md(w, "| ");
        md_text(w, t->label);
        md(w, " | %zu | %.1f | %.1f | %.1f | %.1f | %.1f |\n", t->n_lat, mean(t->up, t->n_lat), mean(t->al, t->n_lat),
           mean(t->tot, t->n_lat), quantile(t->tot, t->n_lat, 0.5), quantile(t->tot, t->n_lat, 0.9));
    }
    md(w, "\n");
    for (size_t i = 0; i < 2 * ns && bufs; i++) free(bufs[i]);
    free(bufs);
    free(s);
    free(path);
}

struct sa_report_params sa_report_default_params(void) {
    return (struct sa_report_params){.title = NULL, .max_round = 0};
}

enum sa_status sa_eval_report(const char *const *inputs, size_t n, const char *out_md,
                              const struct sa_report_params *params, struct sa_report_summary *summary) {
    if (summary) memset(summary, 0, sizeof *summary);
    if (!inputs || !n || !out_md) return sa_error(SA_STATUS_BAD_ARGUMENT, "report: no inputs or no output file");
    struct sa_report_params defaults = sa_report_default_params();
    if (!params) params = &defaults;
    struct report r = {0};
    enum sa_status s = SA_STATUS_OK;
    for (size_t i = 0; i < n && !s; i++) {
        struct stat st;
        if (!inputs[i]) s = sa_error(SA_STATUS_BAD_ARGUMENT, "report: NULL input");
        else if (stat(inputs[i], &st)) s = sa_error(SA_STATUS_IO, "report: %s: %s", inputs[i], strerror(errno));
        else s = S_ISDIR(st.st_mode) ? read_dir(&r, inputs[i]) : read_input(&r, inputs[i], false);
    }
    if (!s && !r.n_acc && !r.n_win && !r.n_tr)
        s = sa_error(SA_STATUS_BAD_FILE, "report: none of the inputs is a result to report (see docs/EVAL.md)");
    struct writer w = {.p = params};
    sa_buf_init(&w.md, 0);
    if (!s) {
        const char *slash = strrchr(out_md, '/');
        w.dir = slash ? strndup(out_md, (size_t)(slash - out_md) + (slash == out_md)) : strdup(".");
        w.stem = file_stem(out_md);
        if (!w.dir || !w.stem) s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    }
    if (!s) {
        md(&w, "# ");
        md_text(&w, params->title ? params->title : "Stream Aligner evaluation");
        md(&w, "\n\nWritten by `salign eval report` from %zu result file(s); the formats are in docs/EVAL.md.\n\n",
           r.n_files);
        md(&w, "| file | kind | label |\n|---|---|---|\n");
        for (size_t i = 0; i < r.n_files; i++) {
            char *row = r.files[i], *t1 = strchr(row, '\t'), *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
            if (!t2) continue;
            *t1 = *t2 = 0;
            md(&w, "| ");
            md_text(&w, row);
            md(&w, " | %s | ", t1 + 1);
            md_text(&w, t2 + 1);
            md(&w, " |\n");
            *t1 = *t2 = '\t';
        }
        md(&w, "\n");
        section_accuracy(&w, &r);
        section_rounds(&w, &r);
        section_winrate(&w, &r);
        section_edit(&w, &r);
        section_latency(&w, &r);
        if (r.n_skipped) {
            md(&w, "## Skipped\n\n");
            for (size_t i = 0; i < r.n_skipped; i++) {
                md(&w, "- ");
                md_text(&w, r.skipped[i]);
                md(&w, "\n");
            }
            md(&w, "\n");
        }
        s = w.s;
        if (!s) s = sa_write_file_atomic(out_md, w.md.data, w.md.len);
    }
    if (summary) {
        summary->n_accuracy = r.n_acc;
        for (size_t i = 0; i < r.n_acc; i++) summary->n_rounds += r.acc[i].n_rounds > 0;
        summary->n_winrate = r.n_win;
        summary->n_traces = r.n_tr;
        summary->n_skipped = r.n_skipped;
        summary->n_plots = w.n_plots;
    }
    sa_buf_free(&w.md);
    free(w.dir);
    free(w.stem);
    report_free(&r);
    return s;
}
