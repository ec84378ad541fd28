/* svg_impl.h: the one SVG writer of the library, for its line and bar charts (the eval
 * report's charts in src/eval/report.c, the training loss curve in src/train/train_loop.c):
 * a document buffer with a sticky first error, XML-escaped text, a plot frame that maps data
 * to pixels, polylines and point markers over it, tick steps, and the atomic write of the
 * file. Layout and styling stay with each chart. Not part of the public API. */
#ifndef SA_SVG_IMPL_H
#define SA_SVG_IMPL_H

#include "core/core_impl.h"

#include <stddef.h>

/* A document being written. Every call after the first error does nothing; sa_svg_finish
 * returns that error. */
struct sa_svg {
    struct sa_buf b;
    enum sa_status s; /* the first error */
};
void sa_svg_init(struct sa_svg *g);
void sa_svg_printf(struct sa_svg *g, const char *fmt, ...) SA_PRINTF(2, 3);
/* Text as XML character data: & < > " ' as entities, control characters (not allowed in XML
 * 1.0) as spaces, whole valid UTF-8 sequences kept, other bytes as '?'. */
void sa_svg_escaped(struct sa_svg *g, const char *text);
/* <text x y text-anchor font-size [extra]>escaped text</text>; extra (may be NULL): more
 * attributes, written as given. */
void sa_svg_text(struct sa_svg *g, double x, double y, const char *anchor, double size, const char *extra,
                 const char *text);
/* Appends "</svg>\n", writes the document to path (atomically: sa_write_file_atomic) and
 * frees the buffer. Returns the first error of the document or of the write. */
SA_NODISCARD enum sa_status sa_svg_finish(struct sa_svg *g, const char *path);

/* The plot area in pixels and the data ranges it shows (xmax > xmin, ymax > ymin). */
struct sa_svg_frame {
    double x0, y0, x1, y1;         /* pixels: left, top, right, bottom */
    double xmin, xmax, ymin, ymax; /* data */
};
double sa_svg_fx(const struct sa_svg_frame *f, double x); /* data x -> pixel x */
double sa_svg_fy(const struct sa_svg_frame *f, double y); /* data y -> pixel y (up is smaller) */
/* A tick step of 1, 2 or 5 x 10^k giving about `want` intervals over `range` (1 if range <= 0). */
double sa_svg_nice_step(double range, int want);

/* `<polyline ATTRS points="px,py px,py ... "/>` over the points (x[k], y[k]), k < n, that
 * have a y (NaN: no point). x NULL: x[k] = k. attrs: the element's other attributes. */
void sa_svg_polyline(struct sa_svg *g, const struct sa_svg_frame *f, const double *x, const double *y, size_t n,
                     const char *attrs);
/* `<circle cx cy r="3" fill="FILL"/>` at each of those points. */
void sa_svg_markers(struct sa_svg *g, const struct sa_svg_frame *f, const double *x, const double *y, size_t n,
                    const char *fill);

#endif
