"""test_cli.py: black-box checks of the salign CLI: global help and errors, and
`salign inspect` on every default model and on a safetensors checkpoint."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import SALIGN, main, test, tmpdir  # noqa: E402


def run(*args, env=None):
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run([SALIGN, *args], capture_output=True, text=True, env=e, timeout=120)
    return p.returncode, p.stdout, p.stderr


@test
def global_help_and_version():
    rc, out, _ = run("--help")
    assert rc == 0 and "Usage: salign" in out
    for cmd in ("pull", "inspect", "tokenize", "convert"):
        assert cmd in out, cmd
    rc, out, _ = run("--version")
    assert rc == 0 and out.startswith("salign ")


# OpenBLAS's pre-AVX2 cores: what a DYNAMIC_ARCH build falls back to on a CPU model it does not know
GENERIC_CORES = {"katmai", "coppermine", "northwood", "prescott", "banias", "core2", "penryn", "dunnington",
                 "nehalem", "atom", "sandybridge"}


@test
def blas_core_fits_the_cpu():
    """On a CPU with AVX2 and FMA, `salign` never trains on OpenBLAS's generic fallback kernels (a
    VM that hides the CPU model got "Prescott", half the training speed): it sets OPENBLAS_CORETYPE
    and starts itself again. A core the user chose is kept."""
    e = dict(os.environ)
    e.pop("OPENBLAS_CORETYPE", None)
    p = subprocess.run([SALIGN, "--version"], capture_output=True, text=True, env=e, timeout=60)
    assert p.returncode == 0, p.stderr
    core = p.stdout.split("OpenBLAS core: ")[1].strip()
    flags = set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                flags = set(line.split(":")[1].split())
                break
    if {"avx2", "fma"} <= flags:
        assert core.lower() not in GENERIC_CORES, core
    e["OPENBLAS_CORETYPE"] = "Prescott"
    p = subprocess.run([SALIGN, "--version"], capture_output=True, text=True, env=e, timeout=60)
    assert p.returncode == 0 and "OpenBLAS core: Prescott" in p.stdout, p.stdout


@test
def unknown_command_and_options_exit_2():
    rc, _, err = run("frobnicate")
    assert rc == 2 and "not a salign command" in err
    for cmd in ("pull", "inspect", "tokenize", "convert"):
        rc, _, err = run(cmd, "--no-such-option")
        assert rc == 2, (cmd, rc, err)
        assert "--help" in err, (cmd, err)
        rc, out, _ = run(cmd, "--help")
        assert rc == 0 and "Usage: salign " + cmd in out, (cmd, out)


def field(out, name):
    for line in out.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    raise AssertionError("no field %r in:\n%s" % (name, out))


@test
def inspect_smollm2():
    rc, out, err = run("inspect", "smollm2-135m-instruct")
    assert rc == 0, err
    assert field(out, "architecture") == "llama"
    assert field(out, "layers") == "30"
    assert field(out, "heads") == "9 (kv 3, head dim 64)"
    assert field(out, "vocab size") == "49152"
    assert field(out, "rope") == "theta 100000"
    assert field(out, "parameters").startswith("134.52 M")
    assert "q4_1    210 tensors" in out
    assert field(out, "tokenizer").startswith("byte-level BPE (pre-tokenizer smollm), 49152 tokens")
    assert "<|im_end|>" in out
    assert field(out, "chat format") == "chatml (detected from the template)"
    assert "You are a helpful AI assistant named SmolLM" in out


@test
def inspect_gemma3():
    rc, out, err = run("inspect", "gemma3-270m", "--tensors")
    assert rc == 0, err
    assert field(out, "architecture") == "gemma3"
    assert field(out, "heads") == "4 (kv 1, head dim 256)"
    assert field(out, "rope") == "theta 1e+06, local theta 10000"
    assert field(out, "sliding window").startswith("512 tokens")
    assert field(out, "tokenizer").startswith("SentencePiece-style BPE, 262144 tokens, add BOS yes")
    assert "<end_of_turn>" in out
    assert field(out, "chat format") == "gemma (built in, chosen by architecture)"
    assert "blk.17.ffn_down.weight" in out  # --tensors lists every tensor


@test
def inspect_qwen2():
    rc, out, err = run("inspect", "qwen2.5-coder-0.5b-instruct")
    assert rc == 0, err
    assert field(out, "architecture") == "qwen2"
    assert field(out, "layers") == "24"
    assert field(out, "heads") == "14 (kv 2, head dim 64)"
    assert field(out, "tokenizer").startswith("byte-level BPE (pre-tokenizer qwen2), 151936 tokens")


@test
def inspect_safetensors_checkpoint():
    out_dir = os.path.join(tmpdir(), "smollm2-st")
    rc, _, err = run("convert", "smollm2-135m-instruct", "--to", "safetensors", "--type", "f16", "-o", out_dir)
    assert rc == 0, err
    rc, out, err = run("inspect", out_dir)
    assert rc == 0, err
    assert field(out, "architecture") == "llama"
    assert field(out, "layers") == "30"
    assert field(out, "format") == "safetensors, 272 tensors"
    assert "f16 " in out


@test
def inspect_errors_are_clear():
    rc, _, err = run("inspect", "no-such-model")
    assert rc == 1 and "salign pull" in err, err
    bad = os.path.join(tmpdir(), "bad.gguf")
    with open(bad, "wb") as f:
        f.write(b"GGUF\x03\x00\x00\x00" + b"\xff" * 40)
    rc, _, err = run("inspect", bad)
    assert rc == 1 and "bad.gguf" in err, err


@test
def fifo_model_refused_and_paths_named_once():
    """issue 16: a FIFO given as a model blocked forever in open(); it is refused at once. And
    error messages printed the path twice (the CLI prefixed a library message that already
    names it): each of these names it once."""
    fifo = os.path.join(tmpdir(), "model.fifo")
    if os.path.exists(fifo):
        os.unlink(fifo)
    os.mkfifo(fifo)
    missing = os.path.join(tmpdir(), "no-such-model.gguf")
    cases = [(("inspect", fifo), fifo, "not a regular file (a FIFO)"),
             (("generate", "-m", fifo, "-p", "hi"), fifo, "not a regular file (a FIFO)"),
             (("bench", "-m", fifo), fifo, "not a regular file (a FIFO)"),
             (("generate", "-m", missing, "-p", "hi"), missing, "is not a known model"),
             (("tokenize", missing, "hi"), missing, "is not a known model")]
    for args, path, what in cases:
        p = subprocess.run([SALIGN, *args], capture_output=True, text=True, timeout=30)
        assert p.returncode == 1, (args, p.returncode, p.stderr)
        assert what in p.stderr, (args, p.stderr)
        assert p.stderr.count(path) == 1, (args, p.stderr)
    os.unlink(fifo)


if __name__ == "__main__":
    main()
