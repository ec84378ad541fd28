"""harness.py: the Python side of the test harness (reference checks against PyPI
libraries). Mirrors tests/harness.h: register tests with @test, call main() at the end;
prints "ok/FAIL/skip name" per test and closes with "N passed, N failed, N skipped".
A test that cannot check what it is about here calls skip(reason): it counts as skipped,
not passed. A file that ends with nothing passed, failed or skipped fails."""
import os
import sys
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SALIGN = os.path.join(ROOT, os.environ.get("BUILD", "build"), "salign")
SHARED_DATA = os.environ.get("SA_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
# What to do when the shared data is missing (the same words as tests/harness.h and tests/run.sh).
SHARED_HINT = ("Set SA_SHARED_DATA to the folder that holds gsm8k/ and hh-rlhf/ "
               "(by default ../shared/data beside the checkout).")
_tests = []


class Skipped(Exception):
    """Raised by skip(): the test checked nothing here, for the reason given."""


def skip(reason):
    raise Skipped(reason)


def test(fn):
    _tests.append(fn)
    return fn


def models_dir():
    return os.environ.get("SALIGN_MODELS", os.path.expanduser("~/.cache/salign"))


def tmpdir():
    d = os.path.join(ROOT, os.environ.get("SA_TEST_TMP", "tests/tmp"), "py%d" % os.getpid())
    os.makedirs(d, exist_ok=True)
    return d


def _failure_lines(e):
    """The lines that explain a failed test: the end of its traceback, or, when it failed for
    want of the shared data (GSM8K, HH-RLHF), one line that says so and what to do."""
    missing = getattr(e, "filename", None)
    if isinstance(e, FileNotFoundError) and isinstance(missing, str) and os.path.abspath(
            missing).startswith(os.path.abspath(SHARED_DATA) + os.sep):
        return ["the shared data is missing: cannot open %s. %s" % (missing, SHARED_HINT)]
    tail = traceback.format_exc().rstrip().splitlines()[-12:]
    if not os.path.isdir(SHARED_DATA):  # a failure further on (a CLI given a path that is not there)
        tail.append("(the shared data is missing: no folder %s. %s)" % (SHARED_DATA, SHARED_HINT))
    return tail


def main():
    passed = failed = skipped = 0
    only = sys.argv[1:]
    for fn in _tests:
        if only and fn.__name__ not in only:
            continue
        try:
            fn()
            passed += 1
            print("ok   %s" % fn.__name__, flush=True)
        except Skipped as e:
            skipped += 1
            print("skip %s: %s" % (fn.__name__, e), flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure the same way
            failed += 1
            for line in _failure_lines(e):
                print("    " + line)
            print("FAIL %s" % fn.__name__, flush=True)
    none = not (passed or failed or skipped)
    if none:
        print("FAIL no test ran")
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(1 if failed or none else 0)
