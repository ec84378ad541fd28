"""peer_llama_cpp.py: the peer of `salign bench`: llama.cpp (through llama-cpp-python) on
the same GGUF, measured the way llama-bench does: prompt processing of P tokens in one
batch from an empty cache (pp), and generation of N tokens one at a time (tg).
Prints one JSON object per (threads) setting:
  {"engine": "llama.cpp", "model": ..., "threads": t, "pp_tok_s": ..., "tg_tok_s": ...}
Usage: .venv/bin/python bench/peer_llama_cpp.py MODEL.gguf [--threads 1,2] [--pp 512] [--tg 128] [--reps 3]
Dev tool: never in the product's path."""
import argparse
import json
import os
import time


def measure(path, threads, n_pp, n_tg, reps, use_mmap=True):
    from llama_cpp import Llama
    llm = Llama(model_path=path, n_ctx=n_pp + n_tg + 8, n_batch=n_pp, n_ubatch=n_pp,
                n_threads=threads, n_threads_batch=threads, verbose=False, logits_all=False, use_mmap=use_mmap)
    n_vocab = llm.n_vocab()
    # deterministic pseudo-random prompt of ordinary tokens (like llama-bench)
    toks = [(i * 7919 + 13) % (n_vocab - 1000) + 500 for i in range(n_pp)]
    pp, tg = [], []
    for _ in range(reps):
        llm.reset()
        llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
        t0 = time.perf_counter()
        llm.eval(toks)
        pp.append(n_pp / (time.perf_counter() - t0))
        llm.reset()
        llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
        llm.eval(toks[:1])
        t0 = time.perf_counter()
        for i in range(n_tg):
            llm.eval([toks[(i + 1) % n_pp]])
        tg.append(n_tg / (time.perf_counter() - t0))
    return max(pp), max(tg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--pp", type=int, default=512)
    ap.add_argument("--tg", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-mmap", action="store_true", help="load the weights into memory (llama-bench -mmp 0)")
    a = ap.parse_args()
    for t in [int(x) for x in a.threads.split(",")]:
        pp, tg = measure(a.model, t, a.pp, a.tg, a.reps, not a.no_mmap)
        print(json.dumps({"engine": "llama.cpp", "model": os.path.basename(a.model), "threads": t, "mmap": not a.no_mmap,
                          "pp": a.pp, "tg": a.tg, "pp_tok_s": round(pp, 1), "tg_tok_s": round(tg, 1)}),
              flush=True)


if __name__ == "__main__":
    main()
