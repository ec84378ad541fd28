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
        except Exception:  # noqa: BLE001 - report every failure the same way
            failed += 1
            tb = traceback.format_exc().rstrip().splitlines()
            for line in tb[-12:]:
                print("    " + line)
            print("FAIL %s" % fn.__name__, flush=True)
    none = not (passed or failed or skipped)
    if none:
        print("FAIL no test ran")
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(1 if failed or none else 0)
