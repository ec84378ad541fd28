"""test_data_build_cli.py: black-box checks of `salign data build` with a real small model
(SmolLM2-135M-Instruct as both upstream and annotator, greedy) on 2 GSM8K test questions with
--max-rounds 2: the run completes, its summary counts add up (a 135M annotator mostly writes
malformed annotations: they are counted and skipped, never written), every written record is a
valid sentence record whose question is one of the prompts, the checkpoint lists both prompts,
a re-run is idempotent (nothing redone, output unchanged), and usage / refusal errors."""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import SALIGN, SHARED_DATA, main, models_dir, test, tmpdir  # noqa: E402

MODEL = os.path.join(models_dir(), "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
GSM8K_TEST = os.path.join(SHARED_DATA, "gsm8k", "test.jsonl")


def run(*args, code=0, timeout=120):
    p = subprocess.run([SALIGN, *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == code, "salign %s: exit %d (want %d)\n%s%s" % (
        " ".join(args), p.returncode, code, p.stdout, p.stderr)
    return p


def prompts_file(d, n=2):
    assert os.path.exists(GSM8K_TEST), "missing %s (shared data)" % GSM8K_TEST
    path = os.path.join(d, "prompts.jsonl")
    with open(GSM8K_TEST) as f, open(path, "w") as g:
        for _ in range(n):
            g.write(f.readline())
    return path


def summary(stderr):
    m = re.search(r"(\d+) prompts \((\d+) already done, (\d+) done now\), (\d+) records written, (\d+) sentences, "
                  r"(\d+) annotator requests \((\d+) retries\), (\d+) malformed answers, (\d+) sentences skipped",
                  stderr)
    assert m, "no summary line in:\n" + stderr
    keys = ["prompts", "already", "done", "records", "sentences", "requests", "retries", "malformed", "skipped"]
    return dict(zip(keys, map(int, m.groups())))


@test
def real_build_and_rerun():
    assert os.path.exists(MODEL), "missing %s: run scripts/setup.sh" % MODEL
    d = tmpdir()
    prompts = prompts_file(d)
    out = os.path.join(d, "records.jsonl")
    args = ["data", "build", "--prompts", prompts, "--upstream", MODEL, "--annotator", MODEL, "--out", out,
            "--reference-field", "answer", "--max-rounds", "2", "--retries", "1", "--max-tokens", "48",
            "--max-sentence-tokens", "64", "-t", "2"]
    t0 = time.time()
    p = run(*args, timeout=60)
    dt = time.time() - t0
    s = summary(p.stderr)
    assert s["prompts"] == 2 and s["done"] == 2 and s["already"] == 0, s
    assert 2 <= s["sentences"] <= 4, s  # at least one sentence a prompt, at most --max-rounds
    assert s["records"] + s["skipped"] == s["sentences"], s
    assert s["requests"] == s["sentences"] + s["retries"], s
    assert s["malformed"] == s["skipped"] * 2 + (s["retries"] - s["skipped"]), s
    assert "ETA" in p.stderr, p.stderr
    with open(out) as f:
        lines = [json.loads(x) for x in f.read().splitlines() if x.strip()]
    assert len(lines) == s["records"], (len(lines), s)
    with open(prompts) as f:
        questions = {json.loads(x)["question"] for x in f}
    for r in lines:
        assert set(r) == {"question", "prefix", "last", "correction", "eos", "source"}, r
        assert r["question"] in questions and r["correction"].strip() and isinstance(r["eos"], bool), r
        assert re.fullmatch(r"build:[01]:[12]", r["source"]), r
    if s["records"]:
        c = run("data", "check", "--input", out, "--kind", "sentence")
        assert "%d records" % s["records"] in c.stdout, c.stdout
    else:  # the stand-in annotator's revisions were all malformed: a file with no records is an error
        c = run("data", "check", "--input", out, "--kind", "sentence", code=1)
        assert "no records" in c.stderr, c.stderr
    with open(out + ".ckpt") as f:
        ck = [json.loads(x) for x in f.read().splitlines()]
    assert "fingerprint" in ck[0] and sorted(x["prompt"] for x in ck[1:]) == [0, 1], ck
    # idempotent: nothing redone, nothing written
    with open(out, "rb") as f:
        before = f.read()
    p2 = run(*args, timeout=60)
    s2 = summary(p2.stderr)
    assert s2["already"] == 2 and s2["done"] == 0 and s2["requests"] == 0, s2
    with open(out, "rb") as f:
        assert f.read() == before
    print("    real run: %.1f s, %s" % (dt, s))


@test
def usage_and_refusals():
    d = tmpdir()
    prompts = prompts_file(d, 1)
    out = os.path.join(d, "x.jsonl")
    p = run("data", "build", "--prompts", prompts, "--upstream", MODEL, "--out", out, code=2)
    assert "--annotator" in p.stderr, p.stderr
    p = run("data", "build", "--prompts", prompts, "--upstream", MODEL, "--annotator", MODEL, "--out", out,
            "--max-rounds", "0", code=2)
    assert "--max-rounds" in p.stderr, p.stderr
    p = run("data", "build", "--prompts", prompts, "--upstream", "http://127.0.0.1:9/v1", "--annotator", MODEL,
            "--out", out, code=2)
    assert "--upstream-template" in p.stderr, p.stderr
    with open(out, "w") as f:
        f.write('{"not": "a build"}\n')
    p = run("data", "build", "--prompts", prompts, "--upstream", MODEL, "--annotator", MODEL, "--out", out, code=1)
    assert "no checkpoint" in p.stderr, p.stderr
    bad = os.path.join(d, "bad_prompt.txt")
    with open(bad, "w") as f:
        f.write("Question: {question}\nSentence: {sentence}\n")
    p = run("data", "build", "--prompts", prompts, "--upstream", MODEL, "--annotator", MODEL,
            "--out", os.path.join(d, "y.jsonl"), "--prompt", bad, code=1)
    assert "{prefix}" in p.stderr, p.stderr


if __name__ == "__main__":
    main()
