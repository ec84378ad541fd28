"""hf_compat.py: lets Hugging Face transformers 4.51 (the first with Gemma 3 and Qwen 3)
run on Debian 12's CPU-only PyTorch 1.13 (python3-torch), so that the reference tests need
no multi-gigabyte PyPI torch wheel. transformers only touches these newer torch names at
import time or for features we do not use (tensor parallelism, torch.compile, float8):
the stand-ins below are never called on the eager f32 path the tests run.
Import this module before `import transformers`."""
import sys
import types

import torch

if "torch.distributed.tensor" not in sys.modules:
    try:
        import torch.distributed.tensor  # noqa: F401
    except ImportError:
        _m = types.ModuleType("torch.distributed.tensor")

        class DTensor:  # never instantiated: only used in isinstance checks
            pass

        _m.DTensor = DTensor
        sys.modules["torch.distributed.tensor"] = _m

if not hasattr(torch, "compiler"):
    def _disable(fn=None, recursive=True):
        return fn if fn is not None else (lambda f: f)

    torch.compiler = types.SimpleNamespace(is_compiling=lambda: False, disable=_disable,
                                           is_dynamo_compiling=lambda: False)

if not hasattr(torch, "_dynamo"):
    torch._dynamo = types.SimpleNamespace(mark_static_address=lambda *a, **k: None,
                                          is_compiling=lambda: False)

for _name in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
              "uint16", "uint32", "uint64"):
    if not hasattr(torch, _name):
        setattr(torch, _name, torch.int8)  # placeholder dtype, only compared against

import transformers  # noqa: E402,F401
