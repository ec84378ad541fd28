"""test_eval_judge_cli.py: black-box checks of `salign eval judge` and `salign eval report`.
Judge: a real small local judge (SmolLM2-135M-Instruct, greedy, few tokens) on 3 pairs: the
run completes and counts every pair (its verdicts are mostly unparsable: that is counted, not
an error); a re-run is served from the cache; a run killed (SIGKILL) after its first pair
resumes to the same result with every cache key once; usage and pairing errors. Report: the
outputs of `eval math --per-round --json` and `eval winrate --json` plus a pipeline trace give
a Markdown report whose SVG plots parse as XML (xml.etree) with the expected elements."""
import json
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(__file__))
from harness import SALIGN, SHARED_DATA, main, models_dir, test, tmpdir  # noqa: E402

MODEL = os.path.join(models_dir(), "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
GSM8K_TEST = os.path.join(SHARED_DATA, "gsm8k", "test.jsonl")
SVG = "{http://www.w3.org/2000/svg}"


def run(*args, code=0, timeout=120):
    p = subprocess.run([SALIGN, *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == code, "salign %s: exit %d (want %d)\n%s%s" % (
        " ".join(args), p.returncode, code, p.stdout, p.stderr)
    return p


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def pair_files(d):
    a = os.path.join(d, "a.jsonl")
    b = os.path.join(d, "b.jsonl")
    write_jsonl(a, [
        {"id": 0, "question": "What is 2 + 3?", "answer": "2 + 3 = 5. The answer is 5."},
        {"id": 1, "question": "What is the capital of France?", "answer": "The capital of France is Paris."},
        {"id": 2, "question": "How many legs does a spider have?", "answer": "A spider has 8 legs."},
    ])
    write_jsonl(b, [  # another order: pairs are matched by id
        {"id": 2, "question": "How many legs does a spider have?", "answer": "Spiders have six legs."},
        {"id": 0, "question": "What is 2 + 3?", "answer": "It is 6."},
        {"id": 1, "question": "What is the capital of France?", "answer": "Lyon."},
    ])
    return a, b


def cache_keys(path):
    with open(path) as f:
        text = f.read()
    assert text == "" or text.endswith("\n"), "cache ends in a torn line"
    return [json.loads(line)["key"] for line in text.splitlines() if line.strip()]


JUDGE_ARGS = ["--judge", MODEL, "--aspect", "helpful", "--max-tokens", "24", "--retries", "1", "--threads", "2"]


@test
def judge_real_model_cache_and_kill_resume():
    assert os.path.exists(MODEL), "missing model %s (run scripts/setup.sh)" % MODEL
    d = tmpdir()
    a, b = pair_files(d)
    c1, c2, out = (os.path.join(d, n) for n in ("c1.jsonl", "c2.jsonl", "pairs.jsonl"))
    for p in (c1, c2):
        if os.path.exists(p):
            os.unlink(p)
    t0 = time.time()
    r1 = json.loads(run("eval", "judge", "--a", a, "--b", b, *JUDGE_ARGS, "--cache", c1, "--out", out,
                        "--json", "--quiet", "--label", "A vs B").stdout)
    t_run = time.time() - t0
    assert r1["pairs"] == 3 and r1["win"] + r1["loss"] + r1["equal"] + r1["invalid"] == 3, r1
    assert 6 <= r1["requests"] <= 12 and r1["cached"] == 0, r1  # 2 orders x 3, + at most 1 retry each
    assert r1["requests"] == 6 + r1["retries"]
    assert r1["invalid_orders"] <= 6 and r1["label"] == "A vs B" and r1["aspect"] == "helpful"
    assert r1["judge"].startswith("local:SmolLM2-135M-Instruct.Q4_1.gguf:") and "max_tokens=24" in r1["judge"]
    assert -100 <= r1["win_rate"] <= 100
    keys1 = cache_keys(c1)
    assert len(keys1) == r1["requests"] and len(set(keys1)) == len(keys1)
    lines = [json.loads(line) for line in open(out)]
    assert [x["key"] for x in lines] == ["0", "1", "2"]
    for x in lines:
        assert x["outcome"] in ("win", "loss", "equal", "invalid") and 1 <= x["attempts_ab"] <= 2
        assert isinstance(x["judge_ab"], str) and isinstance(x["judge_ba"], str)
    # a re-run is free: every answer from the cache, the same result
    r2 = json.loads(run("eval", "judge", "--a", a, "--b", b, *JUDGE_ARGS, "--cache", c1, "--json", "--quiet").stdout)
    assert r2["requests"] == 0 and r2["cached"] == r1["requests"], r2
    for k in ("win", "loss", "equal", "invalid", "win_rate", "ci95", "retries", "invalid_orders"):
        assert r2[k] == r1[k], (k, r1, r2)
    assert cache_keys(c1) == keys1
    # killed (SIGKILL) once its first pair is reported, then resumed
    p = subprocess.Popen([SALIGN, "eval", "judge", "--a", a, "--b", b, *JUDGE_ARGS, "--cache", c2, "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = p.stderr.readline()
    assert first.startswith("[1/3]"), first
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    p.stdout.close()
    p.stderr.close()
    n_killed = len(cache_keys(c2))
    assert 2 <= n_killed < r1["requests"], n_killed
    r3 = json.loads(run("eval", "judge", "--a", a, "--b", b, *JUDGE_ARGS, "--cache", c2, "--json", "--quiet").stdout)
    assert r3["cached"] == n_killed and r3["requests"] == r1["requests"] - n_killed, (r3, n_killed)
    for k in ("win", "loss", "equal", "invalid", "win_rate", "ci95"):
        assert r3[k] == r1[k], (k, r1, r3)
    keys3 = cache_keys(c2)
    assert sorted(keys3) == sorted(keys1) and len(set(keys3)) == len(keys3)
    assert t_run < 60, "the 3-pair judge run took %.1f s" % t_run


@test
def judge_usage_and_pairing_errors():
    d = tmpdir()
    a, b = pair_files(d)
    p = run("eval", "judge", "--a", a, "--b", b, "--aspect", "helpful", code=2)
    assert "--judge" in p.stderr
    p = run("eval", "judge", "--a", a, "--b", b, "--judge", MODEL, "--aspect", "honest", code=2)
    assert "honest" in p.stderr
    p = run("eval", "judge", "--a", a, "--b", b, "--judge", "http://127.0.0.1:9/v1", "--aspect", "helpful", code=2)
    assert "--judge-template" in p.stderr
    p = run("eval", "judge", "--a", a, "--b", b, "--judge", MODEL, "--aspect", "helpful", "--retries", "x", code=2)
    # B lacks id 2 and has an extra id 7: a runtime error naming both, before any model is loaded
    b2 = os.path.join(d, "b2.jsonl")
    write_jsonl(b2, [{"id": 0, "answer": "x"}, {"id": 1, "answer": "y"}, {"id": 7, "answer": "z"}])
    p = run("eval", "judge", "--a", a, "--b", b2, "--judge", MODEL, "--aspect", "helpful", code=1)
    assert 'id "2"' in p.stderr and 'id "7"' in p.stderr and "do not pair up" in p.stderr, p.stderr
    # the same question twice in one file
    b3 = os.path.join(d, "b3.jsonl")
    write_jsonl(b3, [{"id": 0, "answer": "x"}, {"id": 0, "answer": "y"}])
    p = run("eval", "judge", "--a", a, "--b", b3, "--judge", MODEL, "--aspect", "helpful", code=1)
    assert "second answer" in p.stderr
    # a prompt file without the placeholders
    bad = os.path.join(d, "bad_prompt.txt")
    with open(bad, "w") as f:
        f.write("[user]\nJudge {question}.\n")
    p = run("eval", "judge", "--a", a, "--b", b, "--judge", MODEL, "--aspect", "helpful", "--prompt", bad, code=1)
    assert "{answer_a}" in p.stderr


def trace_rows():
    """A pipeline trace (the fields `salign align --trace` writes) over GSM8K test ids 0-3."""
    gold = []
    with open(GSM8K_TEST) as f:
        for i, line in enumerate(f):
            if i == 4:
                break
            gold.append(json.loads(line)["answer"].split("####")[-1].strip())
    rows = []
    for i, g in enumerate(gold):
        for rd in (1, 2, 3):
            final = rd == 3 or (i == 0 and rd == 2)
            if i == 0 and rd == 3:
                continue  # finished early: keeps its answer
            text = "Step %d." % rd + (" The answer is %s." % (g if i % 2 == 0 else "0") if final else "")
            rows.append({"id": i, "round": rd, "answer_so_far": text, "y1": "s", "y2": "s", "aligned": True,
                         "copied": rd == 1, "edit_ratio": 0.0 if rd == 1 else 0.15 * rd + 0.01 * i,
                         "eos": final, "upstream_ms": 40.0 * rd + i, "aligner_ms": 10.0 * rd})
    return rows


@test
def report_from_cli_results_parses_as_svg():
    d = os.path.join(tmpdir(), "results")
    os.makedirs(d, exist_ok=True)
    trace = os.path.join(d, "stream_trace.jsonl")
    write_jsonl(trace, trace_rows())
    acc = run("eval", "math", "--data", "gsm8k", "--gold", GSM8K_TEST, "--per-round", trace, "--json").stdout
    with open(os.path.join(d, "stream_rounds.json"), "w") as f:
        f.write(acc)
    rounds = json.loads(acc)["rounds"]
    assert [r["round"] for r in rounds] == [1, 2, 3] and rounds[-1]["correct"] == 2, rounds
    judg = os.path.join(tmpdir(), "judgments.jsonl")
    write_jsonl(judg, [{"ab": "[[A]]", "ba": "[[B]]"}] * 5 + [{"ab": "[[B]]", "ba": "[[A]]"}] * 2 +
                [{"ab": "[[C]]", "ba": "[[C]]"}])
    with open(os.path.join(d, "winrate_helpful.json"), "w") as f:
        f.write(run("eval", "winrate", "--judgments", judg, "--json").stdout)
    out = os.path.join(tmpdir(), "report.md")
    p = run("eval", "report", "--results", d, "--out", out, "--title", "CLI report")
    assert "1 accuracy results (1 by round), 1 win rates, 1 traces, 4 plots" in p.stdout, p.stdout
    md = open(out).read()
    assert md.startswith("# CLI report\n")
    for sec in ("## Accuracy by round", "## Win rate", "## Edit ratio", "## Latency"):
        assert sec in md, sec
    links = [line[line.index("](") + 2:-1] for line in md.splitlines() if line.startswith("![")]
    assert links == ["report-accuracy-rounds.svg", "report-winrate.svg", "report-edit-ratio.svg",
                     "report-latency.svg"], links
    want = {  # plot: (element, class, how many)
        "report-accuracy-rounds.svg": [("polyline", "series", 1), ("polygon", "band", 1), ("circle", None, 3)],
        "report-winrate.svg": [("rect", "bar", 1), ("path", "interval", 1)],
        "report-edit-ratio.svg": [("rect", "bar", 11)],
        "report-latency.svg": [("polyline", "series", 1), ("circle", None, 3)],
    }
    for name, marks in want.items():
        root = ET.parse(os.path.join(tmpdir(), name)).getroot()  # raises on malformed XML
        assert root.tag == SVG + "svg" and root.get("width") and root.get("viewBox"), (name, root.tag)
        assert root.find(SVG + "title") is not None and root.find(SVG + "title").text
        for tag, cls, n in marks:
            found = [e for e in root.iter(SVG + tag) if cls is None or e.get("class") == cls]
            assert len(found) == n, (name, tag, cls, len(found), n)
        texts = [e.text for e in root.iter(SVG + "text")]
        assert any(t for t in texts), name
    # the win rate: 5 wins, 2 losses, 1 tie -> (5 - 2) / 8 x 100
    assert "| winrate_helpful |  | 5 | 2 | 1 | 0 | 37.50 |" in md, md
    # an unknown named file is an error (exit 1), a missing option a usage error (exit 2)
    junk = os.path.join(tmpdir(), "junk.json")
    with open(junk, "w") as f:
        f.write('{"hello": 1}\n')
    p = run("eval", "report", "--results", junk, "--out", out, code=1)
    assert "junk.json" in p.stderr
    run("eval", "report", "--results", d, code=2)


if __name__ == "__main__":
    main()
