"""test_public_headers.py: the public headers as a user of the installed library sees them
(issue 16): sa/sa.h includes every header of include/sa/, and a file that includes only
sa/sa.h compiles warning-free (-Wall -Wextra -Werror) as C11 and, where g++ is installed, as
C++; each header also compiles on its own (it includes what it uses)."""
import glob
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import ROOT, main, test, tmpdir  # noqa: E402

INC = os.path.join(ROOT, "include")
HEADERS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(INC, "sa", "*.h")))
WARN = ["-Wall", "-Wextra", "-Werror"]


def compile_src(compiler, std, text, name):
    path = os.path.join(tmpdir(), name)
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([compiler, "-std=" + std, *WARN, "-I", INC, "-fsyntax-only", path],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, "%s %s:\n%s" % (compiler, name, p.stderr)


def included(header):
    with open(os.path.join(INC, "sa", header)) as f:
        return set(re.findall(r'^#include "sa/([a-z_0-9]+\.h)"', f.read(), re.M))


@test
def umbrella_includes_every_public_header():
    missing = [h for h in HEADERS if h != "sa.h" and h not in included("sa.h")]
    assert not missing, "sa/sa.h leaves out: %s" % ", ".join(missing)


# uses a declaration of each header that the umbrella used to leave out, so that a header
# that is included but empty (or guarded away) fails too
USE = """#include "sa/sa.h"
int main(void) {
    struct sa_train_params tp = sa_train_default_params();
    struct sa_report_params rp = sa_report_default_params();
    struct sa_judge_run_params jp = sa_judge_run_default_params();
    enum sa_verdict v = sa_eval_parse_verdict("[[A]]");
    struct sa_eval_accuracy a = sa_eval_accuracy(0, 0);
    struct sa_data_build_params bp = sa_data_build_default_params();
    struct sa_gsm8k_params gp = sa_gsm8k_default_params();
    (void)tp; (void)rp; (void)jp; (void)a; (void)bp; (void)gp;
    return v == SA_VERDICT_A && sa_math_equiv("1", "1.0") && sa_trace_n_questions(0) == 0 ? 0 : 1;
}
"""


@test
def umbrella_compiles_as_c11():
    compile_src("cc", "c11", USE, "use_sa.c")


@test
def umbrella_compiles_as_cxx():
    if not shutil.which("g++"):
        print("    (no g++: C++ check skipped)")
        return
    compile_src("g++", "c++11", USE.replace("(0, 0)", "(nullptr, 0)").replace("(0) ==", "(nullptr) =="), "use_sa.cpp")


@test
def each_header_compiles_alone():
    for h in HEADERS:
        compile_src("cc", "c11", '#include "sa/%s"\n' % h, "alone_%s.c" % h[:-2])


main()
