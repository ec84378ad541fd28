"""test_steer_cli.py: `salign steer extract|scan|apply|sweep` and `salign align --aligner-steer`
end to end on SmolLM2-135M-Instruct (a stand-in aligner) over short arithmetic correction records: the extracted vector equals numpy's LAT on the hidden
states the command dumps (first principal component of the rewrite-minus-copy differences, not
centred, signed so that + is rewrite, scaled by the mean projection; block 0's row left zero);
the extract CSV's statistics equal numpy's; the scan CSV's projections equal the projections of
hidden states computed independently (ctypes, sa_ctx_params.hidden_cb) on the CSV's token ids,
and its tokens are the pipeline's prompt; the SVG files parse as XML; `steer apply --coef 0` and
`align --steer-coef 0` give exactly the unsteered output (the pipeline's own revision: `salign
eval aligner --details`; a plain `salign align`), a nonzero coefficient changes it; the sweep's
per-record ratios equal a Python Levenshtein ratio of the texts and its CSV means equal them;
bad input (missing file, a vector for another n_embd, no rewrite or no copy records, a coef that
is not a number) fails with a clear message and no crash."""
import csv
import ctypes
import json
import os
import subprocess
import xml.etree.ElementTree as ET

import numpy as np

import harness
from harness import SALIGN, main, test, tmpdir
from model_ctypes import _check, lib
from test_steer_lat import ref_ratio

NAME = "smollm2-135m-instruct"
GGUF = os.path.join(harness.models_dir(), NAME, "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(tmpdir(), "steer_cli")
os.makedirs(OUT, exist_ok=True)
HIDDEN_FN = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32, ctypes.POINTER(ctypes.c_float),
                             ctypes.c_int32)
_cache = {}


