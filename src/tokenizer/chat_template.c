/* chat_template.c: chat formats (ChatML, Gemma, Llama 3) written out in C, template
 * detection by markers (as llama.cpp's llm_chat_detect_template), and the default system
 * prompt that a ChatML template injects. Each renderer mirrors the Hugging Face Jinja
 * template of its models, including Jinja's `trim` (Python str.strip: Unicode whitespace);
 * tests/py/test_chat_template_ref.py checks them byte for byte against jinja2. */
#include "sa/chat.h"

#include "core/core_impl.h"

#include <stdlib.h>
#include <string.h>

enum sa_chat_format sa_chat_template_detect(const char *tmpl, const char *arch) {
    if (tmpl && *tmpl) {
        if (strstr(tmpl, "<|im_start|>")) return SA_CHAT_FORMAT_CHATML;
        if (strstr(tmpl, "<start_of_turn>")) return SA_CHAT_FORMAT_GEMMA;
        if (strstr(tmpl, "<|start_header_id|>") && strstr(tmpl, "<|end_header_id|>")) return SA_CHAT_FORMAT_LLAMA3;
        return SA_CHAT_FORMAT_UNKNOWN; /* a template we do not know: do not guess from arch */
    }
    if (arch) {
        if (!strncmp(arch, "gemma", 5)) return SA_CHAT_FORMAT_GEMMA;
        if (!strncmp(arch, "qwen", 4)) return SA_CHAT_FORMAT_CHATML;
    }
    return SA_CHAT_FORMAT_UNKNOWN;
}

enum sa_status sa_chat_format_from_name(const char *name, enum sa_chat_format *out) {
    static const struct {
        const char *name;
        enum sa_chat_format fmt;
    } names[] = {{"chatml", SA_CHAT_FORMAT_CHATML}, {"gemma", SA_CHAT_FORMAT_GEMMA}, {"gemma2", SA_CHAT_FORMAT_GEMMA},
                 {"gemma3", SA_CHAT_FORMAT_GEMMA},  {"llama3", SA_CHAT_FORMAT_LLAMA3}};
    for (size_t i = 0; name && i < SA_ARRAY_LEN(names); i++)
        if (!strcmp(name, names[i].name)) {
            *out = names[i].fmt;
            return SA_STATUS_OK;
        }
    return sa_error(SA_STATUS_BAD_ARGUMENT, "unknown chat format '%s' (chatml, gemma, llama3)", name ? name : "(null)");
}

const char *sa_chat_format_name(enum sa_chat_format fmt) {
    switch (fmt) {
    case SA_CHAT_FORMAT_CHATML: return "chatml";
    case SA_CHAT_FORMAT_GEMMA: return "gemma";
    case SA_CHAT_FORMAT_LLAMA3: return "llama3";
    default: return "unknown";
    }
}

const char *sa_chat_format_eot(enum sa_chat_format fmt) {
    switch (fmt) {
    case SA_CHAT_FORMAT_CHATML: return "<|im_end|>";
    case SA_CHAT_FORMAT_GEMMA: return "<end_of_turn>";
    case SA_CHAT_FORMAT_LLAMA3: return "<|eot_id|>";
    default: return "";
    }
}

bool sa_chat_format_bos_in_text(enum sa_chat_format fmt) {
    return fmt == SA_CHAT_FORMAT_GEMMA || fmt == SA_CHAT_FORMAT_LLAMA3;
}

/* ---- Jinja's trim: Python str.strip() with no argument ---- */

/* Python's str.isspace() code points: bidi class WS, B or S, or category Zs. */
static bool py_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Decodes one UTF-8 sequence at s[0..n); returns its length, or 0 if invalid/truncated. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    int k = sa_utf8_seq_len(s[0]);
    if (k == 0 || (size_t)k > n) return 0;
    if (k == 1) {
        *cp = s[0];
        return 1;
    }
    uint32_t c = s[0] & (0xFF >> (k + 1));
    for (int i = 1; i < k; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min_cp[k]) return 0; /* overlong */
    *cp = c;
    return (size_t)k;
}

/* The [b, e) span of s without leading and trailing Python whitespace. Invalid UTF-8 counts
 * as non-space (the reference never sees it: Python strings are valid text). */
static void py_strip(const char *s, size_t *b, size_t *e) {
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, j = n;
    uint32_t cp;
    while (i < n) {
        size_t k = utf8_decode(u + i, n - i, &cp);
        if (!k || !py_isspace(cp)) break;
        i += k;
    }
    while (j > i) {
        size_t st = j - 1;
        while (st > i && (u[st] & 0xC0) == 0x80 && j - st < 4) st--;
        size_t k = utf8_decode(u + st, j - st, &cp);
        if (k != j - st || !py_isspace(cp)) break;
        j = st;
    }
    *b = i;
    *e = j;
}

static enum sa_status put_trimmed(struct sa_buf *o, const char *s) {
    size_t b, e;
    py_strip(s, &b, &e);
    return sa_buf_append(o, s + b, e - b);
}

