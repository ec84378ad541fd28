/* sa.h: umbrella header of the salign library (stream-aligner): every public header of
 * include/sa/ (tests/py/test_public_headers.py checks that none is left out). */
#ifndef SA_SA_H
#define SA_SA_H

#include "sa/status.h"
#include "sa/jsonl.h"
#include "sa/dtype.h"
#include "sa/gguf.h"
#include "sa/safetensors.h"
#include "sa/model_config.h"
#include "sa/tokenizer.h"
#include "sa/chat.h"
#include "sa/sampler.h"
#include "sa/hub.h"
#include "sa/convert.h"
#include "sa/model.h"
#include "sa/context.h"
#include "sa/lora.h"
#include "sa/steer.h"
#include "sa/batch.h"
#include "sa/segment.h"
#include "sa/upstream.h"
#include "sa/pipeline.h"
#include "sa/pipeline_trace.h"
#include "sa/proxy.h"
#include "sa/rollout.h"
#include "sa/server.h"
#include "sa/records.h"
#include "sa/data_build.h"
#include "sa/train.h"
#include "sa/math_answer.h"
#include "sa/eval_stats.h"
#include "sa/verdict.h"
#include "sa/eval_rounds.h"
#include "sa/judge.h"
#include "sa/report.h"
#include "sa/eval.h"

#define SA_VERSION "0.1.0"

#endif
