"""test_serve.py: `salign serve` (issue 14) on loopback with SmolLM2-135M as upstream and as a
stand-in aligner, through the official `openai` Python SDK and raw HTTP: chat and completions,
streamed and not; the streamed text equals the non-streamed text and `salign align`'s answer for
the same settings; every SSE chunk is one sentence with its x_stream_aligner edit; /v1/models,
/health and /metrics parse; errors in OpenAI's shape (malformed JSON, wrong types, invalid
UTF-8, oversize body, bad API key, unknown model); a client that disconnects mid-stream cancels
its run (seen in /metrics) and a full queue answers 429 with Retry-After; SIGTERM stops the
server with a final event for the stream in flight."""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import SALIGN, main, models_dir, skip, test  # noqa: E402

NAME = "smollm2-135m-instruct"
GGUF = os.path.join(models_dir(), NAME, "SmolLM2-135M-Instruct.Q4_1.gguf")
KEY = "sk-test-4f1e"
Q = "What is 12 plus 7? Answer in two short sentences."
LONG_Q = "Write a long story about a dragon who learns to bake bread, with many details."
MAX_TOKENS = 24
COMMON = ["--upstream", NAME, "--aligner", NAME, "-t", "2"]

_srv = {}


def server():
    """The shared server: --parallel 1 --queue 1, an API key, a 16 KiB body cap, --batch-invariant.
    The tests below compare answers across requests (stream and not) and with `salign align`: a
    slot keeps its KV cache between requests, and only batch-invariant kernels make a prompt
    extended from a kept cache give the tokens of one evaluated from scratch (on the AVX-512
    path a completion once stopped at a near tie in one request and went on in the other)."""
    if "proc" in _srv:
        return _srv["port"]
    if not os.path.exists(GGUF):
        skip("missing %s: run scripts/setup.sh (salign pull %s)" % (GGUF, NAME))
    p = subprocess.Popen([SALIGN, "serve"] + COMMON + ["--port", "0", "--api-key", KEY, "--parallel", "1",
                                                       "--batch-invariant", "--queue", "1", "--max-body-kb", "16",
                                                       "--shutdown-grace-ms", "1000"],
                         stderr=subprocess.PIPE, text=True)
    _srv["proc"] = p
    _srv["log"] = []
    deadline = time.time() + 60
    while time.time() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        _srv["log"].append(line)
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            _srv["port"] = int(m.group(1))
            threading.Thread(target=lambda: [_srv["log"].append(x) for x in p.stderr], daemon=True).start()
            return _srv["port"]
    raise AssertionError("the server did not start: %s" % "".join(_srv["log"]))


def client():
    import openai
    return openai.OpenAI(base_url="http://127.0.0.1:%d/v1" % server(), api_key=KEY, max_retries=0, timeout=120)


def raw(method, path, body=None, headers=None, key=KEY):
    """(status, headers dict, body bytes) of one request."""
    c = http.client.HTTPConnection("127.0.0.1", server(), timeout=120)
    h = dict(headers or {})
    if key:
        h["Authorization"] = "Bearer " + key
    if isinstance(body, str):
        body = body.encode()
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def metrics():
    st, _, body = raw("GET", "/metrics")
    assert st == 200, st
    out = {}
    for line in body.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)', line)
        assert m, "not Prometheus text: %r" % line
        out[m.group(1)] = float(m.group(2))
    return out


def health():
    st, _, body = raw("GET", "/health", key=None)
    assert st == 200, (st, body)
    return json.loads(body)


def align_answer(question, max_length):
    p = subprocess.run([SALIGN, "align"] + COMMON + ["-p", question, "--max-length", str(max_length), "--json",
                                                     "--batch-invariant"],
                       capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout)["answer"]


