"""llama_cpp_batched.py: the peer of `salign bench --batch`: llama.cpp's own batched decoding
through llama-cpp-python's low-level API, measured the way llama.cpp's `llama-batched-bench`
measures S_TG: a prompt of P tokens prefilled once (sequence 0), copied to sequences 1..B-1
(llama_memory_seq_cp: KV rows shared, no recompute), then G decode steps of one llama_batch
holding B tokens (one per sequence, each at its own position, logits for every row). Only
the G decode steps are timed: aggregate decode tok/s = B * G / time.
The tokens are a fixed pseudo-random stream of ordinary tokens (the same formula as
bench/peer_llama_cpp.py and `salign bench`), not sampled: the speed does not depend on them.
B = 1 is llama.cpp's single-sequence decode through the same code path (one-token batches).
Prints one JSON object per (threads, batch) setting:
  {"engine": "llama.cpp", "model": ..., "threads": t, "batch": B, "pp": P, "tg": G,
   "tg_tok_s": aggregate, "tg_seq_tok_s": aggregate / B, "pp_tok_s": ...}
or a table without --json.
Usage: .venv/bin/python bench/llama_cpp_batched.py --model MODEL.gguf [--batch 1,2,4,8,16]
       [--threads 1,2] [--prompt-tokens 128] [--gen-tokens 64] [--reps 3] [--kv-unified] [--json]
Dev tool: never in the product's path."""
import argparse
import ctypes
import json
import os
import sys
import time


def tokens(n_vocab, n, start=0):
    """The peers' token stream: ordinary tokens away from the special ones at both ends."""
    return [((i * 7919 + 13) % (n_vocab - 1000) + 500) if n_vocab > 1500 else (i * 7919 + 13) % n_vocab
            for i in range(start, start + n)]


