"""test_train_ref.py: the training model (src/train/train_model.c) against PyTorch autograd
through Hugging Face transformers 4.51.3: small random checkpoints of llama, qwen2, qwen3 and
gemma3 (2 layers, hidden 64, 4 heads, 2 kv heads, vocab 256) written as safetensors +
config.json, loaded in C through ctypes on build/libsalign.so. Compared: the masked mean
cross-entropy, the gradient of every parameter, and the weights after one clipped AdamW step
(decay on matrices only). Error = max|ours - torch| / max|torch| per tensor, < 1e-4.
Also: resume determinism of `salign train` after a SIGKILL (CSV bit for bit)."""
import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import hf_compat  # noqa: F401,E402  (before transformers)
import harness  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

LIB = ctypes.CDLL(os.path.join(harness.ROOT, os.environ.get("BUILD", "build"), "libsalign.so"))
TOL = 1e-4


class ModelParams(ctypes.Structure):
    _fields_ = [("lora_rank", ctypes.c_int32), ("lora_alpha", ctypes.c_float), ("lora_dropout", ctypes.c_float),
                ("lora_targets", ctypes.c_uint32), ("seed", ctypes.c_uint64), ("n_threads", ctypes.c_int32),
                ("precision", ctypes.c_int32)]  # enum sa_train_precision: 0 fp32, 1 bf16


class Tensor(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("n_dims", ctypes.c_int32), ("shape", ctypes.c_int64 * 2),
                ("n", ctypes.c_int64), ("data", ctypes.POINTER(ctypes.c_float)),
                ("grad", ctypes.POINTER(ctypes.c_float)), ("decay", ctypes.c_bool)]


class Optim(ctypes.Structure):
    _fields_ = [("beta1", ctypes.c_float), ("beta2", ctypes.c_float), ("eps", ctypes.c_float),
                ("weight_decay", ctypes.c_float), ("max_grad_norm", ctypes.c_float)]


LIB.sa_train_model_default_params.restype = ModelParams
LIB.sa_train_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(ModelParams), ctypes.POINTER(ctypes.c_void_p)]
LIB.sa_train_model_free.argtypes = [ctypes.c_void_p]
LIB.sa_train_model_reserve.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
LIB.sa_train_model_zero_grad.argtypes = [ctypes.c_void_p]
LIB.sa_train_model_step_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_int32),
                                          ctypes.c_int64, ctypes.c_int64, ctypes.c_float, ctypes.c_bool,
                                          ctypes.c_uint64, ctypes.POINTER(ctypes.c_float)]
LIB.sa_train_model_step_batch_weighted.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int32),
                                                   ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_float),
                                                   ctypes.c_int64, ctypes.c_int64, ctypes.c_float, ctypes.c_bool,
                                                   ctypes.c_uint64, ctypes.POINTER(ctypes.c_float)]
LIB.sa_train_model_n_tensors.argtypes = [ctypes.c_void_p]
LIB.sa_train_model_tensor.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(Tensor)]
LIB.sa_train_model_tensor.restype = ctypes.c_bool
LIB.sa_train_model_adamw_step.argtypes = [ctypes.c_void_p, ctypes.POINTER(Optim), ctypes.c_float,
                                          ctypes.POINTER(ctypes.c_double)]
LIB.sa_last_error.restype = ctypes.c_char_p

COMMON = dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6, pad_token_id=None,
              bos_token_id=1, eos_token_id=2)


def configs():
    return {
        "llama": transformers.LlamaConfig(**COMMON, tie_word_embeddings=False, rope_theta=10000.0,
                                          rope_scaling={"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                                                        "high_freq_factor": 4.0,
                                                        "original_max_position_embeddings": 8}),
        "qwen2": transformers.Qwen2Config(**COMMON, tie_word_embeddings=True, rope_theta=1000000.0),
        "qwen3": transformers.Qwen3Config(**COMMON, head_dim=16, tie_word_embeddings=False, rope_theta=1000000.0),
        "gemma3": transformers.Gemma3TextConfig(**COMMON, head_dim=16, tie_word_embeddings=True, rope_theta=1000000.0,
                                                rope_local_base_freq=10000.0, sliding_window=4,
                                                sliding_window_pattern=2, query_pre_attn_scalar=24,
                                                final_logit_softcapping=None, attn_logit_softcapping=None),
    }


