"""test_whole_answer_records.py: the Aligner baseline's records from the Stream Aligner's
(bench/whole_answer_records.py): a question without a fix gives a copy of its draft, a real fix
gives draft -> the calculator pipeline's answer, each synthetic sentence record gives the same
corruption inside the whole draft -> the draft; a draft that is not the one the records were
cut from, or a calculator answer that does not carry the fix, is left out and counted. Through
the command line, on a tiny hand-made run (drafts, trace, calculator answers)."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, main, test, tmpdir  # noqa: E402

TOOL = os.path.join(ROOT, "bench", "whole_answer_records.py")
Q = {1: "How many apples?", 2: "How many pears?", 3: "How many plums?", 4: "How many figs?"}
# the drafts, sentence by sentence: (y1 = as written, text = as appended to the answer)
DRAFTS = {
    1: [("First we count.", "First we count."), ("Then 2 + 3 = 5 apples.", "\nThen 2 + 3 = 5 apples."),
        ("So the answer is 5.", " So the answer is 5.")],
    2: [("We add.", "We add."), ("4 + 4 = 9.", "\n\n4 + 4 = 9."), ("The answer is 9.", "\n\nThe answer is 9.")],
    3: [("Half of 10 is 10 / 2 = 5.", "Half of 10 is 10 / 2 = 5.")],
    4: [("Then 6 * 7 = 42.", "Then 6 * 7 = 42.")],
}


def rec(qid, k, prefix, last, correction, source):
    return {"question": Q[qid], "prefix": prefix, "last": last, "id": qid, "round": k, "correction": correction,
            "kind": "copy" if source == "arith:copy" else "fix", "source": source}


RECORDS = [
    rec(1, 2, "First we count.", "Then 2 + 3 = 5 apples.", "Then 2 + 3 = 5 apples.", "arith:copy"),
    rec(1, 2, "First we count.", "Then 2 + 3 = 6 apples.", "Then 2 + 3 = 5 apples.", "arith:synth"),
    rec(1, 3, "First we count.\nThen 2 + 3 = 5 apples.", "So the answer is 5.", "So the answer is 5.", "arith:copy"),
    rec(2, 2, "We add.", "4 + 4 = 9.", "4 + 4 = 8.", "arith:fix"),
    # a record cut from another draft than the one regenerated: the question is left out
    rec(3, 1, "", "Half of 10 is 10 / 2 = 4.", "Half of 10 is 10 / 2 = 5.", "arith:fix"),
    rec(4, 1, "", "Then 6 * 7 = 42.", "Then 6 * 7 = 42.", "arith:copy"),
]


def run(fixed):
    d = tmpdir()
    paths = {n: os.path.join(d, n + ".jsonl") for n in ("records", "drafts", "trace", "fixed", "out")}
    with open(paths["records"], "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in RECORDS)
    with open(paths["drafts"], "w") as f, open(paths["trace"], "w") as t:
        for qid, rounds in DRAFTS.items():
            f.write(json.dumps({"id": qid, "question": Q[qid], "answer": "".join(x for _, x in rounds)}) + "\n")
            for k, (y1, text) in enumerate(rounds, 1):
                t.write(json.dumps({"id": qid, "question": Q[qid], "round": k, "y1": y1, "text": text}) + "\n")
        f.write('{"id": 9, "question": "cut off", "answ')  # a run still going: its last line is cut
    with open(paths["fixed"], "w") as f:
        f.writelines(json.dumps({"id": i, "answer": a}) + "\n" for i, a in fixed.items())
    p = subprocess.run([sys.executable, TOOL, "--records", paths["records"], "--drafts", paths["drafts"],
                        "--trace", paths["trace"], "--fixed", paths["fixed"], "--out", paths["out"], "--stats"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    out = [json.loads(line) for line in open(paths["out"])]
    return out, json.loads(p.stderr.strip().splitlines()[-1])


@test
def whole_answer_records_copy_fix_synth():
    out, n = run({2: "We add.\n\n4 + 4 = 8.\n\nThe answer is 8."})
    assert n == {"questions": 3, "copy": 2, "fix": 1, "synth": 1, "no_draft": 0, "draft_differs": 1,
                 "fix_unmatched": 0}, n
    draft1 = "First we count.\nThen 2 + 3 = 5 apples. So the answer is 5."
    by = {(r["id"], r["source"]): r for r in out}
    assert by[(1, "whole:copy")]["answer"] == draft1 and by[(1, "whole:copy")]["correction"] == draft1
    s = by[(1, "whole:synth")]
    assert s["answer"] == "First we count.\nThen 2 + 3 = 6 apples. So the answer is 5." and s["correction"] == draft1, s
    f = by[(2, "whole:fix")]
    assert f["answer"] == "We add.\n\n4 + 4 = 9.\n\nThe answer is 9." and f["correction"] == "We add.\n\n4 + 4 = 8.\n\nThe answer is 8."
    assert by[(4, "whole:copy")]["correction"] == "Then 6 * 7 = 42."
    assert not any(r["id"] == 3 for r in out)  # its draft differs from the records'
    for r in out:
        assert set(r) >= {"question", "answer", "correction"} and r["question"] == Q[r["id"]]


@test
def whole_answer_records_fix_needs_the_calculator_answer():
    # no calculator answer for the fix, then one that does not carry it: the question is left out
    # (or one without the line break the draft has before the fixed sentence)
    for fixed in ({}, {2: "We add.\n\n4 + 4 = 9.\n\nThe answer is 9."}, {2: "We add.4 + 4 = 8. The answer is 8."}):
        out, n = run(fixed)
        assert n["fix"] == 0 and n["fix_unmatched"] == 1, n
        assert not any(r["id"] == 2 for r in out)


if __name__ == "__main__":
    main()
