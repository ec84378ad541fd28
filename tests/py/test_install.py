"""test_install.py: `make install PREFIX=...` into a temporary prefix, then a small C program
built the way a user of the library builds one, with `pkg-config --cflags --libs salign`
(PKG_CONFIG_PATH at the installed salign.pc) and <sa/sa.h>: linked against the shared
library (it must load the installed libsalign.so.X.Y by its soname) and the static one
(`pkg-config --static`, whose Libs.private must be the whole dependency list). The program
reads a status string and encodes text with a tokenizer loaded from memory. Then
`make uninstall` removes every installed file."""
import os
import shutil
import subprocess

import harness
from harness import ROOT, test

BUILD = os.environ.get("BUILD", "build")
PREFIX = os.path.join(harness.tmpdir(), "prefix")  # a fresh prefix per run
CC = os.environ.get("CC", "cc")

# a byte-level BPE tokenizer: "ab abc" -> "ab" (3), "\u0120" (5), "abc" (4)
TOKENIZER = (r'{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},'
             r' "decoder": {"type": "ByteLevel"},'
             r' "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4,'
             r' "\u0120": 5, "\u0120a": 6}, "merges": ["a b", "ab c", "\u0120 a"]}}')

PROGRAM = r"""
#include <sa/sa.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char tok_json[] = TOKENIZER_JSON;

int main(void) {
    printf("version %s\n", SA_VERSION);
    printf("status %s\n", sa_status_str(SA_STATUS_BAD_FILE));
    struct sa_tokenizer *t = NULL;
    if (sa_tokenizer_load_hf_memory(tok_json, strlen(tok_json), NULL, 0, &t) != SA_STATUS_OK) {
        fprintf(stderr, "load: %s\n", sa_last_error());
        return 1;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    if (sa_tokenize(t, "ab abc", 6, (struct sa_tokenize_opts){false, false}, &ids, &n) != SA_STATUS_OK) {
        fprintf(stderr, "tokenize: %s\n", sa_last_error());
        return 1;
    }
    printf("ids");
    for (size_t i = 0; i < n; i++) printf(" %d", (int)ids[i]);
    printf("\n");
    free(ids);
    sa_tokenizer_free(t);
    return 0;
}
"""
WANT = "version %s\nstatus bad file\nids 3 5 4\n"


def run(args, env=None, **kw):
    r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, **kw)
    assert r.returncode == 0, "%s: exit %d\n%s%s" % (" ".join(args), r.returncode, r.stdout, r.stderr[-3000:])
    return r.stdout


def make(*targets):
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return run(["make", "--no-print-directory", "BUILD=" + BUILD, "PREFIX=" + PREFIX] + list(targets), env=env)


def pkg_config(*args):
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(PREFIX, "lib", "pkgconfig"))
    env.pop("PKG_CONFIG_LIBDIR", None)
    return run(["pkg-config"] + list(args) + ["salign"], env=env).split()


def version():
    return pkg_config("--modversion")[0]


def build(name, link):
    src = os.path.join(PREFIX, "prog.c")
    with open(src, "w") as f:
        f.write("#define TOKENIZER_JSON \"%s\"\n" % TOKENIZER.replace("\\", "\\\\").replace('"', '\\"') + PROGRAM)
    exe = os.path.join(PREFIX, name)
    # -I. of the repository is not on the line: only what pkg-config says
    run([CC, "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", exe, src] + pkg_config("--cflags") + link)
    return exe


@test
def test_install_layout():
    shutil.rmtree(PREFIX, ignore_errors=True)
    make("install")
    v = version()
    major, minor = v.split(".")[:2]
    soname = "libsalign.so.%s.%s" % (major, minor)
    lib = os.path.join(PREFIX, "lib")
    for rel in ["bin/salign", "lib/libsalign.a", "lib/" + soname + "." + v.split(".")[2], "lib/pkgconfig/salign.pc",
                "include/sa/sa.h", "include/sa/status.h", "include/sa/tokenizer.h"]:
        assert os.path.isfile(os.path.join(PREFIX, rel)), rel
    assert os.readlink(os.path.join(lib, "libsalign.so")) == soname
    assert os.path.isfile(os.path.join(lib, soname))
    dyn = run(["readelf", "-d", os.path.join(lib, soname)])
    assert "Library soname: [%s]" % soname in dyn, dyn
    # every public header is installed, and none of the private ones
    hdrs = sorted(os.listdir(os.path.join(ROOT, "include", "sa")))
    assert sorted(os.listdir(os.path.join(PREFIX, "include", "sa"))) == hdrs
    # the installed CLI runs
    assert run([os.path.join(PREFIX, "bin", "salign"), "--version"]).startswith("salign " + v)
    # Libs.private names the libraries the code links (the Makefile's LDLIBS)
    private = pkg_config("--static", "--libs")
    for l in ["-lsalign", "-lcurl", "-lpcre2-8", "-lcjson", "-lutf8proc", "-lopenblas", "-lz", "-lm"]:
        assert l in private, private


@test
def test_program_shared():
    exe = build("prog_shared", pkg_config("--libs"))
    needed = run(["readelf", "-d", exe])
    assert "libsalign.so.%s.%s]" % tuple(version().split(".")[:2]) in needed, needed
    env = dict(os.environ, LD_LIBRARY_PATH=os.path.join(PREFIX, "lib"))
    out = run([exe], env=env)
    assert out == WANT % version(), out
    ldd = run(["ldd", exe], env=env)
    assert os.path.join(PREFIX, "lib", "libsalign.so") in ldd, ldd


@test
def test_program_static():
    # -l:libsalign.a: the archive even where the shared library sits next to it
    libs = ["-l:libsalign.a" if a == "-lsalign" else a for a in pkg_config("--static", "--libs")]
    exe = build("prog_static", libs)
    needed = run(["readelf", "-d", exe])
    assert "libsalign" not in needed, needed
    out = run([exe])
    assert out == WANT % version(), out


@test
def test_uninstall():
    make("uninstall")
    left = [os.path.join(d, f) for d, _, fs in os.walk(PREFIX) for f in fs if not f.startswith("prog")]
    assert left == [], left
    shutil.rmtree(PREFIX, ignore_errors=True)


if __name__ == "__main__":
    harness.main()
