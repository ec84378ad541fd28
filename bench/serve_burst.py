"""serve_burst.py: one of each kind of traffic against a running `salign serve`, for a run under
AddressSanitizer/LeakSanitizer or valgrind (issue 14: no leak on any path). In order, with some
at once: streamed and non-streamed chat, a completion, clients that disconnect mid-stream and
while queued, 429s from a full queue, requests whose settings make a slot's pipeline anew
(sampling, another mode), malformed JSON, invalid UTF-8, a wrong type, an oversize
body, a wrong key, an unknown route, a client that sends a request and reads nothing (closed by
--idle-timeout-ms), and, with --pid, SIGTERM with a stream in flight at the end (the server must
exit 0; the sanitizer's report is then its own). Prints one line per step and a JSON summary;
exits 1 when a step did not get what it expects.

  ASAN_OPTIONS=detect_leaks=1 build-asan/salign serve --upstream M --aligner M --parallel 2 \\
      --queue 1 --idle-timeout-ms 2000 --port 18480 &
  .venv/bin/python bench/serve_burst.py --url http://127.0.0.1:18480 --pid $!

Stdlib only."""
import argparse
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--model", default="stream-aligner")
    ap.add_argument("--max-tokens", type=int, default=12)
    ap.add_argument("--idle-timeout-s", type=float, default=2, help="the server's --idle-timeout-ms / 1000")
    ap.add_argument("--pid", type=int, default=None, help="the server's pid: SIGTERM it at the end")
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.url)
    host, port = u.hostname, u.port or 80
    results = []
    lock = threading.Lock()

    def note(step, ok, detail=""):
        with lock:
            results.append({"step": step, "ok": bool(ok), "detail": str(detail)[:200]})
        print("%-28s %s %s" % (step, "ok  " if ok else "FAIL", str(detail)[:120]), flush=True)

    def body(stream, q="What is 2 plus 3?", **kw):
        d = {"model": a.model, "stream": stream, "max_tokens": a.max_tokens,
             "messages": [{"role": "user", "content": q}]}
        d.update(kw)
        return json.dumps(d)

    def post(path, data, headers=None, timeout=600):
        c = http.client.HTTPConnection(host, port, timeout=timeout)
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        c.request("POST", path, body=data, headers=h)
        r = c.getresponse()
        b = r.read()
        c.close()
        return r.status, b

    def metrics():
        c = http.client.HTTPConnection(host, port, timeout=30)
        c.request("GET", "/metrics")
        t = c.getresponse().read().decode()
        c.close()
        return {l.split()[0]: float(l.split()[1]) for l in t.splitlines() if l and not l.startswith("#")}

    def stream_then_drop(events):
        """reads `events` SSE events and closes"""
        c = http.client.HTTPConnection(host, port, timeout=600)
        c.request("POST", "/v1/chat/completions", body=body(True, "Count from one to fifty."),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        n = 0
        for line in r:
            if line.startswith(b"data: "):
                n += 1
                if n >= events:
                    break
        c.close()
        return r.status, n

    # 1. the normal paths, one after the other
    st, b = post("/v1/chat/completions", body(False))
    note("chat", st == 200 and json.loads(b)["choices"][0]["message"]["content"], st)
    st, b = post("/v1/chat/completions", body(True, stream_options={"include_usage": True}))
    note("chat stream", st == 200 and b.rstrip().endswith(b"data: [DONE]"), st)
    st, b = post("/v1/completions", json.dumps({"model": a.model, "prompt": "One, two,", "max_tokens": a.max_tokens}))
    note("completion", st == 200, st)
    st, b = post("/v1/chat/completions", body(False, model=a.model + ":upstream"))
    note("chat :upstream", st == 200, st)
    st, b = post("/v1/chat/completions", body(True, temperature=0.8, top_p=0.9, seed=3, stop=["."]))
    note("chat sampled (new pipeline)", st == 200, st)
    st, b = post("/v1/chat/completions", body(False, model=a.model + ":aligner"))
    note("chat :aligner", st == 200, st)
    # 2. refused requests
    for name, data, hdr, want in [
        ("malformed json", b'{"model": "x", "messages": [', None, 400),
        ("invalid utf-8", b'{"model": "stream-aligner", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
         None, 400),
        ("wrong type", json.dumps({"model": a.model, "messages": "hi"}), None, 400),
        ("deep json", "[" * 100 + "]" * 100, None, 400),
        ("unknown model", body(False, model="nope"), None, 404),
        ("n=2", body(False, n=2), None, 400),
        ("oversize", "x" * (2 << 20), None, 413),
    ]:
        try:
            st, b = post("/v1/chat/completions", data, hdr)
            note(name, st == want, "%d %s" % (st, b[:80]))
        except (ConnectionError, http.client.HTTPException) as e:  # the server may close on an oversize body
            note(name, want == 413, repr(e))
    c = http.client.HTTPConnection(host, port, timeout=30)
    c.request("GET", "/nowhere")
    r = c.getresponse()
    r.read()
    note("unknown route", r.status == 404, r.status)
    c.close()
    # 3. disconnects: mid-stream, and while queued; 429s from a full queue
    m0 = metrics()
    th = [threading.Thread(target=lambda: note("stream dropped", stream_then_drop(2)[0] == 200)) for _ in range(2)]
    for t in th:
        t.start()
    time.sleep(0.5)
    got = {}

    def bg(i):
        try:
            got[i] = post("/v1/chat/completions", body(False, "Name three colours."), timeout=600)[0]
        except Exception as e:  # noqa: BLE001
            got[i] = repr(e)

    bgs = [threading.Thread(target=bg, args=(i,)) for i in range(6)]
    for t in bgs:
        t.start()
    for t in bgs:
        t.join()
    for t in th:
        t.join()
    n429 = sum(1 for v in got.values() if v == 429)
    note("429s", n429 >= 1 and all(v in (200, 429) for v in got.values()), got)
    # a queued request whose client goes away
    s = socket.create_connection((host, port))
    d = body(True).encode()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(d) + d)
    time.sleep(0.3)
    s.close()
    time.sleep(1)
    m1 = metrics()
    cancelled = m1.get('salign_requests_finished_total{outcome="client_disconnect"}', 0) - \
        m0.get('salign_requests_finished_total{outcome="client_disconnect"}', 0)
    note("client_disconnect counted", cancelled >= 1, cancelled)
    # 4. a client that sends a request and reads nothing: closed after the idle timeout
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect((host, port))
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(d) + d)
    t0 = time.time()
    closed = False
    while time.time() - t0 < 600:
        m = metrics()
        if m.get("salign_connections_open") == 1 and m.get("salign_streams_open") == 0 and \
                m.get("salign_slots_busy") == 0:
            closed = True
            break
        time.sleep(0.5)
    note("silent client closed", closed, "%.1f s" % (time.time() - t0))
    s.close()
    # 5. SIGTERM with a stream in flight
    if a.pid:
        res = {}

        def last():
            try:
                res["r"] = post("/v1/chat/completions", body(True, "Count from one to fifty."))
            except Exception as e:  # noqa: BLE001
                res["r"] = (0, repr(e).encode())

        t = threading.Thread(target=last)
        t.start()
        for _ in range(600):
            if metrics().get("salign_slots_busy", 0) >= 1:
                break
            time.sleep(0.2)
        os.kill(a.pid, signal.SIGTERM)
        t.join()
        st, b = res["r"]
        note("stream at SIGTERM", st == 200 and b.rstrip().endswith(b"data: [DONE]"), "%d %s" % (st, b[-80:]))
    bad = [r for r in results if not r["ok"]]
    print(json.dumps({"steps": len(results), "failed": [r["step"] for r in bad]}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
