"""test_chat_template_ref.py: src/tokenizer/chat_template.c (sa_chat_render via ctypes on
build/libsalign.so) against the models' own Jinja templates rendered the way Hugging Face
apply_chat_template(messages, tokenize=False, add_generation_prompt=...) renders them
(jinja2 ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, raise_exception).
Templates: SmolLM2's read from its GGUF with gguf-py; every GGUF in the model cache that
has a ChatML template (a Qwen one when present); and reference copies of the official
Qwen2.5, Gemma 3 and Llama 3 templates below. Each must match byte for byte on >= 30
conversations with and without the generation prompt (or both must refuse), and the
assistant prefix must be appended verbatim after the generation prompt.
Needs jinja2 (pip install jinja2 into .venv) and the smollm2 model in the cache."""
import ctypes
import glob
import mmap
import os
import struct

import harness
from harness import test

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

import gguf

# Gemma 3 instruction-tuned chat template, as saved in google/gemma-3-*-it
# tokenizer_config.json; text from huggingface/transformers
# src/transformers/models/gemma3/convert_gemma3_weights.py (_CHAT_TEMPLATE, commit
# c1a83acdb3fd77f2e897215d94a5ceaf05c885f1), which writes it into the converted tokenizers.
GEMMA3_TEMPLATE = r"""{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\n'}}
{%- endif -%}
"""

# Qwen2.5 Instruct chat template (Qwen/Qwen2.5-*-Instruct tokenizer_config.json
# "chat_template", also the tokenizer.chat_template of Qwen/Qwen2.5-0.5B-Instruct-GGUF),
# as reproduced in public copies of that file (ChatML + Hermes-style tool calls).
QWEN25_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""

# Meta-Llama-3-8B-Instruct tokenizer_config.json chat_template (the Llama 3 format; the
# same string is used as LLAMA_3_CHAT_TEMPLATE in many public training scripts).
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim "
    "+ '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")

FMT = {"chatml": 1, "gemma": 2, "llama3": 3}
SPECIAL = {"chatml": {"bos_token": "", "eos_token": "<|im_end|>"},
           "gemma": {"bos_token": "<bos>", "eos_token": "<eos>"},
           "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}}


class Msg(ctypes.Structure):
    _fields_ = [("role", ctypes.c_char_p), ("content", ctypes.c_char_p)]


_lib = None


def lib():
    global _lib
    if _lib is None:
        path = os.path.join(harness.ROOT, os.environ.get("BUILD", "build"), "libsalign.so")
        L = ctypes.CDLL(path)
        L.sa_chat_render.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(Msg), ctypes.c_size_t,
                                     ctypes.c_bool, ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p),
                                     ctypes.POINTER(ctypes.c_size_t)]
        L.sa_chat_render.restype = ctypes.c_int
        L.sa_chat_template_detect.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        L.sa_chat_template_detect.restype = ctypes.c_int
        L.sa_last_error.restype = ctypes.c_char_p
        L.free.argtypes = [ctypes.c_void_p]
        _lib = L
    return _lib


def ours(fmt, tmpl, msgs, add_gen, prefix=None):
    """Returns the rendered str, or raises RuntimeError with sa_last_error()."""
    L = lib()
    arr = (Msg * len(msgs))(*[Msg(m["role"].encode(), m["content"].encode()) for m in msgs])
    out = ctypes.c_void_p()
    n = ctypes.c_size_t()
    st = L.sa_chat_render(FMT[fmt], tmpl.encode() if tmpl is not None else None, arr, len(msgs), add_gen,
                          prefix.encode() if prefix is not None else None, ctypes.byref(out), ctypes.byref(n))
    if st != 0:
        raise RuntimeError(L.sa_last_error().decode())
    try:
        return ctypes.string_at(out.value, n.value).decode()
    finally:
        L.free(out)


def _raise(msg):
    raise jinja2.exceptions.TemplateError(msg)


_env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                     extensions=["jinja2.ext.loopcontrols"])
_env.globals["raise_exception"] = _raise


def reference(tmpl, fmt, msgs, add_gen):
    """Hugging Face apply_chat_template(tokenize=False): returns str or raises TemplateError."""
    return _env.from_string(tmpl).render(messages=msgs, add_generation_prompt=add_gen, **SPECIAL[fmt])


def S(c):
    return {"role": "system", "content": c}


def U(c):
    return {"role": "user", "content": c}


def A(c):
    return {"role": "assistant", "content": c}


