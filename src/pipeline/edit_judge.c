/* edit_judge.c: the edit judge's score (sa_pipeline_params.edit_judge_model; issue 13, not in
 * the paper). A second model, prompted as a solver (the pipeline renders its prompt: the
 * question as the user turn, the answer so far and the separator as the start of its reply),
 * compares the aligner's sentence y2 with the upstream's y1: the difference of their
 * log-probabilities after the same prompt. Both texts are tokenized whole (prompt + sentence),
 * as the judge would read them, so that a sentence whose first bytes merge with the prompt's
 * last token is scored as that merge. */
#include "pipeline/pipeline_impl.h"
#include "pipeline/speculative_impl.h"

#include "sa/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sa_edit_judge {
    struct sa_ctx *ctx;
    const struct sa_tokenizer *tok;
};

enum sa_status sa_edit_judge_init(const struct sa_model *model, const struct sa_ctx_params *cp,
                                  struct sa_edit_judge **out) {
    *out = NULL;
    struct sa_edit_judge *j = calloc(1, sizeof *j);
    if (!j) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    j->tok = sa_model_tokenizer(model);
    enum sa_status s = j->tok ? sa_ctx_init(model, cp, &j->ctx)
                              : sa_error(SA_STATUS_BAD_ARGUMENT, "pipeline: the edit judge has no tokenizer");
    if (s) {
        sa_edit_judge_free(j);
        return s;
    }
    *out = j;
    return SA_STATUS_OK;
}

void sa_edit_judge_free(struct sa_edit_judge *j) {
    if (!j) return;
    sa_ctx_free(j->ctx);
    free(j);
}

/* The prompt's ids followed by the sentence's: prompt + text tokenized as one (*ids malloc'd). */
static enum sa_status tokenize_after(const struct sa_tokenizer *tok, const char *prompt, size_t plen,
                                     const char *text, int32_t **ids, size_t *n) {
    const size_t tl = strlen(text);
    char *all = malloc(plen + tl + 1);
    if (!all) return sa_error(SA_STATUS_NO_MEMORY, "out of memory");
    memcpy(all, prompt, plen);
    memcpy(all + plen, text, tl + 1);
    enum sa_status s = sa_local_tokenize_prompt(tok, all, plen + tl, ids, n);
    free(all);
    return s;
}

enum sa_status sa_edit_judge_margin(struct sa_edit_judge *j, const char *prompt, size_t plen, const char *y1,
                                    const char *y2, double *margin, int32_t *n_prefill) {
    *margin = NAN;
    if (n_prefill) *n_prefill = 0;
    int32_t *a = NULL, *b = NULL; /* (na), (nb): prompt + y1, prompt + y2 */
    size_t na = 0, nb = 0;
    enum sa_status s = tokenize_after(j->tok, prompt, plen, y1, &a, &na);
    if (!s) s = tokenize_after(j->tok, prompt, plen, y2, &b, &nb);
    if (s) goto done;
    /* the tokens both share (the prompt, and any start the sentences share) are evaluated once;
       each sentence's own tokens are teacher-forced from there (their shared start would add the
       same terms to both sums) */
    size_t k = 0;
    while (k < na && k < nb && a[k] == b[k]) k++;
    if (k == 0) {
        s = sa_error(SA_STATUS_BAD_ARGUMENT, "pipeline: the edit judge's prompt has no tokens");
        goto done;
    }
    const int64_t n_ctx = sa_ctx_n_ctx(j->ctx);
    if ((int64_t)na + 1 > n_ctx || (int64_t)nb + 1 > n_ctx) goto done; /* does not fit: not judged */
    int32_t reused = (int32_t)k - 1;
    if (k > 1) s = sa_ctx_eval_prompt(j->ctx, a, (int32_t)k - 1, NULL, &reused);
    if (n_prefill) *n_prefill = (int32_t)k - 1 - reused;
    double lp2 = 0, lp1 = 0;
    if (!s) s = sa_spec_score(j->ctx, (int32_t)k - 1, b[k - 1], b + k, (int32_t)(nb - k), -1, &lp2);
    if (!s) s = sa_spec_score(j->ctx, (int32_t)k - 1, a[k - 1], a + k, (int32_t)(na - k), -1, &lp1);
    if (!s) *margin = lp2 - lp1;
done:
    free(b);
    free(a);
    return s;
}
