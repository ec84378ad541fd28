/* cmd_steer_svg.c: plain SVG figures for `salign steer` (cmd_steer_svg.h). */
#include "cmd_steer_svg.h"

#include <math.h>
#include <string.h>

/* The length of the valid UTF-8 sequence at p (n bytes left), 0 when invalid. */
static int utf8_len(const unsigned char *p, size_t n) {
    const unsigned c = p[0];
    int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (!len || (size_t)len > n) return 0;
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int j = 1; j < len; j++) {
        if ((p[j] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[j] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    /* U+FFFE, U+FFFF are not XML characters */
    if (cp == 0xFFFE || cp == 0xFFFF) return 0;
    return len;
}

void steer_svg_text(FILE *f, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n) {
        const unsigned c = *p;
        int len = 1;
        if (c == '&') fputs("&amp;", f);
        else if (c == '<') fputs("&lt;", f);
        else if (c == '>') fputs("&gt;", f);
        else if (c == '"') fputs("&quot;", f);
        else if (c == '\'') fputs("&apos;", f);
        else if (c == '\n') fputs("\\n", f);
        else if (c == '\t') fputs("\\t", f);
        else if (c < 0x20 || c == 0x7F) fprintf(f, "\\x%02X", c);
        else if (c < 0x80) fputc((int)c, f);
        else if ((len = utf8_len(p, n)) > 0) fwrite(p, 1, (size_t)len, f);
        else {
            fprintf(f, "\\x%02X", c);
            len = 1;
        }
        p += len;
        n -= (size_t)len;
    }
}

/* A "nice" tick step (1, 2 or 5 times a power of ten) for about `n` ticks over span. */
static double nice_step(double span, int n) {
    if (!(span > 0)) return 1;
    const double raw = span / n, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

/* The diverging colour of t in [-1, 1]: blue - white - red. */
static void colour(double t, int *r, int *g, int *b) {
    if (isnan(t)) {
        *r = *g = *b = 190;
        return;
    }
    t = fmax(-1, fmin(1, t));
    if (t >= 0) { /* white (255,255,255) -> red (178,24,43) */
        *r = (int)lround(255 + t * (178 - 255));
        *g = (int)lround(255 + t * (24 - 255));
        *b = (int)lround(255 + t * (43 - 255));
    } else { /* white -> blue (33,102,172) */
        t = -t;
        *r = (int)lround(255 + t * (33 - 255));
        *g = (int)lround(255 + t * (102 - 255));
        *b = (int)lround(255 + t * (172 - 255));
    }
}

bool steer_svg_heatmap(FILE *f, const char *title, const char *x_title, const char *y_title,
                       const char *const *row_label, int32_t n_rows, const char *const *col_label, int32_t n_cols,
                       const double *value, double lim, const char *scale_title) {
    const int cw = 14, ch = 16;                  /* cell size */
    const int left = 90, top = 50, bottom = 150; /* margins: row labels, title, column labels */
    const int map_w = cw * n_cols, map_h = ch * n_rows;
    const int bar_x = left + map_w + 30, bar_w = 16, right = 110;
    const int W = bar_x + bar_w + right, H = top + map_h + bottom;
    if (!(lim > 0)) lim = 1;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"11\">\n", W, H, W, H);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    fprintf(f, "<text x=\"%d\" y=\"24\" font-size=\"15\">", left);
    steer_svg_text(f, title);
    fprintf(f, "</text>\n<g id=\"cells\" shape-rendering=\"crispEdges\">\n");
    for (int32_t r = 0; r < n_rows; r++)
        for (int32_t c = 0; c < n_cols; c++) {
            const double v = value[(size_t)r * (size_t)n_cols + (size_t)c];
            int R, G, B;
            colour(v / lim, &R, &G, &B);
            fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#%02x%02x%02x\"><title>", left + c * cw,
                    top + r * ch, cw, ch, R, G, B);
            steer_svg_text(f, row_label[r]);
            fputs(" / ", f);
            steer_svg_text(f, col_label[c]);
            if (isnan(v)) fputs(": n/a", f);
            else fprintf(f, ": %.4g", v);
            fputs("</title></rect>\n", f);
        }
    fprintf(f, "</g>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"black\"/>\n", left,
            top, map_w, map_h);
    /* row labels (the y axis) */
    for (int32_t r = 0; r < n_rows; r++) {
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 6, top + r * ch + ch - 4);
        steer_svg_text(f, row_label[r]);
        fputs("</text>\n", f);
    }
    fprintf(f, "<text x=\"16\" y=\"%d\" transform=\"rotate(-90 16 %d)\" text-anchor=\"middle\" font-size=\"13\">",
            top + map_h / 2, top + map_h / 2);
    steer_svg_text(f, y_title);
    fputs("</text>\n", f);
    /* column labels (the x axis), rotated */
    for (int32_t c = 0; c < n_cols; c++) {
        const int x = left + c * cw + cw / 2 + 4, y = top + map_h + 6;
        fprintf(f, "<text x=\"%d\" y=\"%d\" transform=\"rotate(-60 %d %d)\" text-anchor=\"end\" font-size=\"10\" "
                   "font-family=\"monospace\">", x, y, x, y);
        steer_svg_text(f, col_label[c]);
        fputs("</text>\n", f);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\">", left + map_w / 2, H - 10);
    steer_svg_text(f, x_title);
    fputs("</text>\n", f);
    /* the colour bar: 41 steps from +lim (top) to -lim */
    const int steps = 41;
    const double sh = (double)map_h / steps;
    for (int i = 0; i < steps; i++) {
        int R, G, B;
        colour(1.0 - 2.0 * i / (steps - 1), &R, &G, &B);
        fprintf(f, "<rect x=\"%d\" y=\"%.2f\" width=\"%d\" height=\"%.2f\" fill=\"#%02x%02x%02x\"/>\n", bar_x,
                top + i * sh, bar_w, sh + 0.5, R, G, B);
    }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"black\"/>\n", bar_x, top,
            bar_w, map_h);
    for (int i = 0; i <= 4; i++) {
        const double v = lim - 2 * lim * i / 4.0, y = top + map_h * i / 4.0;
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"black\"/>", bar_x + bar_w, y,
                bar_x + bar_w + 4, y);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\">%+.2g</text>\n", bar_x + bar_w + 6, y + 4, v);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\">", bar_x - 10, top - 8);
    steer_svg_text(f, scale_title);
    fputs("</text>\n</svg>\n", f);
    return !ferror(f);
}

