/* svg.c: the SVG writer behind the library's charts (svg_impl.h). It lives in core because
 * both the eval report (src/eval) and the training loop (src/train) draw with it, and
 * neither of those modules should depend on the other. */
#define _GNU_SOURCE
#include "core/svg_impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sa_svg_init(struct sa_svg *g) {
    sa_buf_init(&g->b, 0);
    g->s = SA_STATUS_OK;
}

void sa_svg_printf(struct sa_svg *g, const char *fmt, ...) {
    if (g->s) return;
    va_list ap;
    va_start(ap, fmt);
    char *p = NULL;
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    if (n < 0) {
        g->s = sa_error(SA_STATUS_NO_MEMORY, "out of memory");
        return;
    }
    g->s = sa_buf_append(&g->b, p, (size_t)n);
    free(p);
}

void sa_svg_escaped(struct sa_svg *g, const char *s) {
    for (; *s && !g->s; s++) {
        switch (*s) {
        case '&': sa_svg_printf(g, "&amp;"); break;
        case '<': sa_svg_printf(g, "&lt;"); break;
        case '>': sa_svg_printf(g, "&gt;"); break;
        case '"': sa_svg_printf(g, "&quot;"); break;
        case '\'': sa_svg_printf(g, "&apos;"); break;
        default:
            if ((unsigned char)*s < 0x20 && *s != '\t') {
                sa_svg_printf(g, " "); /* not allowed in XML 1.0 */
            } else if ((unsigned char)*s >= 0x80) { /* whole valid UTF-8 sequences, else '?' */
                int l = sa_utf8_seq_len((unsigned char)*s);
                size_t rest = strnlen(s, 4);
                if (l > 0 && (size_t)l <= rest && sa_utf8_valid_prefix(s, (size_t)l) == (size_t)l) {
                    g->s = sa_buf_append(&g->b, s, (size_t)l);
                    s += l - 1;
                } else {
                    sa_svg_printf(g, "?");
                }
            } else {
                g->s = sa_buf_append(&g->b, s, 1);
            }
        }
    }
}

void sa_svg_text(struct sa_svg *g, double x, double y, const char *anchor, double size, const char *extra,
                 const char *text) {
    sa_svg_printf(g, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%.0f\"%s%s>", x, y, anchor, size,
                  extra ? " " : "", extra ? extra : "");
    sa_svg_escaped(g, text);
    sa_svg_printf(g, "</text>\n");
}

enum sa_status sa_svg_finish(struct sa_svg *g, const char *path) {
    sa_svg_printf(g, "</svg>\n");
    enum sa_status s = g->s;
    if (!s) s = sa_write_file_atomic(path, g->b.data, g->b.len);
    sa_buf_free(&g->b);
    return s;
}

double sa_svg_fx(const struct sa_svg_frame *f, double x) {
    return f->x0 + (x - f->xmin) / (f->xmax - f->xmin) * (f->x1 - f->x0);
}

double sa_svg_fy(const struct sa_svg_frame *f, double y) {
    return f->y1 - (y - f->ymin) / (f->ymax - f->ymin) * (f->y1 - f->y0);
}

double sa_svg_nice_step(double range, int want) {
    if (!(range > 0)) return 1;
    double raw = range / want, p = pow(10, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

void sa_svg_polyline(struct sa_svg *g, const struct sa_svg_frame *f, const double *x, const double *y, size_t n,
                     const char *attrs) {
    sa_svg_printf(g, "<polyline %s points=\"", attrs);
    for (size_t k = 0; k < n && !g->s; k++)
        if (!isnan(y[k])) sa_svg_printf(g, "%.1f,%.1f ", sa_svg_fx(f, x ? x[k] : (double)k), sa_svg_fy(f, y[k]));
    sa_svg_printf(g, "\"/>\n");
}

void sa_svg_markers(struct sa_svg *g, const struct sa_svg_frame *f, const double *x, const double *y, size_t n,
                    const char *fill) {
    for (size_t k = 0; k < n && !g->s; k++)
        if (!isnan(y[k]))
            sa_svg_printf(g, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                          sa_svg_fx(f, x ? x[k] : (double)k), sa_svg_fy(f, y[k]), fill);
}
