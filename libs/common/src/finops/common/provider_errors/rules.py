"""The classification rules: one ordered data table, first match wins.

A rule matches when every condition it sets holds: provider family, HTTP status, provider
error type or code (``ids``, either field, case-insensitive; ``id_pattern`` for a substring
such as Google's ``...PerDay...`` quota ids), a message regex, a header regex. ``source``
names where the payload shape comes from (provider documentation or a public issue thread);
a test checks that every rule has one and that every kind has at least one rule. Patterns are
matched against lower-cased text; the matching itself is
:mod:`finops.common.provider_errors.matching`.

Two tiers: ``SPECIFIC_RULES`` (this module) name something the provider said (type, code,
message, header) and run first; ``STATUS_RULES``
(:mod:`finops.common.provider_errors.status_rules`) look at the status alone and run only after
the agent's hint had its say (see :mod:`finops.common.provider_errors.classify`; the healer's
learned text classifier comes before the hint, see ``finops.healer.domain.classify``).
``RULES`` is both, in that order. The documents the sources cite most are named in
:mod:`finops.common.provider_errors.rule_sources`.

Order matters where messages overlap: quota before rate limits (OpenAI sends "You exceeded
your current quota" as a 429), Google's per-minute quotas before the generic quota wording
(Gemini says "You exceeded your current quota" for a per-minute limit too), context overflow
before rate limits (OpenAI's "Request too large … on tokens per min" can never succeed),
throttling before overload ("Too many tokens, please wait" is Bedrock throttling).
"""

from __future__ import annotations

from finops.common.provider_errors.matching import Rule, header_pattern, idset, pattern
from finops.common.provider_errors.rule_sources import (
    ANTHROPIC_ERRORS,
    AZURE_FILTER,
    BEDROCK_ERRORS,
    BEDROCK_RUNTIME,
    HTTPX_ERRORS,
    LITELLM_MAP,
    OPENAI_ERRORS,
    PI_OVERFLOW,
    VERTEX_429,
)
from finops.common.provider_errors.status_rules import STATUS_RULES
from finops.common.provider_errors.taxonomy import ErrorKind

K = ErrorKind

