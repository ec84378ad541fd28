"""test_bench_pipeline.py: `salign bench pipeline` (issue 5, Speed) end to end on one GSM8K
question with SmolLM2-135M as both upstream and aligner and tiny limits: the JSON report has
every configuration and metric, the numbers agree with what each configuration does
(no drafts without speculation, no aligner in upstream mode, more prompt tokens without KV
reuse), and with batch-invariant kernels the stream answers are identical with and without
speculation and KV reuse. Plus the usage errors."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import SALIGN, SHARED_DATA, main, models_dir, test  # noqa: E402

MODEL = "smollm2-135m-instruct"
GSM8K = os.path.join(SHARED_DATA, "gsm8k", "test.jsonl")
CONFIGS = ["stream", "stream-no-spec", "stream-no-kv", "aligner", "upstream"]


def run(*args, timeout=120):
    return subprocess.run([SALIGN, "bench", "pipeline", *args], capture_output=True, text=True, timeout=timeout)


@test
def test_json_report():
    assert os.path.exists(os.path.join(models_dir(), MODEL)), "model %s missing: run scripts/setup.sh" % MODEL
    assert os.path.exists(GSM8K), "GSM8K missing: %s" % GSM8K
    p = run("--upstream", MODEL, "--aligner", MODEL, "--questions", GSM8K, "-n", "1", "--max-rounds", "2",
            "--max-length", "48", "-t", "2", "--batch-invariant", "--json")
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    assert j["questions"] == 1 and j["max_rounds"] == 2 and j["max_length"] == 48
    assert j["batch_invariant"] is True
    assert sorted(j["configs"]) == sorted(CONFIGS)
    for name, c in j["configs"].items():
        assert c["answers"] == 1, name
        assert 0 < c["first_sentence_ms"] <= c["total_ms"] + 1e-6, (name, c)
        assert c["ms_per_token"] > 0 and c["tokens"] > 0 and c["tokens_per_s"] > 0, (name, c)
        # per-token time is total time over answer tokens
        assert abs(c["ms_per_token"] * c["tokens"] - c["total_ms"]) <= 0.01 * c["total_ms"] + 1, (name, c)
        # one question: the pooled per-token time is that answer's
        assert abs(c["ms_per_token_pooled"] - c["ms_per_token"]) <= 1e-6 * c["ms_per_token"], (name, c)
        assert 0 <= c["aligner_accepted"] <= c["aligner_draft"], (name, c)
        assert 0 <= c["acceptance"] <= 1 and 0 <= c["copy_rate"] <= 1, (name, c)
        assert c["upstream_prefill"] > 0 and c["upstream_tokens"] > 0, (name, c)
        assert len(c["answers_text"]) == 1 and c["answers_text"][0].strip(), (name, c)
    cs = j["configs"]
    assert 1 <= cs["stream"]["rounds"] <= 2
    assert cs["stream"]["aligner_draft"] > 0 and cs["stream"]["aligner_prefill"] > 0
    assert cs["stream-no-spec"]["aligner_draft"] == 0 and cs["stream-no-spec"]["acceptance"] == 0
    assert cs["stream-no-kv"]["upstream_prefill"] >= cs["stream"]["upstream_prefill"]
    assert cs["stream-no-kv"]["aligner_prefill"] >= cs["stream"]["aligner_prefill"]
    assert cs["aligner"]["rounds"] == 1
    assert cs["upstream"]["rounds"] == 0 and cs["upstream"]["aligner_tokens"] == 0
    assert cs["upstream"]["aligner_prefill"] == 0
    r = j["stream_vs_aligner"]
    assert r["ms_per_token_ratio"] > 0 and r["ms_per_token_pooled_ratio"] > 0 and r["first_sentence_ratio"] > 0
    assert abs(r["first_sentence_ratio"] * r["first_sentence_speedup"] - 1) < 1e-6
    # greedy + batch-invariant kernels: speculation and KV reuse change the speed only
    assert j["identical_to_stream"] == {"stream-no-spec": 1, "stream-no-kv": 1}, j["identical_to_stream"]
    assert cs["stream-no-spec"]["answers_text"] == cs["stream"]["answers_text"]
    assert cs["stream-no-kv"]["answers_text"] == cs["stream"]["answers_text"]


@test
def test_usage_errors():
    for args, what in [(["--upstream", MODEL], "no aligner"),
                       (["--aligner", MODEL], "no upstream"),
                       (["--upstream", MODEL, "--aligner", MODEL, "--configs", "stream,bogus"], "unknown configuration"),
                       (["--upstream", MODEL, "--aligner", MODEL, "-n", "0"], "bad value for -n"),
                       (["--upstream", "http://127.0.0.1:9/v1", "--aligner", MODEL], "local upstream"),
                       (["--upstream", MODEL, "--aligner", MODEL, "--frobnicate"], "unknown argument")]:
        p = run(*args, timeout=30)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert what in p.stderr, (args, p.stderr)
    p = run("--help", timeout=30)
    assert p.returncode == 0 and "stream-no-kv" in p.stdout
    p = run("--upstream", MODEL, "--aligner", MODEL, "--questions", "/nonexistent/q.jsonl", timeout=30)
    assert p.returncode == 1 and "/nonexistent/q.jsonl" in p.stderr, p.stderr


if __name__ == "__main__":
    main()
