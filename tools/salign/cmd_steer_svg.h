/* cmd_steer_svg.h: the figures of `salign steer` as plain SVG 1.1 (no external library): a layer x
 * token heat map (the LAT scan, the paper's Figure 9) and a line plot with 95% error bars (the
 * steering sweep, its Figure 8). Text is escaped for XML and made valid UTF-8, so the files parse
 * as XML whatever the tokens are. */
#ifndef SA_CMD_STEER_SVG_H
#define SA_CMD_STEER_SVG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Writes s (NUL-terminated) as XML character data: & < > " ' escaped, control characters and
 * invalid UTF-8 bytes written as \xNN, a line break as "\n" (two characters), a tab as "\t". */
void steer_svg_text(FILE *f, const char *s);

/* The heat map: value[r * n_cols + c] for n_rows rows (row_label[r], drawn top to bottom) and
 * n_cols columns (col_label[c], rotated under the map). Colours: a diverging blue (-lim) - white
 * (0) - red (+lim) scale, values clipped to [-lim, lim]; NAN cells grey. A colour bar with its
 * ticks is drawn on the right. Returns false when f failed. */
bool steer_svg_heatmap(FILE *f, const char *title, const char *x_title, const char *y_title,
                       const char *const *row_label, int32_t n_rows, const char *const *col_label, int32_t n_cols,
                       const double *value, double lim, const char *scale_title);

/* The line plot: points (x[i], y[i]) with error bars [lo[i], hi[i]], i < n, in the order given,
 * axes with ticks and titles. Returns false when f failed. */
bool steer_svg_lines(FILE *f, const char *title, const char *x_title, const char *y_title, const double *x,
                     const double *y, const double *lo, const double *hi, int32_t n);

#endif
