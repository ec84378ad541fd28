"""test_dpo_ref.py: DPO (Rafailov et al. 2023; issue 15) in the training engine against PyTorch.
A small random llama checkpoint (2 layers, hidden 64, vocab 256, transformers 4.51.3) is loaded
in C through ctypes on build/libsalign.so; 3 preference pairs (6 sequences, prompts and
responses of different lengths, right padding) go through sa_train_model_dpo_step and through
a PyTorch DPO written from the paper's formula:
  loss = mean_i -log sigmoid(beta ((logp(c_i) - ref(c_i)) - (logp(r_i) - ref(r_i))))
with logp the sum of the response tokens' log-probabilities. Compared: the sequence
log-probabilities, the loss for two betas, the rewards and accuracy, and the gradient of every
trainable tensor (error = max|ours - torch| / max|torch| per tensor, < 1e-4): full fine-tuning,
and LoRA (rank 4, random B) whose reference is the base without the adapter. Then
`salign train --objective dpo` and `--objective sft-upstream` on a tiny model with SmolLM2's
tokenizer: records without a preference skipped and counted, the first step's loss is log 2
(policy = reference), log.csv's DPO columns, the upstream's prompt text."""
import ctypes
import math
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import hf_compat  # noqa: F401,E402  (before transformers)
import harness  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

LIB = ctypes.CDLL(os.path.join(harness.ROOT, os.environ.get("BUILD", "build"), "libsalign.so"))
TOL = 1e-4
I32P = ctypes.POINTER(ctypes.c_int32)
F64P = ctypes.POINTER(ctypes.c_double)


class ModelParams(ctypes.Structure):
    _fields_ = [("lora_rank", ctypes.c_int32), ("lora_alpha", ctypes.c_float), ("lora_dropout", ctypes.c_float),
                ("lora_targets", ctypes.c_uint32), ("seed", ctypes.c_uint64), ("n_threads", ctypes.c_int32),
                ("precision", ctypes.c_int32)]


class Tensor(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("n_dims", ctypes.c_int32), ("shape", ctypes.c_int64 * 2),
                ("n", ctypes.c_int64), ("data", ctypes.POINTER(ctypes.c_float)),
                ("grad", ctypes.POINTER(ctypes.c_float)), ("decay", ctypes.c_bool)]


class DpoStats(ctypes.Structure):
    _fields_ = [("loss", ctypes.c_double), ("chosen_reward", ctypes.c_double), ("rejected_reward", ctypes.c_double),
                ("n_correct", ctypes.c_int64), ("n_pairs", ctypes.c_int64)]


class Record(ctypes.Structure):  # struct sa_record
    _fields_ = [("kind", ctypes.c_int), ("question", ctypes.c_char_p), ("prefix", ctypes.c_char_p),
                ("last", ctypes.c_char_p), ("correction", ctypes.c_char_p), ("answer", ctypes.c_char_p),
                ("solution", ctypes.c_char_p), ("source", ctypes.c_char_p), ("eos", ctypes.c_int)]


LIB.sa_train_model_default_params.restype = ModelParams
LIB.sa_train_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(ModelParams), ctypes.POINTER(ctypes.c_void_p)]
LIB.sa_train_model_free.argtypes = [ctypes.c_void_p]
LIB.sa_train_model_reserve.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
LIB.sa_train_model_zero_grad.argtypes = [ctypes.c_void_p]
LIB.sa_train_model_n_tensors.argtypes = [ctypes.c_void_p]
LIB.sa_train_model_tensor.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(Tensor)]
LIB.sa_train_model_tensor.restype = ctypes.c_bool
LIB.sa_train_model_set_adapters.argtypes = [ctypes.c_void_p, ctypes.c_bool]
LIB.sa_train_model_seq_logp.argtypes = [ctypes.c_void_p, I32P, I32P, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint64,
                                        F64P]
LIB.sa_train_model_dpo_step.argtypes = [ctypes.c_void_p, I32P, I32P, ctypes.c_int64, ctypes.c_int64, F64P,
                                        ctypes.c_float, ctypes.c_float, ctypes.c_bool, ctypes.c_uint64,
                                        ctypes.POINTER(DpoStats)]