@test
def test_chat_sdk_stream_equals_nonstream_equals_align():
    c = client()
    r = c.chat.completions.create(model="stream-aligner", messages=[{"role": "user", "content": Q}],
                                  max_tokens=MAX_TOKENS)
    text = r.choices[0].message.content
    assert text, r
    assert r.choices[0].finish_reason in ("stop", "length"), r
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0, r.usage
    extra = r.usage.model_extra["x_stream_aligner"]
    assert extra["upstream_tokens"] > 0 and extra["aligner_tokens"] > 0, extra
    pieces, edits, finish = [], [], None
    for ch in c.chat.completions.create(model="stream-aligner", messages=[{"role": "user", "content": Q}],
                                        max_tokens=MAX_TOKENS, stream=True,
                                        stream_options={"include_usage": True}):
        if ch.choices and ch.choices[0].delta.content:
            pieces.append(ch.choices[0].delta.content)
            x = ch.model_extra["x_stream_aligner"]
            assert set(("original", "revised", "copied")) <= set(x), x
            edits.append(x)
        if ch.choices and ch.choices[0].finish_reason:
            finish = ch.choices[0].finish_reason
    assert "".join(pieces) == text, (pieces, text)
    assert len(edits) >= 1 and all(e["index"] == i + 1 for i, e in enumerate(edits)), edits
    assert finish == r.choices[0].finish_reason, finish
    assert text == align_answer(Q, MAX_TOKENS), text


@test
def test_completions_sdk_stream_and_not():
    c = client()
    r = c.completions.create(model="stream-aligner:upstream", prompt=Q, max_tokens=MAX_TOKENS)
    text = r.choices[0].text
    assert text and r.object == "text_completion", r
    pieces = [ch.choices[0].text for ch in c.completions.create(model="stream-aligner:upstream", prompt=Q,
                                                                max_tokens=MAX_TOKENS, stream=True)
              if ch.choices and ch.choices[0].text]
    assert "".join(pieces) == text, (pieces, text)


@test
def test_models_health_metrics():
    ids = sorted(m.id for m in client().models.list())
    assert ids == ["stream-aligner", "stream-aligner:aligner", "stream-aligner:upstream"], ids
    h = health()
    assert h["status"] == "ok" and h["slots"] == 1, h
    m = metrics()
    for k in ("salign_requests_total", "salign_copy_rate", "salign_queue_length", "salign_slots_busy",
              "salign_upstream_tokens_total", "salign_aligner_tokens_total",
              'salign_request_seconds_bucket{le="+Inf"}'):
        assert k in m, (k, sorted(m))
    st, hd, body = raw("GET", "/")
    assert st == 200 and hd["content-type"].startswith("text/html") and b"<script>" in body, st


def check_error(st, body, want_status, param=None):
    assert st == want_status, (st, body)
    e = json.loads(body)["error"]
    assert isinstance(e["message"], str) and e["message"] and "type" in e and "code" in e, e
    if param:
        assert e["param"] == param, e
    return e["message"]


@test
def test_errors():
    import openai
    path = "/v1/chat/completions"
    hj = {"Content-Type": "application/json"}
    msg = check_error(*raw("POST", path, '{"model": "stream-aligner", "messages": [', hj)[::2], 400)
    assert "JSON" in msg, msg
    good = {"model": "stream-aligner", "messages": [{"role": "user", "content": "hi"}]}
    check_error(*raw("POST", path, json.dumps(dict(good, max_tokens="many")), hj)[::2], 400, "max_tokens")
    check_error(*raw("POST", path, json.dumps(dict(good, stream="yes")), hj)[::2], 400, "stream")
    check_error(*raw("POST", path, json.dumps(dict(good, messages="hi")), hj)[::2], 400, "messages")
    check_error(*raw("POST", path, json.dumps(dict(good, n=2)), hj)[::2], 400, "n")
    check_error(*raw("POST", path, json.dumps(dict(good, temperature=5)), hj)[::2], 400, "temperature")
    bad_utf8 = b'{"model": "stream-aligner", "messages": [{"role": "user", "content": "\xff\xfe"}]}'
    assert "UTF-8" in check_error(*raw("POST", path, bad_utf8, hj)[::2], 400)
    deep = '{"a": ' * 40 + "1" + "}" * 40
    assert "nested" in check_error(*raw("POST", path, deep, hj)[::2], 400)
    big = json.dumps(dict(good, messages=[{"role": "user", "content": "x" * 40000}]))
    check_error(*raw("POST", path, big, hj)[::2], 413)
    check_error(*raw("GET", "/v1/models", key="sk-wrong")[::2], 401)
    check_error(*raw("GET", "/v1/models", key=None)[::2], 401)
    check_error(*raw("GET", "/nowhere")[::2], 404)
    try:
        client().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        raise AssertionError("no error for an unknown model")
    except openai.NotFoundError as e:
        assert e.body["code"] == "model_not_found", e.body
    try:
        openai.OpenAI(base_url="http://127.0.0.1:%d/v1" % server(), api_key="sk-bad", max_retries=0).models.list()
        raise AssertionError("no error for a bad key")
    except openai.AuthenticationError:
        pass
    m = metrics()
    assert m['salign_requests_finished_total{outcome="bad_request"}'] >= 7, m
    assert m['salign_requests_finished_total{outcome="too_large"}'] >= 1, m


