"""When the shared data (GSM8K, HH-RLHF: ../shared/data beside the checkout, or SA_SHARED_DATA)
is missing, the tests that read it fail with one line that says so and what to set, not with a
bare traceback: the C harness (tests/harness.h OPEN_SHARED), the Python harness
(tests/py/harness.py) and tests/run.sh's note above the summary."""
import os
import subprocess
import sys

from harness import ROOT, SHARED_HINT, main, test, tmpdir

NOWHERE = "/nonexistent/sa-shared-data"


def env_without_data():
    return dict(os.environ, SA_SHARED_DATA=NOWHERE)


@test
def c_harness_says_what_to_set():
    prog = os.path.join(ROOT, os.environ.get("BUILD", "build"), "tests", "test_math_answer")
    p = subprocess.run([prog], cwd=ROOT, env=env_without_data(), capture_output=True, text=True, timeout=120)
    assert p.returncode != 0, p.stdout
    want = "the shared data is missing: cannot open %s/gsm8k/test.jsonl. %s" % (NOWHERE, SHARED_HINT)
    assert want in p.stdout, p.stdout
    assert "FAIL test_gsm8k_gold_all" in p.stdout, p.stdout


@test
def python_harness_says_what_to_set():
    d = tmpdir()
    script = os.path.join(d, "needs_shared.py")
    with open(script, "w") as f:
        f.write("import os, sys\n"
                "sys.path.insert(0, %r)\n"
                "from harness import SHARED_DATA, main, test\n"
                "@test\n"
                "def reads_gsm8k():\n"
                "    open(os.path.join(SHARED_DATA, 'gsm8k', 'test.jsonl')).close()\n"
                "@test\n"
                "def other_failure():\n"
                "    raise ValueError('something else')\n"
                "main()\n" % os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run([sys.executable, script], env=env_without_data(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    i = lines.index("FAIL reads_gsm8k")
    # one line, no traceback
    assert lines[i - 1] == "    the shared data is missing: cannot open %s/gsm8k/test.jsonl. %s" % (NOWHERE, SHARED_HINT), lines
    assert "Traceback" not in "\n".join(lines[:i]), lines
    # any other failure keeps its traceback, with the hint after it since the folder is missing
    j = lines.index("FAIL other_failure")
    assert "ValueError: something else" in "\n".join(lines[i:j]), lines
    assert lines[j - 1].startswith("    (the shared data is missing: no folder %s." % NOWHERE), lines
    assert lines[-1] == "0 passed, 2 failed, 0 skipped", lines


@test
def suite_runner_notes_it_above_the_summary():
    # a filter that selects no program: the runner only prints its note and the totals
    env = dict(env_without_data(), SA_TEST_FILTER="^$")
    p = subprocess.run([os.path.join(ROOT, "tests", "run.sh")], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=60)
    lines = p.stdout.splitlines()
    note = [line for line in lines if line.startswith("note: the shared data is missing")]
    assert len(note) == 2, lines
    assert NOWHERE in note[0] and "Set SA_SHARED_DATA" in note[0], note
    assert lines[-2] == note[1] and lines[-1] == "0 passed, 0 failed, 0 skipped", lines
    # with the data there, no note
    if os.path.isfile(os.path.join(os.environ.get("SA_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data")),
                                   "gsm8k", "test.jsonl")):
        env = dict(os.environ, SA_TEST_FILTER="^$")
        p = subprocess.run([os.path.join(ROOT, "tests", "run.sh")], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=60)
        assert "note:" not in p.stdout, p.stdout


if __name__ == "__main__":
    main()