LIB.sa_tr_upstream_prompt_text.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(Record), ctypes.c_size_t,
                                           ctypes.POINTER(ctypes.c_void_p)]
LIB.sa_chat_template_detect.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
LIB.sa_chat_format_from_name.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
LIBC = ctypes.CDLL(None)
LIBC.free.argtypes = [ctypes.c_void_p]
LIB.sa_last_error.restype = ctypes.c_char_p

VOCAB = 256


def make_model(seed):
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                   rms_norm_eps=1e-6, pad_token_id=None, bos_token_id=1, eos_token_id=2,
                                   tie_word_embeddings=False, rope_theta=10000.0)
    cfg._attn_implementation = "eager"
    model = transformers.LlamaForCausalLM(cfg).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1.0 + 0.2 * torch.randn_like(p) if "norm" in name else 0.15 * torch.randn_like(p))
    return model


def pairs_batch():
    """3 pairs as 6 rows (2i chosen, 2i+1 rejected): a shared prompt, responses of their own
    lengths, right-padded with token 0 (target -100)."""
    g = torch.Generator().manual_seed(11)
    spec = [(4, 3, 5), (6, 4, 2), (3, 6, 6)]  # prompt, chosen, rejected lengths
    T = max(p + max(c, r) for p, c, r in spec) - 1
    tok = torch.zeros((6, T), dtype=torch.long)
    tgt = torch.full((6, T), -100, dtype=torch.long)
    for i, (lp, lc, lr) in enumerate(spec):
        prompt = torch.randint(3, VOCAB, (lp,), generator=g)
        for k, ln in ((0, lc), (1, lr)):
            seq = torch.cat([prompt, torch.randint(3, VOCAB, (ln,), generator=g)])
            row = 2 * i + k
            tok[row, :len(seq) - 1] = seq[:-1]
            tgt[row, lp - 1:len(seq) - 1] = seq[lp:]
    return tok, tgt


