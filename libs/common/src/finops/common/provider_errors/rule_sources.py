"""Where the classification rules' payload shapes come from: the documents several rules cite.

Each rule of :mod:`finops.common.provider_errors.rules` and
:mod:`finops.common.provider_errors.status_rules` names its ``source``; a page only one rule
cites is written in that rule.
"""

from __future__ import annotations

OPENAI_ERRORS = "https://platform.openai.com/docs/guides/error-codes/api-errors"
ANTHROPIC_ERRORS = "https://docs.anthropic.com/en/api/errors"
VERTEX_429 = "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429"
BEDROCK_ERRORS = "https://docs.aws.amazon.com/bedrock/latest/APIReference/CommonErrors.html"
BEDROCK_RUNTIME = (
    "https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_InvokeModel.html"
)
AZURE_FILTER = "https://learn.microsoft.com/azure/ai-services/openai/concepts/content-filter"
PI_OVERFLOW = "https://github.com/badlogic/pi-mono/blob/main/packages/ai/src/utils/overflow.ts"
LITELLM_MAP = (
    "https://github.com/BerriAI/litellm/blob/main/"
    "litellm/litellm_core_utils/exception_mapping_utils.py"
)
HTTPX_ERRORS = "https://www.python-httpx.org/exceptions/"