def run(args, timeout=900):
    p = subprocess.run([SALIGN] + args, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def ok(args, **kw):
    rc, out, err = run(args, **kw)
    assert rc == 0, "exit %d: %s\n%s" % (rc, " ".join(args), err)
    return out, err


def records(kind_counts=(6, 6)):
    """Short arithmetic records (short prompts keep the test fast): n_rewrite whose sentence has a
    wrong result (correction: the right one) and n_copy whose sentence is right, interleaved."""
    rew, cop = [], []
    for i in range(max(kind_counts)):
        a, b = 3 + i, 4 + 2 * i
        q = "Tom has %d apples and buys %d more. How many apples does he have?" % (a, b)
        right = "He has %d + %d = %d apples." % (a, b, a + b)
        wrong = "He has %d + %d = %d apples." % (a, b, a + b + 1 + i % 3)
        rew.append({"question": q, "prefix": "", "last": wrong, "correction": right, "kind": "fix"})
        cop.append({"question": q, "prefix": "", "last": right, "correction": right, "kind": "copy"})
    rew, cop = rew[:kind_counts[0]], cop[:kind_counts[1]]
    return [r for pair in zip(rew + [None] * len(cop), cop + [None] * len(rew)) for r in pair if r]


def write_records(name, recs):
    path = os.path.join(OUT, name)
    with open(path, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")
    return path


def extracted():
    """Extract once on 6 + 6 records: (records path, vector path, csv path, dump path, stdout)."""
    if "x" not in _cache:
        assert os.path.exists(GGUF), "missing %s: run scripts/setup.sh (salign pull %s)" % (GGUF, NAME)
        recs = write_records("recs.jsonl", records())
        vec, csvp, dump = (os.path.join(OUT, n) for n in ("vec.gguf", "extract.csv", "stim.npy"))
        out, _ = ok(["steer", "extract", "-m", NAME, "--records", recs, "--out", vec, "--csv", csvp, "--dump", dump,
                     "-t", "2"])
        _cache["x"] = (recs, vec, csvp, dump, out)
    return _cache["x"]


def read_vec(path):
    import gguf
    r = gguf.GGUFReader(path)
    fields = {f.name: f for f in r.fields.values()}
    assert "controlvector.layer_count" in fields
    return {int(t.name.split(".")[1]): np.array(t.data, dtype=np.float64) for t in r.tensors}


@test
def extract_equals_numpy_lat():
    recs, vec, csvp, dump, out = extracted()
    S = np.load(dump).astype(np.float64)  # (2, pairs, L + 1, d)
    assert S.shape[0] == 2 and S.shape[1] == 6, S.shape
    n, L1, d = S.shape[1], S.shape[2], S.shape[3]
    nt = n - n // 5
    rows = read_vec(vec)
    assert sorted(rows) == list(range(1, L1 - 1)), sorted(rows)  # direction.1 .. direction.{L-1}
    table = list(csv.DictReader(open(csvp)))
    assert len(table) == L1
    for layer in range(L1):
        D = S[0, :nt, layer] - S[1, :nt, layer]  # rewrite - copy, training pairs
        t = table[layer]
        if not np.abs(D).max():
            assert float(t["explained"]) == 0 and float(t["gap"]) == 0
            continue
        _, s, vt = np.linalg.svd(D, full_matrices=False)
        v = vt[0] if (D @ vt[0]).mean() > 0 else -vt[0]
        gap = (D @ v).mean()
        assert gap > 0
        assert abs(float(t["gap"]) - gap) <= 1e-4 * gap + 1e-6, (layer, t["gap"], gap)
        assert abs(float(t["explained"]) - s[0] ** 2 / (s ** 2).sum()) < 1e-5, layer
        mid = np.concatenate([S[0, :nt, layer] @ v, S[1, :nt, layer] @ v]).mean()
        pr, pc = S[0, nt:, layer] @ v, S[1, nt:, layer] @ v
        assert abs(float(t["acc_pair"]) - np.mean(pr - pc > 0)) < 1e-9, layer
        assert abs(float(t["acc_stimulus"]) - (np.sum(pr > mid) + np.sum(pc <= mid)) / (2 * (n - nt))) < 1e-9, layer
        if layer >= 2:  # stream `layer` is block layer-1's output: row layer-1
            row = rows[layer - 1]
            assert np.abs(row - gap * v).max() <= 1e-4 * np.abs(gap * v).max(), layer
            assert int(t["written"]) == 1
        else:
            assert int(t["written"]) == 0
    assert "6 pairs" in out, out


def hidden_states(tokens):
    """{(layer, pos): h} of SmolLM2 on tokens, through ctypes (no pipeline, no CLI)."""
    lb = lib()
    from model_ctypes import Model
    m = Model(GGUF, n_threads=2)
    p = lb.sa_ctx_default_params()
    p.n_ctx, p.n_batch, p.n_threads = 1024, 32, 2
    got = {}

    def cb(user, layer, pos, h, n):
        got[(layer, pos)] = np.ctypeslib.as_array(h, (n,)).astype(np.float64)
    fn = HIDDEN_FN(cb)
    p.hidden_cb = ctypes.cast(fn, ctypes.c_void_p).value
    h = ctypes.c_void_p()
    try:
        _check(lb.sa_ctx_init(m.h, ctypes.byref(p), ctypes.byref(h)), "sa_ctx_init")
        toks = (ctypes.c_int32 * len(tokens))(*tokens)
        _check(lb.sa_ctx_decode(h, toks, len(tokens), None), "decode")
    finally:
        lb.sa_ctx_free(h)
        m.close()
    return got


@test
def scan_projections_equal_independent_ones():
    recs, vec, _, _, _ = extracted()
    svg, csvp = os.path.join(OUT, "scan.svg"), os.path.join(OUT, "scan.csv")
    ok(["steer", "scan", "-m", NAME, "--vec", vec, "--records", recs, "--index", "1", "--svg", svg, "--csv", csvp,
        "-t", "2"])
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg"), root.tag
    rows = list(csv.DictReader(open(csvp)))
    T = max(int(r["pos"]) for r in rows) + 1
    ids = [None] * T
    for r in rows:
        ids[int(r["pos"])] = int(r["token_id"])
    # the tokens are the pipeline's prompt: the chat template around the aligner input
    r1 = [json.loads(line) for line in open(recs)][1]
    text = "".join(r["token"] for r in rows if r["block"] == rows[0]["block"])
    assert "##Question: " + r1["question"] in text and "##Your_Revision: " in text, text[:300]
    assert text.startswith("<|im_start|>"), text[:50]
    hs = hidden_states(ids)
    vrows = read_vec(vec)
    worst = 0.0
    for r in rows:
        K, pos = int(r["block"]), int(r["pos"])
        assert int(r["layer"]) == K + 1
        v = vrows[K] / np.linalg.norm(vrows[K])
        want = hs[(K + 1, pos)] @ v
        worst = max(worst, abs(float(r["projection"]) - want) / (1 + abs(want)))
    assert worst < 2e-3, worst
    blocks = set(int(r["block"]) for r in rows)
    assert blocks == set(k for k in vrows if np.abs(vrows[k]).max() > 0), blocks


def unsteered_revision(recs, index):
    """The pipeline's own (unsteered) revision of record `index`, by `salign eval aligner`."""
    if ("rev", recs, index) in _cache:
        return _cache[("rev", recs, index)]
    det = os.path.join(OUT, "eval.details.jsonl")
    ok(["eval", "aligner", "--aligner", NAME, "--records", recs, "--max", str(index + 1), "--details", det, "-t", "2"])
    _cache[("rev", recs, index)] = [json.loads(line) for line in open(det)][index]["revision"]
    return _cache[("rev", recs, index)]


@test
def apply_coef_zero_is_unsteered_and_nonzero_changes():
    recs, vec, _, _, _ = extracted()
    plain = unsteered_revision(recs, 0)
    out, _ = ok(["steer", "apply", "-m", NAME, "--vec", vec, "--records", recs, "--coef", "0", "-t", "2"])
    assert out == plain + "\n", (out, plain)
    js, _ = ok(["steer", "apply", "-m", NAME, "--vec", vec, "--records", recs, "--coef", "0", "--json", "-t", "2"])
    j = json.loads(js)
    assert j["revision"] == plain and abs(j["ratio"] - ref_ratio(j["original"], plain)) < 1e-9, j
    changed = []
    for c in ("8", "-8"):
        o, _ = ok(["steer", "apply", "-m", NAME, "--vec", vec, "--records", recs, "--coef", c, "-t", "2"])
        changed.append(o != out)
    assert any(changed), "coefficients +-8 changed nothing"


@test
def align_steer_coef_zero_is_unsteered_and_nonzero_changes():
    _, vec, _, _, _ = extracted()
    base = ["align", "--upstream", NAME, "--aligner", NAME, "-t", "2", "-p", "What is 12 times 7?", "--max-length",
            "24", "--max-rounds", "1", "--json"]
    plain, _ = ok(base)
    zero, _ = ok(base + ["--aligner-steer", vec, "--steer-coef", "0"])
    a, b = json.loads(plain), json.loads(zero)
    assert a["answer"] == b["answer"], (a["answer"], b["answer"])
    steered, _ = ok(base + ["--aligner-steer", vec, "--steer-coef", "12"])
    assert json.loads(steered)["answer"] != a["answer"], "--steer-coef 12 changed nothing"
    rc, _, err = run(base + ["--steer-coef", "2"])
    assert rc == 2 and "--aligner-steer" in err, err


@test
def sweep_ratios_and_figure():
    recs, vec, _, _, _ = extracted()
    svg, csvp, det = (os.path.join(OUT, n) for n in ("sweep.svg", "sweep.csv", "sweep.details.jsonl"))
    ok(["steer", "sweep", "-m", NAME, "--vec", vec, "--records", recs, "--coefs", "0,8", "--max-records", "3",
        "--svg", svg, "--csv", csvp, "--details", det, "-t", "2"])
    assert ET.parse(svg).getroot().tag.endswith("svg")
    lines = [json.loads(line) for line in open(det)]
    assert [(x["coef"], x["index"]) for x in lines] == [(0, 0), (0, 1), (0, 2), (8, 0), (8, 1), (8, 2)]
    for x in lines:
        assert abs(x["ratio"] - ref_ratio(x["original"], x["revision"])) < 1e-9, x
    table = list(csv.DictReader(open(csvp)))
    for t, c in zip(table, (0, 8)):
        rs = [x["ratio"] for x in lines if x["coef"] == c]
        assert float(t["coef"]) == c and int(t["n"]) == 3
        assert abs(float(t["mean_ratio"]) - np.mean(rs)) < 1e-9
        assert float(t["ci95_lo"]) <= float(t["mean_ratio"]) <= float(t["ci95_hi"])
        assert int(t["changed"]) == sum(x["original"] != x["revision"] for x in lines if x["coef"] == c)
    # coefficient 0 is the unsteered aligner
    assert lines[0]["revision"] == unsteered_revision(recs, 0)


@test
def bad_input_fails_clearly():
    recs, vec, _, _, _ = extracted()
    x = ["-m", NAME, "-t", "2"]
    rc, _, err = run(["steer", "extract"] + x + ["--records", os.path.join(OUT, "nope.jsonl"), "--out", "/tmp/x"])
    assert rc == 1 and "nope.jsonl" in err, err
    only_copy = write_records("copy.jsonl", records((0, 3)))
    rc, _, err = run(["steer", "extract"] + x + ["--records", only_copy, "--out", os.path.join(OUT, "x.gguf")])
    assert rc == 1 and "0 rewrite records" in err, err
    only_rew = write_records("rew.jsonl", records((3, 0)))
    rc, _, err = run(["steer", "extract"] + x + ["--records", only_rew, "--out", os.path.join(OUT, "x.gguf")])
    assert rc == 1 and "0 copy records" in err, err
    rc, _, err = run(["steer", "apply"] + x + ["--records", recs, "--vec", vec, "--coef", "abc"])
    assert rc == 2 and "--coef" in err, err
    rc, _, err = run(["steer", "sweep"] + x + ["--records", recs, "--vec", vec, "--coefs", "1,x", "--csv", "/tmp/x"])
    assert rc == 2 and "--coefs" in err, err
    rc, _, err = run(["steer", "apply"] + x + ["--records", recs, "--vec", os.path.join(OUT, "nope.gguf"),
                                               "--coef", "1"])
    assert rc == 1 and "nope.gguf" in err, err
    rc, _, err = run(["steer", "apply"] + x + ["--records", recs, "--vec", vec, "--coef", "1", "--index", "99"])
    assert rc == 1 and "--index 99" in err, err
    rc, _, err = run(["steer", "frobnicate"])
    assert rc == 2 and "unknown command" in err, err
    # a vector for another n_embd (gguf-py, as llama.cpp's cvector-generator writes one)
    import gguf
    other = os.path.join(OUT, "other.gguf")
    w = gguf.GGUFWriter(other, "controlvector")
    w.add_string("controlvector.model_hint", "llama")
    w.add_int32("controlvector.layer_count", 1)
    w.add_tensor("direction.1", np.ones(64, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    rc, _, err = run(["steer", "apply"] + x + ["--records", recs, "--vec", other, "--coef", "1"])
    assert rc == 1 and "64 floats" in err and "another model" in err, err
    rc, _, err = run(["align", "--upstream", NAME, "--aligner", NAME, "-t", "2", "-p", "Hi", "--max-length", "8",
                      "--aligner-steer", other])
    assert rc == 1 and "64 floats" in err and "another model" in err, err


main()
