/* segment.h: the sentence segmenter of the Stream Aligner loop. It decides, on text that
 * arrives in pieces (a streamed model answer), where a unit ends: a sentence (. ! ? and
 * CJK 。！？, paragraph breaks, markdown blocks; not inside decimals, abbreviations, list
 * markers, URLs, LaTeX or code) or a line. Units are exact byte spans: every byte belongs to
 * exactly one unit, so concatenating the units gives back the text. A unit owns the
 * whitespace after it up to and including the last newline of that run; spaces after that
 * newline (indentation) start the next unit. Rules and decisions: docs/internals/segmenter.md.
 * Streaming gives the same boundaries as one shot: a boundary is reported only once the text
 * after it can no longer change the decision. Not thread-safe: one segmenter per stream. */
#ifndef SA_SEGMENT_H
#define SA_SEGMENT_H

#include "sa/status.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "No boundary known yet" (or, from finish, "no boundary left"). */
#define SA_SEGMENT_NONE ((size_t)-1)

/* What a unit is. Add values only at the end. */
enum sa_segment_unit {
    SA_SEGMENT_SENTENCE = 0, /* sentences, paragraphs and markdown blocks */
    SA_SEGMENT_LINE = 1,     /* each newline ends a unit (GSM8K: one step per line); code
                                fences and display math stay whole */
};

struct sa_segment_params {
    enum sa_segment_unit unit;
    /* Run-on guard, in bytes: once a unit is max_bytes long, it ends after the next run of
     * whitespace; once it is 2 * max_bytes long with no whitespace, it ends at the next
     * character boundary (never inside a UTF-8 character). Also caps the lookahead at
     * 2 * max_bytes + 512 bytes past the unit start. 0: no limit. */
    size_t max_bytes;
};

/* unit SA_SEGMENT_SENTENCE, max_bytes 1024. */
struct sa_segment_params sa_segment_default_params(void);

struct sa_segmenter; /* opaque */

/* Checks the params (a known unit) and creates an empty segmenter. params NULL: defaults.
 * Free with sa_segmenter_free. Errors: SA_STATUS_BAD_ARGUMENT, SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_segmenter_init(const struct sa_segment_params *params, struct sa_segmenter **out);
void sa_segmenter_free(struct sa_segmenter *seg);

/* Appends n bytes (bytes may be NULL when n is 0; any bytes, split anywhere, even inside a
 * UTF-8 character) and sets *boundary to the next boundary that became known and was not
 * returned before, or SA_SEGMENT_NONE. A boundary is a byte offset into the accumulated text
 * (all bytes pushed since init/reset): the end (exclusive) of a unit, which starts at the
 * previous boundary (or 0). A push may make several boundaries known: call again with n = 0
 * to get the next one, until SA_SEGMENT_NONE. The bytes past a boundary that were needed to
 * decide it (the lookahead) belong to the next unit.
 * Errors: SA_STATUS_BAD_ARGUMENT (NULL seg/boundary, bytes NULL with n > 0, push after
 * finish; nothing taken), SA_STATUS_NO_MEMORY (if the bytes could not be stored, nothing was
 * taken; if a boundary could not be recorded, the bytes were taken and the next call
 * retries). */
SA_NODISCARD enum sa_status sa_segmenter_push(struct sa_segmenter *seg, const char *bytes, size_t n,
                                              size_t *boundary);
/* Declares the end of the text: every pending decision is taken, and the text after the last
 * boundary, if any, is the last unit (it ends at the text's length). Sets *boundary like
 * push; call again (finish is idempotent) until it gives SA_SEGMENT_NONE.
 * Errors: SA_STATUS_BAD_ARGUMENT (NULL), SA_STATUS_NO_MEMORY (the next call retries). */
SA_NODISCARD enum sa_status sa_segmenter_finish(struct sa_segmenter *seg, size_t *boundary);
/* Forgets the text and the boundaries; keeps the params and the memory. */
void sa_segmenter_reset(struct sa_segmenter *seg);
/* The accumulated text: *len bytes (not NUL-terminated when len is 0), owned by the
 * segmenter, valid until its next push/reset/free. */
const char *sa_segmenter_text(const struct sa_segmenter *seg, size_t *len);

/* A unit of text: bytes [start, end). */
struct sa_segment_span {
    size_t start, end;
};

/* One shot: segments text[0..len) (the same boundaries as any streamed split). *spans gets
 * *n spans covering the text in order (malloc'd; free() it; NULL when n is 0, i.e. len 0).
 * params NULL: defaults. Errors: SA_STATUS_BAD_ARGUMENT, SA_STATUS_NO_MEMORY. */
SA_NODISCARD enum sa_status sa_segment_text(const char *text, size_t len, const struct sa_segment_params *params,
                                            struct sa_segment_span **spans, size_t *n);

#ifdef __cplusplus
}
#endif
#endif
