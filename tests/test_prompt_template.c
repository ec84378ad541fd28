/* test_prompt_template.c: the one prompt-template type (src/core/prompt_file.c) behind the
 * judge's and the annotator's prompts: placeholders required per use, {reference} detected,
 * the same errors through both public wrappers. */
#define _GNU_SOURCE
#include "core/core_impl.h"
#include "core/prompt_impl.h"
#include "sa/data_build.h"
#include "sa/eval.h"

#include "harness.h"

#include <stdlib.h>

static void test_template(void) {
    static const char *const req[] = {"{question}", "{x}"};
    const char *text = "# a comment\n[system]\nBe brief.\n[user]\nQ: {question} X: {x} R: {reference} {latex}\n";
    struct sa_prompt_template t;
    CHECK_OK(sa_prompt_template_parse(text, strlen(text), "p.txt", req, 2, &t));
    CHECK_EQ_STR(t.system, "Be brief.");
    CHECK_EQ_STR(t.user, "Q: {question} X: {x} R: {reference} {latex}");
    CHECK(t.needs_reference);
    char *out = NULL;
    const char *const names[] = {"{question}", "{x}", "{reference}"}, *const values[] = {"{x}", "1", "r"};
    CHECK_OK(sa_prompt_fill(t.user, names, values, 3, &out));
    CHECK_EQ_STR(out, "Q: {x} X: 1 R: r {latex}");
    free(out);
    sa_prompt_template_free(&t);
    CHECK(t.system == NULL && t.user == NULL);
    sa_prompt_template_free(&t); /* twice: nothing */
    sa_prompt_template_free(NULL);
    /* a missing placeholder names the file and the placeholder; *out stays zeroed */
    const char *no_x = "Q: {question}";
    CHECK(sa_prompt_template_parse(no_x, strlen(no_x), "p.txt", req, 2, &t) == SA_STATUS_BAD_FILE);
    CHECK(strstr(sa_last_error(), "p.txt: the user message has no {x} placeholder") != NULL);
    CHECK(t.system == NULL && t.user == NULL && !t.needs_reference);
    CHECK_OK(sa_prompt_template_parse(no_x, strlen(no_x), "p.txt", req, 1, &t));
    CHECK_EQ_STR(t.system, "");
    CHECK(!t.needs_reference);
    sa_prompt_template_free(&t);
    CHECK(sa_prompt_template_load("/nonexistent/p.txt", "judge prompt", req, 1, &t) == SA_STATUS_IO);
    CHECK(strncmp(sa_last_error(), "judge prompt: ", 14) == 0);
}

/* The judge's and the annotator's prompts are that type with their own placeholders. */
static void test_both_users(void) {
    const char *judge = "[user]\n{question} A: {answer_a} B: {answer_b} {reference}";
    const char *annot = "[system]\nS\n[user]\n{question} P: {prefix} S: {sentence}";
    struct sa_judge_prompt *jp = NULL;
    struct sa_annot_prompt *ap = NULL;
    CHECK_OK(sa_judge_prompt_parse(judge, strlen(judge), "j.txt", &jp));
    CHECK_OK(sa_annot_prompt_parse(annot, strlen(annot), "a.txt", &ap));
    CHECK(jp && sa_judge_prompt_needs_reference(jp) && !strcmp(sa_judge_prompt_system(jp), ""));
    CHECK(ap && !sa_annot_prompt_needs_reference(ap) && !strcmp(sa_annot_prompt_system(ap), "S"));
    /* each other's text lacks the other's placeholders: the same error, naming the file */
    struct sa_judge_prompt *jp2 = NULL;
    struct sa_annot_prompt *ap2 = NULL;
    CHECK(sa_judge_prompt_parse(annot, strlen(annot), "a.txt", &jp2) == SA_STATUS_BAD_FILE && !jp2);
    CHECK(strstr(sa_last_error(), "a.txt: the user message has no {answer_a} placeholder") != NULL);
    CHECK(sa_annot_prompt_parse(judge, strlen(judge), "j.txt", &ap2) == SA_STATUS_BAD_FILE && !ap2);
    CHECK(strstr(sa_last_error(), "j.txt: the user message has no {prefix} placeholder") != NULL);
    CHECK(sa_judge_prompt_load("/nonexistent/j.txt", &jp2) == SA_STATUS_IO && !jp2);
    CHECK(strncmp(sa_last_error(), "judge prompt: ", 14) == 0);
    CHECK(sa_annot_prompt_load("/nonexistent/a.txt", &ap2) == SA_STATUS_IO && !ap2);
    CHECK(strncmp(sa_last_error(), "annotator prompt: ", 18) == 0);
    sa_judge_prompt_free(jp);
    sa_annot_prompt_free(ap);
    sa_judge_prompt_free(NULL);
    sa_annot_prompt_free(NULL);
}

int main(void) {
    RUN(test_template);
    RUN(test_both_users);
    return harness_summary();
}
