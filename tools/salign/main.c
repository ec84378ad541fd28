/* main.c: `salign`, git-style subcommands over libsalign. */
#define _GNU_SOURCE
#include "cli.h"
#include "sa/sa.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct command {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
};

static const struct command commands[] = {
    {"pull", cmd_pull, "fetch a known model (or hf:// / https URL) into the model cache"},
    {"inspect", cmd_inspect, "show a model's architecture, tensors, tokenizer and chat template"},
    {"tokenize", cmd_tokenize, "print the token ids and pieces of a text"},
    {"generate", cmd_generate, "generate text from a prompt, streamed as it comes"},
    {"chat", cmd_chat, "talk with a model interactively"},
    {"align", cmd_align, "answer with the Stream Aligner pipeline: upstream + sentence-level aligner"},
    {"serve", cmd_serve, "serve the pipeline as an OpenAI-compatible HTTP API with a live page"},
    {"convert", cmd_convert, "re-encode a model as GGUF or safetensors (f32, f16, bf16, q8_0)"},
    {"eval", cmd_eval, "score math answers (accuracy, per round) and judged win rates"},
    {"data", cmd_data, "build, split and check the aligner's training records"},
    {"bench", cmd_bench, "measure prompt processing and decode speed (tokens/s), like llama-bench"},
    {"train", cmd_train, "fine-tune a model into an aligner (full or LoRA), with checkpoints"},
    {"steer", cmd_steer, "read and steer the aligner's correction representation (LAT)"},
};

static void usage(FILE *f) {
    fprintf(f, "Usage: salign [--help] [--version] COMMAND [ARGS]\n\n"
               "Stream Aligner: sentence-level alignment of LLM answers, in C.\n\nCommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nRun 'salign COMMAND --help' for a command's options.\n"
               "Models are cached in $SALIGN_MODELS (default ~/.cache/salign).\n");
}

int main(int argc, char **argv) {
    /* OpenBLAS fell back to generic kernels on a CPU it does not recognize (training ran about
     * four times slower here): it reads OPENBLAS_CORETYPE only when it loads, so set it and start again, as
     * the same process (the same pid, arguments and open files). If that fails, go on as we are. */
    const char *core = sa_train_blas_coretype_advice();
    if (core && setenv("OPENBLAS_CORETYPE", core, 1) == 0) execv("/proc/self/exe", argv);
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        usage(stdout);
        return CLI_OK;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("salign %s\nOpenBLAS core: %s\n", SA_VERSION, sa_train_blas_core());
        return CLI_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "salign: '%s' is not a salign command. See 'salign --help'.\n", cmd);
    return CLI_USAGE;
}
