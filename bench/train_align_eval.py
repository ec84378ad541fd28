"""train_align_eval.py: copy rate and rewrite rate of an aligner GGUF on held-out sentence
records, with llama.cpp (llama-cpp-python), greedy decoding. The prompt is the one training
uses: the aligner input as the user turn of the model's ChatML template (SmolLM2's default
system prompt included, as sa_chat_render writes it), then the assistant opening.
  copy rate:    records whose last sentence is right (last == correction): output == last
  rewrite rate: corrupted records (last != correction): output != last
  fix rate:     corrupted records: output == correction

usage: .venv/bin/python bench/train_align_eval.py MODEL.gguf RECORDS.jsonl [--n N]"""
import json
import sys

import llama_cpp

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def prompt(r):
    user = "##Question: %s | ##Answer_Prefix: %s | ##Answer_Last_Sentence: %s | ##Your_Revision: " % (
        r["question"], r["prefix"], r["last"])
    return ("<|im_start|>system\n%s<|im_end|>\n<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n"
            % (SYSTEM, user))


def main():
    path, recs = sys.argv[1], sys.argv[2]
    n = int(sys.argv[sys.argv.index("--n") + 1]) if "--n" in sys.argv else 10 ** 9
    records = [json.loads(x) for x in open(recs) if x.strip()][:n]
    llm = llama_cpp.Llama(model_path=path, n_ctx=1024, n_threads=2, verbose=False, logits_all=False)
    copy_ok = copy_n = rw_ok = rw_n = fix = 0
    for r in records:
        out = llm(prompt(r), max_tokens=80, temperature=0.0, stop=["<|im_end|>"])["choices"][0]["text"].strip()
        if r["last"].strip() == r["correction"].strip():
            copy_n += 1
            copy_ok += out == r["last"].strip()
        else:
            rw_n += 1
            rw_ok += out != r["last"].strip()
            fix += out == r["correction"].strip()
    print(json.dumps({"model": path, "records": len(records), "copy_rate": copy_ok / max(copy_n, 1), "copy_n": copy_n,
                      "rewrite_rate": rw_ok / max(rw_n, 1), "fix_rate": fix / max(rw_n, 1), "rewrite_n": rw_n}))


if __name__ == "__main__":
    main()