def make_model(arch, cfg, seed):
    torch.manual_seed(seed)
    cfg._attn_implementation = "eager"
    cls = {"llama": transformers.LlamaForCausalLM, "qwen2": transformers.Qwen2ForCausalLM,
           "qwen3": transformers.Qwen3ForCausalLM, "gemma3": transformers.Gemma3ForCausalLM}[arch]
    model = cls(cfg).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_((0.0 if arch == "gemma3" else 1.0) + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.15 * torch.randn_like(p))
    return model


def c_load(path):
    h = ctypes.c_void_p()
    p = LIB.sa_train_model_default_params()
    if LIB.sa_train_model_load(path.encode(), ctypes.byref(p), ctypes.byref(h)) != 0:
        raise RuntimeError("load: " + LIB.sa_last_error().decode())
    return h


def c_tensors(h):
    out = {}
    for i in range(LIB.sa_train_model_n_tensors(h)):
        t = Tensor()
        assert LIB.sa_train_model_tensor(h, i, ctypes.byref(t))
        n = t.n
        data = np.ctypeslib.as_array(t.data, shape=(n,))
        grad = np.ctypeslib.as_array(t.grad, shape=(n,)) if t.grad else None
        out[t.name.decode()] = (data, grad, t.decay)
    return out


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def saved_model_and_batch(arch, cfg, seed, name, batch_seed, prompt_lens):
    """A random model saved as safetensors in tmp/name, and a batch (2, 12) of random tokens
    whose targets are the next tokens, masked (-100) on each row's first prompt_lens[b] rows and
    the last."""
    model = make_model(arch, cfg, seed)
    d = os.path.join(harness.tmpdir(), name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, safe_serialization=True)
    g = torch.Generator().manual_seed(batch_seed)
    tok = torch.randint(3, 256, (2, 12), generator=g)
    tgt = torch.roll(tok, -1, dims=1).clone()
    tgt[:, -1] = -100
    for b, n in enumerate(prompt_lens):
        tgt[b, :n] = -100
    return model, d, tok, tgt


def check_arch(arch):
    cfg = configs()[arch]
    model, d, tok, tgt = saved_model_and_batch(arch, cfg, 1234, "ref_" + arch, 7, (4, 6))
    B, T = tok.shape
    tgt[1, 8] = -100
    # torch
    logits = model(input_ids=tok, use_cache=False).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), tgt.reshape(-1), ignore_index=-100)
    loss.backward()
    # C
    h = c_load(d)
    try:
        assert LIB.sa_train_model_reserve(h, B, T, None) == 0, LIB.sa_last_error()
        LIB.sa_train_model_zero_grad(h)
        tok_c = np.ascontiguousarray(tok.numpy().astype(np.int32))
        tgt_c = np.ascontiguousarray(tgt.numpy().astype(np.int32))
        cl = ctypes.c_float()
        s = LIB.sa_train_model_step_batch(h, tok_c.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                                          tgt_c.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)), B, T, 0.0, True, 0,
                                          ctypes.byref(cl))
        assert s == 0, LIB.sa_last_error()
        ct = c_tensors(h)
        loss_err = abs(cl.value - loss.item()) / abs(loss.item())
        params = dict(model.named_parameters())
        names = [n for n in params if not (cfg.tie_word_embeddings and n == "lm_head.weight")]
        assert sorted(names) == sorted(ct.keys()), (sorted(names), sorted(ct.keys()))
        worst_g = 0.0
        for n in names:
            gt = params[n].grad.detach().numpy().reshape(-1)
            e = rel(ct[n][1], gt)
            worst_g = max(worst_g, e)
            assert e < TOL, "%s: gradient error %.3g" % (n, e)
        # one AdamW step, clipped at global norm 1.0, decay 0.1 on matrices. Both optimizers get
        # torch's gradients: Adam's first step is lr * g / (|g| + eps), the sign of g, so an
        # element whose gradient is ~0 flips its update on an error of 1e-9 (the gradients were
        # compared above).
        for n in names:
            ct[n][1][:] = params[n].grad.detach().numpy().reshape(-1)
        decay = [params[n] for n in names if params[n].dim() == 2]
        nodecay = [params[n] for n in names if params[n].dim() == 1]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": nodecay, "weight_decay": 0.0}],
                                lr=1e-2, betas=(0.9, 0.95), eps=1e-8)
        before = {n: params[n].detach().clone() for n in names}
        tnorm = torch.nn.utils.clip_grad_norm_([params[n] for n in names], 1.0).item()
        opt.step()
        o = Optim(0.9, 0.95, 1e-8, 0.1, 1.0)
        cnorm = ctypes.c_double()
        assert LIB.sa_train_model_adamw_step(h, ctypes.byref(o), 1e-2, ctypes.byref(cnorm)) == 0
        norm_err = abs(cnorm.value - tnorm) / tnorm
        worst_w = worst_u = 0.0
        for n in names:
            wt = params[n].detach().numpy().reshape(-1)
            worst_w = max(worst_w, rel(ct[n][0], wt))
            worst_u = max(worst_u, rel(ct[n][0] - before[n].numpy().reshape(-1), wt - before[n].numpy().reshape(-1)))
        print("  %-6s loss %.6f (err %.2g)  grad err max %.2g  norm err %.2g  weights after AdamW err %.2g"
              " (update err %.2g)" % (arch, loss.item(), loss_err, worst_g, norm_err, worst_w, worst_u))
        assert loss_err < TOL and norm_err < TOL and worst_w < TOL, (loss_err, norm_err, worst_w)
    finally:
        LIB.sa_train_model_free(h)


