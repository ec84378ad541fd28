"""test_bench_cli.py: `salign bench` as a black box: --help, exit 2 on bad options, exit 1
on a missing model, and a tiny run on SmolLM2-135M whose table and JSON (the fields
bench/engine_vs_llama_cpp.sh reads, the same as bench/peer_llama_cpp.py's) are well formed.
The speed itself is measured by bench/engine_vs_llama_cpp.sh, not here."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import SALIGN, main, models_dir, test  # noqa: E402

SMOL = os.path.join(models_dir(), "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")


def run(*args):
    return subprocess.run([SALIGN, "bench", *args], capture_output=True, text=True, timeout=300)


@test
def test_help_and_usage_errors():
    r = run("--help")
    assert r.returncode == 0 and "Usage: salign bench" in r.stdout, r
    for bad in (["--bogus"], ["-m", SMOL, "-t", "0"], ["-m", SMOL, "-t", "1,"], ["-m", SMOL, "-t", "x"],
                ["-m", SMOL, "-p", "-3"], ["-m", SMOL, "--reps", "0"], ["-m", SMOL, "-p", "0", "-n", "0"],
                ["-m"], [], ["-m", SMOL, "extra"], ["-m", SMOL, "--batch", "0"], ["-m", SMOL, "--batch", "1,"],
                ["-m", SMOL, "--batch", "x"], ["-m", SMOL, "--batch", "1", "-n", "0"],
                ["-m", SMOL, "--batch", "1", "-p", "0"]):
        r = run(*bad)
        assert r.returncode == 2, (bad, r.returncode, r.stderr)
        assert "salign bench" in r.stderr, (bad, r.stderr)
    r = run("-m", "/nonexistent/model.gguf")
    assert r.returncode == 1, r


@test
def test_tiny_run_json_and_table():
    assert os.path.exists(SMOL), "missing %s (salign pull smollm2-135m-instruct)" % SMOL
    r = run("-m", SMOL, "-p", "8", "-n", "4", "-t", "1,2", "--reps", "1", "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["threads"] for x in rows] == [1, 2], rows
    for x in rows:
        assert x["engine"] == "salign" and x["model"] == os.path.basename(SMOL) and x["mmap"] is True, x
        assert x["pp"] == 8 and x["tg"] == 4 and x["pp_tok_s"] > 0 and x["tg_tok_s"] > 0, x
    r = run("-m", SMOL, "-p", "0", "-n", "3", "-t", "1", "--reps", "1")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any("| tg3" in ln for ln in lines) and not any("| pp" in ln for ln in lines), r.stdout


@test
def test_batch_json():
    """--batch 1,2 --json: one object per (threads, batch) with the aggregate decode rate
    (the fields bench/batched_vs_llama_cpp.sh reads, the same as bench/llama_cpp_batched.py's);
    the table without --json; the single-sequence output is unchanged without --batch."""
    r = run("-m", SMOL, "-p", "8", "-n", "4", "-t", "1,2", "--reps", "1", "--batch", "1,2", "--json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(x["threads"], x["batch"]) for x in rows] == [(1, 1), (1, 2), (2, 1), (2, 2)], rows
    for x in rows:
        assert x["engine"] == "salign" and x["model"] == os.path.basename(SMOL), x
        assert x["pp"] == 8 and x["tg"] == 4 and x["reps"] == 1, x
        # sane: positive, and below what any CPU decodes a 135M model at (1e6 tok/s)
        assert 0 < x["tg_tok_s"] < 1e6 and 0 < x["pp_tok_s"] < 1e7, x
        assert abs(x["tg_seq_tok_s"] * x["batch"] - x["tg_tok_s"]) <= 0.1 * x["batch"], x
    r = run("-m", SMOL, "-p", "4", "-n", "2", "-t", "1", "--reps", "1", "--batch", "2", "--batch-invariant")
    assert r.returncode == 0, r.stderr
    assert any(ln.startswith("|       1 |     2 | tg2") for ln in r.stdout.splitlines()), r.stdout


@test
def test_no_mmap():
    """--no-mmap and SALIGN_NO_MMAP=1 load the weights into memory; the JSON says which, and
    greedy generation gives the same text either way."""
    r = run("-m", SMOL, "-p", "4", "-n", "2", "-t", "1", "--reps", "1", "--no-mmap", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["mmap"] is False, r.stdout
    env = dict(os.environ, SALIGN_NO_MMAP="1")
    r = subprocess.run([SALIGN, "bench", "-m", SMOL, "-p", "4", "-n", "2", "-t", "1", "--reps", "1", "--json"],
                       capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0 and json.loads(r.stdout)["mmap"] is False, (r.stdout, r.stderr)
    gen = [SALIGN, "generate", "-m", SMOL, "-p", "The capital of France is", "-n", "16", "-t", "1", "--temp", "0"]
    a = subprocess.run(gen, capture_output=True, text=True, timeout=300)
    b = subprocess.run(gen, capture_output=True, text=True, timeout=300, env=env)
    assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
    assert a.stdout == b.stdout and len(a.stdout) > 10, (a.stdout, b.stdout)


@test
def test_batch_invariant_option():
    """--batch-invariant (sa_ctx_params.batch_invariant) on the commands that make a context."""
    r = subprocess.run([SALIGN, "bench", "-m", SMOL, "-p", "4", "-n", "2", "-t", "1", "--reps", "1", "--json",
                        "--batch-invariant"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and json.loads(r.stdout)["tg_tok_s"] > 0, (r.stdout, r.stderr)
    gen = [SALIGN, "generate", "-m", SMOL, "-p", "The capital of France is", "-n", "8", "-t", "1", "--temp", "0"]
    a = subprocess.run(gen + ["--batch-invariant"], capture_output=True, text=True, timeout=300)
    assert a.returncode == 0 and len(a.stdout) > 5, (a.stdout, a.stderr)
    h = subprocess.run([SALIGN, "generate", "--help"], capture_output=True, text=True, timeout=60)
    assert "--batch-invariant" in h.stdout, h.stdout


if __name__ == "__main__":
    main()
