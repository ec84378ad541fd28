"""test_remote_upstream.py: the remote upstream (include/sa/upstream.h) against a real
third-party OpenAI-compatible server: llama-cpp-python's server (FastAPI + sse-starlette)
serving SmolLM2-135M-Instruct on 127.0.0.1 at a free port, started here and stopped at the
end. Driven through ctypes on build/libsalign.so. Checks: the prompt rendered by our ChatML
template streams a greedy completion equal to the server's own non-streamed answer; stopping
after the first sentence gives exactly that prefix, and the server sees the disconnect; the
server stays healthy afterwards; the model check and the wrong-model message. Then
Qwen2.5-Coder-0.5B-Instruct served the same way, through `salign align --copy-aligner`: the
pipeline keeps the line break the server wrote after a sentence at the end of the next prompt
(keep_line_break; ":\n\n" is one Qwen token), so the stream's answer is the server's own, byte
for byte; with --no-keep-break the layout drifts. The fake-server failure cases (hangs, garbage,
retries, ...) are in tests/test_remote_upstream.c."""
import ctypes
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, SALIGN, main, models_dir, test, tmpdir  # noqa: E402

MODEL = os.path.join(models_dir(), "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
ALIAS = "smollm2-135m"
QWEN = "qwen2.5-coder-0.5b-instruct"
QWEN_MODEL = os.path.join(models_dir(), QWEN, "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf")
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
QUESTION = "Why is the sky blue?"
MAX_TOKENS = 32
CHATML = 1
SEED_NONE = 2**64 - 1


class RemoteParams(ctypes.Structure):
    _fields_ = [("base_url", ctypes.c_char_p), ("model", ctypes.c_char_p), ("api_key", ctypes.c_char_p),
                ("connect_timeout_ms", ctypes.c_int32), ("idle_timeout_ms", ctypes.c_int32),
                ("total_timeout_ms", ctypes.c_int32), ("max_retries", ctypes.c_int32),
                ("backoff_ms", ctypes.c_int32), ("max_event_bytes", ctypes.c_size_t),
                ("check_model", ctypes.c_bool), ("abort_cb", ctypes.c_void_p), ("abort_user", ctypes.c_void_p),
                ("extra_body", ctypes.c_char_p)]


class GenParams(ctypes.Structure):
    _fields_ = [("max_tokens", ctypes.c_int32), ("temperature", ctypes.c_float), ("top_p", ctypes.c_float),
                ("seed", ctypes.c_uint64), ("stop", ctypes.POINTER(ctypes.c_char_p)), ("n_stop", ctypes.c_size_t)]


class Chunk(ctypes.Structure):
    _fields_ = [("text", ctypes.c_void_p), ("len", ctypes.c_size_t), ("n_tokens", ctypes.c_int32),
                ("finish", ctypes.c_int)]


class ChatMsg(ctypes.Structure):
    _fields_ = [("role", ctypes.c_char_p), ("content", ctypes.c_char_p)]


TEXT_FN = ctypes.CFUNCTYPE(ctypes.c_bool, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int32)

_lib = None


def lib():
    global _lib
    if _lib is None:
        L = ctypes.CDLL(os.path.join(ROOT, os.environ.get("BUILD", "build"), "libsalign.so"))
        L.sa_last_error.restype = ctypes.c_char_p
        L.sa_upstream_remote_default_params.restype = RemoteParams
        L.sa_upstream_gen_default_params.restype = GenParams
        vp = ctypes.c_void_p
        L.sa_upstream_remote_init.argtypes = [ctypes.POINTER(RemoteParams), ctypes.POINTER(vp)]
        L.sa_upstream_free.argtypes = [vp]
        L.sa_upstream_start.argtypes = [vp, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(GenParams)]
        L.sa_upstream_next.argtypes = [vp, ctypes.POINTER(Chunk)]
        L.sa_upstream_cancel.argtypes = [vp]
        L.sa_upstream_generate.argtypes = [vp, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(GenParams), TEXT_FN,
                                           vp, ctypes.POINTER(ctypes.c_int)]
        L.sa_upstream_remote_models.argtypes = [ctypes.POINTER(RemoteParams),
                                                ctypes.POINTER(ctypes.POINTER(ctypes.c_char_p)),
                                                ctypes.POINTER(ctypes.c_size_t)]
        L.sa_upstream_models_free.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_size_t]
        L.sa_chat_render.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(ChatMsg), ctypes.c_size_t,
                                     ctypes.c_bool, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                     ctypes.POINTER(ctypes.c_size_t)]
        _lib = L
    return _lib


def check(status, what):
    if status != 0:
        raise AssertionError("%s: status %d: %s" % (what, status, lib().sa_last_error().decode(errors="replace")))


