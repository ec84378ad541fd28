"""bench/llama_cpp_self_spread.py: how far llama.cpp (llama-cpp-python) moves against itself
when only its order of float operations changes, on the 256-token text of
tests/py/test_logits_parity.py: the same GGUF file, the same tokens, f32 KV cache, and
(a) the text in one batch of 512 vs token by token (n_batch 1: the decode kernels instead of
    the batched ones), (b) flash attention off vs on.
Prints top-1 agreement and mean KL(a || b) per file: the floor under any second engine's
agreement with llama.cpp (docs/internals/model.md, "Accuracy against the references").
  .venv/bin/python bench/llama_cpp_self_spread.py [MODEL.gguf ...]
  (default: the pulled SmolLM2-135M Q4_1 and Gemma 3 270M Q4_K_M)"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "py"))
from test_logits_parity import N_POS, TEXT, kl_rows  # noqa: E402


def logits(path, n_batch, flash_attn):
    import llama_cpp
    llm = llama_cpp.Llama(model_path=path, n_ctx=512, n_batch=n_batch, n_ubatch=n_batch, logits_all=True, n_threads=2,
                          type_k=0, type_v=0, flash_attn=flash_attn, verbose=False)
    toks = llm.tokenize(TEXT.encode(), add_bos=True)[:N_POS]
    llm.reset()
    llm.eval(toks)
    out = np.array(llm.scores[:len(toks)], dtype=np.float32)
    llm.close()
    return out


def main():
    cache = os.environ.get("SALIGN_MODELS", os.path.expanduser("~/.cache/salign"))
    paths = sys.argv[1:] or [os.path.join(cache, "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf"),
                             os.path.join(cache, "gemma3-270m", "gemma-3-270m-q4_k_m.gguf")]
    for path in paths:
        if not os.path.exists(path):
            print("%s: missing (salign pull)" % path, file=sys.stderr)
            continue
        base = logits(path, 512, False)
        for label, other in (("one batch vs token by token", logits(path, 1, False)),
                             ("flash attention off vs on", logits(path, 512, True))):
            top1 = float((base.argmax(-1) == other.argmax(-1)).mean())
            print("%s: llama.cpp %s: top-1 %.4f, mean KL %.2e" % (os.path.basename(path), label, top1,
                                                                   float(kl_rows(base, other).mean())))


if __name__ == "__main__":
    main()
