#!/usr/bin/env python3
"""bench/judge_changes.py: a second opinion on the aligner's kept changes (a dev tool for issue 13).

For each round of a pipeline trace where the aligner's kept text differs from the upstream's
sentence (copied false, gated false, y2 != y1), a JUDGE model, prompted as a solver (the
question as the user turn, the answer so far as the start of its reply), scores both sentences:
the sum of the log-probabilities of y2's tokens and of y1's tokens after the same context. The
judge's margin is their difference (> 0: the judge prefers the aligner's change). With --labels
(a JSON object "id:round" -> label, e.g. from a hand reading), prints the margins by label and
the counts kept at each threshold.

With --records R --details D instead of --trace (gold-step records and `salign eval aligner
--details` over them), the changes are the records whose revision differs from `last` (not
refused), the context is the question and the record's prefix, and each change is labelled by
bench/gold_step_eval.py's rule: "on_path" or "off_path" for a fix record, "spoiled_copy" for a
copy record.

  python3 bench/judge_changes.py (--trace T.jsonl[.gz] | --records R --details D) --model JUDGE.gguf
      [--labels L.json] [--out OUT.jsonl] [--threads 1]

Uses llama-cpp-python (a test reference, not the product). The system prompt is Qwen2.5's
default, so the judge should be a Qwen2.5 chat model.
"""
import argparse
import gzip
import json
import math

import os
import sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from arith_records import equations  # noqa: E402
from gsm8k_gold_path import TRAIN_GOLD, gold_path  # noqa: E402

SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."


def changes(trace_path):
    opener = gzip.open if trace_path.endswith(".gz") else open
    with opener(trace_path, "rt") as f:
        for line in f:
            r = json.loads(line)
            if r.get("copied") or r.get("gated") or r["y2"] == r["y1"] or not r["text"].endswith(r["y2"]):
                continue
            sep = r["text"][: len(r["text"]) - len(r["y2"])]
            before = r["answer_so_far"][: len(r["answer_so_far"]) - len(r["text"])]
            yield r, before + sep


def record_changes(records_path, details_path, gold_path_file):
    """The changed records as (trace-like row, context, label)."""
    gold = [json.loads(line) for line in open(gold_path_file)]
    recs = [json.loads(line) for line in open(records_path)]
    det = {d["index"]: d for d in map(json.loads, open(details_path))}
    for i, r in enumerate(recs):
        d = det.get(i)
        if d is None or d.get("refused") or d["revision"] == r["last"]:
            continue
        y2 = d["revision"]
        if r["kind"] == "copy":
            label = "spoiled_copy"
        else:
            g = gold[r["id"]]
            path = gold_path(g["question"], g["answer"])
            eqs = [e for e in equations(y2) if e.value is not None]
            on = bool(eqs) and all(not e.wrong and round(e.value, 6) in path for e in eqs)
            label = "on_path" if on else "off_path"
        sep = "\n" if r["prefix"] and not r["prefix"][-1].isspace() else ""
        row = {"id": r["id"], "round": r.get("round", i), "question": r["question"], "y1": r["last"], "y2": y2,
               "margin": d.get("margin")}
        yield row, r["prefix"] + sep, label


def tokens_after(llm, context, cont):
    """The tokens of context + cont, and how many of them are context's (their common prefix)."""
    ctx = llm.tokenize(context.encode(), add_bos=False, special=True)
    full = llm.tokenize((context + cont).encode(), add_bos=False, special=True)
    k = 0
    while k < len(ctx) and k < len(full) and ctx[k] == full[k]:
        k += 1
    return full, k


def log_softmax_at(row, tok):
    row = np.asarray(row, dtype=np.float64)
    m = row.max()
    return row[tok] - (m + math.log(np.exp(row - m).sum()))


def last_logits(llm):
    """The logits after the last evaluated token (a copy): without logits_all, llama-cpp-python
    leaves its scores array unfilled, so they are read from the context."""
    ptr = llama_cpp.llama_get_logits(llm.ctx)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),)).astype(np.float64)


def logprobs(llm, context, conts):
    """Sum of log p(cont's tokens | context) for each cont: the common context is evaluated once
    (its KV cache kept), then each continuation one token at a time from there."""
    seqs = [tokens_after(llm, context, c) for c in conts]
    k = min(kk for _, kk in seqs)
    llm.reset()
    llm.eval(seqs[0][0][:k])
    last = last_logits(llm)
    out = []
    for full, _ in seqs:
        llm.n_tokens = k
        total, row = 0.0, last
        for i in range(k, len(full)):
            total += log_softmax_at(row, full[i])
            llm.eval([full[i]])
            row = last_logits(llm)
        out.append((total, len(full) - k))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trace")
    ap.add_argument("--records")
    ap.add_argument("--details")
    ap.add_argument("--gold", default=TRAIN_GOLD)
    ap.add_argument("--model", required=True)
    ap.add_argument("--labels")
    ap.add_argument("--out")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    if bool(a.trace) == bool(a.records) or bool(a.records) != bool(a.details):
        ap.error("give --trace, or --records with --details")
    labels = json.load(open(a.labels)) if a.labels else {}
    if a.trace:
        items = ((r, ctx, labels.get("%d:%d" % (r["id"], r["round"]))) for r, ctx in changes(a.trace))
    else:
        items = record_changes(a.records, a.details, a.gold)
    llm = Llama(model_path=a.model, n_ctx=4096, n_batch=512, n_threads=a.threads, verbose=False)
    rows = []
    for r, ctx, label in items:
        prompt = ("<|im_start|>system\n%s<|im_end|>\n<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n"
                  % (SYSTEM, r["question"]) + ctx)
        (l2, n2), (l1, n1) = logprobs(llm, prompt, [r["y2"], r["y1"]])
        key = "%d:%d" % (r["id"], r["round"])
        row = {"id": r["id"], "round": r["round"], "label": label, "aligner_margin": r.get("margin"),
               "judge_margin": l2 - l1, "judge_margin_per_token": l2 / n2 - l1 / n1, "y1": r["y1"], "y2": r["y2"]}
        rows.append(row)
        print("%-7s %-12s judge %+8.2f (per token %+6.3f) aligner %.2f" % (
            key, row["label"], row["judge_margin"], row["judge_margin_per_token"], row["aligner_margin"] or 0),
            flush=True)
    if a.out:
        with open(a.out, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    if any(row["label"] for row in rows):
        for th in (-math.inf, -2, 0, 2, 4):
            kept = {}
            for row in rows:
                if row["judge_margin"] > th:
                    kept[row["label"]] = kept.get(row["label"], 0) + 1
            print("judge margin > %s: kept %s" % (th, json.dumps(kept, sort_keys=True)))


if __name__ == "__main__":
    main()
