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

def _add_remove_duplicate(method_name, attr):
    """torch >= 2.0 gives named_parameters/named_buffers a remove_duplicate flag, which
    transformers' loader passes (False: list tied weights under every name)."""
    import inspect
    orig = getattr(torch.nn.Module, method_name)
    if "remove_duplicate" in inspect.signature(orig).parameters:
        return

    def named(self, prefix="", recurse=True, remove_duplicate=True):
        if remove_duplicate:
            yield from orig(self, prefix=prefix, recurse=recurse)
            return
        mods = self.named_modules(prefix=prefix, remove_duplicate=False) if recurse else [(prefix, self)]
        for mod_prefix, mod in mods:
            for k, v in getattr(mod, attr).items():
                if v is not None:
                    yield (mod_prefix + "." if mod_prefix else "") + k, v

    setattr(torch.nn.Module, method_name, named)


def _add_load_state_dict_assign():
    """torch >= 2.1 load_state_dict(assign=True) replaces the parameters by the given tensors
    (transformers' loader uses it on meta-device models); emulate it by setattr."""
    import inspect
    orig = torch.nn.Module.load_state_dict
    if "assign" in inspect.signature(orig).parameters:
        return

    def load_state_dict(self, state_dict, strict=True, assign=False):
        if not assign:
            return orig(self, state_dict, strict=strict)
        for key, value in state_dict.items():
            mod = self
            *path, leaf = key.split(".")
            for part in path:
                mod = getattr(mod, part)
            old = getattr(mod, leaf, None)
            if isinstance(old, torch.nn.Parameter):
                value = torch.nn.Parameter(value, requires_grad=old.requires_grad)
            setattr(mod, leaf, value)
        return torch.nn.modules.module._IncompatibleKeys([], [])

    torch.nn.Module.load_state_dict = load_state_dict


_add_load_state_dict_assign()
_add_remove_duplicate("named_parameters", "_parameters")
_add_remove_duplicate("named_buffers", "_buffers")

import transformers  # noqa: E402,F401
