"""test_continue_cli.py: `salign data continue` (teacher-forced continuations) end to end on
SmolLM2-135M-Instruct: a copy record continued gives back the upstream's own draft byte for byte
(the rounds after it as `salign align --mode upstream` wrote them), a correction is forced in
after the upstream's separator and the upstream goes on from it, `salign eval math` grades the
answers by question, a run cut in the middle resumes to the files of one run, --parallel gives
the lines of one worker, and bad input gets a clear error."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import SALIGN, main, models_dir, test, tmpdir  # noqa: E402

NAME = "smollm2-135m-instruct"
GGUF = os.path.join(models_dir(), NAME, "SmolLM2-135M-Instruct.Q4_1.gguf")
# batch-invariant kernels: the same bits whatever the KV cache holds from the record before (a
# resumed run starts with an empty one)
COMMON = ["--max-length", "120", "-t", "2", "--batch-invariant"]
# the first question of GSM8K train (openai/grade-school-math): a training question, never a test one
TRAIN_0 = {
    "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                "How many clips did Natalia sell altogether in April and May?",
    "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether "
              "in April and May.\n#### 72"}
FIX = "In May, she sold 48 / 2 = 24 clips."


def run(args, timeout=240):
    assert os.path.exists(GGUF), "missing %s: run scripts/setup.sh (salign pull %s)" % (GGUF, NAME)
    p = subprocess.run(args, capture_output=True, timeout=timeout)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def ok(args):
    rc, out, err = run(args)
    assert rc == 0, "exit %d: %s\n%s" % (rc, " ".join(args), err)
    return out, err


def lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


STATE = {}


def draft():
    """The upstream's greedy answer to TRAIN_0 and its trace, and records made from it: a copy
    record of each sentence, then a fix of the second sentence."""
    if not STATE:
        d = tmpdir()
        q = write(os.path.join(d, "q.jsonl"), [TRAIN_0])
        ok([SALIGN, "align", "--upstream", NAME, "--mode", "upstream", "--input", q, "--output",
            os.path.join(d, "d.jsonl"), "--trace", os.path.join(d, "d.trace.jsonl")] + COMMON)
        trace = lines(os.path.join(d, "d.trace.jsonl"))
        assert len(trace) >= 3, trace
        recs, prefix = [], ""
        for r in trace:
            recs.append({"question": r["question"], "prefix": prefix, "last": r["y1"], "correction": r["y1"]})
            prefix += r["text"]
        assert trace[1]["y1"] != FIX
        recs.append({"question": TRAIN_0["question"], "prefix": trace[0]["text"], "last": trace[1]["y1"],
                     "correction": "  " + FIX + "\n", "source": "test:fix"})
        STATE.update(answer=lines(os.path.join(d, "d.jsonl"))[0]["answer"], trace=trace,
                     recs=write(os.path.join(d, "recs.jsonl"), recs), n=len(recs))
    return STATE


def cont(recs, out, extra=()):
    return ok([SALIGN, "data", "continue", "--upstream", NAME, "--input", recs, "--out", out,
               "--trace", out + ".trace"] + COMMON + list(extra))


@test
def copies_give_back_the_draft():
    st = draft()
    out = os.path.join(tmpdir(), "all.jsonl")
    _, err = cont(st["recs"], out, ["--all"])
    assert "%d record(s) continued (0 before)" % st["n"] in err and "ETA" in err, err
    answers = lines(out)
    assert [a["record"] for a in answers] == list(range(st["n"])), answers
    trace = lines(out + ".trace")
    draft_rounds = [(r["y1"], r["text"]) for r in st["trace"]]
    for k, a in enumerate(answers[:-1]):  # the copy of sentence k+1
        assert "id" not in a and a["same_last"] and a["done"] and not a["cut"], a
        assert a["answer"] == st["answer"], (k, a["answer"], st["answer"])
        assert a["rounds"] == len(draft_rounds) - k - 1, a
        rs = [r for r in trace if r["record"] == k]
        assert [r["round"] for r in rs] == list(range(1, len(rs) + 1)), rs
        assert [r["forced"] for r in rs] == [True] * (2 if k else 1) + [False] * a["rounds"], rs
        assert [(r["y1"], r["text"]) for r in rs if not r["forced"]] == draft_rounds[k + 1:], k
        assert "".join(r["text"] for r in rs) == a["answer"] and rs[-1]["answer_so_far"] == a["answer"]
        assert rs[-1]["eos"] or a["rounds"] == 0, rs[-1]


@test
def a_fix_is_forced_and_the_upstream_goes_on():
    st = draft()
    out = os.path.join(tmpdir(), "fix.jsonl")
    _, err = cont(st["recs"], out)  # without --all: only the record whose correction differs
    assert "1 record(s) continued" in err, err
    (a,) = lines(out)
    assert a["record"] == st["n"] - 1 and a["source"] == "test:fix" and a["same_last"], a
    sep = st["trace"][1]["text"][:len(st["trace"][1]["text"]) - len(st["trace"][1]["text"].lstrip())]
    head = st["trace"][0]["text"] + sep + FIX
    assert a["answer"].startswith(head) and a["answer"] != st["answer"], (a["answer"], head)
    rs = lines(out + ".trace")
    assert [r["forced"] for r in rs[:2]] == [True, True] and not any(r["forced"] for r in rs[2:]), rs
    assert rs[1]["y1"] == st["trace"][1]["y1"] and rs[1]["y2"] == FIX and rs[1]["text"] == sep + FIX, rs[1]
    assert "".join(r["text"] for r in rs) == a["answer"] and len(rs) == 2 + a["rounds"], rs
    # graded by question against the training gold (an "id" would be read as a gold line index)
    gold = write(os.path.join(tmpdir(), "gold.jsonl"), [TRAIN_0])
    details = os.path.join(tmpdir(), "fix.details.jsonl")
    ok([SALIGN, "eval", "math", "--data", "gsm8k", "--answers", out, "--gold", gold, "--details", details])
    (d,) = lines(details)
    assert d["index"] == 0 and d["gold"] == "72", d


@test
def resume_gives_the_files_of_one_run():
    st = draft()
    one = os.path.join(tmpdir(), "one.jsonl")
    cont(st["recs"], one, ["--all"])
    part = os.path.join(tmpdir(), "part.jsonl")
    cont(st["recs"], part, ["--all", "--limit", "2"])
    with open(part + ".trace", "a") as f:  # a record whose answer line never came: its rounds go
        f.write(json.dumps({"record": 5, "round": 1}) + "\n")
    with open(part, "a") as f:  # and a line cut in the middle
        f.write('{"record": 2, "question": "cut in the mid')
    _, err = cont(st["recs"], part, ["--all"])
    assert "last line was cut" in err and "2 record(s) already continued" in err, err
    with open(one) as f1, open(part) as f2:
        assert f1.read() == f2.read()
    # the trace is the same but for the prompt tokens each round evaluated (what the KV cache held)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "upstream_prefill"} for r in rows]  # noqa: E731
    assert strip(lines(one + ".trace")) == strip(lines(part + ".trace"))
    _, err = cont(st["recs"], part, ["--all"])
    assert "%d record(s) already continued" % st["n"] in err and "0 record(s) continued" in err, err


@test
def parallel_gives_the_lines_of_one_worker():
    st = draft()
    one = os.path.join(tmpdir(), "one.jsonl")
    if not os.path.exists(one):
        cont(st["recs"], one, ["--all"])
    par = os.path.join(tmpdir(), "par.jsonl")
    _, err = cont(st["recs"], par, ["--all", "--parallel", "3"])
    assert "%d record(s) continued" % st["n"] in err, err
    key = lambda r: (r["record"], r.get("round", 0))  # noqa: E731
    strip = lambda rows: sorted(({k: v for k, v in r.items() if k != "upstream_prefill"} for r in rows), key=key)  # noqa: E731
    assert strip(lines(par)) == strip(lines(one))
    assert strip(lines(par + ".trace")) == strip(lines(one + ".trace"))


@test
def bad_input_is_refused_clearly():
    d = tmpdir()
    answer_rec = write(os.path.join(d, "ans.jsonl"), [{"question": "q", "answer": "a", "correction": "b"}])
    rc, _, err = run([SALIGN, "data", "continue", "--upstream", NAME, "--input", answer_rec, "--out",
                      os.path.join(d, "x.jsonl")])
    assert rc == 1 and "ans.jsonl" in err, (rc, err)
    bad = os.path.join(d, "bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"question": "q", "prefix": "", "last": 3, "correction": "c"}\n')
    rc, _, err = run([SALIGN, "data", "continue", "--upstream", NAME, "--input", bad, "--out",
                      os.path.join(d, "x.jsonl")])
    assert rc == 1 and "bad.jsonl:1" in err and "last" in err, (rc, err)
    rc, _, err = run([SALIGN, "data", "continue", "--upstream", "http://127.0.0.1:9", "--input", bad, "--out",
                      os.path.join(d, "x.jsonl")])
    assert rc == 2 and "local model" in err, (rc, err)
    rc, _, err = run([SALIGN, "data", "continue", "--upstream", NAME, "--input", bad])
    assert rc == 2 and "--out" in err, (rc, err)
    assert not os.path.exists(os.path.join(d, "x.jsonl"))


if __name__ == "__main__":
    main()
