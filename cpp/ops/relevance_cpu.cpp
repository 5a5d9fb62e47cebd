// CPU kernel of attention_grad_relevance.
#include <torch/library.h>

#include "attnscope/relevance.h"

TORCH_LIBRARY_IMPL(attnscope, CPU, m) { m.impl("attention_grad_relevance", &attnscope::attention_grad_relevance); }
