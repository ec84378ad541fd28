/* upstream.h: the upstream of the Stream Aligner loop, the model that writes the answer
 * that the aligner corrects sentence by sentence. One pull-style interface over every kind:
 * start a generation from a prompt already rendered with the chat template (so that the
 * accepted prefix is pre-filled as the start of the assistant turn), take text chunks with
 * next() as they are generated, and cancel as soon as the caller has what it needs (the end
 * of one sentence). Kinds: a remote OpenAI-compatible server (POST {base}/completions with
 * "stream": true, read as server-sent events; cancel closes the connection, which is how
 * the server is stopped at a sentence boundary), and any other implementation plugged in
 * through struct sa_upstream_ops (the local engine, test doubles).
 * Failure behaviour, retries and timeouts: docs/internals/upstream.md. An upstream is not
 * thread-safe: one per thread. */
#ifndef SA_UPSTREAM_H
#define SA_UPSTREAM_H

#include "sa/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* sa_upstream_gen_params.seed: send no seed (the server chooses). */
#define SA_UPSTREAM_SEED_NONE UINT64_MAX

/* Sampling settings of one generation. */
struct sa_upstream_gen_params {
    int32_t max_tokens;      /* most tokens to generate, > 0 (servers default to as few as 16, so
                                it is always sent) */
    float temperature;       /* <= 0: greedy (sent as 0) */
    float top_p;             /* nucleus mass in (0, 1]; 1: off */
    uint64_t seed;           /* PRNG seed; SA_UPSTREAM_SEED_NONE: none */
    const char *const *stop; /* n_stop stop strings (non-empty UTF-8; borrowed for the
                                duration of start); NULL when n_stop is 0 */
    size_t n_stop;
    size_t heal_bytes;       /* token healing (local upstream; servers ignore it): the last
                                heal_bytes of the prompt are the answer being continued. When
                                the prompt's last token lies within them, it is taken back and
                                the first new token must begin with its text (that text is not
                                returned again). A prefix cut at a sentence boundary can end
                                in a token the model never wrote there (":" where it wrote
                                ":\n\n"); healing lets it write its own. The token taken
                                back counts neither against max_tokens nor in the chunks'
                                n_tokens (it is the prompt's, written again). 0: off */
};

/* max_tokens 256, temperature 0 (greedy), top_p 1, no seed, no stop strings, no healing. */
struct sa_upstream_gen_params sa_upstream_gen_default_params(void);

/* Why a generation ended. Add values only at the end. */
enum sa_upstream_finish {
    SA_UPSTREAM_FINISH_NONE = 0,   /* not ended: more text may come */
    SA_UPSTREAM_FINISH_STOP = 1,   /* the model ended its turn (end-of-turn / EOS token) or wrote
                                      a stop string: the answer is complete */
    SA_UPSTREAM_FINISH_LENGTH = 2, /* max_tokens (or the server's context) reached */
    SA_UPSTREAM_FINISH_OTHER = 3,  /* another reason the server gave (e.g. "content_filter"),
                                      or a stream that ended with [DONE] and no reason */
};

/* Static name: "none", "stop", "length", "other". Never NULL. */
const char *sa_upstream_finish_name(enum sa_upstream_finish f);

/* One piece of generated text. */
struct sa_upstream_chunk {
    const char *text;   /* len bytes, NUL-terminated for convenience (len is authoritative),
                           owned by the upstream, valid until its next call. Not validated
                           as UTF-8: a character may be split across chunks */
    size_t len;         /* may be 0 (the final chunk) */
    int32_t n_tokens;   /* tokens this chunk stands for: exact for a local engine; for a remote
                           server the number of stream events it came in (servers send one
                           event per token) */
    enum sa_upstream_finish finish; /* NONE, or why the generation ended: then this is the
                                       last chunk of the generation */
};

struct sa_upstream; /* opaque */

/* ---- the interface an implementation provides (ggml-backend style: hooks over void *impl) ---- */

