"""test_eval_cli.py: black-box checks of `salign eval` and `salign data` on the real GSM8K
files: accuracy against a count made here in Python, per-round accuracy of a trace, the win
rate of judged pairs, records built from GSM8K (ratio, determinism, stripping), the split by
question, and GNU-style usage errors (exit 2) and runtime errors (exit 1)."""
import json
import os
import re
import subprocess

from harness import SALIGN, SHARED_DATA, main, test, tmpdir

TEST = os.path.join(SHARED_DATA, "gsm8k", "test.jsonl")
TRAIN = os.path.join(SHARED_DATA, "gsm8k", "train.jsonl")


def run(*args, code=0):
    p = subprocess.run([SALIGN, *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == code, "salign %s: exit %d (want %d)\n%s%s" % (
        " ".join(args), p.returncode, code, p.stdout, p.stderr)
    return p


def gold_numbers():
    out = []
    with open(TEST) as f:
        for line in f:
            a = json.loads(line)["answer"].split("####")[-1].strip().replace(",", "")
            out.append(float(a))
    return out


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


@test
def math_accuracy_matches_python_count():
    gold = gold_numbers()
    assert len(gold) == 1319
    d = tmpdir()
    rows, want = [], 0
    with open(TEST) as f:
        for i, line in enumerate(f):
            prob = json.loads(line)
            if i % 4 == 0:
                ans = "Let me think. The answer is 3."  # right only when the gold is 3
                want += gold[i] == 3
            elif i % 4 == 1:
                ans = "It comes to $%s in total." % "{:,}".format(int(gold[i]))  # commas, dollar
                want += 1
            elif i % 4 == 2:
                ans = prob["answer"]  # the reference solution with "#### N"
                want += 1
            else:
                ans = "So the result is \\boxed{%d}." % (gold[i] + 1)  # off by one
            key = {"id": i} if i % 2 else {"question": prob["question"]}
            rows.append(dict(key, answer=ans))
    path = os.path.join(d, "answers.jsonl")
    write_jsonl(path, rows)
    out = json.loads(run("eval", "math", "--data", "gsm8k", "--answers", path, "--gold", TEST, "--json").stdout)
    assert out["n"] == 1319 and out["correct"] == want, (out, want)
    assert abs(out["accuracy"] - want / 1319) < 1e-6
    lo, hi = out["ci95"]
    assert lo < out["accuracy"] < hi and hi - lo < 0.06
    text = run("eval", "math", "--data", "gsm8k", "--answers", path).stdout  # default gold
    assert re.match(r"gsm8k: accuracy \d+\.\d\d%% \(%d/1319\), 95%% CI \[" % want, text), text
    # details: one line per answer
    det = os.path.join(d, "details.jsonl")
    run("eval", "math", "--data", "gsm8k", "--answers", path, "--details", det)
    lines = [json.loads(l) for l in open(det)]
    assert len(lines) == 1319 and sum(l["correct"] for l in lines) == want


@test
def math_per_round_trace():
    gold = gold_numbers()
    d = tmpdir()
    rows = []
    for i in range(40):
        rows.append({"id": i, "round": 0, "answer_so_far": ""})
        rows.append({"id": i, "round": 1, "answer_so_far": "First, 2 + 2 = 4."})
        if i < 30:  # the others stopped after round 1
            rows.append({"id": i, "round": 2, "answer_so_far": "... so the answer is %d." % gold[i]})
    path = os.path.join(d, "trace.jsonl")
    write_jsonl(path, rows)
    out = json.loads(run("eval", "math", "--data", "gsm8k", "--per-round", path, "--json").stdout)
    r = {x["round"]: x for x in out["rounds"]}
    assert sorted(r) == [0, 1, 2]
    assert r[0]["correct"] == 0 and r[0]["n"] == 40
    assert r[1]["correct"] == sum(1 for i in range(40) if gold[i] == 4)
    assert r[2]["correct"] == 30 + sum(1 for i in range(30, 40) if gold[i] == 4)
    # malformed trace: the line and the field are named, exit 1
    write_jsonl(path, [{"id": 0, "round": 0, "answer_so_far": ""}, {"id": 1, "answer_so_far": "x"}])
    p = run("eval", "math", "--data", "gsm8k", "--per-round", path, code=1)
    assert "trace.jsonl:2: missing field \"round\"" in p.stderr, p.stderr


@test
def math_dataset_with_boxed_gold():
    d = tmpdir()
    gold = os.path.join(d, "math_gold.jsonl")
    write_jsonl(gold, [
        {"problem": "p0", "solution": "so $\\boxed{\\frac{1}{2}}$"},
        {"problem": "p1", "solution": "...", "answer": "(1,2)"},
        {"problem": "p2", "solution": "thus \\boxed{5\\text{ cm}}"},
    ])
    ans = os.path.join(d, "math_ans.jsonl")
    write_jsonl(ans, [
        {"id": 0, "answer": "The answer is $\\boxed{0.5}$."},
        {"id": 1, "answer": "\\boxed{\\left( 1, 2 \\right)}"},
        {"id": 2, "answer": "\\boxed{6}"},
    ])
    out = json.loads(run("eval", "math", "--data", "math", "--gold", gold, "--answers", ans, "--json").stdout)
    assert out["n"] == 3 and out["correct"] == 2, out


@test
def math_errors():
    d = tmpdir()
    ans = os.path.join(d, "bad.jsonl")
    write_jsonl(ans, [{"id": 0, "answer": "1"}, {"id": 0, "answer": "2"}])
    p = run("eval", "math", "--data", "gsm8k", "--answers", ans, code=1)
    assert "bad.jsonl:2: a second answer" in p.stderr, p.stderr
    write_jsonl(ans, [{"id": 99999, "answer": "1"}])
    assert "bad.jsonl:1: id \"99999\"" in run("eval", "math", "--data", "gsm8k", "--answers", ans, code=1).stderr
    write_jsonl(ans, [{"id": 1}])
    assert "missing string field \"answer\"" in run("eval", "math", "--data", "gsm8k", "--answers", ans, code=1).stderr
    with open(ans, "w") as f:
        f.write("{not json\n")
    assert "bad.jsonl:1: malformed JSON" in run("eval", "math", "--data", "gsm8k", "--answers", ans, code=1).stderr
    run("eval", "math", "--data", "gsm8k", "--answers", os.path.join(d, "missing.jsonl"), code=1)


@test
def jsonl_one_rule():
    """Issue 16: every JSONL input is read by one reader: text after the object on a line is
    rejected by `eval math` as by `data check`; an empty answers, trace or records file is an
    error, not "0/0"; a \\u0000 in a string is rejected naming the line (it would cut the C
    string there)."""
    d = tmpdir()
    ans = os.path.join(d, "ans.jsonl")
    with open(ans, "w") as f:
        f.write(json.dumps({"id": 0, "answer": "1"}) + "\n" + json.dumps({"id": 1, "answer": "2"}) + " trailing\n")
    p = run("eval", "math", "--data", "gsm8k", "--answers", ans, code=1)
    assert "ans.jsonl:2: text after the JSON object" in p.stderr, p.stderr
    rec = {"question": "q", "prefix": "", "last": "l", "correction": "c"}
    recs = os.path.join(d, "recs.jsonl")
    with open(recs, "w") as f:
        f.write(json.dumps(rec) + "\n" + json.dumps(rec) + " trailing\n")
    p = run("data", "check", "--input", recs, code=1)
    assert "recs.jsonl:2: text after the JSON object" in p.stderr, p.stderr
    # empty files
    empty = os.path.join(d, "empty.jsonl")
    with open(empty, "w") as f:
        f.write("\n  \n")
    for args in (["eval", "math", "--data", "gsm8k", "--answers", empty],
                 ["eval", "math", "--data", "gsm8k", "--per-round", empty],
                 ["data", "check", "--input", empty]):
        p = run(*args, code=1)
        assert "empty.jsonl" in p.stderr and "empty" in p.stderr.replace("empty.jsonl", ""), (args, p.stderr)
        assert "0/0" not in p.stdout, (args, p.stdout)
    # \u0000 inside a question: rejected, naming the line (in both readers)
    with open(recs, "w") as f:
        f.write(json.dumps(rec) + "\n" + json.dumps(dict(rec, question="What is\u0000 2+2?")) + "\n")
    p = run("data", "check", "--input", recs, code=1)
    assert "recs.jsonl:2: a string holds \\u0000" in p.stderr, p.stderr
    with open(ans, "w") as f:
        f.write(json.dumps({"id": 0, "answer": "It is\u0000 4"}) + "\n")
    p = run("eval", "math", "--data", "gsm8k", "--answers", ans, code=1)
    assert "ans.jsonl:1: a string holds \\u0000" in p.stderr, p.stderr


@test
def usage_errors():
    assert "Usage: salign eval" in run("eval", "--help").stdout
    assert "Usage: salign data" in run("data", "--help").stdout
    for args in (["eval"], ["eval", "bogus"], ["eval", "math", "--bogus"], ["eval", "math"],
                 ["eval", "math", "--data", "nope", "--answers", "x"], ["eval", "math", "--data", "gsm8k"],
                 ["eval", "math", "--data", "math", "--answers", "x"], ["eval", "math", "--data"],
                 ["eval", "winrate"], ["eval", "winrate", "--judgments", "x", "--boot", "1"],
                 ["eval", "winrate", "--judgments", "x", "--data", "gsm8k"], ["eval", "math", "extra"],
                 ["data"], ["data", "bogus"], ["data", "from-gsm8k", "--input", "x"],
                 ["data", "from-gsm8k", "--input", "x", "--out", "y", "--rewrite-ratio", "2"],
                 ["data", "from-gsm8k", "--input", "x", "--out", "y", "--seed", "-1"],
                 ["data", "split", "--input", "x", "--train", "a", "--dev", "b"],
                 ["data", "split", "--input", "x", "--dev-fraction", "0.1", "--train", "a"],
                 ["data", "check", "--input", "x", "--kind", "other"], ["data", "check", "--input", "x", "--out", "y"]):
        p = run(*args, code=2)
        assert p.stderr.strip(), args


@test
def winrate():
    d = tmpdir()
    path = os.path.join(d, "judg.jsonl")
    pairs = [("Final verdict: [[A]]", "[[B]]")] * 30 + [("[[B]]", "[[A]]")] * 10 + \
            [("[[C]]", "[[B]]")] * 10 + [("[[A]] or [[B]]", "[[B]]")] * 3
    write_jsonl(path, [{"ab": a, "ba": b} for a, b in pairs])
    out = json.loads(run("eval", "winrate", "--judgments", path, "--json", "--seed", "5").stdout)
    assert (out["win"], out["loss"], out["equal"], out["invalid"]) == (30, 10, 10, 3), out
    assert abs(out["win_rate"] - 40.0) < 1e-9
    lo, hi = out["ci95"]
    assert lo < 40 < hi and hi - lo < 60
    again = json.loads(run("eval", "winrate", "--judgments", path, "--json", "--seed", "5").stdout)
    assert again == out
    write_jsonl(path, [{"ab": "[[A]]"}])
    assert "missing string field \"ba\"" in run("eval", "winrate", "--judgments", path, code=1).stderr


@test
def data_from_gsm8k_and_split():
    d = tmpdir()
    small = os.path.join(d, "train500.jsonl")
    with open(TRAIN) as f, open(small, "w") as g:
        for i, line in enumerate(f):
            if i == 500:
                break
            g.write(line)
    a, b, c = (os.path.join(d, n) for n in ("a.jsonl", "b.jsonl", "c.jsonl"))
    run("data", "from-gsm8k", "--input", small, "--out", a, "--seed", "3")
    run("data", "from-gsm8k", "--input", small, "--out", b, "--seed", "3")
    run("data", "from-gsm8k", "--input", small, "--out", c, "--seed", "4", "--keep-calc")
    A = [json.loads(l) for l in open(a)]
    assert open(a).read() == open(b).read()
    C = [json.loads(l) for l in open(c)]
    assert len(A) == len(C) and any("<<" in r["last"] + r["prefix"] for r in C)
    assert not any("<<" in r["last"] + r["prefix"] + r["correction"] for r in A)
    rewrites = sum(r["last"] != r["correction"] for r in A)
    assert abs(rewrites / len(A) - 0.5) < 0.03, rewrites / len(A)
    assert {r["source"].split(":")[-1] for r in A} == {"copy", "number", "operation", "off_by_one", "dropped"}
    assert sum(r["eos"] for r in A) == 500
    for r in A:
        assert set(r) == {"question", "prefix", "last", "correction", "eos", "source"}
    # ratio 0: all copies; JSON array output
    z = os.path.join(d, "z.json")
    run("data", "from-gsm8k", "--input", small, "--out", z, "--rewrite-ratio", "0", "--json-array")
    Z = json.load(open(z))
    assert len(Z) == len(A) and all(r["last"] == r["correction"] for r in Z)
    assert "records" in run("data", "check", "--input", z, "--kind", "sentence").stdout
    # split by question
    tr, dv = os.path.join(d, "tr.jsonl"), os.path.join(d, "dv.jsonl")
    run("data", "split", "--input", a, "--dev-fraction", "0.2", "--seed", "1", "--train", tr, "--dev", dv)
    T = [json.loads(l) for l in open(tr)]
    D = [json.loads(l) for l in open(dv)]
    assert len(T) + len(D) == len(A)
    qt, qd = {r["question"] for r in T}, {r["question"] for r in D}
    assert not (qt & qd)
    assert abs(len(qd) / len(qt | qd) - 0.2) < 0.01
    # broken record file: named line and field
    bad = os.path.join(d, "bad.jsonl")
    with open(bad, "w") as f:
        f.write(json.dumps(A[0]) + "\n" + json.dumps({"question": "q", "prefix": 3, "last": "l", "correction": "c"}) + "\n")
    p = run("data", "check", "--input", bad, code=1)
    assert "bad.jsonl:2: field \"prefix\" is a number, expected a string" in p.stderr, p.stderr


def lev(a, b):
    """Levenshtein distance in Unicode characters (the reference for salign's)."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


@test
def aligner_rates_on_records():
    """salign eval aligner: the rates agree with the per-record details, the details with the
    definitions (kept: revision == last; fixed: revision == correction), whole-answer records
    run as the Aligner baseline, and the same records give the same revisions twice."""
    from harness import models_dir
    model = os.path.join(models_dir(), "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert os.path.exists(model), "missing %s: run scripts/setup.sh" % model
    d = tmpdir()
    recs = os.path.join(d, "al_recs.jsonl")
    q = "Tom has 3 apples and buys 4 more. How many apples does he have?"
    write_jsonl(recs, [
        {"question": q, "prefix": "", "last": "Tom has 3 + 4 = 7 apples.", "correction": "Tom has 3 + 4 = 7 apples.",
         "source": "t:0:copy"},
        {"question": q, "prefix": "Tom has 3 + 4 = 7 apples.", "last": "The answer is 8.",
         "correction": "The answer is 7.", "source": "t:1:off_by_one"},
        {"question": q, "answer": "Tom has 3 + 4 = 8 apples.\nThe answer is 8.",
         "correction": "Tom has 3 + 4 = 7 apples.\nThe answer is 7.", "source": "t:answer:2_of_2_rewritten"},
    ])
    det = os.path.join(d, "al_det.jsonl")
    out = run("eval", "aligner", "--aligner", model, "--records", recs, "--details", det, "--json", "-t", "2").stdout
    r = json.loads(out)
    rows = [json.loads(x) for x in open(det)]
    assert [x["kind"] for x in rows] == ["copy", "rewrite", "rewrite"], rows
    src = [json.loads(x) for x in open(recs)]
    for x, rec in zip(rows, src):
        draft = (rec.get("last") or rec.get("answer")).strip()
        if x["kind"] == "copy":
            assert x["kept"] == (x["revision"] == draft), x
        else:
            assert x["changed"] == (x["revision"] != draft) and x["fixed"] == (x["revision"] == rec["correction"]), x
            assert x["distance_before"] == lev(draft, rec["correction"]), x
            assert x["distance_after"] == lev(x["revision"], rec["correction"]), x
            assert x["improved"] == (x["distance_after"] < x["distance_before"]), x
    assert r["evaluated"] == 3 and r["kept"]["n"] == 1 and r["changed"]["n"] == 2, r
    assert r["kept"]["count"] == sum(x.get("kept", False) for x in rows), r
    assert r["changed"]["count"] == sum(x.get("changed", False) for x in rows), r
    assert r["fixed"]["count"] == sum(x.get("fixed", False) for x in rows), r
    assert r["improved"]["count"] == sum(x.get("improved", False) for x in rows), r
    assert 0 <= r["kept"]["ci95"][0] <= r["kept"]["rate"] <= r["kept"]["ci95"][1] <= 1, r
    assert sorted(x["label"] for x in r["by_label"]) == ["2_of_2_rewritten", "copy", "off_by_one"], r
    again = run("eval", "aligner", "--aligner", model, "--records", recs, "--details", det + "2", "--no-spec",
                "-t", "2").stdout
    assert "3 records (1 copy, 2 rewrite)" in again, again
    assert [json.loads(x)["revision"] for x in open(det + "2")] == [x["revision"] for x in rows]  # speculation is lossless
    # errors: missing options (exit 2), a broken record file (exit 1)
    p = run("eval", "aligner", "--records", recs, code=2)
    assert "--aligner" in p.stderr, p.stderr
    bad = os.path.join(d, "al_bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"question": "q", "prefix": "", "last": 3, "correction": "x"}\n')
    p = run("eval", "aligner", "--aligner", model, "--records", bad, code=1)
    assert "al_bad.jsonl:1" in p.stderr, p.stderr


if __name__ == "__main__":
    main()