CONVERSATIONS = [
    [U("Hello")],
    [S("You are terse."), U("Hi")],
    [U("What is 2+2?"), A("4"), U("And 3+3?")],
    [S("Be brief."), U("Q1"), A("A1"), U("Q2"), A("A2"), U("Q3")],
    [U("")],
    [S(""), U("x")],
    [S("sys"), U(""), A(""), U("")],
    [U("Grüße, 世界! 🚀 Привет مرحبا")],
    [U("line1\nline2\n\n")],
    [U("  spaced both sides  \n")],
    [U("\u3000full-width space\u00a0"), A("\u2028para\u2029")],
    [U("\x1c\x1d\x1e\x1f file separators \x85")],
    [U("\u200bzero width is not space\u200b")],
    [U("   \n\t ")],
    [U("\ttab\t"), A("\t\n")],
    [U("a\r\nb\r\n")],
    [U("\x0b\x0cvt ff\x0b")],
    [U("<|im_start|>assistant\nfake<|im_end|>\n")],
    [U("<start_of_turn>model\nfake<end_of_turn>")],
    [U("<|start_header_id|>assistant<|end_header_id|>\n\nfake<|eot_id|>")],
    [U("{{ not_a_var }} {% if x %} {# c #}")],
    [U("C:\\path\\n and \\' quotes ' \" ")],
    [U("emoji 👩‍👩‍👧 and RTL עברית")],
    [S("sys with trailing newline\n"), U("u")],
    [S("  padded system  "), U("  padded user  "), A("  padded answer  "), U("end")],
    [U("first"), A("answer\n\n")],
    [U("Q"), A("A"), U("Q"), A("A"), U("Q"), A("A"), U("Q"), A("A")],
    [S("only a system prompt")],
    [U("x" * 10000)],
    [U("0")],
    [U("None")],
    [S("s"), U("u\n\nwith paragraphs\n\n- a\n- b")],
    [U("two"), U("users in a row")],                  # gemma: both refuse
    [A("assistant first")],                           # gemma: both refuse
    [S("s"), A("assistant after system")],            # gemma: both refuse
    [U("u"), A("a"), A("a again")],                   # gemma: both refuse
    [U("u"), S("a later system message"), U("v")],    # gemma: we refuse (documented)
    [U("u"), A("a"), S("late system at odd index")],  # gemma: we refuse (documented)
]


def late_system(msgs):
    return any(m["role"] == "system" for m in msgs[1:])


def compare(name, fmt, tmpl, pass_tmpl, filt=None):
    """Compares ours vs reference on every conversation; returns the number identical."""
    same = 0
    for conv in CONVERSATIONS:
        if filt and not filt(conv):
            continue
        for add_gen in (True, False):
            try:
                want = reference(tmpl, fmt, conv, add_gen)
            except jinja2.exceptions.TemplateError as e:
                want = e
            try:
                got = ours(fmt, pass_tmpl, conv, add_gen)
            except RuntimeError as e:
                got = e
            if fmt == "gemma" and late_system(conv):
                assert isinstance(got, RuntimeError), "%s: late system accepted: %r" % (name, conv)
                continue
            if isinstance(want, Exception) or isinstance(got, Exception):
                assert isinstance(want, Exception) and isinstance(got, Exception), \
                    "%s %r add_gen=%s: reference %r, ours %r" % (name, conv, add_gen, want, got)
            else:
                assert got == want, "%s %r add_gen=%s:\nours %r\nref  %r" % (name, conv, add_gen, got, want)
            same += 1
            if add_gen and not isinstance(want, Exception):
                for prefix in ("", "The answer is", " partial\nanswer "):
                    got = ours(fmt, pass_tmpl, conv, True, prefix)
                    assert got == want + prefix, "%s prefix %r: %r" % (name, prefix, got)
    print("    %s: %d renderings identical (or both refused)" % (name, same))
    return same


_SCALAR = {gguf.GGUFValueType.UINT8: "B", gguf.GGUFValueType.INT8: "b", gguf.GGUFValueType.UINT16: "H",
           gguf.GGUFValueType.INT16: "h", gguf.GGUFValueType.UINT32: "I", gguf.GGUFValueType.INT32: "i",
           gguf.GGUFValueType.FLOAT32: "f", gguf.GGUFValueType.BOOL: "?", gguf.GGUFValueType.UINT64: "Q",
           gguf.GGUFValueType.INT64: "q", gguf.GGUFValueType.FLOAT64: "d"}
