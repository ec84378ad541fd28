/* prompt_impl.h: the one prompt-template type (src/core/prompt_file.c): a prompt file parsed
 * (sa_prompt_file_parse, core_impl.h) with its required placeholders checked. The judge's
 * prompt (sa_judge_prompt, src/eval/judge.c) and the annotator's (sa_annot_prompt,
 * src/data/build.c) are this type; they differ only in their placeholders. Not public. */
#ifndef SA_PROMPT_IMPL_H
#define SA_PROMPT_IMPL_H

#include "core/core_impl.h"

struct sa_prompt_template {
    char *system;         /* "" when none */
    char *user;           /* non-empty; holds every required placeholder */
    bool needs_reference; /* the user message holds "{reference}" */
};

/* sa_prompt_file_parse_with into *out (its strings malloc'd; free with
 * sa_prompt_template_free). On error *out is zeroed. */
SA_NODISCARD enum sa_status sa_prompt_template_parse(const char *text, size_t len, const char *name,
                                                     const char *const *required, size_t n_required,
                                                     struct sa_prompt_template *out);
/* Reads a prompt file (at most 1 MiB) and parses it (the path names the messages); `what`
 * ("judge prompt") prefixes a read error. */
SA_NODISCARD enum sa_status sa_prompt_template_load(const char *path, const char *what, const char *const *required,
                                                    size_t n_required, struct sa_prompt_template *out);
/* Frees t's strings (not t itself) and zeroes it. NULL does nothing. */
void sa_prompt_template_free(struct sa_prompt_template *t);

#endif