def torch_logp(model, tok, tgt):
    logits = model(input_ids=tok, use_cache=False).logits
    lp = torch.log_softmax(logits.float(), dim=-1)
    mask = tgt >= 0
    picked = lp.gather(-1, tgt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(-1)


def torch_dpo(logp, ref, beta):
    c = beta * (logp[0::2] - ref[0::2])
    r = beta * (logp[1::2] - ref[1::2])
    return -torch.nn.functional.logsigmoid(c - r).mean(), c, r


def c_load(path, lora_rank=0):
    h = ctypes.c_void_p()
    p = LIB.sa_train_model_default_params()
    p.lora_rank = lora_rank
    p.lora_alpha = 8.0
    p.seed = 3
    if LIB.sa_train_model_load(path.encode(), ctypes.byref(p), ctypes.byref(h)) != 0:
        raise RuntimeError("load: " + LIB.sa_last_error().decode())
    return h


def c_tensors(h):
    out = {}
    for i in range(LIB.sa_train_model_n_tensors(h)):
        t = Tensor()
        assert LIB.sa_train_model_tensor(h, i, ctypes.byref(t))
        data = np.ctypeslib.as_array(t.data, shape=(t.n,))
        grad = np.ctypeslib.as_array(t.grad, shape=(t.n,)) if t.grad else None
        out[t.name.decode()] = (data, grad, (t.shape[0], t.shape[1]) if t.n_dims == 2 else (t.shape[0],))
    return out


def arr(t, dtype):
    return np.ascontiguousarray(t.detach().numpy().astype(dtype))


def c_seq_logp(h, tok_c, tgt_c):
    out = np.zeros(tok_c.shape[0], dtype=np.float64)
    s = LIB.sa_train_model_seq_logp(h, tok_c.ctypes.data_as(I32P), tgt_c.ctypes.data_as(I32P), tok_c.shape[0],
                                    tok_c.shape[1], 0, out.ctypes.data_as(F64P))
    assert s == 0, LIB.sa_last_error()
    return out


def c_dpo(h, tok_c, tgt_c, ref, beta, grad=True):
    st = DpoStats()
    LIB.sa_train_model_zero_grad(h)
    ref = np.ascontiguousarray(ref, dtype=np.float64)
    s = LIB.sa_train_model_dpo_step(h, tok_c.ctypes.data_as(I32P), tgt_c.ctypes.data_as(I32P), tok_c.shape[0],
                                    tok_c.shape[1], ref.ctypes.data_as(F64P), beta, 0.0, grad, 0, ctypes.byref(st))
    return s, st


def rel(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def check_stats(st, loss, c, r, what):
    assert st.n_pairs == 3, st.n_pairs
    e = abs(st.loss - loss.item()) / abs(loss.item())
    assert e < TOL, "%s: loss %.8f vs torch %.8f" % (what, st.loss, loss.item())
    for got, want in ((st.chosen_reward, c.sum().item()), (st.rejected_reward, r.sum().item())):
        assert abs(got - want) <= TOL * max(1.0, abs(want)), (what, got, want)
    assert st.n_correct == int((c > r).sum().item()), (what, st.n_correct, c, r)
    return e


def save(model, name):
    d = os.path.join(harness.tmpdir(), name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, safe_serialization=True)
    return d


@harness.test
def dpo_full_ft():
    model, ref_model = make_model(1234), make_model(99)
    d = save(model, "dpo_policy")
    tok, tgt = pairs_batch()
    tok_c, tgt_c = arr(tok, np.int32), arr(tgt, np.int32)
    with torch.no_grad():
        ref = torch_logp(ref_model, tok, tgt).double()  # another model: rewards far from 0
    h = c_load(d)
    try:
        assert LIB.sa_train_model_reserve(h, tok.shape[0], tok.shape[1], None) == 0
        logp_t = torch_logp(model, tok, tgt)
        logp_c = c_seq_logp(h, tok_c, tgt_c)
        e_lp = rel(logp_c, logp_t.detach().double().numpy())
        assert e_lp < TOL, (logp_c, logp_t)
        losses = {}
        for beta in (0.1, 1.0):
            model.zero_grad()
            loss, c, r = torch_dpo(torch_logp(model, tok, tgt).double(), ref, beta)
            loss.backward()
            s, st = c_dpo(h, tok_c, tgt_c, ref.numpy(), beta)
            assert s == 0, LIB.sa_last_error()
            e_loss = check_stats(st, loss, c, r, "beta %g" % beta)
            # the formula by hand, from the sequence log-probabilities
            lp = logp_c
            want = np.mean([math.log1p(math.exp(-beta * ((lp[2 * i] - ref[2 * i].item()) -
                                                         (lp[2 * i + 1] - ref[2 * i + 1].item())))) for i in range(3)])
            assert abs(st.loss - want) < 1e-6 * max(1, want), (st.loss, want)
            losses[beta] = st.loss
            ct = c_tensors(h)
            params = dict(model.named_parameters())
            assert sorted(params) == sorted(ct), (sorted(params), sorted(ct))
            worst = 0.0
            for n, p in params.items():
                e = rel(ct[n][1], p.grad.detach().numpy().reshape(-1))
                worst = max(worst, e)
                assert e < TOL, "beta %g %s: gradient error %.3g" % (beta, n, e)
            print("  full FT beta %-4g loss %.6f (err %.2g) margin %.4f acc %d/3  logp err %.2g  grad err max %.2g" %
                  (beta, loss.item(), e_loss, (c - r).mean().item(), st.n_correct, e_lp, worst))
        assert abs(losses[0.1] - losses[1.0]) > 1e-3, losses
        # the reference = the policy: loss log 2 for any beta
        s, st = c_dpo(h, tok_c, tgt_c, logp_c, 0.5, grad=False)
        assert s == 0 and abs(st.loss - math.log(2)) < 1e-6 and st.n_correct == 0, (st.loss, st.n_correct)
        # bad batches: an odd number of rows, a response without a target, beta <= 0
        s, _ = c_dpo(h, tok_c[:5], tgt_c[:5], logp_c[:5], 0.1)
        assert s != 0 and b"pairs" in LIB.sa_last_error()
        tgt_bad = tgt_c.copy()
        tgt_bad[3, :] = -100
        s, _ = c_dpo(h, tok_c, tgt_bad, logp_c, 0.1)
        assert s != 0 and b"rejected response of pair 1" in LIB.sa_last_error(), LIB.sa_last_error()
        s, _ = c_dpo(h, tok_c, tgt_c, logp_c, 0.0)
        assert s != 0 and b"beta" in LIB.sa_last_error()
    finally:
        LIB.sa_train_model_free(h)


LIN = {"q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj", "o": "self_attn.o_proj",
       "gate": "mlp.gate_proj", "up": "mlp.up_proj", "down": "mlp.down_proj"}


@harness.test
def dpo_lora():
    """LoRA r4 (alpha 8) on every linear module, B random (PEFT starts it at 0, which would make
    the adapter a no-op and A's gradient 0); the reference is the base without the adapter,
    from sa_train_model_seq_logp with the adapters switched off."""
    model = make_model(1234)
    d = save(model, "dpo_policy_lora")
    tok, tgt = pairs_batch()
    tok_c, tgt_c = arr(tok, np.int32), arr(tgt, np.int32)
    h = c_load(d, lora_rank=4)
    try:
        assert LIB.sa_train_model_reserve(h, tok.shape[0], tok.shape[1], None) == 0
        ct = c_tensors(h)
        g = np.random.default_rng(5)
        adapters = {}
        for n, (data, grad, shape) in ct.items():
            if ".lora_B." in n:
                data[:] = (0.2 * g.standard_normal(data.shape)).astype(np.float32)
            if ".lora_" in n:
                assert grad is not None
                adapters[n] = torch.tensor(data.reshape(shape).copy(), requires_grad=True)
            else:
                assert grad is None, n  # the base is frozen
        assert len(adapters) == 2 * 7 * 2, len(adapters)
        # the reference: the base alone, in C (adapters off) and in torch (no hooks)
        LIB.sa_train_model_set_adapters(h, False)
        ref_c = c_seq_logp(h, tok_c, tgt_c)
        s, _ = c_dpo(h, tok_c, tgt_c, ref_c, 0.1)  # no gradient through a forward without the adapters
        assert s != 0 and b"adapters" in LIB.sa_last_error(), LIB.sa_last_error()
        LIB.sa_train_model_set_adapters(h, True)
        with torch.no_grad():
            ref_t = torch_logp(model, tok, tgt).double()
        e_ref = rel(ref_c, ref_t.numpy())
        assert e_ref < TOL, (ref_c, ref_t)
        hooks = []
        for layer in range(2):
            for mod in LIN.values():
                pre = "model.layers.%d.%s" % (layer, mod)
                A, B = adapters[pre + ".lora_A.weight"], adapters[pre + ".lora_B.weight"]
                lin = model.get_submodule(pre)
                hooks.append(lin.register_forward_hook(
                    lambda m, inp, out, A=A, B=B: out + 2.0 * (inp[0] @ A.t()) @ B.t()))
        for p in model.parameters():
            p.requires_grad_(False)
        try:
            beta = 0.25
            loss, c, r = torch_dpo(torch_logp(model, tok, tgt).double(), ref_t, beta)
            loss.backward()
        finally:
            for hk in hooks:
                hk.remove()
        s, st = c_dpo(h, tok_c, tgt_c, ref_c, beta)
        assert s == 0, LIB.sa_last_error()
        e_loss = check_stats(st, loss, c, r, "LoRA")
        assert abs(st.loss - math.log(2)) > 1e-3  # the adapter moved the policy off the reference
        ct = c_tensors(h)
        worst = 0.0
        for n, A in adapters.items():
            e = rel(ct[n][1], A.grad.numpy().reshape(-1))
            worst = max(worst, e)
            assert e < TOL, "%s: gradient error %.3g" % (n, e)
        print("  LoRA r4 beta %g loss %.6f (err %.2g) margin %.4f  ref (adapters off) err %.2g  grad err max %.2g" %
              (beta, loss.item(), e_loss, (c - r).mean().item(), e_ref, worst))
    finally:
        LIB.sa_train_model_free(h)


def tiny_model_dir():
    """A tiny random llama with SmolLM2's tokenizer and chat template (GGUF via sa_convert)."""
    d = os.path.join(harness.tmpdir(), "tiny_llama")
    gguf = os.path.join(harness.tmpdir(), "tiny_llama.gguf")
    if os.path.exists(gguf):
        return gguf
    base = os.path.join(harness.models_dir(), "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(base):
        harness.skip("missing model %s (run scripts/setup.sh)" % base)
    cfg = transformers.LlamaConfig(vocab_size=49152, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                                   tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(3)
    transformers.LlamaForCausalLM(cfg).save_pretrained(d, safe_serialization=True)
    subprocess.run([harness.SALIGN, "convert", d, "--to", "gguf", "--type", "f32", "--tokenizer-from", base,
                    "-o", gguf, "-q"], check=True)
    return gguf


def records_file(n):
    """The first n records of the shipped GSM8K records, and how many have correction == last."""
    src = os.path.join(harness.ROOT, "tests", "data", "gsm8k_align_small.jsonl")
    import json
    lines = open(src).read().splitlines()[:n]
    same = sum(json.loads(x)["correction"] == json.loads(x)["last"] for x in lines)
    path = os.path.join(harness.tmpdir(), "dpo_records.jsonl")
    open(path, "w").write("\n".join(lines) + "\n")
    return path, same


def run_train(out, extra, n=16):
    data, same = records_file(n)
    shutil.rmtree(out, ignore_errors=True)
    cmd = [harness.SALIGN, "train", "--base", tiny_model_dir(), "--data", data, "--out", out, "--batch", "2",
           "--lr", "1e-3", "--max-length", "256", "--seed", "5", "-t", "1", "--no-export"] + extra
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stderr, same, open(os.path.join(out, "log.csv")).read().splitlines()


@harness.test
def dpo_cli():
    for extra in ([], ["--lora", "4", "--lora-dropout", "0.1"]):
        out = os.path.join(harness.tmpdir(), "dpo_run")
        err, same, rows = run_train(out, ["--objective", "dpo", "--beta", "0.5", "--max-steps", "3",
                                          "--eval-fraction", "0.3"] + extra, n=24)
        assert 0 < same < 24
        assert ("objective dpo, beta 0.5, reference the base%s; %d records without a preference skipped" %
                (" without the adapter" if extra else "", same)) in err, err
        assert rows[0] == ("step,epoch,loss,lr,grad_norm,tokens,eval_loss,reward_chosen,reward_rejected,"
                           "reward_margin,reward_accuracy,eval_accuracy"), rows[0]
        # held-out before training: the policy is the reference, bit for bit (same batches)
        f0 = rows[1].split(",")
        assert f0[0] == "0" and abs(float(f0[6]) - math.log(2)) < 1e-6 and float(f0[11]) == 0, rows[1]
        # step 1: the policy is still the reference (other batches: equal within rounding)
        f1 = rows[2].split(",")
        assert len(f1) == 12 and abs(float(f1[2]) - math.log(2)) < 1e-4 and abs(float(f1[9])) < 1e-4, rows[2]
        f3 = rows[4].split(",")
        assert f3[0] == "3" and f3[6] and f3[11], rows[4]  # the last step evaluates
        assert "reward accuracy" in err, err
        print("  %s: %d of 24 records skipped (no preference); step 1 loss %s margin %s; step 3 loss %s margin %s "
              "acc %s; held-out %s -> %s" % ("LoRA r4" if extra else "full", same, f1[2], f1[9], f3[2], f3[9], f3[10],
                                             f0[6], f3[6]))
    # resume with another beta is refused; --ref only with dpo; unknown objective
    r = subprocess.run([harness.SALIGN, "train", "--base", tiny_model_dir(), "--data", records_file(24)[0], "--out",
                        out, "--objective", "dpo", "--beta", "0.3", "--max-steps", "3", "--eval-fraction", "0.3",
                        "--batch", "2", "--lr", "1e-3", "--max-length", "256", "--seed", "5", "--lora", "4",
                        "--lora-dropout", "0.1", "--resume", "-q", "--no-export"], capture_output=True, text=True)
    assert r.returncode == 1 and "other options" in r.stderr, r.stderr
    r = subprocess.run([harness.SALIGN, "train", "--base", "x", "--data", "y", "--out", "z", "--ref", "m"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--ref" in r.stderr, r.stderr
    r = subprocess.run([harness.SALIGN, "train", "--base", "x", "--data", "y", "--out", "z", "--objective", "ppo"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "--objective" in r.stderr, r.stderr


@harness.test
def dpo_cli_ref_model():
    """--ref MODEL: the reference is another model; with the base itself as --ref the run is the
    default run, row for row."""
    out = os.path.join(harness.tmpdir(), "dpo_run_ref")
    _, _, rows_default = run_train(out, ["--objective", "dpo", "--max-steps", "2", "--eval-fraction", "0"])
    _, _, rows_ref = run_train(out, ["--objective", "dpo", "--max-steps", "2", "--eval-fraction", "0", "--ref",
                                     tiny_model_dir()])
    assert rows_ref == rows_default, (rows_ref, rows_default)
    print("  --ref BASE = the default reference: %d rows identical" % len(rows_ref))


@harness.test
def dpo_resume():
    """Full fine-tuning stopped after 2 of 4 steps and resumed: the reference comes from the
    base again (not from the checkpoint's weights), so log.csv is the uninterrupted one."""
    args = ["--objective", "dpo", "--beta", "0.5", "--max-steps", "4", "--eval-fraction", "0.3", "--eval-every", "2",
            "--lr", "1e-2"]
    full_dir, cut = os.path.join(harness.tmpdir(), "dpo_full"), os.path.join(harness.tmpdir(), "dpo_cut")
    _, _, full = run_train(full_dir, args, n=24)
    _, _, part = run_train(cut, args + ["--stop-after-steps", "2"], n=24)
    assert len(part) == 4, part
    data = records_file(24)[0]
    r = subprocess.run([harness.SALIGN, "train", "--base", tiny_model_dir(), "--data", data, "--out", cut, "--batch",
                        "2", "--max-length", "256", "--seed", "5", "-t", "1", "--no-export", "--resume"] + args,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    again = open(os.path.join(cut, "log.csv")).read().splitlines()
    assert again == full, "resumed CSV differs:\n%s\n---\n%s" % ("\n".join(again), "\n".join(full))
    print("  DPO full FT stopped after step 2 of 4, resumed: log.csv identical (last loss %s)" % full[-1].split(",")[2])


@harness.test
def sft_upstream_cli_and_prompt():
    out = os.path.join(harness.tmpdir(), "sftu_run")
    err, same, rows = run_train(out, ["--objective", "sft-upstream", "--max-steps", "2", "--eval-fraction", "0"])
    assert "objective sft-upstream" in err and "16 records: 16 train" in err, err
    assert rows[0] == "step,epoch,loss,lr,grad_norm,tokens,eval_loss" and len(rows) == 3, rows
    # the upstream's prompt: the question in the chat template, the prefix written into the
    # answer with the line break that follows it
    fmt = ctypes.c_int()
    assert LIB.sa_chat_format_from_name(b"chatml", ctypes.byref(fmt)) == 0
    rec = Record(1, b"How many?", b"Step 1 is 2.\nStep 2 is 3.", b"So 5.", b"So 4.", None, None, None, 0)
    txt = ctypes.c_void_p()
    assert LIB.sa_tr_upstream_prompt_text(fmt.value, None, ctypes.byref(rec), 0, ctypes.byref(txt)) == 0
    got = ctypes.string_at(txt.value).decode()
    LIBC.free(txt)
    assert got.endswith("<|im_start|>user\nHow many?<|im_end|>\n<|im_start|>assistant\nStep 1 is 2.\nStep 2 is 3.\n"), got
    assert LIB.sa_tr_upstream_prompt_text(fmt.value, None, ctypes.byref(rec), 13, ctypes.byref(txt)) == 0
    got = ctypes.string_at(txt.value).decode()
    LIBC.free(txt)
    assert got.endswith("<|im_start|>assistant\nStep 2 is 3.\n"), got
    rec.prefix = b""
    assert LIB.sa_tr_upstream_prompt_text(fmt.value, None, ctypes.byref(rec), 0, ctypes.byref(txt)) == 0
    got = ctypes.string_at(txt.value).decode()
    LIBC.free(txt)
    assert got.endswith("<|im_start|>assistant\n"), got
    print("  sft-upstream: 2 steps, loss %s -> %s; upstream prompt text as the pipeline renders it" %
          (rows[1].split(",")[2], rows[2].split(",")[2]))


if __name__ == "__main__":
    harness.main()