/* ---- ChatML default system prompt ---- */

/* Finds the default system prompt of a ChatML template: a Jinja string literal that
 * contains "<|im_start|>system" + newline (a real one or the escape \n) + constant text +
 * "<|im_end|>", as in SmolLM2's
 *   {{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, ...<|im_end|>\n' }}
 * Candidates whose text leaves the literal (a quote: '...' + messages[0]['content'])
 * are skipped. Returns SA_STATUS_OK with *out NULL when there is none. */
static enum sa_status chatml_default_system(const char *tmpl, char **out) {
    static const char open[] = "<|im_start|>system";
    static const char end[] = "<|im_end|>";
    *out = NULL;
    if (!tmpl) return SA_STATUS_OK;
    for (const char *p = strstr(tmpl, open); p; p = strstr(p + 1, open)) {
        const char *q = p + sizeof open - 1;
        if (*q == '\n') q++;
        else if (q[0] == '\\' && q[1] == 'n') q += 2;
        else continue;
        struct sa_buf b;
        sa_buf_init(&b, 0);
        bool ok = false;
        enum sa_status st = SA_STATUS_OK;
        while (*q && st == SA_STATUS_OK) {
            if (!strncmp(q, end, sizeof end - 1)) {
                ok = true;
                break;
            }
            char c = *q;
            if (c == '\'' || c == '"' || c == '{' || c == '}') break; /* not one constant literal */
            if (c == '\\') {
                char e = q[1], r;
                switch (e) {
                case 'n': r = '\n'; break;
                case 't': r = '\t'; break;
                case 'r': r = '\r'; break;
                case '\\': r = '\\'; break;
                case '\'': r = '\''; break;
                case '"': r = '"'; break;
                default: r = 0; break;
                }
                if (!r) break; /* an escape we do not decode: do not guess */
                st = sa_buf_append(&b, &r, 1);
                q += 2;
                continue;
            }
            st = sa_buf_append(&b, q, 1);
            q++;
        }
        if (st != SA_STATUS_OK) {
            sa_buf_free(&b);
            return st;
        }
        if (ok) {
            *out = sa_buf_take(&b, NULL);
            return *out ? SA_STATUS_OK : sa_error(SA_STATUS_NO_MEMORY, "chat template: out of memory");
        }
        sa_buf_free(&b);
    }
    return SA_STATUS_OK;
}

/* ---- renderers ---- */

enum role { ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT };

static enum sa_status check_msgs(const struct sa_chat_msg *msgs, size_t n, enum role *roles) {
    for (size_t i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        if (!r) return sa_error(SA_STATUS_BAD_ARGUMENT, "chat message %zu: NULL role", i);
        if (!msgs[i].content) return sa_error(SA_STATUS_BAD_ARGUMENT, "chat message %zu (%s): NULL content", i, r);
        if (!strcmp(r, "system")) roles[i] = ROLE_SYSTEM;
        else if (!strcmp(r, "user")) roles[i] = ROLE_USER;
        else if (!strcmp(r, "assistant")) roles[i] = ROLE_ASSISTANT;
        else
            return sa_error(SA_STATUS_BAD_ARGUMENT,
                            "chat message %zu: unknown role '%s' (expected system, user or assistant)", i, r);
    }
    return SA_STATUS_OK;
}

#define TRY(x)                                                                           \
    do {                                                                                 \
        enum sa_status _st = (x);                                                        \
        if (_st != SA_STATUS_OK) return _st;                                             \
    } while (0)

/* SmolLM2 / Qwen2.5 / Qwen3: every message as "<|im_start|>" role "\n" content
 * "<|im_end|>\n" (contents untouched); the default system prompt when the first message
 * is not a system one. */
static enum sa_status render_chatml(struct sa_buf *o, const char *tmpl, const struct sa_chat_msg *msgs, size_t n,
                                    const enum role *roles, bool add_gen) {
    if (roles[0] != ROLE_SYSTEM) {
        char *def;
        TRY(chatml_default_system(tmpl, &def));
        if (def) {
            enum sa_status st = sa_buf_printf(o, "<|im_start|>system\n%s<|im_end|>\n", def);
            free(def);
            TRY(st);
        }
    }
    for (size_t i = 0; i < n; i++) {
        TRY(sa_buf_puts(o, "<|im_start|>"));
        TRY(sa_buf_puts(o, msgs[i].role));
        TRY(sa_buf_puts(o, "\n"));
        TRY(sa_buf_puts(o, msgs[i].content));
        TRY(sa_buf_puts(o, "<|im_end|>\n"));
    }
    if (add_gen) TRY(sa_buf_puts(o, "<|im_start|>assistant\n"));
    return SA_STATUS_OK;
}

/* Gemma 3 (google/gemma-3-*-it tokenizer_config.json): "<bos>", a leading system message
 * becomes "<content>\n\n" at the start of the first turn (untrimmed), turn contents are
 * trimmed, assistant is "model", roles alternate user/model. */
