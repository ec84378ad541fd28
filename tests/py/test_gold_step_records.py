"""test_gold_step_records.py: bench/gold_step_records.py, the records whose correction of a wrong
plan step is the reference solution's next step: the reference's calculator annotations written
in the upstream's notation (units between operands, dollar signs, an annotation that cannot be
placed), the next step chosen by the numbers already known, and through the command line on a
tiny hand-made set of drafts: a right draft gives copies, a wrong one copies up to its first
sentence off the gold path and a fix there, a wrong one that never leaves the path nothing; then
bench/gold_step_eval.py over hand-made aligner details."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, main, test, tmpdir  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "bench"))
from gold_step_records import first_off_equation, next_annotation, next_step, render, swap  # noqa: E402
from gsm8k_gold_path import gold_path  # noqa: E402

TOOL = os.path.join(ROOT, "bench", "gold_step_records.py")
EVAL = os.path.join(ROOT, "bench", "gold_step_eval.py")


@test
def render_writes_annotations_as_the_upstream_does():
    assert render("Maila read 12 x 2 = <<12*2=24>>24 pages today.") == "Maila read \\(12 \\times 2 = 24\\) pages today."
    assert (render("First find the snakes: 5 snakes/jaguar * 6 jaguars = <<5*6=30>>30 snakes")
            == "First find the snakes: \\(5 \\times 6 = 30\\) snakes")
    assert render("In total $240 + $80 = $<<240+80=320>>320.") == "In total \\(240 + 80 = 320\\)."
    assert render("Half is 10 / 2 = <<10/2=5>>5 and then 5 - 1 = <<5-1=4>>4 left") == \
        "Half is \\(10 \\div 2 = 5\\) and then \\(5 - 1 = 4\\) left"
    # the written operands in another order than the annotation's
    assert render("A total of 2*250 = <<250*2=500>>500 blocks.") == "A total of \\(250 \\times 2 = 500\\) blocks."
    assert render("There are 4 x 4 = <<4*4=16>>16 pieces.") == "There are \\(4 \\times 4 = 16\\) pieces."
    assert render("No line without an annotation changes.") == "No line without an annotation changes."
    # the expression's first number is not written before it: no rendering
    assert render("The total is <<3+4=7>>7.") is None


@test
def next_step_is_the_first_line_with_an_unknown_result():
    ans = "He has 2 * 3 = <<2*3=6>>6 apples.\nThen 6 + 4 = <<6+4=10>>10 in all.\n#### 10"
    assert next_step(ans, {2.0, 3.0, 4.0}) == "He has \\(2 \\times 3 = 6\\) apples."
    assert next_step(ans, {2.0, 3.0, 4.0, 6.0}) == "Then \\(6 + 4 = 10\\) in all."
    assert next_step(ans, {6.0, 10.0}) is None


@test
def swap_replaces_the_off_path_equation_in_the_sentence():
    ans = "He has 2 * 3 = <<2*3=6>>6 apples.\nThen 6 + 4 = <<6+4=10.00>>10.00 in all.\n#### 10"
    q = "Tom has 2 bags of 3 apples and buys 4 more."
    path = gold_path(q, ans)
    assert next_annotation(ans, {2.0, 3.0, 4.0, 6.0}) == ("6+4", "10")  # 10.00 written as the upstream would
    y1 = "So he has:\n\\[ 2 \\text{ bags} + 3 \\text{ apples} = 5 \\text{ apples} \\]"
    e = first_off_equation(y1, path)
    assert e is not None and e.value == 5
    # inside math: LaTeX operators; the unit after the old result goes with it
    assert swap(y1, e, "2*3", "6") == "So he has:\n\\[ 2 \\times 3 = 6 \\]"
    y1 = "He has $2 + $3 = $5 apples."
    e = first_off_equation(y1, path)
    assert swap(y1, e, "2*3", "6") == "He has 2 * 3 = 6 apples."  # plain text: plain operators
    assert first_off_equation("He has \\(2 \\times 3 = 6\\) apples.", path) is None
    # --style swap-units: a number the old equation had keeps its unit; the result's unit stays
    # only when every number found its own
    y1 = "So he has:\n\\[ 2 \\text{ bags} + 3 \\text{ apples} = 5 \\text{ apples} \\]"
    e = first_off_equation(y1, path)
    assert swap(y1, e, "2*3", "6", units=True) == \
        "So he has:\n\\[ 2 \\text{ bags} \\times 3 \\text{ apples} = 6 \\text{ apples} \\]"
    assert swap(y1, e, "3*2", "6", units=True) == \
        "So he has:\n\\[ 3 \\text{ apples} \\times 2 \\text{ bags} = 6 \\text{ apples} \\]"
    assert swap(y1, e, "2*4", "8", units=True) == "So he has:\n\\[ 2 \\text{ bags} \\times 4 = 8 \\]"
    assert swap(y1, e, "2*2", "4", units=True) == "So he has:\n\\[ 2 \\text{ bags} \\times 2 = 4 \\]"  # once each
    y1 = "So he has \\(2 + 3 = 5\\) apples."  # no unit in the equation: as swap
    e = first_off_equation(y1, path)
    assert swap(y1, e, "2*3", "6", units=True) == swap(y1, e, "2*3", "6") == "So he has \\(2 \\times 3 = 6\\) apples."


GOLD = [
    {"question": "Tom has 2 bags of 3 apples and buys 4 more. How many apples?",
     "answer": "He has 2 * 3 = <<2*3=6>>6 apples.\nThen 6 + 4 = <<6+4=10>>10 in all.\n#### 10"},
]
# the drafts, sentence by sentence (y1 as written, text as appended); all answer question 0
DRAFTS = {
    0: [("We count.", "We count."), ("\\[ 2 \\times 3 = 6 \\]", "\n\\[ 2 \\times 3 = 6 \\]"),
        ("\\[ 6 + 4 = 10 \\]", "\n\\[ 6 + 4 = 10 \\]")],  # right
    1: [("We count.", "We count."), ("\\[ 2 + 3 = 5 \\]", "\n\\[ 2 + 3 = 5 \\]"),
        ("\\[ 5 + 4 = 9 \\]", "\n\\[ 5 + 4 = 9 \\]")],  # wrong: leaves the path at round 2 (5)
    2: [("We count.", "We count."), ("So 4 apples.", " So 4 apples.")],  # wrong, never off the path
}


def run_tool(d, style="line", drafts=None, extra=()):
    drafts = drafts or DRAFTS
    gold = os.path.join(d, "gold.jsonl")
    with open(gold, "w") as f:
        for qid in range(3):  # the drafts' ids are lines of the gold file
            f.write(json.dumps(GOLD[0]) + "\n")
    trace, details, out = (os.path.join(d, n) for n in ("trace.jsonl", "details.jsonl", "out.jsonl"))
    with open(trace, "w") as t:
        for qid, rounds in drafts.items():
            for k, (y1, text) in enumerate(rounds, 1):
                t.write(json.dumps({"id": qid, "question": GOLD[0]["question"], "round": k, "y1": y1,
                                    "text": text}) + "\n")
    with open(details, "w") as f:
        for qid, ok in ((0, True), (1, False), (2, False)):
            f.write(json.dumps({"index": qid, "correct": ok}) + "\n")
    p = subprocess.run([sys.executable, TOOL, "--trace", trace, "--details", details, "--gold", gold, "--out", out,
                        "--stats", "--style", style, *extra], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return gold, out, json.loads(p.stderr.strip().splitlines()[-1]), [json.loads(line) for line in open(out)]


@test
def records_from_drafts():
    d = tmpdir()
    _, _, stats, recs = run_tool(d)
    assert stats == {"questions": 3, "right": 1, "located": 1, "on_path": 1, "no_step": 0, "copy": 4, "fix": 1}, stats
    right = [r for r in recs if r["id"] == 0]
    assert [r["kind"] for r in right] == ["copy"] * 3 and all(r["last"] == r["correction"] for r in right)
    wrong = [r for r in recs if r["id"] == 1]
    assert [r["kind"] for r in wrong] == ["copy", "fix"], wrong
    fix = wrong[1]
    assert fix["round"] == 2 and fix["prefix"] == "We count." and fix["last"] == "\\[ 2 + 3 = 5 \\]"
    assert fix["correction"] == "He has \\(2 \\times 3 = 6\\) apples." and fix["source"] == "gold:step"
    assert not [r for r in recs if r["id"] == 2]
    # --style swap: the same records, the fix keeping the sentence's notation
    _, _, stats2, recs2 = run_tool(tmpdir(), "swap")
    assert stats2 == stats and [r["kind"] for r in recs2] == [r["kind"] for r in recs]
    assert [r["correction"] for r in recs2 if r["kind"] == "fix"] == ["\\[ 2 \\times 3 = 6 \\]"], recs2


# a pipeline's traces (y1, text = the kept revision): question 1's first error put back on the
# path by the aligner, the upstream's next sentence off it again; question 0's (right) second
# sentence spoiled by the aligner after a cosmetic change of its first
PIPELINE = {
    0: [("We count.", "We count them."), ("\\[ 2 \\times 3 = 6 \\]", "\n\\[ 2 \\times 3 = 7 \\]"),
        ("\\[ 7 + 4 = 11 \\]", "\n\\[ 7 + 4 = 11 \\]")],
    1: [("We count.", "We count."), ("\\[ 2 + 3 = 5 \\]", "\n\\[ 2 \\times 3 = 6 \\]"),
        ("\\[ 6 + 5 = 11 \\]", "\n\\[ 6 + 5 = 11 \\]"), ("\\[ 11 + 1 = 12 \\]", "\n\\[ 11 + 1 = 12 \\]")],
    2: [("We count.", "We count."), ("So 4 apples.", " So 4 apples.")],
}


@test
def after_fixes_goes_on_past_a_kept_fix():
    d = tmpdir()
    _, _, stats, recs = run_tool(d, "swap", PIPELINE, ["--after-fixes"])
    # 0: no record of the cosmetic change, the spoiled sentence as a copy (its label), then stop; 1: a copy, the fixed
    # error, the error after the fix (the upstream's own, from the corrected prefix), stop
    assert stats == {"questions": 3, "right": 1, "located": 2, "on_path": 1, "no_step": 0, "copy": 2, "fix": 2,
                     "after_fix": 1, "revised": 1, "spoiled": 1}, stats
    by = [(r["id"], r["round"], r["kind"]) for r in recs]
    assert by == [(0, 2, "copy"), (1, 1, "copy"), (1, 2, "fix"), (1, 3, "fix")], by
    after = recs[-1]
    assert after["prefix"] == "We count.\n\\[ 2 \\times 3 = 6 \\]" and after["last"] == "\\[ 6 + 5 = 11 \\]"
    assert after["correction"] == "\\[ 6 + 4 = 10 \\]", after
    assert recs[0]["correction"] == recs[0]["last"] == "\\[ 2 \\times 3 = 6 \\]"
    assert recs[0]["prefix"] == "We count them."
    # without the flag, the same traces read as drafts: the first off-path y1 ends the answer
    _, _, stats2, recs2 = run_tool(tmpdir(), "swap", PIPELINE)
    assert stats2["fix"] == 1 and [(r["id"], r["round"]) for r in recs2 if r["kind"] == "fix"] == [(1, 2)], stats2
    # and on drafts (no revision) the flag changes nothing
    _, _, _, a = run_tool(tmpdir(), "swap")
    _, _, _, b = run_tool(tmpdir(), "swap", None, ["--after-fixes"])
    assert a == b


@test
def final_check_locates_a_premature_stop():
    # question 2 never leaves the path (4 is the question's number) but states 4 as its answer
    drafts = {**DRAFTS, 2: [("We count.", "We count."), ("So 4 apples.", " So 4 apples."),
                            ("The answer is \\(\\boxed{4}\\).", "\nThe answer is \\(\\boxed{4}\\).")]}
    _, _, stats, recs = run_tool(tmpdir(), "swap", drafts, ["--final-check"])
    assert stats["on_path"] == 0 and stats["final"] == 1 and stats["fix"] == 2, stats
    (fix,) = [r for r in recs if r["id"] == 2 and r["kind"] == "fix"]
    assert fix["source"] == "gold:final" and fix["round"] == 3 and fix["prefix"] == "We count. So 4 apples."
    assert fix["correction"] == "He has \\(2 \\times 3 = 6\\) apples.", fix  # the reference's next line, rendered
    # the other answers' records are those of the run without the flag
    _, _, stats2, recs2 = run_tool(tmpdir(), "swap", drafts)
    assert stats2["on_path"] == 1 and "final" not in stats2, stats2
    assert [r for r in recs if r["id"] != 2] == [r for r in recs2 if r["id"] != 2]


@test
def continuations_label_the_upstreams_next_error():
    """Traces of `salign data continue`: keyed by record, the prefix and the fix forced; two
    continuations of one question (records 4, 9 and 12): one wrong at a later error, one right, one
    wrong with nothing off the path after the fix."""
    d = tmpdir()
    gold, trace, answers, details, out = (os.path.join(d, n) for n in
                                          ("gold.jsonl", "c.trace", "c.jsonl", "c.details.jsonl", "out.jsonl"))
    other = {"question": "Another question?", "answer": "1 + 1 = <<1+1=2>>2\n#### 2"}
    with open(gold, "w") as f:
        f.write(json.dumps(other) + "\n" + json.dumps(GOLD[0]) + "\n")
    q = GOLD[0]["question"]
    conts = {4: [("We count.", "We count.", True), ("\\[ 2 + 3 = 5 \\]", "\n\\[ 2 \\times 3 = 6 \\]", True),
                 ("\\[ 6 + 5 = 11 \\]", "\n\\[ 6 + 5 = 11 \\]", False), ("So 11.", " So 11.", False)],
             9: [("\\[ 2 + 3 = 5 \\]", "\\[ 2 \\times 3 = 6 \\]", True),
                 ("\\[ 6 + 4 = 10 \\]", "\n\\[ 6 + 4 = 10 \\]", False)],
             # wrong, but nothing the upstream wrote after the fix leaves the path: no record (not copies)
             12: [("\\[ 2 + 3 = 5 \\]", "\\[ 2 \\times 3 = 6 \\]", True),
                  ("\\[ 6 + 4 = 10 \\]", "\n\\[ 6 + 4 = 10 \\]", False), ("So 9.", " So 9.", False)]}
    with open(trace, "w") as t:
        for rec, rounds in conts.items():
            for k, (y1, text, forced) in enumerate(rounds, 1):
                t.write(json.dumps({"record": rec, "question": q, "round": k, "y1": y1, "text": text,
                                    "forced": forced}) + "\n")
    with open(answers, "w") as f:
        for rec in conts:
            f.write(json.dumps({"record": rec, "question": q, "answer": "..."}) + "\n")
    with open(details, "w") as f:  # salign eval math --details, in the answers' order (by question: line 1)
        for ok in (False, True, False):
            f.write(json.dumps({"index": 1, "correct": ok}) + "\n")
    args = [sys.executable, TOOL, "--trace", trace, "--details", details, "--gold", gold, "--out", out, "--stats",
            "--style", "swap", "--continuations", answers]
    p = subprocess.run(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    stats = json.loads(p.stderr.strip().splitlines()[-1])
    recs = [json.loads(line) for line in open(out)]
    # record 4: the upstream's error after the forced fix gets its fix, with the corrected prefix; record 9: a copy
    assert [(r["record"], r["id"], r["round"], r["kind"]) for r in recs] == [(4, 1, 3, "fix"), (9, 1, 2, "copy")], recs
    assert recs[0]["prefix"] == "We count.\n\\[ 2 \\times 3 = 6 \\]" and recs[0]["correction"] == "\\[ 6 + 4 = 10 \\]"
    assert recs[1]["prefix"] == "\\[ 2 \\times 3 = 6 \\]"
    assert stats["fix"] == 1 and stats["after_fix"] == 1 and stats["copy"] == 1 and stats["right"] == 1, stats
    assert stats["questions"] == 3 and stats["on_path"] == 1, stats
    # the details must be of that answers file
    with open(details, "w") as f:
        f.write(json.dumps({"index": 1, "correct": False}) + "\n")
    p = subprocess.run(args, capture_output=True, text=True)
    assert p.returncode == 2 and "--details has 1 lines, --continuations 3" in p.stderr, p.stderr


@test
def eval_counts_kept_changed_and_on_path():
    d = tmpdir()
    gold, out, _, recs = run_tool(d)
    det = os.path.join(d, "det.jsonl")
    with open(det, "w") as f:
        for i, r in enumerate(recs):
            rev = r["last"]
            margin = 0.0
            if r["kind"] == "fix":
                rev, margin = "\\[ 2 \\times 3 = 6 \\]", 3.0  # on the path, the next step's value
            elif i == 0:
                rev, margin = "We count now.", 1.0  # a copy not kept
            elif i == 1:
                rev = "\\[ 2 \\times 3 = 7 \\]"  # refused by the check: a copy
                f.write(json.dumps({"index": i, "revision": rev, "refused": True, "margin": 5.0}) + "\n")
                continue
            f.write(json.dumps({"index": i, "revision": rev, "margin": margin}) + "\n")
    p = subprocess.run([sys.executable, EVAL, "--records", out, "--details", det, "--gold", gold,
                        "--thresholds", "2,4"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines() if x.startswith("{")]
    assert lines[0] == {"copy": 4, "kept": 3, "fix": 1, "changed": 1, "on_path": 1, "next_value": 1}, lines
    # the gate at 2 nats keeps the copy (margin 1) and the fix (3); at 4 it gates both
    assert lines[1] == {"threshold": 2.0, "copy": 4, "kept": 4, "fix": 1, "changed": 1, "on_path": 1,
                        "next_value": 1}, lines
    assert lines[2]["kept"] == 4 and lines[2]["changed"] == 0, lines


if __name__ == "__main__":
    main()