@harness.test
def grads_llama():
    check_arch("llama")


@harness.test
def grads_qwen2():
    check_arch("qwen2")


@harness.test
def grads_qwen3():
    check_arch("qwen3")


@harness.test
def grads_gemma3():
    check_arch("gemma3")


@harness.test
def weighted_loss_qwen2():
    """sa_train_model_step_batch_weighted (`salign train --edit-weight`): the weighted mean
    sum(w * ce) / sum(w) over the target rows, its loss and every gradient against torch."""
    cfg = configs()["qwen2"]
    model, d, tok, tgt = saved_model_and_batch("qwen2", cfg, 99, "ref_weighted", 8, (3, 5))
    B, T = tok.shape
    w = torch.ones(B, T)
    w[0, 5:7] = 4.0  # an edit span
    w[1, 8] = 0.25
    w[tgt < 0] = 7.0  # weights of masked rows are ignored
    logits = model(input_ids=tok, use_cache=False).logits
    ce = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), tgt.reshape(-1), ignore_index=-100,
                                           reduction="none")
    keep = tgt.reshape(-1) >= 0
    wf = w.reshape(-1)
    loss = (ce * wf)[keep].sum() / wf[keep].sum()
    loss.backward()
    h = c_load(d)
    try:
        assert LIB.sa_train_model_reserve(h, B, T, None) == 0, LIB.sa_last_error()
        tok_c = np.ascontiguousarray(tok.numpy().astype(np.int32))
        tgt_c = np.ascontiguousarray(tgt.numpy().astype(np.int32))
        w_c = np.ascontiguousarray(w.numpy().astype(np.float32))
        args = lambda wc: (h, tok_c.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),  # noqa: E731
                           tgt_c.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                           wc.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), B, T, 0.0, True, 0)
        LIB.sa_train_model_zero_grad(h)
        cl = ctypes.c_float()
        assert LIB.sa_train_model_step_batch_weighted(*args(w_c), ctypes.byref(cl)) == 0, LIB.sa_last_error()
        ct = c_tensors(h)
        loss_err = abs(cl.value - loss.item()) / abs(loss.item())
        params = dict(model.named_parameters())
        worst = 0.0
        for n in ct:
            e = rel(ct[n][1], params[n].grad.detach().numpy().reshape(-1))
            worst = max(worst, e)
            assert e < TOL, "%s: gradient error %.3g" % (n, e)
        print("  weighted loss %.6f (err %.2g), grad err max %.2g" % (loss.item(), loss_err, worst))
        assert loss_err < TOL, loss_err
        # a negative weight on a target row is refused
        bad = w_c.copy()
        bad[0, 6] = -1.0
        assert LIB.sa_train_model_step_batch_weighted(*args(bad), ctypes.byref(cl)) != 0
        assert b"weight" in LIB.sa_last_error()
    finally:
        LIB.sa_train_model_free(h)


