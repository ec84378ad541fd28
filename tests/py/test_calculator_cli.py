"""test_calculator_cli.py: `salign align --calculator` (issue 13; a tool, not in the paper) from
the command line, with no model: the Aligner baseline's mode over given answers (`--mode aligner
--answers FILE --copy-aligner`), where the calculator alone rewrites the written result of a
false equation. The answer, its "repaired" count in the output line, and the trace's "repaired"
and "unrepaired" fields; answers without a false result untouched (no trace fields); off by
default; refused with a clear message where no aligner round runs. The pipeline side (a copy, a
refused edit and a kept revision repaired; the upstream and the aligner continuing from the
repaired answer) is test_pipeline's test_calculator; the rules against the labeller,
test_arith_check.py."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import SALIGN, main, test, tmpdir  # noqa: E402

ANSWERS = {1: "So 17 + 17 + 17 + 17 = 59 skips.\n\\[ \\$1,250 + \\$250 = \\$1,600 \\]",
           2: "He sells 3 x 5 = 15 cakes."}


def jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def align(extra, tag):
    d = tmpdir()
    q, a = os.path.join(d, "calc_q.jsonl"), os.path.join(d, "calc_a.jsonl")
    with open(q, "w") as f:
        for i in ANSWERS:
            f.write(json.dumps({"id": i, "question": "How many?"}) + "\n")
    with open(a, "w") as f:
        for i, t in ANSWERS.items():
            f.write(json.dumps({"id": i, "answer": t}) + "\n")
    out, trace = os.path.join(d, "calc_%s.jsonl" % tag), os.path.join(d, "calc_%s.trace.jsonl" % tag)
    for p in (out, trace):
        if os.path.exists(p):
            os.remove(p)
    p = subprocess.run([SALIGN, "align", "--mode", "aligner", "--answers", a, "--copy-aligner", "--input", q,
                        "--output", out, "--trace", trace] + extra, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return {r["id"]: r for r in jsonl(out)}, {r["id"]: r for r in jsonl(trace)}, p.stderr


@test
def calculator_rewrites_false_results():
    out, trace, err = align(["--calculator"], "on")
    assert out[1]["answer"] == "So 17 + 17 + 17 + 17 = 68 skips.\n\\[ \\$1,250 + \\$250 = \\$1,500 \\]", out[1]
    assert out[1]["repaired"] == 2 and out[1]["upstream_answer"] == ANSWERS[1], out[1]
    assert trace[1]["repaired"] == 2 and trace[1]["unrepaired"] == ANSWERS[1], trace[1]
    assert trace[1]["y2"] == out[1]["answer"] and trace[1]["copied"] is True, trace[1]
    assert out[2]["answer"] == ANSWERS[2] and out[2]["repaired"] == 0, out[2]
    assert "repaired" not in trace[2] and "unrepaired" not in trace[2], trace[2]
    assert "calculator" in err or "answered" in err, err


@test
def off_by_default():
    out, trace, _ = align([], "off")
    assert out[1]["answer"] == ANSWERS[1] and "repaired" not in out[1], out[1]
    assert "repaired" not in trace[1], trace[1]


@test
def refused_without_an_aligner_round():
    p = subprocess.run([SALIGN, "align", "--upstream", "none", "--mode", "upstream", "-p", "q", "--calculator"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "--calculator needs an aligner round" in p.stderr, p.stderr
    p = subprocess.run([SALIGN, "serve", "--upstream", "none", "--calculator"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "--calculator needs --aligner" in p.stderr, p.stderr


main()
