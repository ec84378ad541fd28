"""test_gate_cli.py: the gated revision from the command line (issue 13; SmolLM2-135M-Instruct as
upstream and as a stand-in aligner): `salign align --edit-threshold X [--edit-score sum|mean]`
reports the gate in --json, the trace and --show-edits, and works with --parallel (the same
answers as --parallel 1 in batch-invariant mode); a refused edit names its check (`--edit-check`:
--show-edits, the trace, eval aligner --details); `salign eval aligner --edit-threshold LIST`
gives one row per threshold, replaying the gate on the per-record margins of --details; bad
values are refused with a clear message (exit 2). The edit judge (`--edit-judge M
--edit-judge-threshold X`) is reported in --json, the trace and --show-edits, with --parallel
too; its margins are checked against an independent computation in tests/test_pipeline_judge.c."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import SALIGN, main, models_dir, test, tmpdir  # noqa: E402

NAME = "smollm2-135m-instruct"
GGUF = os.path.join(models_dir(), NAME, "SmolLM2-135M-Instruct.Q4_1.gguf")
BASE = [SALIGN, "align", "--upstream", NAME, "--aligner", NAME, "-t", "2", "--batch-invariant",
        "--max-rounds", "2", "--max-sentence-tokens", "32"]


def run(args, code=0, timeout=600):
    assert os.path.exists(GGUF), "missing %s: run scripts/setup.sh (salign pull %s)" % (GGUF, NAME)
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == code, "exit %d (want %d): %s\n%s" % (p.returncode, code, " ".join(args), p.stderr)
    return p


def jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


@test
def bad_values_refused():
    for extra, want in [(["--edit-threshold", "nan"], "--edit-threshold"),
                        (["--edit-threshold", "abc"], "--edit-threshold"),
                        (["--edit-score", "sum"], "--edit-score needs --edit-threshold"),
                        (["--edit-threshold", "0", "--edit-score", "max"], "--edit-score")]:
        p = run(BASE + ["-p", "q"] + extra, code=2)
        assert want in p.stderr, (extra, p.stderr)
    p = run([SALIGN, "align", "--upstream", NAME, "--mode", "upstream", "-p", "q", "--edit-threshold", "0"], code=2)
    assert "--edit-threshold needs an aligner" in p.stderr, p.stderr
    ev = [SALIGN, "eval", "aligner", "--aligner", NAME, "--records", "r.jsonl"]
    for bad in ["1,,2", "x", "1,nan", ""]:
        p = run(ev + ["--edit-threshold=" + bad], code=2)
        assert "bad --edit-threshold" in p.stderr and "comma list" in p.stderr, (bad, p.stderr)
    p = run(ev + ["--edit-score", "mean"], code=2)
    assert "--edit-score needs --edit-threshold" in p.stderr, p.stderr
    # the edit check (--edit-check)
    p = run(BASE + ["-p", "q", "--edit-check", "algebra"], code=2)
    assert "--edit-check" in p.stderr and "arith, format" in p.stderr, p.stderr
    p = run([SALIGN, "align", "--upstream", NAME, "--mode", "upstream", "-p", "q", "--edit-check", "arith"], code=2)
    assert "--edit-check needs an aligner" in p.stderr, p.stderr
    p = run(ev + ["--edit-check", "x"], code=2)
    assert "--edit-check" in p.stderr, p.stderr


@test
def align_edit_check_json():
    """--edit-check arith is reported in --json (edit_check, refused) and in the verbose
    summary; without it neither field is written. (Which edits it refuses: test_pipeline's
    test_edit_check_arith with a scripted aligner, tests/py/test_arith_check.py.)"""
    q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
    p = run(BASE + ["-p", q, "--edit-check", "all", "--json", "--max-rounds", "1", "-v"])
    r = json.loads(p.stdout.splitlines()[-1])
    assert r["edit_check"] == "arith,format" and r["refused"] >= 0, r
    assert "edit check (arith,format):" in p.stderr, p.stderr
    off = json.loads(run(BASE + ["-p", q, "--json", "--max-rounds", "1"]).stdout)
    assert "edit_check" not in off and "refused" not in off, off


@test
def edit_check_names_the_check():
    """A refused edit names the one check that refused it: `(refused: cut)` in --show-edits,
    "refused_by" in the trace line and in eval aligner's --details, not the configured list. The
    untrained aligner cuts Tom's first sentence down to its equation ("Tom has 3 + 4 = 7
    apples."): a cut, refused by `cut` (which check refuses which edit: test_pipeline's
    test_edit_check_refused_by, test_arith_check.py)."""
    q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
    trace = os.path.join(tmpdir(), "check_trace.jsonl")
    out = run(BASE + ["-p", q, "--edit-check", "all,cut", "--json", "--trace", trace, "--show-edits", "--max-rounds",
                      "1"]).stdout
    r = json.loads(out.splitlines()[-1])
    assert r["edit_check"] == "arith,format,cut" and r["refused"] >= 1, \
        "the untrained aligner was expected to cut a sentence: %s" % out
    shown = re.findall(r"\(refused: ([^)]*)\)", out)
    assert len(shown) == r["refused"] and all(x in ("arith", "format", "cut") for x in shown), out
    assert "cut" in shown, out
    lines = jsonl(trace)
    assert [t["refused_by"] for t in lines if t.get("refused")] == shown, lines
    assert all("refused_by" not in t for t in lines if not t.get("refused")), lines
    # the same sentence as a record of salign eval aligner: --details names the check too
    d = tmpdir()
    recs, det = os.path.join(d, "check_recs.jsonl"), os.path.join(d, "check_det.jsonl")
    y1 = next(t["y1"] for t in lines if t.get("refused_by") == "cut")
    with open(recs, "w") as f:
        f.write(json.dumps({"question": q, "prefix": "", "last": y1, "correction": y1, "source": "t:0:copy"}) + "\n")
    rc = json.loads(run([SALIGN, "eval", "aligner", "--aligner", NAME, "--records", recs, "-t", "2",
                         "--batch-invariant", "--edit-check", "all,cut", "--details", det, "--json"]).stdout)
    details = jsonl(det)
    assert rc["refused"] == 1 and details[0]["refused"] is True and details[0]["refused_by"] == "cut", (rc, details)
    rc = json.loads(run([SALIGN, "eval", "aligner", "--aligner", NAME, "--records", recs, "-t", "2",
                         "--batch-invariant", "--edit-check", "all", "--details", det, "--json"]).stdout)
    details = jsonl(det)
    assert rc["refused"] == 0 and "refused" not in details[0] and "refused_by" not in details[0], (rc, details)


@test
def align_gate_json_trace_show_edits():
    """+inf gates every edit: the answer is made of the upstream's sentences; the trace has
    margin and gated on every line, the aligner's edit as "proposed" on gated ones."""
    trace = os.path.join(tmpdir(), "gate_trace.jsonl")
    q = "Why is the sky blue?"
    out = run(BASE + ["-p", q, "--edit-threshold", "inf", "--json", "--trace", trace, "--show-edits"]).stdout
    r = json.loads(out.splitlines()[-1])
    assert r["edit_threshold"] == "inf" and r["edit_score"] == "sum", r
    assert r["scored"] == r["rounds"] == 2 and r["gated"] == r["rounds"] - r["copied"], r
    assert out.count("(gated: margin") == r["gated"], out
    lines = jsonl(trace)
    assert len(lines) == 2
    for t in lines:
        assert "margin" in t and "gated" in t, t
        assert t["y2"] == t["y1"], t  # every revision is y1 (copied or gated)
        assert t["gated"] == (not t["copied"]) and ("proposed" in t) == t["gated"], t
        if t["gated"]:
            assert t["proposed"] != t["y1"] and t["edit_ratio"] == 0, t
        else:
            assert t["margin"] == 0, t
    # -inf: scored, nothing gated, the ungated answer
    lo = json.loads(run(BASE + ["-p", q, "--edit-threshold=-inf", "--json", "--edit-score", "mean", "--max-rounds",
                                "1"]).stdout)
    off = json.loads(run(BASE + ["-p", q, "--json", "--max-rounds", "1"]).stdout)
    assert lo["answer"] == off["answer"] and lo["gated"] == 0 and lo["edit_score"] == "mean", (lo, off)
    assert "gated" not in off and "edit_threshold" not in off, off


