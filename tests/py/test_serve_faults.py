"""test_serve_faults.py: `salign serve` (issue 14) with a slow reader. A streaming client that
sends its request and then reads nothing must not hold its slot: the slot writes the SSE events
into the job's buffer (docs/SERVER.md, "Slow readers") and takes the next request; another
client is answered meanwhile and /health stays ok; when the slow client finally reads, a few
bytes at a time, it gets its whole stream, equal to the answer of a client that read at once.
SmolLM2-135M as upstream and stand-in aligner, a short answer: a few seconds."""
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import SALIGN, main, models_dir, skip, test  # noqa: E402

NAME = "smollm2-135m-instruct"
GGUF = os.path.join(models_dir(), NAME, "SmolLM2-135M-Instruct.Q4_1.gguf")
Q = "What is 12 plus 7? Answer in two short sentences."
MAX_TOKENS = 32


def start_server():
    """(process, port): --parallel 1 --queue 1, so a held slot would make the next request wait
    (or get 429)."""
    p = subprocess.Popen([SALIGN, "serve", "--upstream", NAME, "--aligner", NAME, "-t", "2", "--port", "0",
                          "--parallel", "1", "--queue", "1"], stderr=subprocess.PIPE, text=True)
    log = []
    for line in p.stderr:
        log.append(line)
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            return p, int(m.group(1))
    raise AssertionError("the server did not start: %s" % "".join(log))


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def health(port):
    st, body = get(port, "/health")
    assert st == 200, (st, body)
    return json.loads(body)


def finished_ok(port):
    st, body = get(port, "/metrics")
    assert st == 200, st
    m = re.search(r'^salign_requests_finished_total\{outcome="ok"\} (\S+)', body.decode(), re.M)
    return float(m.group(1)) if m else 0.0


def body(stream):
    return json.dumps({"model": "stream-aligner", "stream": stream, "max_tokens": MAX_TOKENS,
                       "messages": [{"role": "user", "content": Q}]})


def dechunk(raw):
    """The body of a chunked HTTP/1.1 response (raw: all bytes after the headers)."""
    out, i = b"", 0
    while True:
        j = raw.index(b"\r\n", i)
        n = int(raw[i:j].split(b";")[0], 16)
        if n == 0:
            return out
        out += raw[j + 2:j + 2 + n]
        i = j + 2 + n + 2


def sse_text(data):
    """(concatenated delta contents, last event) of an SSE stream ending with [DONE]."""
    assert data.rstrip().endswith("data: [DONE]"), data[-300:]
    events = [json.loads(x[6:]) for x in data.split("\n\n") if x.startswith("data: {")]
    text = "".join((e["choices"][0].get("delta") or {}).get("content") or "" for e in events if e.get("choices"))
    return text, events[-1]


@test
def test_slow_reader_holds_no_slot_and_gets_its_whole_stream():
    if not os.path.exists(GGUF):
        skip("missing %s: run scripts/setup.sh (salign pull %s)" % (GGUF, NAME))
    p, port = start_server()
    try:
        ok0 = finished_ok(port)
        # the slow client: a raw socket with a small receive buffer; it sends its request and reads nothing
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        b = body(True).encode()
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(b) + b)
        # its run ends and frees the slot although not one byte has been read
        t0 = time.time()
        while finished_ok(port) < ok0 + 1:
            assert p.poll() is None, "the server died"
            assert time.time() - t0 < 60, "the slow reader's run did not finish: %s" % health(port)
            time.sleep(0.1)
        h = health(port)
        assert h["status"] == "ok" and h["slots_busy"] == 0 and h["queue"] == 0, h
        # another client is answered meanwhile (one slot: it would wait behind a held one)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        t1 = time.time()
        c.request("POST", "/v1/chat/completions", body=body(False), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        other = json.loads(r.read())
        c.close()
        assert r.status == 200, other
        want = other["choices"][0]["message"]["content"]
        assert want, other
        assert time.time() - t1 < 30, time.time() - t1
        assert health(port)["status"] == "ok"
        # the slow client now reads its stream a few bytes at a time, with pauses: all of it arrives
        time.sleep(1.0)
        s.settimeout(30)
        raw = b""
        t2 = time.time()
        while not raw.endswith(b"\r\n0\r\n\r\n"):
            part = s.recv(64)
            assert part, "the server closed the slow reader's stream: %r" % raw[-300:]
            raw += part
            time.sleep(0.005)
            assert time.time() - t2 < 60, raw[-300:]
        s.close()
        head, _, rest = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"transfer-encoding: chunked" in head.lower(), head
        text, last = sse_text(dechunk(rest).decode())
        assert last["choices"][0]["finish_reason"] in ("stop", "length"), last
        assert text == want, (text, want)
        assert finished_ok(port) == ok0 + 2
        assert health(port)["slots_busy"] == 0
    finally:
        p.terminate()
        assert p.wait(timeout=30) == 0


if __name__ == "__main__":
    main()
