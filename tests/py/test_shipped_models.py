"""test_shipped_models.py: every shipped aligner under models/ (models/README.md) is what its
manifest says: the adapter's sha256 and size, at most 20 MB, a recipe and a training log beside
it, a base that `salign pull` knows, and an adapter `salign inspect` reads as a LoRA for that
base's architecture. The README's main command names a shipped aligner. Where the base is in
the model cache (the 0.5B is pulled by scripts/setup.sh), `salign align --aligner NAME` runs it
over one question (a few rounds): the shipped name resolves, the adapter loads over its base."""
import hashlib
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, SALIGN, main, models_dir, test  # noqa: E402

MODELS = os.path.join(ROOT, "models")
ARCH = {"qwen2.5-coder-0.5b-instruct": "qwen2", "qwen2.5-coder-1.5b-instruct": "qwen2",
        "smollm2-135m-instruct": "llama", "gemma3-270m": "gemma3"}


def shipped():
    return sorted(n for n in os.listdir(MODELS) if os.path.isfile(os.path.join(MODELS, n, "manifest.json")))


@test
def manifests_match_their_files():
    names = shipped()
    assert names, "no shipped aligner under models/"
    known = subprocess.run([SALIGN, "pull", "--list"], capture_output=True, text=True, check=True).stdout
    for n in names:
        d = os.path.join(MODELS, n)
        man = json.load(open(os.path.join(d, "manifest.json")))
        path = os.path.join(d, man["adapter"])
        data = open(path, "rb").read()
        assert hashlib.sha256(data).hexdigest() == man["sha256"], (n, "sha256")
        assert len(data) == man.get("size", len(data)) and len(data) <= 20 * 1000 * 1000, (n, len(data))
        for f in (man["recipe"], man["log"], "README.md"):
            assert os.path.isfile(os.path.join(d, f)), (n, f)
        assert re.search(r"^%s\s" % re.escape(man["base"]), known, re.M), (n, man["base"], known)
        info = subprocess.run([SALIGN, "inspect", path], capture_output=True, text=True, check=True).stdout
        m = re.search(r"LoRA for architecture (\S+), rank (\d+)", info)
        assert m and m.group(1) == ARCH[man["base"]], (n, info)
        print("  %s: LoRA r%s over %s, %.1f MB, sha256 ok" % (n, m.group(2), man["base"], len(data) / 1e6))


@test
def readme_runs_a_shipped_aligner():
    readme = open(os.path.join(ROOT, "README.md")).read()
    first = next(line for line in readme.splitlines() if line.startswith("scripts/setup.sh &&"))
    m = re.search(r"--aligner (\S+)", first)
    assert m and m.group(1) in shipped(), (first, shipped())


@test
def shipped_aligner_runs_where_its_base_is_cached():
    ran = 0
    for n in shipped():
        base = json.load(open(os.path.join(MODELS, n, "manifest.json")))["base"]
        if not os.path.isdir(os.path.join(models_dir(), base)):
            print("  %s: base %s not in the model cache (salign pull %s): not run" % (n, base, base))
            continue
        p = subprocess.run([SALIGN, "align", "--upstream", "qwen2.5-coder-0.5b-instruct", "--aligner", n, "--edit-check",
                            "all", "--max-rounds", "2", "--max-length", "96", "-t", "2", "--json", "-p",
                            "Tom has 3 apples and buys 4 more. How many apples does he have?"],
                           capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, (n, p.stderr)
        r = json.loads(p.stdout.splitlines()[-1])
        assert r["rounds"] >= 1 and r["answer"], (n, r)
        ran += 1
    assert ran >= 1, "no shipped aligner's base is cached (scripts/setup.sh pulls qwen2.5-coder-0.5b-instruct)"


if __name__ == "__main__":
    main()