@test
def align_gate_parallel():
    qs = os.path.join(tmpdir(), "gate_q.jsonl")
    with open(qs, "w") as out:
        for i, q in enumerate(["Tom has 3 apples and buys 4 more. How many apples does he have?",
                               "A train travels 60 km in 1.5 hours. What is its average speed?"]):
            out.write(json.dumps({"id": "t%d" % i, "question": q}) + "\n")
    res = {}
    for n in (1, 2):
        o = os.path.join(tmpdir(), "gate_a%d.jsonl" % n)
        if os.path.exists(o):
            os.remove(o)
        run(BASE + ["--input", qs, "--output", o, "--parallel", str(n), "--edit-threshold", "0", "--max-rounds", "1"])
        res[n] = {r["id"]: r for r in jsonl(o)}
    assert sorted(res[1]) == ["t0", "t1"], res[1]
    for k in res[1]:
        a, b = res[1][k], res[2][k]
        assert a["answer"] == b["answer"] and a["gated"] == b["gated"] and a["scored"] == b["scored"], (a, b)
        assert a["scored"] == a["rounds"], a


@test
def eval_aligner_sweep():
    d = tmpdir()
    recs = os.path.join(d, "gate_recs.jsonl")
    q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
    rows = [
        {"question": q, "prefix": "", "last": "Tom has 3 + 4 = 7 apples.", "correction": "Tom has 3 + 4 = 7 apples.",
         "source": "t:0:copy"},
        {"question": q, "prefix": "Tom has 3 + 4 = 7 apples.", "last": "The answer is 8.",
         "correction": "The answer is 7.", "source": "t:1:off_by_one"},
        {"question": q, "answer": "Tom has 3 + 4 = 8 apples.\nThe answer is 8.",
         "correction": "Tom has 3 + 4 = 7 apples.\nThe answer is 7.", "source": "t:answer:2_of_2_rewritten"},
    ]
    with open(recs, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    det = os.path.join(d, "gate_det.jsonl")
    ev = [SALIGN, "eval", "aligner", "--aligner", NAME, "--records", recs, "-t", "2"]
    r = json.loads(run(ev + ["--edit-threshold=-inf,0,inf", "--details", det, "--json"]).stdout)
    g = r["gate"]
    assert g["edit_score"] == "sum" and [x["threshold"] for x in g["thresholds"]] == ["-inf", 0, "inf"], g
    details = jsonl(det)
    assert all("margin" in x for x in details), details  # every revision scored (copies: 0)
    edits = [x for x in details if x["revision"] != (rows[x["index"]].get("last") or rows[x["index"]]["answer"])]
    assert edits, details
    for row in g["thresholds"]:
        t = {"-inf": -float("inf"), "inf": float("inf")}.get(row["threshold"], row["threshold"])
        want = sum(1 for x in edits if x["margin"] < t)
        assert row["gated"] == want, (row, edits)
    lo, hi = g["thresholds"][0], g["thresholds"][2]
    for k in ("kept", "changed", "improved", "fixed"):
        assert lo[k] == r[k], (k, lo, r)  # -inf: the ungated rates
    assert hi["changed"]["count"] == 0 and hi["kept"]["count"] == hi["kept"]["n"], hi
    rc = json.loads(run(ev + ["--edit-check", "format,arith", "--json"]).stdout)
    assert rc["edit_check"] == "arith,format" and rc["refused"] >= 0 and rc["evaluated"] == 3, rc
    text = run(ev + ["--edit-threshold", "-1,1", "--edit-score", "mean"]).stdout
    rows_out = [ln for ln in text.splitlines() if ln.startswith(">= ")]
    assert len(rows_out) == 2 and rows_out[0].startswith(">= -1") and "gated" in rows_out[0], text


@test
def edit_judge_bad_values_refused():
    for extra, want in [(["--edit-judge-threshold", "0"], "--edit-judge-threshold needs --edit-judge"),
                        (["--edit-judge-lora", "a.gguf"], "--edit-judge-lora needs --edit-judge"),
                        (["--edit-judge", NAME, "--edit-judge-threshold", "nan"], "--edit-judge-threshold"),
                        (["--edit-judge", NAME, "--mode", "aligner"], "--mode stream or continue")]:
        p = run(BASE + ["-p", "q"] + extra, code=2)
        assert want in p.stderr, (extra, p.stderr)
    p = run([SALIGN, "align", "--upstream", NAME, "--copy-aligner", "--edit-judge", NAME, "-p", "q"], code=2)
    assert "--edit-judge needs an aligner" in p.stderr, p.stderr
    p = run(BASE + ["-p", "q", "--edit-judge", "/nonexistent/judge.gguf"], code=1)
    assert "judge.gguf" in p.stderr, p.stderr


@test
def edit_judge_json_trace_show_edits():
    """+inf refuses every edit the judge sees: the answer is the upstream's sentences (as with
    --copy-aligner); each edit's line has judge_margin, refused_by "judge" and the proposed edit;
    --show-edits shows the judge's margin. -inf judges every edit and refuses none: the answer
    without a judge. A judge that is neither the upstream nor the aligner is loaded on its own
    (here the same file by path)."""
    trace = os.path.join(tmpdir(), "judge_trace.jsonl")
    q = "Why is the sky blue?"
    out = run(BASE + ["-p", q, "--edit-judge", NAME, "--edit-judge-threshold", "inf", "--json", "--trace", trace,
                      "--show-edits", "-v"])
    r = json.loads(out.stdout.splitlines()[-1])
    assert r["edit_judge_threshold"] == "inf" and r["judged"] == r["judge_refused"] == r["rounds"] - r["copied"], r
    assert r["judged"] > 0, "the untrained aligner was expected to edit: %s" % out.stdout
    assert "edit judge (threshold inf): %d of %d" % (r["judged"], r["judged"]) in out.stderr, out.stderr
    assert out.stdout.count("(refused: judge margin") == r["judged"], out.stdout
    lines = jsonl(trace)
    for t in lines:
        assert t["y2"] == t["y1"], t
        if not t["copied"]:
            assert t["refused_by"] == "judge" and "judge_margin" in t and t["proposed"] != t["y1"], t
        else:
            assert "judge_margin" not in t and "refused" not in t, t
    copy = json.loads(run([SALIGN, "align", "--upstream", NAME, "--copy-aligner", "-t", "2", "--batch-invariant",
                           "--max-rounds", "2", "--max-sentence-tokens", "32", "-p", q, "--json"]).stdout)
    assert r["answer"] == copy["answer"], (r, copy)
    lo = json.loads(run(BASE + ["-p", q, "--edit-judge", GGUF, "--edit-judge-threshold=-inf", "--json"]).stdout)
    off = json.loads(run(BASE + ["-p", q, "--json"]).stdout)
    assert lo["answer"] == off["answer"] and lo["judge_refused"] == 0 and lo["judged"] == r["judged"], (lo, off)
    assert "judged" not in off and "edit_judge_threshold" not in off, off


@test
def edit_judge_parallel():
    """--parallel 2 gives the answers and judge counts of --parallel 1 (batch-invariant)."""
    qs = os.path.join(tmpdir(), "judge_q.jsonl")
    with open(qs, "w") as out:
        for i, q in enumerate(["Why is the sky blue?",
                               "A train travels 60 km in 1.5 hours. What is its average speed?"]):
            out.write(json.dumps({"id": "j%d" % i, "question": q}) + "\n")
    res = {}
    for n in (1, 2):
        o = os.path.join(tmpdir(), "judge_a%d.jsonl" % n)
        if os.path.exists(o):
            os.remove(o)
        run(BASE + ["--input", qs, "--output", o, "--parallel", str(n), "--edit-judge", NAME,
                    "--edit-judge-threshold", "0"])
        res[n] = {r["id"]: r for r in jsonl(o)}
    assert sorted(res[1]) == ["j0", "j1"], res[1]
    assert sum(r["judged"] for r in res[1].values()) > 0, res[1]
    for k in res[1]:
        a, b = res[1][k], res[2][k]
        assert (a["answer"], a["judged"], a["judge_refused"]) == (b["answer"], b["judged"], b["judge_refused"]), (a, b)


if __name__ == "__main__":
    main()
