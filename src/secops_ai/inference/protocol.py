"""OpenAI protocol types: request bodies (pydantic, validated before any model work) and the error shape.

Kept on the inference side (as vLLM keeps ``protocol.py`` beside ``serving_chat.py``) so the serving
module, the API routes and in-process callers share one definition; ``secops_ai.api.schemas`` re-exports.
Every string a client sends must be valid UTF-8 (a lone surrogate such as ``"\\ud800"`` is a 400, not a
tokenizer crash), ``seed`` fits 0..2**63-1 (torch generators reject larger seeds) and a prompt has text.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_SEED = 2**63 - 1

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
          409: "invalid_request_error", 413: "invalid_request_error", 422: "invalid_request_error",
          429: "rate_limit_error", 500: "server_error", 502: "server_error", 503: "server_error"}


class OpenAIError(Exception):
    """An error answered as ``{"error": {"message", "type", "param", "code"}}`` with HTTP ``status``."""

    def __init__(self, status: int, message: str, *, type: str | None = None, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type or _TYPES.get(status, "invalid_request_error")
        self.param = param
        self.code = code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message, self.type, self.param, self.code)


def error_body(status: int, message: str, type: str | None = None, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type or _TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}


def _utf8(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"text is not valid UTF-8 (an unpaired surrogate at character {exc.start})") from None
    return value


Text = Annotated[str, AfterValidator(_utf8)]
TokenId = Annotated[int, Field(ge=0, strict=True)]  # strict: JSON true is no token id


class _Request(BaseModel):
    # Clients (openai, LangChain, lm-eval-harness, garak) send extra fields such as `user`; ignore them.
    model_config = ConfigDict(extra="ignore")


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Text
    text: Text | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text | list[ContentPart] | None = None
    name: Text | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text or "" for p in self.content if p.type == "text")

    def as_template_message(self) -> dict[str, str]:
        # Chat templates know system/user/assistant; OpenAI's newer "developer" role is a system prompt.
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": self.text()}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = Field(default=False, strict=True)


class _Sampling(_Request):
    model: Text = Field(default="default", description="A model id from GET /v1/models, or 'default'.")
    # strict numbers and booleans: the schema's types, not pydantic's lax coercions (1.0 as n, false as 0.0)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0, strict=True)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0, strict=True)
    n: int = Field(default=1, ge=1, le=8, strict=True)
    stop: Text | list[Text] | None = None
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED, strict=True)
    stream: bool = Field(default=False, strict=True)
    stream_options: StreamOptions | None = None
    frequency_penalty: float = Field(default=0.0, strict=True)
    presence_penalty: float = Field(default=0.0, strict=True)

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, value: str | list[str] | None) -> list[str] | None:
        if value is None:
            return None
        stops = [value] if isinstance(value, str) else value
        if len(stops) > 4:
            raise ValueError("at most 4 stop sequences are allowed")
        return [s for s in stops if s]

    @field_validator("frequency_penalty", "presence_penalty")
    @classmethod
    def _no_penalties(cls, value: float) -> float:
        if value != 0.0:
            raise ValueError("penalties are not supported by this server; leave them at 0")
        return value

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, strict=True)
    max_completion_tokens: int | None = Field(default=None, ge=1, strict=True)
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    # SecOps extension (``extra_body={"secops": {...}}``), read by chat hooks such as self-correction.
    secops: dict[str, Any] | None = None

    @field_validator("tools")
    @classmethod
    def _no_tools(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if value:
            raise ValueError("tool calls need a remote engine (SECOPS_LLM_BASE_URL); the local engine has none")
        return value

    @field_validator("response_format")
    @classmethod
    def _text_only(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value and value.get("type", "text") != "text":
            raise ValueError("only response_format type 'text' is supported by the local engine")
        return value

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_Sampling):
    # OpenAI's legacy completions accept text, a list of texts, token ids or a list of token-id lists
    # (lm-eval-harness' local-completions sends token ids by default).
    prompt: Text | list[Text] | list[TokenId] | list[list[TokenId]] = Field(
        description="Text, texts, token ids or lists of token ids; none may be empty.")
    max_tokens: int = Field(default=16, ge=0, strict=True,
                            description="0 with echo scores the prompt without generating.")
    echo: bool = Field(default=False, strict=True)
    logprobs: int | None = Field(default=None, ge=0, le=5, strict=True)

    @model_validator(mode="after")
    def _scoring_rules(self) -> CompletionRequest:
        if self.max_tokens == 0 and not self.echo:
            raise ValueError("max_tokens=0 needs echo=true (it only scores the prompt)")
        if self.logprobs is not None and self.stream:
            raise ValueError("logprobs are not available with stream=true on this server")
        prompts = self.prompts
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("prompt must not be empty (send text or at least one token id)")
        return self

    @property
    def prompts(self) -> list[str | list[int]]:
        """One entry per prompt: its text, or its token ids."""
        p = self.prompt
        if isinstance(p, str):
            return [p]
        if p and all(isinstance(x, int) for x in p):
            return [list(p)]  # type: ignore[arg-type]
        return list(p)  # type: ignore[arg-type]


class EmbeddingRequest(_Request):
    model: Text = "default"
    input: Text | list[Text]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, strict=True)

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)
