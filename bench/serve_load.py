"""serve_load.py: a bounded load test of an OpenAI-compatible streaming server (issue 14):
N clients, each sending streaming chat requests one after the other for S seconds. Reports
requests, errors by HTTP status (429s apart: documented back-pressure), p50/p99 time to the
first content event and to the end, aggregate completion tokens/s (from the usage chunk; from
a server that sends none, as llama-cpp-python, one token per content event: "tokens_from_chunks"
counts those requests), and the server's RSS sampled every --rss-every seconds: from
/proc/PID/status with --pid (any server on this machine), else from its /metrics
(process_resident_memory_bytes, as `salign serve` exports it). The RSS report: the sample at
the end of the warm-up (--warmup seconds), the last one, the largest growth over the warm-up
sample after it, the growth over the second half of the run (flat after warm-up: a leak keeps
growing there), and one sample a minute ("rss_series"). Works against `salign serve` and
against llama.cpp's server (the same API; --model names its model), for scale.

  .venv/bin/python bench/serve_load.py --url http://127.0.0.1:8080 --clients 32 --seconds 300 \\
      --pid $(pgrep -n salign) --questions /work/shared/data/gsm8k/train.jsonl

Stdlib only. Prints one JSON object (and a one-line summary on stderr)."""
import argparse
import http.client
import json
import sys
import threading
import time
import urllib.parse


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_kb_metrics(host, port, headers):
    try:
        c = http.client.HTTPConnection(host, port, timeout=10)
        c.request("GET", "/metrics", headers=headers)
        r = c.getresponse()
        body = r.read().decode("utf-8", "replace")
        c.close()
    except Exception:  # noqa: BLE001 - a missed sample
        return None
    for line in body.splitlines():
        if line.startswith("process_resident_memory_bytes "):
            return int(float(line.split()[1]) / 1024)
    return None