def render(question, prefix=None):
    """The prompt, rendered by our ChatML template (src/tokenizer/chat_template.c)."""
    msgs = (ChatMsg * 2)(ChatMsg(b"system", SYSTEM.encode()), ChatMsg(b"user", question.encode()))
    out, n = ctypes.c_void_p(), ctypes.c_size_t()
    check(lib().sa_chat_render(CHATML, None, msgs, 2, True, prefix.encode() if prefix else None, ctypes.byref(out),
                               ctypes.byref(n)), "sa_chat_render")
    s = ctypes.string_at(out, n.value)
    ctypes.CDLL(None).free(out)
    return s


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self, model=MODEL, alias=ALIAS, name="smollm2-135m-instruct", threads=2):
        assert os.path.exists(model), "missing %s: run scripts/setup.sh (salign pull %s)" % (model, name)
        self.port = free_port()
        self.base = "http://127.0.0.1:%d/v1" % self.port
        self.log_path = os.path.join(tmpdir(), "llama_server_%s.log" % alias)
        self.log = open(self.log_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", model, "--model_alias", alias, "--host",
             "127.0.0.1", "--port", str(self.port), "--n_ctx", "1024", "--n_threads", str(threads), "--n_threads_batch", str(threads)],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + 40
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("the llama-cpp-python server exited: %s" % self.log_text()[-2000:])
            try:
                with urllib.request.urlopen(self.base + "/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise AssertionError("the llama-cpp-python server did not start in 40 s")
            time.sleep(0.2)

    def log_text(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def remote(server, model=ALIAS, check_model=True):
    p = lib().sa_upstream_remote_default_params()
    p.base_url = server.base.encode()
    p.model = model.encode() if model else None
    p.api_key = b""
    p.idle_timeout_ms = 20000
    p.total_timeout_ms = 60000
    p.check_model = check_model
    up = ctypes.c_void_p()
    st = lib().sa_upstream_remote_init(ctypes.byref(p), ctypes.byref(up))
    return st, up


def gen_params():
    g = lib().sa_upstream_gen_default_params()
    g.max_tokens = MAX_TOKENS
    g.temperature = 0.0
    g.top_p = 1.0
    g.seed = SEED_NONE
    return g


def stream(up, prompt, stop_at=None):
    """Streams a completion; with stop_at, cancels after the first chunk containing it.
    Returns (text bytes, chunks, finish)."""
    L = lib()
    g = gen_params()
    check(L.sa_upstream_start(up, prompt, len(prompt), ctypes.byref(g)), "sa_upstream_start")
    chunks = []
    while True:
        c = Chunk()
        check(L.sa_upstream_next(up, ctypes.byref(c)), "sa_upstream_next")
        piece = ctypes.string_at(c.text, c.len) if c.len else b""
        if piece:
            chunks.append(piece)
            if stop_at is not None and stop_at in piece:
                L.sa_upstream_cancel(up)
                return b"".join(chunks), chunks, 0
        if c.finish:
            return b"".join(chunks), chunks, c.finish


def server_answer(server, prompt, max_tokens=None):
    """The server's own non-streamed answer to the same request (the reference)."""
    body = json.dumps({"model": ALIAS, "prompt": prompt.decode(), "max_tokens": max_tokens or MAX_TOKENS, "temperature": 0,
                       "top_p": 1, "stream": False}).encode()
    req = urllib.request.Request(server.base + "/completions", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=180) as r:
        return json.loads(r.read())["choices"][0]["text"].encode()


def fresh_cache(server):
    """llama-cpp-python reuses the KV cache of the longest common prefix with the previous
    request, so a repeated prompt is evaluated in other batch shapes and greedy answers can
    part at a near tie (seen on an AVX2 EPYC). A request with an unrelated prompt first makes
    the next one evaluate its whole prompt from scratch, as the first request did."""
    server_answer(server, b"Hello", max_tokens=1)


_server = None
_full = {}  # prompt -> the full streamed answer, shared by the tests


def server():
    global _server
    if _server is None:
        _server = Server()
    return _server


@test
def stream_equals_server_answer_and_cut_is_its_prefix():
    srv = server()
    st, up = remote(srv)
    check(st, "sa_upstream_remote_init")
    try:
        prompt = render(QUESTION)
        assert prompt.endswith(b"<|im_start|>assistant\n"), prompt
        fresh_cache(srv)
        full, chunks, finish = stream(up, prompt)
        _full[prompt] = full
        assert finish in (1, 2), finish  # stop or length
        assert len(chunks) >= 5, chunks
        fresh_cache(srv)
        ref = server_answer(srv, prompt)
        assert full == ref, "streamed %r\nserver said %r" % (full, ref)
        assert b"." in full and full.index(b".") < len(full) - 1, full

        # stop after the first sentence: the text is exactly the same prefix of the full answer
        fresh_cache(srv)
        t0 = time.time()
        cut, cut_chunks, _ = stream(up, prompt, stop_at=b".")
        assert full.startswith(cut), (cut, full)
        assert b"." in cut_chunks[-1] and b"." not in b"".join(cut_chunks[:-1]), cut_chunks
        assert len(cut) < len(full), (cut, full)
        # the server notices the closed connection
        deadline = time.time() + 5
        while "Disconnected from client" not in srv.log_text() and time.time() < deadline:
            time.sleep(0.05)
        assert "Disconnected from client" in srv.log_text(), srv.log_text()[-1500:]
        print("    first sentence %r in %.2f s; full answer %d bytes, finish %d" % (cut, time.time() - t0, len(full),
                                                                                    finish))

        # the callback style stops at the same place
        got = []

        @TEXT_FN
        def on_text(user, text, n, n_tokens):
            got.append(ctypes.string_at(text, n))
            return b"." not in got[-1]

        fin = ctypes.c_int(-1)
        g = gen_params()
        fresh_cache(srv)
        check(lib().sa_upstream_generate(up, prompt, len(prompt), ctypes.byref(g), on_text, None, ctypes.byref(fin)),
              "sa_upstream_generate")
        assert b"".join(got) == cut and fin.value == 0, (got, fin.value)

        # the server is healthy afterwards: the same full answer again, and its model list
        fresh_cache(srv)
        again, _, _ = stream(up, prompt)
        assert again == full, (again, full)
        ids = ctypes.POINTER(ctypes.c_char_p)()
        n = ctypes.c_size_t()
        p = lib().sa_upstream_remote_default_params()
        p.base_url = srv.base.encode()
        p.api_key = b""
        check(lib().sa_upstream_remote_models(ctypes.byref(p), ctypes.byref(ids), ctypes.byref(n)), "models")
        names = [ids[i].decode() for i in range(n.value)]
        lib().sa_upstream_models_free(ids, n)
        assert names == [ALIAS], names
    finally:
        lib().sa_upstream_free(up)


@test
def prefilled_prefix_continues_the_answer():
    """The pipeline's use: the accepted prefix is pre-filled as the start of the assistant turn."""
    srv = server()
    st, up = remote(srv, model=None)  # no model named: the server's only one
    check(st, "sa_upstream_remote_init")
    try:
        base = render(QUESTION)
        full = _full.get(base) or stream(up, base)[0]
        first = full[:full.index(b".") + 1]
        prompt = render(QUESTION, prefix=first.decode())
        assert prompt == base + first, prompt
        cont, _, _ = stream(up, prompt)
        ref = server_answer(srv, prompt)
        assert cont == ref, (cont, ref)
        assert len(cont) > 0
    finally:
        lib().sa_upstream_free(up)


@test
def wrong_model_name_is_a_clear_error():
    srv = server()
    st, up = remote(srv, model="no-such-model")
    assert st == -7, st  # SA_STATUS_NOT_FOUND
    msg = lib().sa_last_error().decode()
    assert "does not serve model 'no-such-model'" in msg and ALIAS in msg, msg
    assert not up.value


# GSM8K train question 0 (never a test question). Qwen answers it "...we need to follow these
# steps:\n\n1. Calculate ...\n2. ...", writing ":\n\n" as one token.
GSM8K_TRAIN_0 = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                 "How many clips did Natalia sell altogether in April and May?")


def align(base, mode, *extra):
    """`salign align` against the server with a copying aligner: (answer, stop)."""
    args = [SALIGN, "align", "--upstream", base, "--upstream-tokenizer", QWEN_MODEL, "--upstream-extra",
            '{"repeat_penalty": 1}', "--copy-aligner", "--mode", mode, "--max-length", "40", "--json", "-t", "1",
            "-p", GSM8K_TRAIN_0] + list(extra)
    p = subprocess.run(args, capture_output=True, timeout=300)
    assert p.returncode == 0, "exit %d: %s\n%s" % (p.returncode, " ".join(args), p.stderr.decode())
    j = json.loads(p.stdout)
    return j["answer"], j["stop"]


@test
def kept_line_break_gives_the_servers_own_answer():
    p = subprocess.run([SALIGN, "align", "--upstream", QWEN, "--aligner", QWEN, "--copy-aligner", "-p", "x"],
                       capture_output=True, timeout=60)
    assert p.returncode == 2 and b"one of --aligner and --copy-aligner" in p.stderr, p.stderr
    srv = Server(QWEN_MODEL, "qwen", QWEN, threads=1)  # one thread: a loaded machine slows two much more
    try:
        alone, stop = align(srv.base, "upstream")
        assert ":\n\n" in alone and stop == "max_length", (alone, stop)  # the case this is about occurs
        kept, _ = align(srv.base, "stream")
        assert kept == alone, "stream with a copying aligner %r\nthe server alone %r" % (kept, alone)
        raw, _ = align(srv.base, "stream", "--no-keep-break")
        assert raw != alone and not alone.startswith(raw), "without the kept break expected a drift: %r" % raw
        print("    alone = kept: %r\n    --no-keep-break: %r" % (alone, raw))
    finally:
        srv.stop()


if __name__ == "__main__":
    try:
        main()
    finally:
        if _server is not None:
            _server.stop()
