/* test_chat_template.c: chat formats (exact strings for ChatML, Gemma, Llama 3), detection
 * from the real templates in the model cache (SmolLM2's via the GGUF reader; Gemma 3 270M
 * has none and falls back on its architecture), default system prompts, the assistant
 * prefix, Python-style trimming, and the errors. The byte-for-byte comparison with
 * Hugging Face's Jinja rendering is tests/py/test_chat_template_ref.py. */
#include "sa/chat.h"
#include "sa/gguf.h"

#include "harness.h"

#include <stdlib.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

static char *models_path(const char *rel) {
    const char *dir = getenv("SALIGN_MODELS");
    char home[512];
    if (!dir) {
        snprintf(home, sizeof home, "%s/.cache/salign", getenv("HOME") ? getenv("HOME") : ".");
        dir = home;
    }
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

/* Renders and compares; returns nothing, checks inline. */
static void expect(enum sa_chat_format fmt, const char *tmpl, const struct sa_chat_msg *m, size_t n, bool gen,
                   const char *prefix, const char *want, int line) {
    char *out = NULL;
    size_t len = 0;
    enum sa_status st = sa_chat_render(fmt, tmpl, m, n, gen, prefix, &out, &len);
    if (st != SA_STATUS_OK) {
        harness_fail(__FILE__, line, "render failed: %s", sa_last_error());
        return;
    }
    if (strcmp(out, want) || len != strlen(want))
        harness_fail(__FILE__, line, "rendered:\n[%s]\nwant:\n[%s]", out, want);
    free(out);
}
#define EXPECT(fmt, tmpl, m, gen, prefix, want) expect(fmt, tmpl, m, N(m), gen, prefix, want, __LINE__)

static const char SMOLLM2_COPY[] =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
    "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/* the relevant branch of Qwen2.5's template: the newline is the Jinja escape \n here */
static const char QWEN25_PART[] =
    "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0]['role'] == 'system' %}\n"
    "        {{- messages[0]['content'] }}\n    {%- else %}\n        {{- 'You are Qwen, created by Alibaba "
    "Cloud. You are a helpful assistant.' }}\n    {%- endif %}\n{%- else %}\n    {%- if messages[0]['role'] == "
    "'system' %}\n        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n    {%- else "
    "%}\n        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n";

static void test_detect_real_templates(void) {
    char *path = models_path("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    struct sa_gguf *g = NULL;
    CHECK_OK(sa_gguf_open(path, &g));
    if (g) {
        char *tmpl = sa_gguf_get_string(g, "tokenizer.chat_template");
        char *arch = sa_gguf_get_string(g, "general.architecture");
        CHECK(tmpl != NULL);
        CHECK_EQ_STR(arch, "llama");
        CHECK_EQ_STR(tmpl, SMOLLM2_COPY); /* the copy used below is the real one */
        CHECK_EQ_INT(sa_chat_template_detect(tmpl, arch), SA_CHAT_FORMAT_CHATML);
        CHECK_EQ_INT(sa_chat_template_detect(NULL, arch), SA_CHAT_FORMAT_UNKNOWN); /* llama: ambiguous */
        free(arch);
        free(tmpl);
        sa_gguf_free(g);
    }
    free(path);
    path = models_path("gemma3-270m/gemma-3-270m-q4_k_m.gguf");
    g = NULL;
    CHECK_OK(sa_gguf_open(path, &g));
    if (g) {
        char *tmpl = sa_gguf_get_string(g, "tokenizer.chat_template");
        char *arch = sa_gguf_get_string(g, "general.architecture");
        CHECK(tmpl == NULL); /* no template in this file */
        CHECK_EQ_STR(arch, "gemma3");
        CHECK_EQ_INT(sa_chat_template_detect(tmpl, arch), SA_CHAT_FORMAT_GEMMA);
        free(arch);
        free(tmpl);
        sa_gguf_free(g);
    }
    free(path);
}

static void test_detect_and_names(void) {
    CHECK_EQ_INT(sa_chat_template_detect(QWEN25_PART, "qwen2"), SA_CHAT_FORMAT_CHATML);
    CHECK_EQ_INT(sa_chat_template_detect("{{ bos_token }}{{ '<start_of_turn>' + role }}", NULL), SA_CHAT_FORMAT_GEMMA);
    CHECK_EQ_INT(sa_chat_template_detect("{{ '<|start_header_id|>' + r + '<|end_header_id|>' }}", "llama"),
                 SA_CHAT_FORMAT_LLAMA3);
    CHECK_EQ_INT(sa_chat_template_detect("{{ '[INST] ' + x }}", "gemma3"), SA_CHAT_FORMAT_UNKNOWN); /* not guessed */
    CHECK_EQ_INT(sa_chat_template_detect("", "qwen3"), SA_CHAT_FORMAT_CHATML);
    CHECK_EQ_INT(sa_chat_template_detect(NULL, "gemma2"), SA_CHAT_FORMAT_GEMMA);
    CHECK_EQ_INT(sa_chat_template_detect(NULL, NULL), SA_CHAT_FORMAT_UNKNOWN);
    enum sa_chat_format got = SA_CHAT_FORMAT_UNKNOWN;
    CHECK_OK(sa_chat_format_from_name("chatml", &got));
    CHECK_EQ_INT(got, SA_CHAT_FORMAT_CHATML);
    CHECK_OK(sa_chat_format_from_name("gemma3", &got));
    CHECK_EQ_INT(got, SA_CHAT_FORMAT_GEMMA);
    CHECK_OK(sa_chat_format_from_name("llama3", &got));
    CHECK_EQ_INT(got, SA_CHAT_FORMAT_LLAMA3);
    CHECK_EQ_INT(sa_chat_format_from_name("vicuna", &got), SA_STATUS_BAD_ARGUMENT);
    CHECK(strstr(sa_last_error(), "'vicuna'") && strstr(sa_last_error(), "chatml"));
    CHECK_EQ_INT(got, SA_CHAT_FORMAT_LLAMA3); /* unchanged on error */
    CHECK_EQ_INT(sa_chat_format_from_name(NULL, &got), SA_STATUS_BAD_ARGUMENT);
    for (int f = SA_CHAT_FORMAT_CHATML; f <= SA_CHAT_FORMAT_LLAMA3; f++) {
        CHECK_OK(sa_chat_format_from_name(sa_chat_format_name(f), &got));
        CHECK_EQ_INT(got, f);
    }
    CHECK_EQ_STR(sa_chat_format_name(SA_CHAT_FORMAT_UNKNOWN), "unknown");
    CHECK_EQ_STR(sa_chat_format_eot(SA_CHAT_FORMAT_CHATML), "<|im_end|>");
    CHECK_EQ_STR(sa_chat_format_eot(SA_CHAT_FORMAT_GEMMA), "<end_of_turn>");
    CHECK_EQ_STR(sa_chat_format_eot(SA_CHAT_FORMAT_LLAMA3), "<|eot_id|>");
    CHECK_EQ_STR(sa_chat_format_eot(SA_CHAT_FORMAT_UNKNOWN), "");
    CHECK(!sa_chat_format_bos_in_text(SA_CHAT_FORMAT_CHATML));
    CHECK(sa_chat_format_bos_in_text(SA_CHAT_FORMAT_GEMMA));
    CHECK(sa_chat_format_bos_in_text(SA_CHAT_FORMAT_LLAMA3));
}

static void test_chatml(void) {
    struct sa_chat_msg u[] = {{"user", "Hi"}};
    EXPECT(SA_CHAT_FORMAT_CHATML, SMOLLM2_COPY, u, true, NULL,
           "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
           "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    EXPECT(SA_CHAT_FORMAT_CHATML, QWEN25_PART, u, false, NULL,
           "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
           "<|im_start|>user\nHi<|im_end|>\n");
    EXPECT(SA_CHAT_FORMAT_CHATML, NULL, u, true, NULL, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    struct sa_chat_msg conv[] = {{"system", "Be brief."}, {"user", " a "}, {"assistant", "b\n"}, {"user", "c"}};
    EXPECT(SA_CHAT_FORMAT_CHATML, SMOLLM2_COPY, conv, true, NULL,
           "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n a <|im_end|>\n"
           "<|im_start|>assistant\nb\n<|im_end|>\n<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\n");
    /* a template whose system literal is not constant: no default */
    EXPECT(SA_CHAT_FORMAT_CHATML, "{{ '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>' }}", u,
           false, NULL, "<|im_start|>user\nHi<|im_end|>\n");
}

static void test_gemma(void) {
    struct sa_chat_msg u[] = {{"user", "  Hi\n"}};
    EXPECT(SA_CHAT_FORMAT_GEMMA, NULL, u, true, NULL, "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
    struct sa_chat_msg conv[] = {
        {"system", "Sys \n"}, {"user", "\xe3\x80\x80Q1\xc2\xa0"}, {"assistant", " A1 "}, {"user", "Q2"}};
    EXPECT(SA_CHAT_FORMAT_GEMMA, NULL, conv, true, NULL,
           "<bos><start_of_turn>user\nSys \n\n\nQ1<end_of_turn>\n<start_of_turn>model\nA1<end_of_turn>\n"
           "<start_of_turn>user\nQ2<end_of_turn>\n<start_of_turn>model\n");
    /* only a system message: Gemma's template writes no turn for it */
    struct sa_chat_msg s[] = {{"system", "alone"}};
    EXPECT(SA_CHAT_FORMAT_GEMMA, NULL, s, true, NULL, "<bos><start_of_turn>model\n");
    /* U+200B is not whitespace for Python's strip; U+2028 and \x1c are */
    struct sa_chat_msg z[] = {{"user", "\xe2\x80\x8bx\xe2\x80\xa8\x1c"}};
    EXPECT(SA_CHAT_FORMAT_GEMMA, NULL, z, false, NULL, "<bos><start_of_turn>user\n\xe2\x80\x8bx<end_of_turn>\n");
    /* invalid UTF-8 at the edges is kept, never over-read */
    struct sa_chat_msg bad[] = {{"user", "\xe3\x80 x \xc2"}};
    EXPECT(SA_CHAT_FORMAT_GEMMA, NULL, bad, false, NULL, "<bos><start_of_turn>user\n\xe3\x80 x \xc2<end_of_turn>\n");
}

static void test_llama3(void) {
    struct sa_chat_msg conv[] = {{"system", " S "}, {"user", "U\n"}, {"assistant", "A"}};
    EXPECT(SA_CHAT_FORMAT_LLAMA3, NULL, conv, true, NULL,
           "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\nA<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void test_assistant_prefix(void) {
    struct sa_chat_msg u[] = {{"user", "Tell me about cats."}};
    EXPECT(SA_CHAT_FORMAT_CHATML, SMOLLM2_COPY, u, true, "Cats are",
           "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
           "<|im_start|>user\nTell me about cats.<|im_end|>\n<|im_start|>assistant\nCats are");
    EXPECT(SA_CHAT_FORMAT_GEMMA, NULL, u, true, " Cats are ",
           "<bos><start_of_turn>user\nTell me about cats.<end_of_turn>\n<start_of_turn>model\n Cats are ");
    EXPECT(SA_CHAT_FORMAT_LLAMA3, NULL, u, true, "Cats",
           "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nTell me about cats.<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\nCats");
    /* Qwen3 without thinking: the empty think block as the prefix */
    EXPECT(SA_CHAT_FORMAT_CHATML, NULL, u, true, "<think>\n\n</think>\n\n",
           "<|im_start|>user\nTell me about cats.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
    /* an empty prefix is the plain generation prompt */
    EXPECT(SA_CHAT_FORMAT_LLAMA3, NULL, u, true, "",
           "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nTell me about cats.<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\n");
    char *out = NULL;
    size_t len = 0;
    CHECK_OK(sa_chat_render(SA_CHAT_FORMAT_GEMMA, NULL, u, 1, true, "Cats are", &out, &len));
    if (out) { /* never an end-of-turn after the prefix */
        const char *eot = sa_chat_format_eot(SA_CHAT_FORMAT_GEMMA);
        CHECK(len >= 8 && !strcmp(out + len - 8, "Cats are"));
        const char *last = NULL;
        for (const char *p = strstr(out, eot); p; p = strstr(p + 1, eot)) last = p;
        CHECK(last && last < out + len - 8 - strlen("<start_of_turn>model\n"));
    }
    free(out);
}

static void expect_error(enum sa_chat_format fmt, const struct sa_chat_msg *m, size_t n, bool gen, const char *prefix,
                         const char *needle, int line) {
    char *out = (char *)"x";
    enum sa_status st = sa_chat_render(fmt, NULL, m, n, gen, prefix, &out, NULL);
    if (st != SA_STATUS_BAD_ARGUMENT) harness_fail(__FILE__, line, "status %d, want bad argument", st);
    if (out) harness_fail(__FILE__, line, "out not NULL on error");
    if (!strstr(sa_last_error(), needle))
        harness_fail(__FILE__, line, "error \"%s\" does not mention \"%s\"", sa_last_error(), needle);
}
#define EXPECT_ERR(fmt, m, n, gen, prefix, needle) expect_error(fmt, m, n, gen, prefix, needle, __LINE__)

static void test_errors(void) {
    struct sa_chat_msg tool[] = {{"user", "x"}, {"tool", "{}"}};
    EXPECT_ERR(SA_CHAT_FORMAT_CHATML, tool, 2, true, NULL, "unknown role 'tool'");
    struct sa_chat_msg nul[] = {{"user", NULL}};
    EXPECT_ERR(SA_CHAT_FORMAT_LLAMA3, nul, 1, true, NULL, "NULL content");
    struct sa_chat_msg norole[] = {{NULL, "x"}};
    EXPECT_ERR(SA_CHAT_FORMAT_GEMMA, norole, 1, true, NULL, "NULL role");
    struct sa_chat_msg u[] = {{"user", "x"}};
    EXPECT_ERR(SA_CHAT_FORMAT_CHATML, u, 0, true, NULL, "empty conversation");
    EXPECT_ERR(SA_CHAT_FORMAT_UNKNOWN, u, 1, true, NULL, "unknown format");
    EXPECT_ERR(SA_CHAT_FORMAT_CHATML, u, 1, false, "pre", "add_generation_prompt");
    struct sa_chat_msg two_users[] = {{"user", "a"}, {"user", "b"}};
    EXPECT_ERR(SA_CHAT_FORMAT_GEMMA, two_users, 2, true, NULL, "alternating");
    struct sa_chat_msg asst_first[] = {{"system", "s"}, {"assistant", "a"}};
    EXPECT_ERR(SA_CHAT_FORMAT_GEMMA, asst_first, 2, true, NULL, "alternating");
    struct sa_chat_msg late_sys[] = {{"user", "a"}, {"system", "s"}};
    EXPECT_ERR(SA_CHAT_FORMAT_GEMMA, late_sys, 2, true, NULL, "first message");
    /* the same conversations are fine in ChatML */
    char *out = NULL;
    CHECK_OK(sa_chat_render(SA_CHAT_FORMAT_CHATML, NULL, two_users, 2, true, NULL, &out, NULL));
    free(out);
    CHECK(sa_chat_render(SA_CHAT_FORMAT_CHATML, NULL, u, 1, true, NULL, NULL, NULL) == SA_STATUS_BAD_ARGUMENT);
}

int main(void) {
    RUN(test_detect_real_templates);
    RUN(test_detect_and_names);
    RUN(test_chatml);
    RUN(test_gemma);
    RUN(test_llama3);
    RUN(test_assistant_prefix);
    RUN(test_errors);
    return harness_summary();
}