def start_server(*extra):
    """Another server (killed by the caller): (process, port)."""
    p = subprocess.Popen([SALIGN, "serve"] + COMMON + ["--port", "0"] + list(extra), stderr=subprocess.PIPE,
                         text=True)
    for line in p.stderr:
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            return p, int(m.group(1))
    raise AssertionError("the server did not start")


@test
def test_parallel_slots_batch_and_match_align():
    """--parallel 2 --batch-invariant: two requests at once are decoded in shared passes (the
    scheduler's calls per pass > 1) and each answer equals `salign align --batch-invariant`."""
    import openai
    if not os.path.exists(GGUF):
        skip("missing %s" % GGUF)
    qs = ["What is 3 times 4?", "Name two colors."]
    p, port = start_server("--parallel", "2", "--batch-invariant")
    try:
        c = openai.OpenAI(base_url="http://127.0.0.1:%d/v1" % port, api_key="none", max_retries=0, timeout=120)
        out = {}

        def ask(q):
            out[q] = c.chat.completions.create(model="stream-aligner", max_tokens=10,
                                               messages=[{"role": "user", "content": q}]).choices[0].message.content
        th = [threading.Thread(target=ask, args=(q,)) for q in qs]
        for t in th:
            t.start()
        for t in th:
            t.join()
        st, _, body = http.client.HTTPConnection("127.0.0.1", port), None, None
        st.request("GET", "/metrics")
        text = st.getresponse().read().decode()
        calls = float(re.search(r"^salign_sched_calls_total (\S+)", text, re.M).group(1))
        passes = float(re.search(r"^salign_sched_passes_total (\S+)", text, re.M).group(1))
        assert calls > passes > 0, (calls, passes)
    finally:
        p.terminate()
        p.wait(timeout=30)
    for q in qs:
        a = subprocess.run([SALIGN, "align"] + COMMON + ["-p", q, "--max-length", "10", "--json",
                                                         "--batch-invariant"], capture_output=True, timeout=300)
        assert a.returncode == 0, a.stderr.decode()
        assert out[q] == json.loads(a.stdout)["answer"], (q, out[q], a.stdout)