static enum sa_status render_gemma(struct sa_buf *o, const struct sa_chat_msg *msgs, size_t n, const enum role *roles,
                                   bool add_gen) {
    size_t first = roles[0] == ROLE_SYSTEM ? 1 : 0;
    for (size_t i = first; i < n; i++) {
        enum role want = (i - first) % 2 == 0 ? ROLE_USER : ROLE_ASSISTANT;
        if (roles[i] == ROLE_SYSTEM)
            return sa_error(SA_STATUS_BAD_ARGUMENT,
                            "chat message %zu: gemma takes a system message only as the first message", i);
        if (roles[i] != want)
            return sa_error(SA_STATUS_BAD_ARGUMENT,
                            "chat message %zu: gemma needs user/assistant turns alternating from user, got '%s'", i,
                            msgs[i].role);
    }
    TRY(sa_buf_puts(o, "<bos>"));
    for (size_t i = first; i < n; i++) {
        TRY(sa_buf_puts(o, roles[i] == ROLE_USER ? "<start_of_turn>user\n" : "<start_of_turn>model\n"));
        if (i == first && first == 1) {
            TRY(sa_buf_puts(o, msgs[0].content));
            TRY(sa_buf_puts(o, "\n\n"));
        }
        TRY(put_trimmed(o, msgs[i].content));
        TRY(sa_buf_puts(o, "<end_of_turn>\n"));
    }
    if (add_gen) TRY(sa_buf_puts(o, "<start_of_turn>model\n"));
    return SA_STATUS_OK;
}

/* Llama 3 Instruct: "<|begin_of_text|>" then per message "<|start_header_id|>" role
 * "<|end_header_id|>\n\n" trimmed content "<|eot_id|>". */
static enum sa_status render_llama3(struct sa_buf *o, const struct sa_chat_msg *msgs, size_t n, bool add_gen) {
    TRY(sa_buf_puts(o, "<|begin_of_text|>"));
    for (size_t i = 0; i < n; i++) {
        TRY(sa_buf_puts(o, "<|start_header_id|>"));
        TRY(sa_buf_puts(o, msgs[i].role));
        TRY(sa_buf_puts(o, "<|end_header_id|>\n\n"));
        TRY(put_trimmed(o, msgs[i].content));
        TRY(sa_buf_puts(o, "<|eot_id|>"));
    }
    if (add_gen) TRY(sa_buf_puts(o, "<|start_header_id|>assistant<|end_header_id|>\n\n"));
    return SA_STATUS_OK;
}

enum sa_status sa_chat_render(enum sa_chat_format fmt, const char *tmpl, const struct sa_chat_msg *msgs, size_t n,
                              bool add_generation_prompt, const char *assistant_prefix, char **out, size_t *len) {
    if (!out) return sa_error(SA_STATUS_BAD_ARGUMENT, "sa_chat_render: out is NULL");
    *out = NULL;
    if (len) *len = 0;
    if (fmt != SA_CHAT_FORMAT_CHATML && fmt != SA_CHAT_FORMAT_GEMMA && fmt != SA_CHAT_FORMAT_LLAMA3)
        return sa_error(SA_STATUS_BAD_ARGUMENT,
                        "chat template: unknown format %d; HINT: name one (chatml, gemma, llama3)", (int)fmt);
    if (n == 0 || !msgs) return sa_error(SA_STATUS_BAD_ARGUMENT, "chat template: empty conversation");
    if (assistant_prefix && !add_generation_prompt)
        return sa_error(SA_STATUS_BAD_ARGUMENT,
                        "chat template: an assistant prefix needs add_generation_prompt (it continues the "
                        "assistant turn that the generation prompt opens)");
    enum role *roles = malloc(n * sizeof *roles);
    if (!roles) return sa_error(SA_STATUS_NO_MEMORY, "chat template: out of memory");
    enum sa_status st = check_msgs(msgs, n, roles);
    struct sa_buf o;
    sa_buf_init(&o, 0);
    if (st == SA_STATUS_OK) {
        switch (fmt) {
        case SA_CHAT_FORMAT_CHATML: st = render_chatml(&o, tmpl, msgs, n, roles, add_generation_prompt); break;
        case SA_CHAT_FORMAT_GEMMA: st = render_gemma(&o, msgs, n, roles, add_generation_prompt); break;
        default: st = render_llama3(&o, msgs, n, add_generation_prompt); break;
        }
    }
    if (st == SA_STATUS_OK && assistant_prefix) st = sa_buf_puts(&o, assistant_prefix);
    free(roles);
    if (st != SA_STATUS_OK) {
        sa_buf_free(&o);
        return st;
    }
    size_t n_out = 0;
    *out = sa_buf_take(&o, &n_out);
    if (!*out) return sa_error(SA_STATUS_NO_MEMORY, "chat template: out of memory");
    if (len) *len = n_out;
    return SA_STATUS_OK;
}