struct sa_upstream_ops {
    const char *name; /* static: "remote", "local", ... */
    /* Begins a generation that continues prompt[0..prompt_len) (a valid UTF-8 string, no NUL).
     * Called only when no generation is in progress (the wrapper cancels one first). May block
     * until the generation is under way (remote: until the response head has come, retries
     * included) and report failures to begin. */
    enum sa_status (*start)(void *impl, const char *prompt, size_t prompt_len, const struct sa_upstream_gen_params *p);
    /* Blocks until the next chunk (non-empty text, or the final chunk with finish set) and
     * fills *out. Called only while a generation is in progress. The final chunk (finish
     * set) or an error ends the generation: cancel is not called for it, and whatever the
     * implementation still holds for it is its own to release (at the latest in the next
     * start or in free). */
    enum sa_status (*next)(void *impl, struct sa_upstream_chunk *out);
    /* Abandons the generation in progress at once (remote: closes the connection). Called
     * only while one is in progress. Must not fail. */
    void (*cancel)(void *impl);
    /* Releases impl (called once, by sa_upstream_free, with no generation in progress). */
    void (*free)(void *impl);
};

/* Wraps an implementation: `ops` (borrowed; must outlive the upstream, normally static) and
 * `impl` (owned from now on: released by ops->free from sa_upstream_free, also when this call
 * fails). The wrapper keeps the state machine (idle -> running -> idle) so that the hooks see
 * only the calls listed above. Errors: SA_STATUS_BAD_ARGUMENT (a NULL hook), NO_MEMORY. */
SA_NODISCARD enum sa_status sa_upstream_init_ops(const struct sa_upstream_ops *ops, void *impl,
                                                 struct sa_upstream **out);
/* Cancels a generation in progress and frees everything. NULL does nothing. */
void sa_upstream_free(struct sa_upstream *up);
/* ops->name ("remote", ...). */
const char *sa_upstream_kind(const struct sa_upstream *up);

/* ---- using an upstream ---- */

/* Starts a generation continuing `prompt` (prompt_len bytes; the text the model sees, chat
 * template already applied, no BOS added by us). A generation still in progress is cancelled
 * first. params NULL: defaults. Errors: SA_STATUS_BAD_ARGUMENT (NULL prompt, a NUL byte or
 * invalid UTF-8 in it, max_tokens <= 0, top_p outside (0, 1], a bad stop string), and the
 * implementation's (remote: NETWORK, TIMEOUT, NOT_FOUND, BAD_JSON, CANCELLED). On error no
 * generation is in progress. */
SA_NODISCARD enum sa_status sa_upstream_start(struct sa_upstream *up, const char *prompt, size_t prompt_len,
                                              const struct sa_upstream_gen_params *params);
/* The next chunk of the generation in progress (blocks until it comes). After a chunk with
 * finish != NONE the generation is over: another call returns an empty chunk with the same
 * finish. To stop early, call sa_upstream_cancel. Errors: SA_STATUS_BAD_ARGUMENT (no
 * generation started, or the last one failed or was cancelled); the implementation's (remote:
 * NETWORK, TIMEOUT, BAD_JSON, CANCELLED). An error ends the generation; the chunks returned
 * before it stay valid text of the answer (they are never re-sent). */
SA_NODISCARD enum sa_status sa_upstream_next(struct sa_upstream *up, struct sa_upstream_chunk *out);
/* Abandons the generation in progress (nothing more is read; a remote connection is closed
 * at once). Does nothing when none is in progress. The upstream is ready for the next start. */
void sa_upstream_cancel(struct sa_upstream *up);

/* Callback style over start/next/cancel: on_text gets each non-empty chunk's text (valid
 * during the call) and returns true to go on, false to stop: the generation is then
 * cancelled (the connection closed) and this call returns SA_STATUS_OK with *finish NONE.
 * *finish (may be NULL) receives why the generation ended. Errors: as start and next. */
