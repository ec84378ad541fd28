/* eval_rounds.h: the answer of each question after each round, from a pipeline trace (`salign
 * align --trace`, read through sa/pipeline_trace.h), for accuracy by round. Implemented in src/eval/stats.c. */
#ifndef SA_EVAL_ROUNDS_H
#define SA_EVAL_ROUNDS_H

#include "sa/status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A trace: JSONL, one line per round of the pipeline and question:
 *   {"id": 12 | "q12", "question": "...", "round": 3, "answer_so_far": "..."}
 * "id" (integer >= 0 or string) or "question" is required (both allowed), "round" is an
 * integer >= 0, "answer_so_far" a string: the whole answer after that round. Other
 * fields are ignored. A (key, round) pair may appear once. */
struct sa_trace; /* opaque */

/* Parses a trace text (`name` for messages). Errors: SA_STATUS_BAD_JSON naming the line
 * and field, SA_STATUS_NO_MEMORY. Free with sa_trace_free. */
SA_NODISCARD enum sa_status sa_trace_parse(const char *text, size_t len, const char *name, struct sa_trace **out);
SA_NODISCARD enum sa_status sa_trace_load(const char *path, struct sa_trace **out);
void sa_trace_free(struct sa_trace *t);

/* Number of questions (distinct keys), in order of first appearance. */
size_t sa_trace_n_questions(const struct sa_trace *t);
/* Question i's "id" as text (an integer id in decimal), or NULL if the lines had none. */
const char *sa_trace_id(const struct sa_trace *t, size_t i);
/* Question i's "question", or NULL if the lines had none. */
const char *sa_trace_question(const struct sa_trace *t, size_t i);
/* The smallest and largest round in the trace (0, 0 when empty). */
int32_t sa_trace_min_round(const struct sa_trace *t);
int32_t sa_trace_max_round(const struct sa_trace *t);
/* Question i's answer after round r: the answer_so_far of its line with the largest round
 * <= r (a question that stopped early keeps its final answer); NULL if it has none yet.
 * Owned by the trace. */
const char *sa_trace_answer(const struct sa_trace *t, size_t i, int32_t round);

#ifdef __cplusplus
}
#endif
#endif
