"""model_ctypes.py: a thin ctypes binding of include/sa/model.h and include/sa/context.h over
build/libsalign.so, for the reference checks (test_logits_parity.py, test_hf_parity.py)."""
import ctypes
import os

import numpy as np

from harness import ROOT


class ModelParams(ctypes.Structure):
    _fields_ = [("use_mmap", ctypes.c_bool), ("n_threads", ctypes.c_int), ("load_tokenizer", ctypes.c_bool)]


class CtxParams(ctypes.Structure):
    """struct sa_ctx_params (include/sa/context.h), field for field: a field added there must be
    added here, or sa_ctx_default_params() returns into a struct too small (the test then sees
    garbage in the missing fields)."""
    _fields_ = [("n_ctx", ctypes.c_int32), ("n_batch", ctypes.c_int32), ("n_threads", ctypes.c_int),
                ("abort_cb", ctypes.c_void_p), ("abort_user", ctypes.c_void_p), ("batch_invariant", ctypes.c_bool),
                ("sched", ctypes.c_void_p), ("kv_type", ctypes.c_int),
                ("lora", ctypes.c_void_p), ("lora_scale", ctypes.c_float),
                ("cvec", ctypes.c_void_p), ("cvec_scale", ctypes.c_float), ("hidden_cb", ctypes.c_void_p),
                ("hidden_user", ctypes.c_void_p), ("hidden_last_only", ctypes.c_bool)]


_lib = None


def lib():
    global _lib
    if _lib is None:
        path = os.environ.get("SA_LIB") or os.path.join(ROOT, os.environ.get("BUILD", "build"), "libsalign.so")
        L = ctypes.CDLL(path)
        L.sa_last_error.restype = ctypes.c_char_p
        L.sa_model_default_params.restype = ModelParams
        L.sa_model_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(ModelParams), ctypes.POINTER(ctypes.c_void_p)]
        L.sa_model_free.argtypes = [ctypes.c_void_p]
        L.sa_model_n_vocab.argtypes = [ctypes.c_void_p]
        L.sa_ctx_default_params.restype = CtxParams
        L.sa_ctx_init.argtypes = [ctypes.c_void_p, ctypes.POINTER(CtxParams), ctypes.POINTER(ctypes.c_void_p)]
        L.sa_ctx_free.argtypes = [ctypes.c_void_p]
        f32p = ctypes.POINTER(ctypes.c_float)
        i32p = ctypes.POINTER(ctypes.c_int32)
        L.sa_ctx_decode.argtypes = [ctypes.c_void_p, i32p, ctypes.c_int32, f32p]
        L.sa_ctx_decode_all.argtypes = [ctypes.c_void_p, i32p, ctypes.c_int32, f32p]
        L.sa_ctx_truncate.argtypes = [ctypes.c_void_p, ctypes.c_int32]
        L.sa_ctx_len.argtypes = [ctypes.c_void_p]
        _lib = L
    return _lib


def _check(status, what):
    if status != 0:
        raise RuntimeError("%s: status %d: %s" % (what, status, lib().sa_last_error().decode(errors="replace")))


class Model:
    def __init__(self, path, n_threads=2, load_tokenizer=True):
        L = lib()
        p = L.sa_model_default_params()
        p.n_threads = n_threads
        p.load_tokenizer = load_tokenizer
        h = ctypes.c_void_p()
        _check(L.sa_model_load(path.encode(), ctypes.byref(p), ctypes.byref(h)), "sa_model_load(%s)" % path)
        self.h = h
        self.n_vocab = L.sa_model_n_vocab(h)

    def close(self):
        if self.h:
            lib().sa_model_free(self.h)
            self.h = None


class Context:
    def __init__(self, model, n_ctx=512, n_batch=64, n_threads=2):
        L = lib()
        p = L.sa_ctx_default_params()
        p.n_ctx, p.n_batch, p.n_threads = n_ctx, n_batch, n_threads
        h = ctypes.c_void_p()
        _check(L.sa_ctx_init(model.h, ctypes.byref(p), ctypes.byref(h)), "sa_ctx_init")
        self.h = h
        self.n_vocab = model.n_vocab

    def decode_all(self, tokens):
        """Appends tokens; returns (n, n_vocab) float32 logits of every position."""
        toks = (ctypes.c_int32 * len(tokens))(*tokens)
        out = np.empty((len(tokens), self.n_vocab), dtype=np.float32)
        _check(lib().sa_ctx_decode_all(self.h, toks, len(tokens), out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))),
               "sa_ctx_decode_all")
        return out

    def decode(self, tokens):
        """Appends tokens; returns the last one's (n_vocab) logits."""
        toks = (ctypes.c_int32 * len(tokens))(*tokens)
        out = np.empty(self.n_vocab, dtype=np.float32)
        _check(lib().sa_ctx_decode(self.h, toks, len(tokens), out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))),
               "sa_ctx_decode")
        return out

    def truncate(self, n):
        _check(lib().sa_ctx_truncate(self.h, n), "sa_ctx_truncate")

    def close(self):
        if self.h:
            lib().sa_ctx_free(self.h)
            self.h = None