def tiny_model_dir():
    """A llama-family random model with a real tokenizer (SmolLM2's tokenizer.json is not at
    hand, so the model uses a GGUF: written from safetensors with sa_convert, tokenizer copied
    from the SmolLM2 GGUF of the model cache)."""
    d = os.path.join(harness.tmpdir(), "tiny_llama")
    gguf = os.path.join(harness.tmpdir(), "tiny_llama.gguf")
    if os.path.exists(gguf):
        return gguf
    base = os.path.join(harness.models_dir(), "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert os.path.exists(base), "missing model %s (run scripts/setup.sh)" % base
    cfg = transformers.LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                                   tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(3)
    transformers.LlamaForCausalLM(cfg).save_pretrained(d, safe_serialization=True)
    subprocess.run([harness.SALIGN, "convert", d, "--to", "gguf", "--type", "f32", "--tokenizer-from", base,
                    "-o", gguf, "-q"], check=True)
    return gguf


def train_cmd(out, extra):
    data = os.path.join(harness.ROOT, "tests", "data", "gsm8k_align_small.jsonl")
    return [harness.SALIGN, "train", "--base", tiny_model_dir(), "--data", data, "--out", out, "--max-records", "48",
            "--epochs", "3", "--batch", "2", "--grad-accum", "2", "--lr", "1e-3", "--max-length", "256", "--seed", "5",
            "--save-every", "2", "--eval-fraction", "0.1", "--eval-every", "5", "--lora-dropout", "0.1", "-t", "1",
            "--no-export", "-q"] + extra


_REF = {}


def reference_csv(extra):
    key = tuple(extra)
    if key not in _REF:
        ref = os.path.join(harness.tmpdir(), "run_ref%d" % len(_REF))
        shutil.rmtree(ref, ignore_errors=True)
        subprocess.run(train_cmd(ref, extra), check=True, timeout=300)
        _REF[key] = open(os.path.join(ref, "log.csv")).read()
    return _REF[key]


def wait_for_rows(p, log, n, limit=300):
    """Waits (at most `limit` s) until the running training `p` has written n lines of log."""
    t0 = time.time()
    while time.time() - t0 < limit and p.poll() is None:
        try:
            if len(open(log).read().splitlines()) >= n:
                return
        except OSError:
            pass
        time.sleep(0.002)


def check_resume(extra, kill):
    full = reference_csv(extra)
    n_steps = len(full.strip().splitlines()) - 2
    assert n_steps >= 20, full
    cut = os.path.join(harness.tmpdir(), "run_cut")
    shutil.rmtree(cut, ignore_errors=True)
    if kill:
        # a real kill -9 once step 7 is logged (checkpoint 6 exists, step 8 runs): the rows
        # logged after the checkpoint are redone on resume
        p = subprocess.Popen(train_cmd(cut, extra))
        latest = os.path.join(cut, "checkpoint", "latest")
        wait_for_rows(p, os.path.join(cut, "log.csv"), 9)
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
        assert p.returncode == -signal.SIGKILL, "the run ended before the kill (rc %s)" % p.returncode
        rows = len(open(os.path.join(cut, "log.csv")).read().strip().splitlines()) - 2
        how = "SIGKILL after %d logged steps (checkpoint %s)" % (rows, open(latest).read().strip())
    else:
        r = subprocess.run(train_cmd(cut, extra + ["--stop-after-steps", "7"]), capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0 and r.stderr == "", r.stderr  # -q: not a line (the library prints nothing)
        how = "--stop-after-steps 7"
    cmd = train_cmd(cut, extra + ["--resume"])
    if kill:
        subprocess.run(cmd, check=True, timeout=300)
    else:  # not quiet: the closing line gives the held-out loss before training, read back from log.csv
        r = subprocess.run([a for a in cmd if a != "-q"], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        before = full.splitlines()[1].split(",")[-1]
        assert "held-out loss %.4f -> " % float(before) in r.stderr, (before, r.stderr[-400:])
        # the CLI's lines (drawn from the run's progress reports; not a terminal: every 10 steps and the last)
        for line in ("salign train: resumed at step 7 of %d\n" % n_steps, "\nstep 10/%d | loss " % n_steps,
                     "\nstep %d/%d | loss " % (n_steps, n_steps)):
            assert line in r.stderr, (line, r.stderr[-600:])
        assert "\033" not in r.stderr and "\r" not in r.stderr, r.stderr[-400:]
    again = open(os.path.join(cut, "log.csv")).read()
    assert again == full, "resumed CSV differs:\n%s\n---\n%s" % (again, full)
    kind = ("LoRA" if "--lora" in extra else "full") + (" bf16" if "bf16" in extra else "")
    print("  %s %d steps, %s, resumed: log.csv identical" % (kind, n_steps, how))


@harness.test
def resume_full_ft_stop_after_steps():
    check_resume([], False)


@harness.test
def resume_after_ctrl_c():
    """Ctrl-C is the run's cancel hook (issue 16): exit 130 after a checkpoint of the last
    finished step, and --resume writes the uninterrupted log.csv."""
    full = reference_csv([])
    cut = os.path.join(harness.tmpdir(), "run_int")
    shutil.rmtree(cut, ignore_errors=True)
    p = subprocess.Popen(train_cmd(cut, []), stderr=subprocess.PIPE, text=True)
    log = os.path.join(cut, "log.csv")
    wait_for_rows(p, log, 9)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 130, (p.returncode, err)
    m = re.search(r"salign train: interrupted: training cancelled after step (\d+) of", err)
    assert m, err
    latest = open(os.path.join(cut, "checkpoint", "latest")).read().strip()
    assert latest == "ckpt-%06d" % int(m.group(1)), (latest, err)
    subprocess.run(train_cmd(cut, ["--resume"]), check=True, timeout=300)
    again = open(log).read()
    assert again == full, "resumed CSV differs:\n%s\n---\n%s" % (again, full)
    print("  Ctrl-C after step %s: exit 130, %s, resumed: log.csv identical" % (m.group(1), latest))


@harness.test
def resume_lora_sigkill():
    check_resume(["--lora", "4"], True)


@harness.test
def resume_full_ft_sigkill():
    check_resume([], True)


@harness.test
def resume_bf16_and_precision_mismatch():
    # mixed precision resumes bit for bit too (the bf16 GEMM is deterministic)
    check_resume(["--precision", "bf16"], False)
    cut = os.path.join(harness.tmpdir(), "run_cut")
    r = subprocess.run(train_cmd(cut, ["--resume"]), capture_output=True, text=True)
    assert r.returncode == 1 and "--precision bf16" in r.stderr, r.stderr
    r = subprocess.run(train_cmd(cut, ["--resume", "--precision", "fp16"]), capture_output=True, text=True)
    assert r.returncode == 2 and "--precision" in r.stderr, r.stderr


@harness.test
def edit_weight_cli():
    """`salign train --edit-weight`: 1 is plain SFT (the same log.csv, bit for bit); 4 reports
    the examples with an edit and changes the loss; a resume with another weight is refused;
    DPO and a weight <= 0 are refused."""
    base = reference_csv([])
    one = os.path.join(harness.tmpdir(), "run_ew1")
    shutil.rmtree(one, ignore_errors=True)
    subprocess.run(train_cmd(one, ["--edit-weight", "1"]), check=True, timeout=300)
    assert open(os.path.join(one, "log.csv")).read() == base
    four = os.path.join(harness.tmpdir(), "run_ew4")
    shutil.rmtree(four, ignore_errors=True)
    cmd = [a for a in train_cmd(four, ["--edit-weight", "4", "--stop-after-steps", "3"]) if a != "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    m = re.search(r"salign train: edit weight 4 on the edited tokens of (\d+) examples", r.stderr)
    assert m and int(m.group(1)) > 0, r.stderr
    rows = lambda text: [line.split(",") for line in text.splitlines()[1:] if not line.startswith("0,")]  # noqa: E731
    got, ref = rows(open(os.path.join(four, "log.csv")).read()), rows(base)
    assert len(got) == 3 and got[0][2] != ref[0][2], (got[:1], ref[:1])
    r = subprocess.run(train_cmd(four, ["--resume"]), capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "edit weight" in r.stderr, r.stderr
    subprocess.run(train_cmd(four, ["--resume", "--edit-weight", "4"]), check=True, timeout=300)
    dpo = os.path.join(harness.tmpdir(), "run_ew_dpo")
    shutil.rmtree(dpo, ignore_errors=True)
    r = subprocess.run(train_cmd(dpo, ["--objective", "dpo", "--edit-weight", "2"]), capture_output=True, text=True)
    assert r.returncode == 1 and "edit weight" in r.stderr, r.stderr
    r = subprocess.run(train_cmd(dpo, ["--edit-weight", "0"]), capture_output=True, text=True)
    assert r.returncode == 2 and "--edit-weight" in r.stderr, r.stderr


def csv_rows(run):
    return [line.split(",") for line in open(os.path.join(run, "log.csv")).read().strip().splitlines()[1:]]


@harness.test
def init_from_warm_start():
    """`salign train --init-from RUN`: the new run starts from RUN's trained weights (its held-out
    loss before step 1 is RUN's after its last step), from a run directory or one of its
    checkpoints alike, with a fresh schedule; --resume keeps the checkpoint's weights; another
    LoRA shape or a path with no checkpoint is refused with a clear error."""
    extra = ["--lora", "4", "--max-steps", "6"]
    runs = {}
    for name in ("a", "b", "c", "d"):
        runs[name] = os.path.join(harness.tmpdir(), "run_init_" + name)
        shutil.rmtree(runs[name], ignore_errors=True)
    a, b, c, d = runs["a"], runs["b"], runs["c"], runs["d"]
    subprocess.run(train_cmd(a, extra), check=True, timeout=300)
    ra = csv_rows(a)
    assert ra[0][0] == "0" and ra[-1][0] == "6" and ra[-1][6], ra
    assert ra[0][6] != ra[-1][6], "training did not move the held-out loss"
    subprocess.run(train_cmd(b, extra + ["--init-from", a]), check=True, timeout=300)
    rb = csv_rows(b)
    assert rb[0][6] == ra[-1][6], ("held-out loss before step 1", rb[0][6], "after the run it starts from", ra[-1][6])
    assert rb[1][3] == ra[1][3] and rb[1][2] != ra[1][2], (rb[1], ra[1])  # the same schedule, other weights
    # a checkpoint directory of the run is the same start
    ckpt = os.path.join(a, "checkpoint", open(os.path.join(a, "checkpoint", "latest")).read().strip())
    r = subprocess.run([x for x in train_cmd(c, extra + ["--init-from", ckpt]) if x != "-q"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "salign train: starting from the trained weights of %s\n" % ckpt in r.stderr, r.stderr
    assert open(os.path.join(c, "log.csv")).read() == open(os.path.join(b, "log.csv")).read()
    # an interrupted warm start resumes from its own checkpoint, not from the run it started from
    r = subprocess.run(train_cmd(d, extra + ["--init-from", a, "--stop-after-steps", "4"]), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    subprocess.run(train_cmd(d, extra + ["--init-from", a, "--resume"]), check=True, timeout=300)
    assert open(os.path.join(d, "log.csv")).read() == open(os.path.join(b, "log.csv")).read()
    # refusals
    shutil.rmtree(d)
    r = subprocess.run(train_cmd(d, ["--lora", "8", "--max-steps", "2", "--init-from", a]), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 1 and "--init-from" in r.stderr and "this model trains" in r.stderr, r.stderr
    shutil.rmtree(d, ignore_errors=True)
    r = subprocess.run(train_cmd(d, extra + ["--init-from", "/nonexistent/run"]), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1 and "neither a training run" in r.stderr, r.stderr
    print("  warm start: held-out loss %s before step 1 = the source run's after step 6; resume and refusals ok"
          % rb[0][6])


@harness.test
def init_from_adapter():
    """`salign train --init-from ADAPTER.gguf`: a GGUF LoRA adapter (the file a run exports, or a
    shipped models/NAME/adapter.gguf) is a warm start too. From an f32 adapter the run is the
    same, to the CSV's text, as from the checkpoint it was exported from (the Q/K rows of B go
    back to HF's order exactly: the tiny model is a llama, whose rows the export permutes); from
    an f16 one it starts at the f16 rounding of those weights. An adapter of another rank or
    alpha, or a file that is not an adapter, is refused with a clear error."""
    extra = ["--lora", "4", "--max-steps", "6"]
    runs = {n: os.path.join(harness.tmpdir(), "run_adapter_" + n) for n in ("e", "f", "g", "h", "x")}
    for d in runs.values():
        shutil.rmtree(d, ignore_errors=True)
    e, f, g, h, x = (runs[n] for n in ("e", "f", "g", "h", "x"))
    exported = [a for a in train_cmd(e, extra) if a != "--no-export"] + ["--adapter-only", "--gguf-type", "f32"]
    subprocess.run(exported, check=True, timeout=300)
    adapter = os.path.join(e, "model", "adapter.gguf")
    assert os.path.exists(adapter), os.listdir(e)
    subprocess.run(train_cmd(f, extra + ["--init-from", e]), check=True, timeout=300)
    r = subprocess.run([a for a in train_cmd(g, extra + ["--init-from", adapter]) if a != "-q"], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "starting from the trained weights of %s" % adapter in r.stderr, r.stderr
    assert open(os.path.join(g, "log.csv")).read() == open(os.path.join(f, "log.csv")).read(), \
        "a warm start from the f32 adapter differs from one from its checkpoint"
    # f16: the rounded weights, the same held-out loss to about 1e-3
    f16 = os.path.join(harness.tmpdir(), "adapter_f16.gguf")
    exported16 = [a for a in train_cmd(h, extra) if a != "--no-export"] + ["--adapter-only"]
    subprocess.run(exported16, check=True, timeout=300)
    shutil.copy(os.path.join(h, "model", "adapter.gguf"), f16)
    rh = csv_rows(h)
    shutil.rmtree(x, ignore_errors=True)
    subprocess.run(train_cmd(x, extra + ["--init-from", f16]), check=True, timeout=300)
    rx = csv_rows(x)
    assert abs(float(rx[0][6]) - float(rh[-1][6])) < 1e-3 * abs(float(rh[-1][6])), (rx[0], rh[-1])
    # refusals
    for more, want in [(["--lora", "8", "--max-steps", "2", "--init-from", adapter], "another --lora rank"),
                       (["--lora", "4", "--lora-alpha", "3", "--max-steps", "2", "--init-from", adapter],
                        "adapter.lora.alpha is 8"),
                       (["--lora", "4", "--max-steps", "2", "--init-from", tiny_model_dir()], "not a LoRA adapter")]:
        shutil.rmtree(x, ignore_errors=True)
        r = subprocess.run(train_cmd(x, more), capture_output=True, text=True, timeout=300)
        assert r.returncode == 1 and "--init-from" in r.stderr and want in r.stderr, (more, r.stderr)
    print("  warm start from an adapter: f32 = from its checkpoint, f16 held-out loss %s vs %s; refusals ok"
          % (rx[0][6], rh[-1][6]))


@harness.test
def cli_errors():
    r = subprocess.run([harness.SALIGN, "train", "--base", "x", "--data", "y"], capture_output=True, text=True)
    assert r.returncode == 2 and "--out" in r.stderr, r.stderr
    r = subprocess.run([harness.SALIGN, "train", "--batch", "0", "--base", "x", "--data", "y", "--out", "z"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--batch" in r.stderr, r.stderr
    r = subprocess.run([harness.SALIGN, "train", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--resume" in r.stdout
    out = os.path.join(harness.tmpdir(), "run_missing")
    r = subprocess.run([harness.SALIGN, "train", "--base", tiny_model_dir(), "--data", "/nonexistent.jsonl", "--out",
                        out, "-q"], capture_output=True, text=True)
    assert r.returncode == 1 and "nonexistent" in r.stderr, r.stderr
    # resuming with other options is refused
    ref = os.path.join(harness.tmpdir(), "run_ref0")
    if os.path.exists(os.path.join(ref, "checkpoint")):
        r = subprocess.run(train_cmd(ref, ["--resume", "--seed", "6"]), capture_output=True, text=True)
        assert r.returncode == 1 and "other options" in r.stderr, r.stderr


if __name__ == "__main__":
    harness.main()
