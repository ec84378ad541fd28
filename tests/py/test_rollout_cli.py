"""test_rollout_cli.py: `salign data rollout` end to end on SmolLM2-135M-Instruct (tiny N, K and
lengths; a GSM8K train question and an easy one): the records are read by `salign data check`
(the loader of `salign train --data`), a run cut in the middle resumes to the same files, --parallel
2 gives the records of --parallel 1 with the same seed, and --drafts (a trace of `salign align
--mode upstream`) gives the same records without writing the drafts again; --locate gold-path
runs end to end. The labelling logic
itself is tested on a scripted upstream in tests/test_rollout.c."""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import SALIGN, SHARED_DATA, main, models_dir, test, tmpdir  # noqa: E402

NAME = "smollm2-135m-instruct"
GGUF = os.path.join(models_dir(), NAME, "SmolLM2-135M-Instruct.Q4_1.gguf")
SMALL = ["--max-length", "40"]
ARGS = ["-N", "2", "-K", "1", "--max-tokens", "16", "--seed", "3", "-t", "2"] + SMALL


def run(args, timeout=240):
    assert os.path.exists(GGUF), "missing %s: run scripts/setup.sh (salign pull %s)" % (GGUF, NAME)
    p = subprocess.run(args, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def ok(args, **kw):
    rc, out, err = run(args, **kw)
    assert rc == 0, "exit %d: %s\n%s" % (rc, " ".join(args), err)
    return out, err


def lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def sorted_text(path):
    with open(path) as f:
        return sorted(line for line in f if line.strip())


def questions():
    path = os.path.join(tmpdir(), "questions.jsonl")
    first = GSM8K_TRAIN_0
    train = os.path.join(SHARED_DATA, "gsm8k", "train.jsonl")
    if os.path.exists(train):
        with open(train) as f:
            assert json.loads(f.readline()) == first
    easy = {"id": "easy", "question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
            "answer": "3 + 4 = 7\n#### 7"}
    with open(path, "w") as f:
        f.write(json.dumps({"question": first["question"], "answer": first["answer"]}) + "\n")
        f.write(json.dumps(easy) + "\n")
    return path


def rollout(inp, out, extra=()):
    return ok([SALIGN, "data", "rollout", "--upstream", NAME, "--input", inp, "--out", out,
               "--answers-out", out + ".answers"] + ARGS + list(extra))


STATE = {}
# the first question of GSM8K train (openai/grade-school-math): a training question, never a test one
GSM8K_TRAIN_0 = {
    "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                "How many clips did Natalia sell altogether in April and May?",
    "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether "
              "in April and May.\n#### 72"}


def first_run():
    if "out" not in STATE:
        inp = questions()
        out = os.path.join(tmpdir(), "p1.jsonl")
        _, err = rollout(inp, out)
        STATE.update(inp=inp, out=out, err=err)
    return STATE["inp"], STATE["out"], STATE["err"]


@test
def records_are_training_records():
    inp, out, err = first_run()
    assert "2 questions labelled" in err and "generations" in err and "ETA" in err, err
    done = lines(out + ".done")
    assert [d["id"] for d in done] == [0, "easy"], done
    for d in done:
        assert d["outcome"] in ("correct", "fixed", "no_alternative", "too_hard", "empty"), d
        assert d["generations"] >= 1 and d["tokens"] > 0, d
    recs = lines(out)
    for r in recs:
        assert {"question", "prefix", "last", "correction", "id", "kind", "round", "n_rollouts"} <= set(r), r
        assert r["kind"] in ("copy", "fix") and r["n_rollouts"] == 2, r
    n_records = sum(d.get("records", 0) for d in done)
    answers = lines(out + ".answers")
    assert len(recs) + len(answers) == n_records, (recs, answers, done)
    # each question's sentence records give back its answer prefix by prefix
    for r in recs:
        if r["kind"] == "copy":
            assert r["last"] == r["correction"], r
    if recs:
        cout, _ = ok([SALIGN, "data", "check", "--input", out, "--kind", "sentence"])
        assert "%d records (%d sentence" % (len(recs), len(recs)) in cout, cout
    if answers:
        ok([SALIGN, "data", "check", "--input", out + ".answers", "--kind", "answer"])


@test
def resume_after_a_cut():
    inp, out, _ = first_run()
    cut = os.path.join(tmpdir(), "cut.jsonl")
    for ext in ("", ".answers", ".done"):
        shutil.copy(out + ext, cut + ext)
    with open(cut + ".done") as f:  # the last question never finished: its status line is gone ...
        done = f.readlines()
    with open(cut + ".done", "w") as f:
        f.writelines(done[:-1])
    with open(cut, "a") as f:  # ... and a record of it was cut in the middle
        f.write('{"question": "cut in the mid')
    _, err = rollout(inp, cut)
    assert "last line was cut" in err and "1 question(s) already done" in err, err
    for ext in ("", ".answers", ".done"):
        if ext == ".done":
            assert [d["id"] for d in lines(cut + ext)] == [d["id"] for d in lines(out + ext)]
        else:
            assert sorted_text(cut + ext) == sorted_text(out + ext), ext
    _, err = rollout(inp, cut)  # nothing left
    assert "2 question(s) already done" in err and "0 questions labelled" in err, err
    assert sorted_text(cut) == sorted_text(out)


@test
def parallel_gives_the_same_records():
    inp, out, _ = first_run()
    p2 = os.path.join(tmpdir(), "p2.jsonl")
    rollout(inp, p2, ["--parallel", "2"])
    assert sorted_text(p2) == sorted_text(out)
    assert sorted_text(p2 + ".answers") == sorted_text(out + ".answers")


@test
def drafts_from_an_upstream_trace():
    inp, out, _ = first_run()
    trace = os.path.join(tmpdir(), "drafts.trace.jsonl")
    ok([SALIGN, "align", "--upstream", NAME, "--mode", "upstream", "--input", inp, "--output",
        os.path.join(tmpdir(), "drafts.answers.jsonl"), "--trace", trace, "-t", "2"] + SMALL)
    dr = os.path.join(tmpdir(), "dr.jsonl")
    rollout(inp, dr, ["--drafts", trace])
    assert sorted_text(dr) == sorted_text(out)
    a, b = lines(out + ".done"), lines(dr + ".done")
    assert [x["generations"] - 1 for x in a] == [x["generations"] for x in b], (a, b)  # no draft written
    # a question the trace lacks is that question's error, and the run goes on
    one = os.path.join(tmpdir(), "one.trace.jsonl")
    with open(trace) as f, open(one, "w") as g:
        g.writelines(line for line in f if json.loads(line)["id"] == "easy")
    miss = os.path.join(tmpdir(), "miss.jsonl")
    _, err = rollout(inp, miss, ["--drafts", one])
    st = lines(miss + ".done")
    assert st[0]["outcome"] == "error" and "no draft" in st[0]["error"], st
    assert st[1]["outcome"] != "error", st


@test
def locate_gold_path():
    inp = questions()
    out = os.path.join(tmpdir(), "gold.jsonl")
    _, err = rollout(inp, out, ["--locate", "gold-path", "--limit", "1"])
    assert "1 questions labelled" in err and "on the gold path" in err, err
    done = lines(out + ".done")
    assert [d["id"] for d in done] == [0], done
    d = done[0]
    assert d["outcome"] in ("correct", "fixed", "no_alternative", "on_path"), d  # never too_hard: no value(0)
    assert "value0" not in d, d
    assert (d["first_error"] > 0) == (d["outcome"] in ("fixed", "no_alternative")), d
    assert d["outcome"] != "on_path" or d["records"] == 0, d
    recs, answers = lines(out), lines(out + ".answers")
    assert len(recs) + len(answers) == d["records"], (recs, answers, d)
    for r in recs:
        assert r["kind"] in ("copy", "fix") and "value_before" not in r and "value_after" not in r, r
    if recs:
        ok([SALIGN, "data", "check", "--input", out, "--kind", "sentence"])
    # --rollouts 0 is for the gold path only
    rc, _, err = run([SALIGN, "data", "rollout", "--upstream", NAME, "--input", inp, "--out",
                      os.path.join(tmpdir(), "n0.jsonl"), "-N", "0"])
    assert rc == 2 and "--locate gold-path" in err, (rc, err)
    rc, _, err = run([SALIGN, "data", "rollout", "--upstream", NAME, "--input", inp, "--out",
                      os.path.join(tmpdir(), "n0.jsonl"), "--locate", "path"])
    assert rc == 2, (rc, err)


@test
def usage_errors():
    rc, _, err = run([SALIGN, "data", "rollout", "--upstream", NAME, "--input", "x.jsonl"])
    assert rc == 2 and "--out" in err, (rc, err)
    rc, _, err = run([SALIGN, "data", "rollout", "--upstream", NAME, "--input", "x", "--out", "y", "--temp", "0"])
    assert rc == 2, (rc, err)


if __name__ == "__main__":
    main()
