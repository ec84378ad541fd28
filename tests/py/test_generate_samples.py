"""test_generate_samples.py: `salign generate --samples N` as a black box on SmolLM2-135M:
N samples of one prompt forked from one prefill and decoded together (sa_batch_decode).
Sample i is seeded S+i; the same seed gives the same texts; under --batch-invariant sample i
equals a run of its own with --seed S+i (batched = alone, bitwise); each sample stops on its
own (end-of-generation or -n); greedy samples are all the same; the text output is numbered."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import SALIGN, main, models_dir, test  # noqa: E402

SMOL = os.path.join(models_dir(), "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
PROMPT = "Once upon a time"


def gen(*args):
    r = subprocess.run([SALIGN, "generate", "-m", SMOL, "-t", "2", *args], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    return r.stdout


def samples(*args):
    rows = [json.loads(line) for line in gen(*args, "--json").splitlines()]
    assert [x["index"] for x in rows] == list(range(len(rows))), rows
    return rows


@test
def test_usage():
    for bad in (["--samples", "0"], ["--samples", "257"], ["--samples", "x"]):
        r = subprocess.run([SALIGN, "generate", "-m", SMOL, "-p", "hi", *bad], capture_output=True, text=True)
        assert r.returncode == 2 and "--samples" in r.stderr, (bad, r.returncode, r.stderr)
    r = subprocess.run([SALIGN, "chat", "-m", SMOL, "--samples", "2"], capture_output=True, text=True)
    assert r.returncode == 2, r  # generate's option only
    h = subprocess.run([SALIGN, "generate", "--help"], capture_output=True, text=True).stdout
    assert "--samples" in h and "S+i" in h and "greedy" in h, h


@test
def test_reproducible_by_seed():
    """Same seed, same texts; sample i has seed S+i; different seeds give different samples."""
    a = samples("-p", PROMPT, "-n", "16", "--samples", "3", "--seed", "11")
    b = samples("-p", PROMPT, "-n", "16", "--samples", "3", "--seed", "11")
    assert a == b, (a, b)
    assert [x["seed"] for x in a] == [11, 12, 13], a
    for x in a:
        assert x["stop"] in ("eog", "length") and 0 < x["n_tokens"] <= 16 and x["text"], x
    assert len({x["text"] for x in a}) > 1, a  # temperature 0.8: the seeds part them
    # no --seed: a random S, printed, and S+i
    r = samples("-p", PROMPT, "-n", "4", "--samples", "2")
    assert r[1]["seed"] == r[0]["seed"] + 1, r


@test
def test_sample_equals_its_own_run_batch_invariant():
    """Sample i of --samples 4 --seed S is the run of its own with --seed S+i (both
    --batch-invariant: a sequence's logits in a batch are bitwise those it gets alone)."""
    rows = samples("-p", PROMPT, "-n", "20", "--samples", "4", "--seed", "100", "--batch-invariant")
    for x in rows:
        alone = json.loads(gen("-p", PROMPT, "-n", "20", "--seed", str(100 + x["index"]), "--batch-invariant",
                               "--json"))
        assert x["seed"] == 100 + x["index"], x
        assert x["text"] == alone["text"] and x["n_tokens"] == alone["generated_tokens"], (x, alone)


@test
def test_stops_per_sequence():
    """Each sample ends at its own end-of-generation token or at -n: here (seed 1, a yes/no
    chat question) one sample answers "No" and ends while the others run to 8 tokens; each
    equals its own run."""
    args = ["--chat", "-p", "Is the sky blue? Answer yes or no.", "-n", "8", "--temp", "1", "--batch-invariant"]
    rows = samples(*args, "--samples", "8", "--seed", "1")
    stops = {x["stop"] for x in rows}
    assert stops == {"eog", "length"}, rows
    for x in rows:
        if x["stop"] == "eog":
            assert x["n_tokens"] < 8, x
        else:
            assert x["n_tokens"] == 8, x
    for x in (next(x for x in rows if x["stop"] == "eog"), next(x for x in rows if x["stop"] == "length")):
        alone = json.loads(gen(*args, "--seed", str(x["seed"]), "--json"))
        assert x["text"] == alone["text"] and x["n_tokens"] == alone["generated_tokens"], (x, alone)


@test
def test_greedy_all_same_and_text_output():
    """--temp 0: every sample is the greedy completion (batch-invariant: the same bits as a
    single greedy run); the text output numbers the samples and names their seeds."""
    rows = samples("-p", PROMPT, "-n", "12", "--samples", "3", "--temp", "0", "--batch-invariant")
    alone = gen("-p", PROMPT, "-n", "12", "--temp", "0", "--batch-invariant")
    assert all(x["text"] == rows[0]["text"] for x in rows) and rows[0]["text"] + "\n" == alone, (rows, alone)
    out = gen("-p", PROMPT, "-n", "6", "--samples", "2", "--seed", "5")
    assert out.startswith("--- sample 0 of 2 (seed 5, ") and "--- sample 1 of 2 (seed 6, " in out, out


if __name__ == "__main__":
    main()
