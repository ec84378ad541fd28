/* prefix_sample.c: sampling the upstream from a given answer prefix with the pipeline's own
 * conventions (prompt rendering, token healing, segmenter, joining, max_length), one sentence
 * or the whole rest: what rollout labelling (src/data/rollout.c, issue 13) values prefixes
 * with. The reading itself is the pipeline's (sa_pipeline_sample_run at the end of
 * pipeline.c), so that a sample is byte for byte what a STREAM round or UPSTREAM mode would
 * append. */
#include "pipeline/pipeline_impl.h"

#include <stdlib.h>
#include <string.h>

struct sa_pipeline_sample_params sa_pipeline_sample_default_params(void) {
    return (struct sa_pipeline_sample_params){.whole = false, .temperature = 0.7f, .top_p = 1.0f};
}

void sa_pipeline_sample_result_free(struct sa_pipeline_sample_result *r) {
    if (!r) return;
    free(r->text);
    free(r->sentence);
    memset(r, 0, sizeof *r);
}

static bool valid_utf8(const char *s) {
    size_t n = strlen(s);
    return sa_utf8_valid_prefix(s, n) == n;
}

enum sa_status sa_pipeline_sample(struct sa_pipeline *pl, const char *question, const char *prefix,
                                  const struct sa_pipeline_sample_params *params,
                                  struct sa_pipeline_sample_result *out) {
    if (out) memset(out, 0, sizeof *out);
    if (!pl || !question || !prefix || !params || !out)
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_pipeline_sample: NULL argument");
    if (params->max_tokens < 0 || !(params->top_p >= 0.0f && params->top_p <= 1.0f))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_pipeline_sample: max_tokens < 0 or top_p outside (0, 1]");
    if (!valid_utf8(question) || !valid_utf8(prefix))
        return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_pipeline_sample: the question or the prefix is not valid UTF-8");
    enum sa_status s = sa_pipeline_sample_run(pl, question, prefix, params, out);
    if (s) {
        free(out->text);
        free(out->sentence);
        out->text = out->sentence = NULL;
    }
    return s;
}