bool steer_svg_lines(FILE *f, const char *title, const char *x_title, const char *y_title, const double *x,
                     const double *y, const double *lo, const double *hi, int32_t n) {
    const int W = 640, H = 440, left = 80, right = 30, top = 50, bottom = 70;
    const int pw = W - left - right, ph = H - top - bottom;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int32_t i = 0; i < n; i++) {
        x0 = fmin(x0, x[i]);
        x1 = fmax(x1, x[i]);
        y0 = fmin(y0, isnan(lo[i]) ? y[i] : lo[i]);
        y1 = fmax(y1, isnan(hi[i]) ? y[i] : hi[i]);
    }
    if (!(x1 > x0)) x0 -= 1, x1 += 1;
    if (!(y1 > y0)) y0 -= 0.05, y1 += 0.05;
    const double xs = nice_step(x1 - x0, 6), ys = nice_step(y1 - y0, 6);
    x0 = floor(x0 / xs) * xs, x1 = ceil(x1 / xs) * xs;
    y0 = floor(y0 / ys) * ys, y1 = ceil(y1 / ys) * ys;
#define PX(v) (left + ((v) - x0) / (x1 - x0) * pw)
#define PY(v) (top + ph - ((v) - y0) / (y1 - y0) * ph)
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    fprintf(f, "<text x=\"%d\" y=\"26\" font-size=\"15\">", left);
    steer_svg_text(f, title);
    fputs("</text>\n", f);
    /* grid, ticks and tick labels */
    for (double v = x0; v <= x1 + xs * 1e-6; v += xs) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e0e0e0\"/>", PX(v), top, PX(v), top + ph);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", PX(v), top + ph + 18,
                fabs(v) < xs * 1e-6 ? 0.0 : v);
    }
    for (double v = y0; v <= y1 + ys * 1e-6; v += ys) {
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>", left, PY(v), left + pw, PY(v));
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.3g</text>\n", left - 6, PY(v) + 4,
                fabs(v) < ys * 1e-6 ? 0.0 : v);
    }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"black\"/>\n", left, top, pw, ph);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"13\">", left + pw / 2, H - 20);
    steer_svg_text(f, x_title);
    fprintf(f, "</text>\n<text x=\"20\" y=\"%d\" transform=\"rotate(-90 20 %d)\" text-anchor=\"middle\" "
               "font-size=\"13\">", top + ph / 2, top + ph / 2);
    steer_svg_text(f, y_title);
    fputs("</text>\n", f);
    /* error bars, the line, the points */
    for (int32_t i = 0; i < n; i++) {
        if (isnan(lo[i]) || isnan(hi[i])) continue;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\"/>", PX(x[i]), PY(lo[i]),
                PX(x[i]), PY(hi[i]));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\"/>", PX(x[i]) - 5, PY(lo[i]),
                PX(x[i]) + 5, PY(lo[i]));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\"/>\n", PX(x[i]) - 5,
                PY(hi[i]), PX(x[i]) + 5, PY(hi[i]));
    }
    fputs("<polyline fill=\"none\" stroke=\"#b2182b\" stroke-width=\"2\" points=\"", f);
    for (int32_t i = 0; i < n; i++) fprintf(f, "%s%.1f,%.1f", i ? " " : "", PX(x[i]), PY(y[i]));
    fputs("\"/>\n", f);
    for (int32_t i = 0; i < n; i++)
        fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"#b2182b\"><title>%g: %.4f [%.4f, %.4f]</title></circle>\n",
                PX(x[i]), PY(y[i]), x[i], y[i], lo[i], hi[i]);
    fputs("</svg>\n", f);
#undef PX
#undef PY
    return !ferror(f);
}
