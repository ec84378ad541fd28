/* aligner_input.c: the aligner's input text, byte for byte: the format the pipeline asks the
 * aligner in (pipeline.c) and the one its training records are rendered in (sa_record_input,
 * src/data/records.c), so that training and inference see the same text. */
#define _GNU_SOURCE
#include "pipeline/pipeline_impl.h"
#include "sa/pipeline.h"

#include <stdio.h>
#include <string.h>

enum sa_status sa_aligner_input(const char *question, const char *prefix, const char *last, char **out) {
    *out = NULL;
    if (!question || !prefix || !last) return sa_error(SA_STATUS_BAD_ARGUMENT, "aligner input: NULL field");
    if (asprintf(out, "##Question: %s | ##Answer_Prefix: %s | ##Answer_Last_Sentence: %s | ##Your_Revision: ",
                 question, prefix, last) < 0) {
        *out = NULL;
        return sa_error(SA_STATUS_NO_MEMORY, "aligner input: out of memory");
    }
    return SA_STATUS_OK;
}

enum sa_status sa_aligner_baseline_input(const char *question, const char *answer, char **out) {
    *out = NULL;
    if (!question || !answer) return sa_error(SA_STATUS_BAD_ARGUMENT, "aligner input: NULL field");
    if (asprintf(out, "##Question: %s\n##Answer: %s\n##Correction: ", question, answer) < 0) {
        *out = NULL;
        return sa_error(SA_STATUS_NO_MEMORY, "aligner input: out of memory");
    }
    return SA_STATUS_OK;
}

/* s ends in " |" (trailing spaces aside): the start of a field separator. */
static bool ends_in_separator(const char *s) {
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
    return n >= 2 && s[n - 1] == '|' && (s[n - 2] == ' ' || s[n - 2] == '\t');
}

bool sa_aligner_input_marker_added(const char *y1, const char *y2) {
    /* the field markers of both inputs above, and pieces of them: a field separator " | ##"
     * and the markers' names without their colon */
    static const char *const markers[] = {"##Question:", "##Answer_Prefix:", "##Answer_Last_Sentence:",
                                          "##Your_Revision:", "##Answer:", "##Correction:",
                                          " | ##", "##Your_Revision", "##Answer_Last_Sentence", "##Answer_Prefix"};
    for (size_t i = 0; i < sizeof markers / sizeof markers[0]; i++)
        if (strstr(y2, markers[i]) && !strstr(y1, markers[i])) return true;
    /* a revision that ends in a separator's " |" where y1 did not ("... games lost |") */
    return ends_in_separator(y2) && !ends_in_separator(y1);
}