class Peer:
    """One model and one context sized for the largest batch (n_seq_max = max B)."""

    def __init__(self, path, threads, n_seq_max, n_prompt, n_gen, use_mmap=True, kv_unified=False):
        import llama_cpp as L
        from llama_cpp._logger import set_verbose
        set_verbose(False)  # llama.cpp's debug log goes through a Python callback: errors only
        self.L = L
        L.llama_backend_init()
        mp = L.llama_model_default_params()
        mp.use_mmap = use_mmap
        self.model = L.llama_model_load_from_file(path.encode(), mp)
        if not self.model:
            raise RuntimeError("llama.cpp could not load %s" % path)
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        cp = L.llama_context_default_params()
        per_seq = (n_prompt + n_gen + 8 + 255) // 256 * 256  # llama.cpp pads a stream to 256 cells
        # llama-batched-bench: n_ctx is the whole cache; without a unified cache each sequence
        # gets its own stream of n_ctx / n_seq_max cells
        cp.n_ctx = per_seq * n_seq_max
        cp.n_batch = max(n_prompt, n_seq_max)
        cp.n_ubatch = max(n_prompt, n_seq_max)
        cp.n_seq_max = n_seq_max
        cp.n_threads = threads
        cp.n_threads_batch = threads
        cp.kv_unified = kv_unified
        cp.no_perf = True
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise RuntimeError("llama.cpp could not make a context (n_seq_max %d)" % n_seq_max)
        self.mem = L.llama_get_memory(self.ctx)
        self.cap = max(n_prompt, n_seq_max)
        self.batch = L.llama_batch_init(self.cap, 0, n_seq_max)

    def close(self):
        L = self.L
        L.llama_batch_free(self.batch)
        L.llama_free(self.ctx)
        L.llama_model_free(self.model)

    def _fill(self, rows):
        """rows: (token, pos, seq_id, logits) tuples, at most self.cap."""
        b = self.batch
        b.n_tokens = len(rows)
        for i, (tok, pos, seq, out) in enumerate(rows):
            b.token[i] = tok
            b.pos[i] = pos
            b.n_seq_id[i] = 1
            b.seq_id[i][0] = seq
            b.logits[i] = 1 if out else 0

    def _decode(self):
        rc = self.L.llama_decode(self.ctx, self.batch)
        if rc != 0:
            raise RuntimeError("llama_decode returned %d" % rc)

    def run(self, B, n_prompt, n_gen):
        """One measurement: prefill P tokens on sequence 0, fork to B sequences, G decode
        steps of B tokens. Returns (pp tok/s, aggregate tg tok/s)."""
        L = self.L
        L.llama_memory_clear(self.mem, True)
        prompt = tokens(self.n_vocab, n_prompt)
        self._fill([(t, i, 0, i == n_prompt - 1) for i, t in enumerate(prompt)])
        t0 = time.perf_counter()
        self._decode()
        L.llama_synchronize(self.ctx)
        pp = n_prompt / (time.perf_counter() - t0)
        for s in range(1, B):
            L.llama_memory_seq_cp(self.mem, 0, s, -1, -1)
        t0 = time.perf_counter()
        for g in range(n_gen):
            # the prompt's tokens again, shifted per sequence (as `salign bench --batch`)
            self._fill([(prompt[(g + 1 + 3 * s) % n_prompt], n_prompt + g, s, True) for s in range(B)])
            self._decode()
            # read every sequence's logits, as a sampler would (llama_decode may run async)
            for s in range(B):
                L.llama_get_logits_ith(self.ctx, s)
        L.llama_synchronize(self.ctx)
        tg = B * n_gen / (time.perf_counter() - t0)
        return pp, tg


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", "-m", required=True)
    ap.add_argument("--batch", "-b", default="1,2,4,8,16", help="comma-separated batch sizes (sequences)")
    ap.add_argument("--threads", "-t", default="1,2")
    ap.add_argument("--prompt-tokens", "-p", type=int, default=128)
    ap.add_argument("--gen-tokens", "-n", type=int, default=64)
    ap.add_argument("--reps", "-r", type=int, default=3, help="measured repetitions per setting (best reported)")
    ap.add_argument("--no-mmap", action="store_true", help="load the weights into memory (llama-bench -mmp 0)")
    ap.add_argument("--kv-unified", action="store_true",
                    help="one KV buffer shared by all sequences (llama-batched-bench -kvu); default: a stream per "
                         "sequence, llama.cpp's default")
    ap.add_argument("--json", action="store_true", help="one JSON object per (threads, batch)")
    a = ap.parse_args()
    batches = [int(x) for x in a.batch.split(",")]
    if a.prompt_tokens < 1 or a.gen_tokens < 1 or a.reps < 1 or min(batches) < 1:
        ap.error("--prompt-tokens, --gen-tokens, --reps and every batch size must be >= 1")
    base = os.path.basename(a.model)
    if not a.json:
        print("model: %s (llama.cpp, P %d, G %d, best of %d)" % (base, a.prompt_tokens, a.gen_tokens, a.reps))
        print("| threads | batch |  pp t/s | tg t/s (aggregate) | per sequence |")
        print("|--------:|------:|--------:|-------------------:|-------------:|")
    for t in [int(x) for x in a.threads.split(",")]:
        peer = Peer(a.model, t, max(batches), a.prompt_tokens, a.gen_tokens, not a.no_mmap, a.kv_unified)
        try:
            for B in batches:
                peer.run(B, a.prompt_tokens, min(a.gen_tokens, 8))  # warm-up
                pp, tg = zip(*[peer.run(B, a.prompt_tokens, a.gen_tokens) for _ in range(a.reps)])
                pp, tg = max(pp), max(tg)
                if a.json:
                    print(json.dumps({"engine": "llama.cpp", "model": base, "threads": t, "batch": B,
                                      "mmap": not a.no_mmap, "kv_unified": a.kv_unified, "pp": a.prompt_tokens,
                                      "tg": a.gen_tokens, "reps": a.reps, "pp_tok_s": round(pp, 1),
                                      "tg_tok_s": round(tg, 1), "tg_seq_tok_s": round(tg / B, 1)}), flush=True)
                else:
                    print("| %7d | %5d | %7.1f | %18.1f | %12.1f |" % (t, B, pp, tg, tg / B), flush=True)
        finally:
            peer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