SPECIFIC_RULES: tuple[Rule, ...] = (
    # ---- the agent's own doing, nothing the provider said: the SDK reports a call its agent
    # cancelled (a timeout) or interrupted (Ctrl-C) during its first attempt as the give-up
    # its experiment counts, the exception's qualified name first. Decided here, before the
    # healer's learned classifier could read "cancelled" as a timeout and open a breaker.
    Rule(
        name="ended_by_the_agent",
        kind=K.UNKNOWN,
        source="https://docs.python.org/3/library/asyncio-exceptions.html",
        message=pattern(r"^(?:asyncio\.exceptions\.CancelledError|builtins\.KeyboardInterrupt)\b"),
    ),
    # ---- quota and billing: used up, not retryable (before rate limits: both are 429s)
    Rule(
        name="openai_insufficient_quota",
        kind=K.QUOTA_EXHAUSTED,
        source=OPENAI_ERRORS,
        ids=idset("insufficient_quota", "billing_hard_limit_reached", "billing_not_active"),
    ),
    # Gemini free tier for a model outside the plan: "Quota exceeded for metric: …, limit: 0".
    Rule(
        name="gemini_quota_limit_zero",
        kind=K.QUOTA_EXHAUSTED,
        source="https://github.com/continuedev/continue/issues/10062",
        message=pattern(r"quota exceeded for metric: \S+, limit: 0\b"),
    ),
    # Google QuotaFailure with a per-day quota id, e.g. GenerateRequestsPerDayPerProjectPerModel.
    Rule(
        name="google_daily_quota",
        kind=K.QUOTA_EXHAUSTED,
        source="https://github.com/langgenius/dify/issues/19838",
        id_pattern=pattern(r"PerDay"),
    ),
    Rule(
        name="google_daily_quota_message",
        kind=K.QUOTA_EXHAUSTED,
        source="https://github.com/langgenius/dify/issues/19838",
        providers=frozenset({"google"}),
        message=pattern(r"per[_ ]day|requests per day"),
    ),
    # Google RESOURCE_EXHAUSTED otherwise means a per-minute quota or shared capacity: retry.
    Rule(
        name="google_resource_exhausted",
        kind=K.RATE_LIMIT,
        source=VERTEX_429,
        ids=idset(
            "RESOURCE_EXHAUSTED", "rateLimitExceeded", "ResourceExhausted", "TooManyRequests"
        ),
    ),
    Rule(
        name="google_quota_per_minute",
        kind=K.RATE_LIMIT,
        source="https://github.com/felixbinder/introspection_self_prediction/issues/66",
        message=pattern(
            r"resource (?:has been )?exhausted"
            r"|quota exceeded for (?:metric|aiplatform|quota metric)"
        ),
    ),
    # Gemini words its per-minute limits "You exceeded your current quota" too (rate-limits docs).
    Rule(
        name="gemini_quota_wording",
        kind=K.RATE_LIMIT,
        source="https://ai.google.dev/gemini-api/docs/rate-limits",
        providers=frozenset({"google"}),
        message=pattern(r"exceeded your current quota"),
    ),
    Rule(
        name="quota_message",
        kind=K.QUOTA_EXHAUSTED,
        source=OPENAI_ERRORS,
        message=pattern(
            r"exceeded your current quota|check your plan and billing|billing hard limit"
            r"|credit balance is too low|insufficient (?:credits|balance|funds|quota)"
            r"|(?:monthly|usage) (?:spend )?limit (?:has been )?reached|payment required"
            r"|(?:more|insufficient|enough) credits|credits? (?:are|is) required|out of credits"
            r"|(?:purchase|add|buy) (?:more )?credits|higher monthly limit|spend(?:ing)? limit"
        ),
    ),
    # ---- context window: fall back to a bigger window or trim (before rate limits)
    Rule(
        name="context_length_code",
        kind=K.CONTEXT_LENGTH_EXCEEDED,
        source=OPENAI_ERRORS,
        ids=idset(
            "context_length_exceeded model_context_window_exceeded request_too_large "
            "string_above_max_length"
        ),
    ),
    Rule(
        name="context_length_message",
        kind=K.CONTEXT_LENGTH_EXCEEDED,
        source=PI_OVERFLOW,
        message=pattern(
            r"maximum context length|context[_ ]length[_ ]exceeded|exceeds? the context window"
            r"|prompt is too long|input is too long|too many input tokens"
            r"|input token count.{0,40}exceeds the maximum|maximum prompt length is"
            r"|reduce the length of the messages|too large for model with \d+ maximum context"
            r"|exceeded model token limit|prompt: length|input length .{0,40}exceeds?"
            r"|exceed context limit"
            r"|request exceeds the maximum size|request payload size exceeds"
            r"|longer than the model's context length|exceeds the available context size"
            r"|invalid '(?:messages|input)[^']*': string too long"
        ),
    ),
    # OpenAI: a request larger than the whole per-minute token limit can never pass as it is.
    # Groq says the same, its model, organisation and service tier between ("Request too large
    # for model `…` in organization `org_…` service tier `on_demand` on tokens per minute"):
    # over 80 characters, so the span is wider than OpenAI's "for gpt-4o in organization org-…".
    Rule(
        name="openai_request_too_large",
        kind=K.CONTEXT_LENGTH_EXCEEDED,
        source="https://github.com/TheR1D/shell_gpt/issues/653",
        message=pattern(r"request too large for .{1,200} on tokens per min"),
    ),
    # ---- content policy: do not retry the same prompt
    Rule(
        name="content_policy_code",
        kind=K.CONTENT_POLICY,
        source=AZURE_FILTER,
        ids=idset(
            "content_filter content_policy_violation ResponsibleAIPolicyViolation "
            "moderation_blocked SAFETY PROHIBITED_CONTENT BLOCKLIST SPII "
            "guardrail_intervened content_filtered task_failed_text_safety_system"
        ),
    ),
    # Google ErrorInfo reasons such as PUBLIC_ERROR_UNSAFE_GENERATION under INVALID_ARGUMENT.
    Rule(
        name="google_unsafe_reason",
        kind=K.CONTENT_POLICY,
        source="https://github.com/ffroliva/gflow-cli/issues/342",
        id_pattern=pattern(r"UNSAFE|_SAFETY"),
    ),
    Rule(
        name="content_policy_message",
        kind=K.CONTENT_POLICY,
        source="https://github.com/openai/openai-python/issues/331",
        message=pattern(
            r"content management policy|content (?:filtering )?polic|content filter"
            r"|safety system|violating our usage polic|usage policies"
            r"|(?:prompt|response|output|content) (?:was |has been )?blocked"
            r"|blocked by (?:the )?(?:safety|content)|harm category|guardrail"
            r"|\bblocked\b.{0,30}\b(?:safety|recitation|prohibited_content|blocklist|spii)\b"
        ),
    ),
    # ---- authentication and permission (401 and 403)
    Rule(
        name="auth_code",
        kind=K.AUTH,
        source=ANTHROPIC_ERRORS,
        ids=idset(
            "invalid_api_key authentication_error permission_error unauthorized "
            "AccessDeniedException UnrecognizedClientException ExpiredTokenException "
            "InvalidSignatureException IncompleteSignature InvalidClientTokenId "
            "MissingAuthenticationToken API_KEY_INVALID PERMISSION_DENIED UNAUTHENTICATED "
            "PermissionDenied invalid_authentication unsupported_country_region_territory "
            "account_deactivated forbidden AuthenticationError PermissionDeniedError"
        ),
    ),
    Rule(
        name="auth_message",
        kind=K.AUTH,
        source=LITELLM_MAP,
        message=pattern(
            r"invalid (?:x-)?api[ _-]?key|incorrect api key|api key (?:not valid|not found)"
            r"|invalid authentication|authentication (?:failed|error)|unauthori[sz]ed"
            r"|access denied|permission denied|not authorized|security token included in"
            r"|unable to locate credentials|invalid subscription key|reported as leaked"
            r"|don't have access to the model|no api key provided"
            r"|organization has been disabled"
            r"|account (?:has been |is )?(?:disabled|deactivated|suspended)"
            r"|(?:api )?key (?:has been |is )?(?:disabled|revoked|deactivated)"
        ),
    ),
    # ---- model (or Azure deployment) not found: fall back to another model
    Rule(
        name="model_not_found_code",
        kind=K.MODEL_NOT_FOUND,
        source=OPENAI_ERRORS,
        ids=idset(
            "model_not_found DeploymentNotFound NOT_FOUND not_found_error invalid_model "
            "ResourceNotFoundException NotFound NotFoundError"
        ),
    ),
    Rule(
        name="model_not_found_message",
        kind=K.MODEL_NOT_FOUND,
        source="https://github.com/wwardaww/gnome-gemini-ai/issues/22",
        message=pattern(
            r"model\b.{0,80}\b(?:does not exist|not found|was not found)"
            r"|deployment for this resource does not exist|invalid model|unknown model"
            r"|no such model|model identifier is invalid|is not found for api version"
            r"|^model: \S+\s*$"
        ),
    ),
    # ---- rate limits: wait the stated time and retry
    Rule(
        name="rate_limit_code",
        kind=K.RATE_LIMIT,
        source=OPENAI_ERRORS,
        ids=idset(
            "rate_limit_exceeded rate_limit_error rate_limited RateLimitReached "
            "ThrottlingException TooManyRequestsException ServiceQuotaExceededException "
            "RateLimitError too_many_requests 1300"
        ),
    ),
    # Bedrock names the exception in a header; the body is only {"message": ...}.
    Rule(
        name="bedrock_throttling_header",
        kind=K.RATE_LIMIT,
        source="https://github.com/aws-samples/amazon-bedrock-client-for-mac/issues/99",
        header=(
            "x-amzn-errortype",
            header_pattern(r"^(?:Throttling|ServiceQuotaExceeded)Exception"),
        ),
    ),
    Rule(
        name="rate_limit_message",
        kind=K.RATE_LIMIT,
        source=LITELLM_MAP,
        message=pattern(
            r"rate[ _-]?limit|too many requests|throttl|please wait before trying again"
            r"|reduce the frequency of requests|request rate is too high"
            r"|exceeds the service quota"
        ),
    ),
    # ---- overloaded: the provider is short of capacity; retry or go elsewhere
    Rule(
        name="overloaded_code",
        kind=K.OVERLOADED,
        source=ANTHROPIC_ERRORS,
        ids=idset(
            "overloaded_error server_is_overloaded service_tier_capacity_exceeded "
            "ModelNotReadyException ServiceUnavailable MODEL_CAPACITY_EXHAUSTED "
            "ServiceUnavailableException serviceUnavailableException UNAVAILABLE 3505"
        ),
    ),
    Rule(
        name="bedrock_unavailable_header",
        kind=K.OVERLOADED,
        source=BEDROCK_ERRORS,
        header=("x-amzn-errortype", header_pattern(r"^ServiceUnavailableException")),
    ),
    Rule(
        name="overloaded_message",
        kind=K.OVERLOADED,
        source="https://github.com/openai/openai-python/issues/414",
        message=pattern(
            r"overloaded|over capacity|at capacity|capacity exceeded|high demand"
            r"|no capacity available|out of capacity|temporarily unable to process"
            r"|is unable to process your request|service (?:is )?(?:temporarily )?unavailable"
        ),
    ),
    # ---- timeouts
    Rule(
        name="timeout_code",
        kind=K.TIMEOUT,
        source=BEDROCK_RUNTIME,
        ids=idset(
            "ModelTimeoutException DEADLINE_EXCEEDED DeadlineExceeded timeout "
            "request_timeout APITimeoutError ReadTimeout ConnectTimeout WriteTimeout "
            "PoolTimeout ReadTimeoutError ConnectTimeoutError TimeoutError TimeoutException "
            "Timeout"
        ),
    ),
    Rule(
        name="timeout_message",
        kind=K.TIMEOUT,
        source="https://github.com/Arize-ai/phoenix/issues/1925",
        message=pattern(
            r"timed? ?out|deadline (?:expired|exceeded)|read timeout|connect timeout"
            r"|request timeout|gateway time-?out|ETIMEDOUT"
        ),
    ),
    # ---- network: no (complete) response at all
    Rule(
        name="network_code",
        kind=K.NETWORK,
        source=HTTPX_ERRORS,
        ids=idset(
            "APIConnectionError ConnectError ConnectionError ConnectionResetError "
            "ConnectionRefusedError ConnectionAbortedError RemoteProtocolError "
            "EndpointConnectionError ServerDisconnectedError ClientConnectorError "
            "ClientOSError ProtocolError NetworkError ReadError WriteError SSLError "
            "ProxyError ConnectionClosedError"
        ),
    ),
    Rule(
        name="network_message",
        kind=K.NETWORK,
        source="https://github.com/OpenHands/OpenHands/issues/1008",
        message=pattern(
            r"connection (?:error|refused|reset|aborted|closed)|could not connect"
            r"|failed to establish a new connection|name or service not known"
            r"|temporary failure in name resolution|nodename nor servname"
            r"|server disconnected|peer closed connection|incomplete chunked read"
            r"|network is unreachable|ECONNRESET|ECONNREFUSED|EAI_AGAIN|socket hang up"
            r"|broken pipe|getaddrinfo|upstream connect error|reset before headers"
        ),
    ),
    # ---- the model's output was malformed: re-ask (JSON mode, lower temperature)
    Rule(
        name="invalid_output_code",
        kind=K.INVALID_OUTPUT,
        source="https://github.com/Bklieger/infinite-bookshelf/issues/42",
        ids=idset(
            "json_validate_failed model_error MALFORMED_FUNCTION_CALL UNEXPECTED_TOOL_CALL "
            "tool_use_failed output_parse_failed JSONDecodeError LengthFinishReasonError "
            "OutputParserException"
        ),
    ),
    Rule(
        name="invalid_output_message",
        kind=K.INVALID_OUTPUT,
        source="https://github.com/BerriAI/litellm/issues/8020",
        message=pattern(
            r"produced invalid content|failed to generate (?:valid )?json|invalid json"
            r"|could not parse (?:the )?(?:response|output|model)|malformed function call"
            r"|failed to parse (?:tool|function|the model)|expecting value: line \d+"
            r"|unterminated string|not valid json|tool call validation failed|\bmodel_error\b"
        ),
    ),
    # ---- provider-side failures
    Rule(
        name="server_error_code",
        kind=K.SERVER_ERROR,
        source=ANTHROPIC_ERRORS,
        ids=idset(
            "api_error server_error InternalServerException INTERNAL internal_error "
            "internal_server_error ModelErrorException ModelStreamErrorException "
            "InternalServerError InternalFailure"
        ),
    ),
    Rule(
        name="server_error_message",
        kind=K.SERVER_ERROR,
        source="https://github.com/LlmKira/Openaibot/issues/125",
        message=pattern(
            r"internal server error|server had an error|error occurred while processing your"
            r"|internal error|unexpected (?:server )?error|bad gateway|unknown error"
        ),
    ),
    # ---- anything else the provider rejected as a bad request
    Rule(
        name="bad_request_code",
        kind=K.BAD_REQUEST,
        source=ANTHROPIC_ERRORS,
        ids=idset(
            "invalid_request_error INVALID_ARGUMENT FAILED_PRECONDITION FailedPrecondition "
            "InvalidArgument OUT_OF_RANGE ValidationException invalid_request BadRequest "
            "BadRequestError bad_request UnprocessableEntityError invalid_value "
            "unsupported_parameter unsupported_value"
        ),
    ),
    Rule(
        name="bad_request_message",
        kind=K.BAD_REQUEST,
        source=LITELLM_MAP,
        message=pattern(
            r"malformed input request|unsupported parameter|invalid parameter"
            r"|invalid value for|is not a valid|extra inputs are not permitted"
        ),
    ),
)


RULES: tuple[Rule, ...] = SPECIFIC_RULES + STATUS_RULES
