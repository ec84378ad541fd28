"""test_gold_path.py: the gold path of `salign data rollout --locate gold-path`
(src/data/gold_path.c, issue 13) against the probe that measured it (bench/gsm8k_gold_path.py):
over every GSM8K train question, the same set of values (the <<expr=v>> results, the final
answer, the question's numbers, rounded to 6 decimals), and over every line of every reference
solution, as written and with its digits changed (so that many equations leave the path), the
same count of equations off the path (sa_gold_path_off against the probe's rule over
bench/arith_records.py's equations()), through ctypes over build/libsalign.so."""
import ctypes
import importlib.util
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, SHARED_DATA, main, test  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "bench"))
spec = importlib.util.spec_from_file_location("gsm8k_gold_path", os.path.join(ROOT, "bench", "gsm8k_gold_path.py"))
gp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gp)


class GoldPath(ctypes.Structure):  # struct sa_gold_path (src/data/gold_path_impl.h)
    _fields_ = [("v", ctypes.POINTER(ctypes.c_double)), ("n", ctypes.c_size_t)]


L = ctypes.CDLL(os.environ.get("SA_LIB") or os.path.join(ROOT, os.environ.get("BUILD", "build"), "libsalign.so"))
L.sa_gold_path_init.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(GoldPath)]
L.sa_gold_path_init.restype = ctypes.c_int
L.sa_gold_path_free.argtypes = [ctypes.POINTER(GoldPath)]
L.sa_gold_path_off.argtypes = [ctypes.POINTER(GoldPath), ctypes.c_char_p, ctypes.POINTER(ctypes.c_int32)]
L.sa_gold_path_off.restype = ctypes.c_int32


def train():
    with open(os.path.join(SHARED_DATA, "gsm8k", "train.jsonl")) as f:
        return [json.loads(line) for line in f]


def probe_off(path, text):
    return sum(1 for e in gp.equations(text) if e.value is not None and (e.wrong or round(e.value, 6) not in path))


@test
def same_values_and_same_off_path_equations():
    n_q = n_lines = n_off = 0
    for item in train():
        q, a = item["question"], item["answer"]
        want = gp.gold_path(q, a)
        g = GoldPath()
        assert L.sa_gold_path_init(q.encode(), a.encode(), ctypes.byref(g)) == 0
        got = {g.v[i] for i in range(g.n)}
        assert got == want, (q, a, sorted(got ^ want))
        assert g.n == len(want)  # distinct
        for line in a.split("\n"):
            shown = re.sub(r"<<[^>]*>>", "", line)  # the text a model would write
            for text in (shown, shown.translate(str.maketrans("3789", "4812"))):
                n_eq = ctypes.c_int32(-1)
                off = L.sa_gold_path_off(ctypes.byref(g), text.encode(), ctypes.byref(n_eq))
                assert off == probe_off(want, text), (text, off, sorted(want))
                assert 0 <= off <= n_eq.value
                n_lines += 1
                n_off += off > 0
        L.sa_gold_path_free(ctypes.byref(g))
        n_q += 1
    assert n_q > 7000 and n_off > 1000, (n_q, n_lines, n_off)
    print("%d questions, %d lines, %d with an equation off the path" % (n_q, n_lines, n_off))


if __name__ == "__main__":
    main()