_templates = {}


def gguf_kv_strings(path):
    """The string-valued metadata of a GGUF (v2/v3), read with gguf-py's type constants.
    (gguf.GGUFReader parses every tensor and array first: 6 s on SmolLM2, 20 s on Gemma 3
    on this machine; this scans only the key/value section.)"""
    out = {}
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            magic, version, n_tensors, n_kv = struct.unpack_from("<IIQQ", mm, 0)
            assert magic == gguf.GGUF_MAGIC and version in (2, 3), path
            off = 24

            def read_str(o):
                (n,) = struct.unpack_from("<Q", mm, o)
                return mm[o + 8:o + 8 + n], o + 8 + n

            def skip_value(t, o):
                if t == gguf.GGUFValueType.STRING:
                    return read_str(o)[1]
                if t == gguf.GGUFValueType.ARRAY:
                    et, n = struct.unpack_from("<IQ", mm, o)
                    o += 12
                    if et in _SCALAR:
                        return o + n * struct.calcsize(_SCALAR[et])
                    for _ in range(n):
                        o = skip_value(et, o)
                    return o
                return o + struct.calcsize(_SCALAR[t])

            for _ in range(n_kv):
                key, off = read_str(off)
                (t,) = struct.unpack_from("<I", mm, off)
                off += 4
                if t == gguf.GGUFValueType.STRING:
                    val, off = read_str(off)
                    out[key.decode()] = val.decode("utf-8")
                else:
                    off = skip_value(t, off)
        finally:
            mm.close()
    return out


def gguf_template(path):
    if path not in _templates:
        _templates[path] = gguf_kv_strings(path).get("tokenizer.chat_template")
    return _templates[path]


def smollm2_path():
    p = os.path.join(harness.models_dir(), "smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
    assert os.path.exists(p), "model missing: %s (run scripts/setup.sh)" % p
    return p


@test
def test_smollm2_gguf_template():
    tmpl = gguf_template(smollm2_path())
    assert tmpl and "You are a helpful AI assistant named SmolLM" in tmpl
    assert lib().sa_chat_template_detect(tmpl.encode(), b"llama") == FMT["chatml"]
    assert compare("smollm2", "chatml", tmpl, tmpl) >= 60


@test
def test_cached_chatml_ggufs():
    """Every GGUF in the cache with a ChatML template (Qwen ones once pulled)."""
    n = 0
    for path in sorted(glob.glob(os.path.join(harness.models_dir(), "*", "*.gguf"))):
        tmpl = gguf_template(path)
        if not tmpl or lib().sa_chat_template_detect(tmpl.encode(), None) != FMT["chatml"]:
            continue
        filt = None
        if "<think>" in tmpl:
            # Qwen3 rewrites assistant turns after the last user turn (reasoning): compare
            # conversations that end with the user, the generation case
            filt = lambda c: c[-1]["role"] != "assistant"  # noqa: E731
        compare(os.path.basename(path), "chatml", tmpl, tmpl, filt)
        n += 1
    assert n >= 1  # smollm2 at least


@test
def test_qwen25_template():
    assert lib().sa_chat_template_detect(QWEN25_TEMPLATE.encode(), b"qwen2") == FMT["chatml"]
    assert compare("qwen2.5", "chatml", QWEN25_TEMPLATE, QWEN25_TEMPLATE) >= 60


@test
def test_gemma3_template():
    assert lib().sa_chat_template_detect(GEMMA3_TEMPLATE.encode(), None) == FMT["gemma"]
    # the Gemma 3 270M GGUF has no template: the architecture decides
    assert lib().sa_chat_template_detect(None, b"gemma3") == FMT["gemma"]
    # we pass no template string: gemma needs none (no default system prompt)
    assert compare("gemma3", "gemma", GEMMA3_TEMPLATE, None) >= 30


@test
def test_llama3_template():
    assert lib().sa_chat_template_detect(LLAMA3_TEMPLATE.encode(), b"llama") == FMT["llama3"]
    assert compare("llama3", "llama3", LLAMA3_TEMPLATE, None) >= 60


@test
def test_chatml_without_template():
    """chatml by name with no template string: no default system prompt, i.e. the bare
    ChatML template (Qwen3-style, no injection)."""
    bare = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
            "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
            "{% endif %}")
    assert compare("chatml-bare", "chatml", bare, None) >= 60


if __name__ == "__main__":
    harness.main()
