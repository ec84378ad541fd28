"""test_judge_threshold.py: bench/judge_threshold.py, choosing the edit judge's threshold from a
dev run at --edit-judge-threshold=-inf, on a hand-made workdir of 4 questions: which questions
each threshold changes (the first edit below it), their outcomes, the seeded workdir for a run
at one threshold (the other questions' lines copied byte for byte), and the refusals (a run
whose judge refused edits, a trace without judge margins)."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, main, test, tmpdir  # noqa: E402

TOOL = os.path.join(ROOT, "bench", "judge_threshold.py")


def write(path, rows):
    with open(path, "w") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def workdir(name, judged=True):
    w = os.path.join(tmpdir(), name)
    os.makedirs(w, exist_ok=True)
    # question 1: gained, its edit judged +3; 2: lost, edits judged -1 then -5; 3: right both ways,
    # no edit; 4: wrong both ways, one edit judged -3
    trace = [
        {"id": 1, "round": 1, "y1": "a = 1", "y2": "a = 2", "text": " a = 2", "aligned": True, "copied": False,
         "margin": 4.0},
        {"id": 2, "round": 1, "y1": "b = 1", "y2": "b = 3", "text": " b = 3", "aligned": True, "copied": False},
        {"id": 2, "round": 2, "y1": "c = 2", "y2": "c = 9", "text": " c = 9", "aligned": True, "copied": False},
        {"id": 3, "round": 1, "y1": "d", "y2": "d", "text": " d", "aligned": True, "copied": True},
        {"id": 4, "round": 1, "y1": "e = 5", "y2": "e = 6", "text": " e = 6", "aligned": True, "copied": False},
    ]
    margins = {(1, 1): 3.0, (2, 1): -1.0, (2, 2): -5.0, (4, 1): -3.0}
    if judged:
        for t in trace:
            if (t["id"], t["round"]) in margins:
                t["judge_margin"] = margins[(t["id"], t["round"])]
    write(os.path.join(w, "dev_stream.trace.jsonl"), trace)
    write(os.path.join(w, "dev_stream.jsonl"), [{"id": i, "answer": "é %d" % i} for i in (1, 2, 3, 4)])
    write(os.path.join(w, "dev_alone.jsonl"), [{"id": i, "answer": "x"} for i in (1, 2, 3, 4)])
    write(os.path.join(w, "dev_alone.trace.jsonl"), [{"id": i, "round": 1} for i in (1, 2, 3, 4)])
    alone, stream = {1: False, 2: True, 3: True, 4: False}, {1: True, 2: False, 3: True, 4: False}
    for arm, res in (("alone", alone), ("stream", stream)):
        order = [3, 1, 4, 2]  # the scored files' own order: joined by index, not by position in the trace
        write(os.path.join(w, "dev_%s_scored.jsonl" % arm), [{"id": i, "answer": ""} for i in order])
        write(os.path.join(w, "dev_%s_scored.details.jsonl" % arm),
              [{"index": k, "correct": res[i]} for k, i in enumerate(order)])
    return w


def run(args, code=0):
    p = subprocess.run([sys.executable, TOOL] + args, capture_output=True, text=True, timeout=60)
    assert p.returncode == code, (p.returncode, p.stdout, p.stderr)
    return p


@test
def thresholds_and_seed():
    w = workdir("jt")
    out = run([w, "--thresholds=-6,-2,0,4"]).stdout
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]] for ln in out.splitlines()
            if ln.startswith("| ") and ln[2:3] in "-0123456789"}
    # threshold: edits refused, questions changed, gained, lost, right, wrong
    assert rows["-6"] == ["0", "0", "0", "0", "0", "0"], rows
    assert rows["-2"] == ["2", "2", "0", "1", "0", "1"], rows  # 2's second edit (-5) and 4's (-3)
    assert rows["0"] == ["3", "2", "0", "1", "0", "1"], rows
    assert rows["4"] == ["4", "3", "1", "1", "0", "1"], rows
    assert "judge    +3.00 aligner +4.00" in out and "y2: c = 9" in out, out
    seeded = os.path.join(tmpdir(), "jt_seed")
    out = run([w, "--seed=-2", "--out", seeded]).stdout
    assert "seeded with 2 answers" in out and "to generate: [2, 4]" in out, out
    with open(os.path.join(seeded, "dev_stream.jsonl")) as f:
        lines = f.readlines()
    with open(os.path.join(w, "dev_stream.jsonl")) as f:
        want = [ln for ln in f if json.loads(ln)["id"] in (1, 3)]
    assert lines == want, (lines, want)  # byte for byte
    trace = [json.loads(ln) for ln in open(os.path.join(seeded, "dev_stream.trace.jsonl"))]
    assert sorted({t["id"] for t in trace}) == [1, 3], trace
    for name in ("dev_alone.jsonl", "dev_alone.trace.jsonl"):
        assert open(os.path.join(seeded, name)).read() == open(os.path.join(w, name)).read(), name


@test
def refusals():
    w = workdir("jt_plain", judged=False)
    p = run([w], code=1)
    assert "no judge_margin" in p.stderr, p.stderr
    w = workdir("jt_refused")
    trace = os.path.join(w, "dev_stream.trace.jsonl")
    rows = [json.loads(ln) for ln in open(trace)]
    rows[1]["refused"], rows[1]["refused_by"] = True, "judge"
    write(trace, rows)
    p = run([w], code=1)
    assert "refused edits" in p.stderr, p.stderr
    p = run([w, "--seed", "0"], code=2)
    assert "go together" in p.stderr, p.stderr


if __name__ == "__main__":
    main()
