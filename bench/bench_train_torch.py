"""bench_train_torch.py: training throughput of SmolLM2-135M, ours (libsalign through ctypes:
sa_train_model_step_batch + AdamW) against PyTorch (transformers, eager) on the same batch
(4 x 256 random tokens, every position a target), in fp32 and in mixed precision (ours:
precision bf16; PyTorch: torch.autocast("cpu", dtype=torch.bfloat16) around the forward and
the loss, fp32 master weights and AdamW), in the same run, each configuration in its own
process so that its peak memory (ru_maxrss) is its own, the configurations interleaved.

usage: .venv/bin/python bench/bench_train_torch.py HF_DIR [--steps N] [--configs c1,c2,...]
  HF_DIR: the model as a Hugging Face directory (salign convert MODEL.gguf --to safetensors
  --type f32 -o HF_DIR). configs: WHO-KIND-THREADS with WHO ours or torch, KIND full (fp32
  full fine-tuning), bf16 (mixed-precision full fine-tuning) or, for ours, lora (fp32, rank
  16); e.g. ours-full-1, torch-bf16-2. Default: torch-full, ours-full, torch-bf16, ours-bf16
  with 1 then 2 threads."""
import ctypes
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
B, T = 4, 256


def tokens():
    import numpy as np
    rng = np.random.default_rng(0)
    tok = rng.integers(10, 49000, size=(B, T)).astype(np.int32)
    tgt = np.roll(tok, -1, axis=1).astype(np.int32)
    tgt[:, -1] = -100
    return tok, tgt


def run_ours(d, lora, threads, steps, bf16=False):
    sys.path.insert(0, os.path.join(ROOT, "tests", "py"))
    import numpy as np
    from test_train_ref import LIB, ModelParams, Optim  # noqa: E402
    p = LIB.sa_train_model_default_params()
    p.lora_rank = 16 if lora else 0
    p.n_threads = threads
    p.precision = 1 if bf16 else 0
    h = ctypes.c_void_p()
    assert LIB.sa_train_model_load(d.encode(), ctypes.byref(p), ctypes.byref(h)) == 0, LIB.sa_last_error()
    assert LIB.sa_train_model_reserve(h, B, T, None) == 0
    tok, tgt = tokens()
    P = ctypes.POINTER(ctypes.c_int32)
    o = Optim(0.9, 0.95, 1e-8, 0.0, 1.0)
    times = []
    for s in range(steps + 1):
        t0 = time.time()
        LIB.sa_train_model_zero_grad(h)
        loss = ctypes.c_float()
        assert LIB.sa_train_model_step_batch(h, tok.ctypes.data_as(P), tgt.ctypes.data_as(P), B, T, 0.0, True, s,
                                             ctypes.byref(loss)) == 0
        assert LIB.sa_train_model_adamw_step(h, ctypes.byref(o), 2e-5, None) == 0
        times.append(time.time() - t0)
    return times[1:], float(loss.value)


def run_torch(d, threads, steps, bf16=False):
    sys.path.insert(0, os.path.join(ROOT, "tests", "py"))
    import hf_compat  # noqa: F401
    import torch
    import transformers
    torch.set_num_threads(threads)
    model = transformers.AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.float32,
                                                              attn_implementation="eager")
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, betas=(0.9, 0.95), weight_decay=0.0)
    tok, tgt = tokens()
    tok, tgt = torch.from_numpy(tok).long(), torch.from_numpy(tgt).long()
    times = []
    for _ in range(steps + 1):
        t0 = time.time()
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(input_ids=tok, use_cache=False).logits
            loss = torch.nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]).float(), tgt.view(-1),
                                                     ignore_index=-100)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.time() - t0)
    return times[1:], float(loss.item())


def child(d, cfg, steps):
    who, kind, thr = cfg.split("-")
    if who == "ours":
        times, loss = run_ours(d, kind == "lora", int(thr), steps, kind == "bf16")
    else:
        times, loss = run_torch(d, int(thr), steps, kind == "bf16")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    sec = sorted(times)[len(times) // 2]
    print(json.dumps({"config": cfg, "tok_s": B * T / sec, "sec_per_step": sec, "loss": loss, "peak_mib": rss}))


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    d = sys.argv[1]
    steps = 3
    configs = ",".join("%s-%d" % (c, t) for t in (1, 2) for c in ("torch-full", "ours-full", "torch-bf16", "ours-bf16"))
    args = sys.argv[2:]
    while args:
        if args[0] == "--steps":
            steps = int(args[1])
        elif args[0] == "--configs":
            configs = args[1]
        args = args[2:]
    print("SmolLM2-135M training step, batch %d x %d, median of %d steps after a warm-up step; load average %s"
          % (B, T, steps, " ".join("%.2f" % x for x in os.getloadavg())))
    for cfg in configs.split(","):
        out = subprocess.run([sys.executable, __file__, "--child", d, cfg, str(steps)], capture_output=True, text=True)
        line = [x for x in out.stdout.splitlines() if x.startswith("{")]
        if not line:
            print("%-14s failed: %s" % (cfg, out.stderr[-500:]))
            continue
        r = json.loads(line[-1])
        print("%-14s %7.1f tok/s  %6.2f s/step  loss %.4f  peak %6.0f MiB" % (cfg, r["tok_s"], r["sec_per_step"],
                                                                          r["loss"], r["peak_mib"]), flush=True)
    print("load average at the end: %s" % " ".join("%.2f" % x for x in os.getloadavg()))


if __name__ == "__main__":
    main()