def open_stream(question, max_tokens=400):
    """An SSE request left open: (connection, response)."""
    c = http.client.HTTPConnection("127.0.0.1", server(), timeout=120)
    body = json.dumps({"model": "stream-aligner", "stream": True, "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": question}]})
    c.request("POST", "/v1/chat/completions", body=body,
              headers={"Authorization": "Bearer " + KEY, "Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200, r.status
    return c, r


def wait_for(cond, what, timeout=30):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


@test
def test_queue_full_429_and_disconnect_cancels():
    server()
    before = metrics()
    ca, ra = open_stream(LONG_Q)
    wait_for(lambda: health()["slots_busy"] == 1, "the first request to run")
    cb, rb = open_stream(LONG_Q)
    wait_for(lambda: health()["queue"] == 1, "the second request to wait")
    st, hd, body = raw("POST", "/v1/chat/completions",
                       json.dumps({"model": "stream-aligner", "messages": [{"role": "user", "content": "hi"}]}),
                       {"Content-Type": "application/json"})
    check_error(st, body, 429)
    assert hd.get("retry-after") == "1", hd
    # both clients go away mid-stream: the running one is cancelled at once, the queued one never runs
    t0 = time.time()
    for c in (ca, cb):
        c.sock.shutdown(2)
        c.close()
    key = 'salign_requests_finished_total{outcome="client_disconnect"}'
    wait_for(lambda: metrics()[key] >= before[key] + 2, "two client_disconnect outcomes", timeout=20)
    wait_for(lambda: health()["slots_busy"] == 0 and health()["queue"] == 0, "the slot to be free", timeout=5)
    assert time.time() - t0 < 15, time.time() - t0
    m = metrics()
    assert m['salign_requests_finished_total{outcome="queue_full"}'] >= before[
        'salign_requests_finished_total{outcome="queue_full"}'] + 1, m


@test
def test_aligner_options():
    """--edit-check and --aligner-lora: bad combinations are refused before any model loads
    (exit 2), a missing adapter file is a clear error (exit 1), and a server with --edit-check all
    answers (the checks' effect: test_pipeline's test_edit_check_arith)."""
    if not os.path.exists(GGUF):
        skip("missing %s: run scripts/setup.sh (salign pull %s)" % (GGUF, NAME))
    for extra, code, want in [(["--edit-check", "arith"], 2, "--edit-check needs --aligner"),
                              (["--aligner-lora", "x.gguf"], 2, "--aligner-lora needs --aligner"),
                              (["--aligner", NAME, "--edit-check", "bogus"], 2, "arith, format, cut, all, none"),
                              (["--aligner", NAME, "--aligner-lora", "/nonexistent/a.gguf"], 1, "a.gguf")]:
        p = subprocess.run([SALIGN, "serve", "--upstream", NAME, "--port", "0"] + extra, capture_output=True,
                           text=True, timeout=120)
        assert p.returncode == code and want in p.stderr, (extra, p.returncode, p.stderr)
    p = subprocess.Popen([SALIGN, "serve"] + COMMON + ["--port", "0", "--edit-check", "all"], stderr=subprocess.PIPE,
                         text=True)
    try:
        port = None
        deadline = time.time() + 60
        while time.time() < deadline and port is None:
            line = p.stderr.readline()
            if not line:
                break
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            port = int(m.group(1)) if m else None
        assert port, "the server did not start"
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", "/v1/chat/completions", body=json.dumps(
            {"model": "stream-aligner", "max_tokens": MAX_TOKENS, "messages": [{"role": "user", "content": Q}]}),
            headers={"Content-Type": "application/json"})
        r = c.getresponse()
        body = json.loads(r.read())
        assert r.status == 200 and body["choices"][0]["message"]["content"], body
    finally:
        p.kill()
        p.wait()


@test
def test_sigterm_ends_streams_cleanly():
    """Last (it stops the shared server): a stream in flight gets its end ([DONE]) and the
    server exits 0 within the grace period plus a little."""
    server()
    c, r = open_stream(LONG_Q)
    wait_for(lambda: health()["slots_busy"] == 1, "the request to run")
    p = _srv["proc"]
    p.send_signal(signal.SIGTERM)
    data = r.read().decode()  # until the server closes the stream
    assert data.rstrip().endswith("data: [DONE]"), data[-300:]
    events = [json.loads(x[6:]) for x in data.split("\n\n") if x.startswith("data: {")]
    assert events and ("error" in events[-1] or events[-1]["choices"][0]["finish_reason"]), events[-1]
    assert p.wait(timeout=30) == 0, "".join(_srv["log"])
    c.close()
    del _srv["proc"]


if __name__ == "__main__":
    try:
        main()
    finally:
        if "proc" in _srv:
            _srv["proc"].kill()