typedef bool (*sa_upstream_text_fn)(void *user, const char *text, size_t len, int32_t n_tokens);
SA_NODISCARD enum sa_status sa_upstream_generate(struct sa_upstream *up, const char *prompt, size_t prompt_len,
                                                 const struct sa_upstream_gen_params *params,
                                                 sa_upstream_text_fn on_text, void *user,
                                                 enum sa_upstream_finish *finish);

/* ---- the remote kind: an OpenAI-compatible server (vLLM, llama.cpp server, TGI, ...) ---- */

struct sa_upstream_remote_params {
    const char *base_url;  /* required: the API root, "http://host:port/v1" (http or https; a
                              trailing '/' is ignored); we POST {base}/completions and GET
                              {base}/models. Copied. */
    const char *model;     /* the request's "model"; NULL or "": the server's only model, asked
                              with GET /models at init. Copied. */
    const char *api_key;   /* "Authorization: Bearer <key>"; NULL: $SALIGN_API_KEY, else
                              $OPENAI_API_KEY, else none; "": none. Copied. */
    int32_t connect_timeout_ms; /* per connection attempt; 0: 10000 */
    int32_t idle_timeout_ms;    /* longest wait for the response head or for any byte of the stream
                                   (between events); 0: 60000 */
    int32_t total_timeout_ms;   /* deadline of one generation from start to its last chunk,
                                   retries included; 0: 600000 */
    int32_t max_retries;        /* retries of a request that failed before any text came
                                   (connection refused or dropped, HTTP 408, 429, 5xx); 0: none */
    int32_t backoff_ms;         /* delay before the first retry, doubled each time, at most
                                   8000; a longer Retry-After from the server wins (at most
                                   30000); 0: 250 */
    size_t max_event_bytes;     /* longest stream line or event, and longest /models answer
                                   (an error body is read up to 64 KiB); 0: 1 MiB */
    bool check_model;           /* at init, GET {base}/models: fail at once when the server is
                                   down or does not list `model` (a server without /models is
                                   accepted with a warning) */
    bool (*abort_cb)(void *user); /* may be NULL: polled every 50 ms while a generation waits
                                     (about once a second during GET /models); true stops the
                                     call with SA_STATUS_CANCELLED (Ctrl-C, server shutdown) */
    void *abort_user;
    const char *extra_body; /* NULL, or the text of a JSON object whose members are added to every
                               /completions request (server-specific fields the OpenAI API lacks:
                               {"repeat_penalty": 1} for llama.cpp servers, whose default
                               penalises repeats even at temperature 0); members we send
                               ourselves win. Checked at init (BAD_ARGUMENT). Copied. */
};

/* base_url NULL (must be set), model NULL, api_key NULL, timeouts 10 s connect, 60 s idle,
 * 600 s total, 3 retries, backoff 250 ms, max_event_bytes 1 MiB, check_model true, no abort. */
struct sa_upstream_remote_params sa_upstream_remote_default_params(void);

/* Creates a remote upstream. With check_model (or no model), asks GET {base}/models first
 * (with the retries above). Errors: SA_STATUS_BAD_ARGUMENT (no or malformed base_url, a
 * control character in the key, negative values), NETWORK (server down: "cannot connect
 * ... is the server running?", HTTP errors with the server's message), TIMEOUT, NOT_FOUND
 * (the server does not serve `model`: the message lists what it serves), BAD_JSON,
 * NO_MEMORY. */
SA_NODISCARD enum sa_status sa_upstream_remote_init(const struct sa_upstream_remote_params *params,
                                                    struct sa_upstream **out);

/* GET {base}/models: *ids receives the *n model ids the server lists (malloc'd array of
 * malloc'd strings: free with sa_upstream_models_free). Uses base_url, api_key, the timeouts,
 * retries and abort hook of params; not model or check_model. Errors as remote_init;
 * NOT_FOUND when the server has no /models route (HTTP 404). */
SA_NODISCARD enum sa_status sa_upstream_remote_models(const struct sa_upstream_remote_params *params, char ***ids,
                                                      size_t *n);
void sa_upstream_models_free(char **ids, size_t n);

#ifdef __cplusplus
}
#endif
#endif
