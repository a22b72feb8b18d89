"""Plain, frozen data: what the manifest declares. No I/O, no links to graph, cache or providers."""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

ProviderType = Literal[
    "local", "modelark", "volcengine", "evolink", "atlascloud", "apiframe", "fal", "replicate"
]
ModelName = Literal["seedream-4.0", "seedream-4.5"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ProviderConfig(_Frozen):
    """A ``[providers.NAME]`` table."""

    type: ProviderType
    api_key_env: Optional[str] = None  # default depends on type
    base_url: Optional[str] = None  # default depends on type
    concurrency: int = Field(4, ge=1, le=64)  # HTTP requests in flight at once, across the build
    requests_per_minute: Optional[int] = Field(None, ge=1)  # client-side limit on API requests
    timeout_s: float = Field(180.0, gt=0)  # one HTTP request
    poll_interval_s: float = Field(2.0, gt=0)  # first poll delay of async hosts (backs off x1.5 to 10 s)
    poll_timeout_s: float = Field(900.0, gt=0)  # overall deadline for one async job
    max_attempts: int = Field(5, ge=1, le=20)  # tries per HTTP request (429/5xx/timeouts)
    fallback: Optional[str] = None  # another [providers.NAME] to use when this one is unavailable
    price_per_image: Optional[Union[float, dict[str, float]]] = None  # USD; or per canonical model
    model_ids: dict[str, str] = Field(default_factory=dict)  # canonical -> host id override (Ark "ep-...")