def rss_report(rss, warmup, seconds):
    """rss: [(t, kB)]. The sample at the end of the warm-up, the last, the largest growth after
    warm-up, the growth over the second half of the load, and one sample a minute."""
    rss = [(t, kb) for t, kb in rss if kb]
    after = [(t, kb) for t, kb in rss if t >= warmup]
    if not after:
        return {"samples": len(rss), "after_warmup": None, "last": None, "max": None}
    w = after[0][1]
    mid = [kb for t, kb in after if t >= warmup + (min(seconds, rss[-1][0]) - warmup) / 2]
    series, next_t = [], 0.0
    for t, kb in rss:
        if t >= next_t:
            series.append((t, kb))
            next_t = t - t % 60 + 60
    if series[-1] != rss[-1]:
        series.append(rss[-1])
    return {"samples": len(rss), "first": rss[0][1], "warmup_s": warmup, "after_warmup": w, "last": after[-1][1],
            "max": max(kb for _, kb in after), "max_growth_after_warmup": max(kb for _, kb in after) - w,
            "second_half_growth": (after[-1][1] - mid[0]) if mid else None, "rss_series": series}


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--model", default="stream-aligner")
    ap.add_argument("--api-key", default=None)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--warmup", type=float, default=30, help="seconds before the first RSS sample that counts")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--questions", default=None, help="JSONL with a 'question' field (default: a fixed one)")
    ap.add_argument("--pid", type=int, default=None, help="the server's pid, for RSS (else its /metrics)")
    ap.add_argument("--rss-every", type=float, default=5, help="seconds between RSS samples")
    a = ap.parse_args()
    u = urllib.parse.urlparse(a.url)
    qs = ["What is 12 plus 7? Explain step by step."]
    if a.questions:
        with open(a.questions) as f:
            qs = [json.loads(l)["question"] for l in f if l.strip()][:1000]
    lock = threading.Lock()
    st = {"requests": 0, "ok": 0, "status": {}, "n_429": 0, "exceptions": 0, "first": [], "total": [], "tokens": 0,
          "tokens_from_chunks": 0}
    t_end = time.time() + a.seconds
    headers = {"Content-Type": "application/json"}
    if a.api_key:
        headers["Authorization"] = "Bearer " + a.api_key

    def client(i):
        n = 0
        while time.time() < t_end:
            q = qs[(i * 7919 + n) % len(qs)]
            n += 1
            body = json.dumps({"model": a.model, "stream": True, "max_tokens": a.max_tokens,
                               "stream_options": {"include_usage": True},
                               "messages": [{"role": "user", "content": q}]})
            t0 = time.time()
            first = None
            toks = None
            chunks = 0
            try:
                c = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=600)
                c.request("POST", "/v1/chat/completions", body=body, headers=headers)
                r = c.getresponse()
                if r.status != 200:
                    r.read()
                    with lock:
                        st["requests"] += 1
                        if r.status == 429:
                            st["n_429"] += 1
                        else:
                            st["status"][r.status] = st["status"].get(r.status, 0) + 1
                    c.close()
                    if r.status == 429:
                        time.sleep(float(r.getheader("Retry-After") or 1))
                    continue
                err = None
                for line in r:
                    line = line.strip()
                    if not line.startswith(b"data: ") or line == b"data: [DONE]":
                        continue
                    ev = json.loads(line[6:])
                    if "error" in ev:
                        err = ev["error"].get("code") or "stream_error"
                    ch = (ev.get("choices") or [{}])[0]
                    if (ch.get("delta") or {}).get("content") or ch.get("text"):
                        chunks += 1
                        if first is None:
                            first = time.time() - t0
                    if ev.get("usage"):
                        toks = ev["usage"]["completion_tokens"]
                c.close()
                with lock:
                    st["requests"] += 1
                    if err:
                        st["status"][err] = st["status"].get(err, 0) + 1
                    else:
                        st["ok"] += 1
                        st["total"].append(time.time() - t0)
                        if first is not None:
                            st["first"].append(first)
                        if toks is None:  # no usage chunk (llama-cpp-python): one token per content chunk
                            toks = chunks
                            st["tokens_from_chunks"] += 1
                        st["tokens"] += toks
            except Exception as e:  # noqa: BLE001 - counted, the load goes on
                with lock:
                    st["requests"] += 1
                    st["exceptions"] += 1
                    st["status"][type(e).__name__] = st["status"].get(type(e).__name__, 0) + 1

    rss = []
    t_start = time.time()
    th = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(a.clients)]
    for t in th:
        t.start()
    next_sample = 0.0
    while any(t.is_alive() for t in th):
        now = time.time() - t_start
        if now >= next_sample:
            kb = rss_kb(a.pid) if a.pid else rss_kb_metrics(u.hostname, u.port or 80, headers)
            rss.append((round(now, 1), kb))
            next_sample += a.rss_every
        time.sleep(min(1.0, a.rss_every))
    wall = time.time() - t_start
    kb = rss_kb(a.pid) if a.pid else rss_kb_metrics(u.hostname, u.port or 80, headers)
    rss.append((round(wall, 1), kb))  # at the end, every request finished
    rr = rss_report(rss, a.warmup, a.seconds)
    out = {
        "clients": a.clients, "seconds": a.seconds, "wall_s": round(wall, 1), "model": a.model,
        "requests": st["requests"], "ok": st["ok"], "n_429": st["n_429"], "errors": st["status"],
        "first_sentence_s": {"p50": pct(st["first"], 50), "p99": pct(st["first"], 99)},
        "request_s": {"p50": pct(st["total"], 50), "p99": pct(st["total"], 99)},
        "n_first": len(st["first"]), "completion_tokens": st["tokens"],
        "tokens_per_s": round(st["tokens"] / wall, 2), "tokens_from_chunks": st["tokens_from_chunks"],
        "rss_kb": rr,
    }
    print(json.dumps(out))
    print("%d requests, %d ok, %d x 429, errors %s; first sentence p50 %s s p99 %s s; %.1f tokens/s; RSS %s -> %s kB"
          " (max growth after warm-up %s kB, over the second half %s kB)"
          % (out["requests"], out["ok"], out["n_429"], out["errors"] or "none", out["first_sentence_s"]["p50"],
             out["first_sentence_s"]["p99"], out["tokens_per_s"], rr["after_warmup"], rr["last"],
             rr.get("max_growth_after_warmup"), rr.get("second_half_growth")), file=sys.stderr)
    return 0 if not st["status"] else 1


if __name__ == "__main__":
    sys.exit(main())
