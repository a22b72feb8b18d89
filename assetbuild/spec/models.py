"""Plain, frozen data: what the manifest declares. No I/O, no links to graph, cache or providers."""

from __future__ import annotations

from typing import Any, Literal, Optional, Union, get_args

from pydantic import BaseModel, ConfigDict, Field

from ..store.leases import DEFAULT_TTL_S, MAX_TTL_S, MIN_TTL_S
from .catalog import MODEL_NAMES

ProviderType = Literal[
    "local", "modelark", "volcengine", "evolink", "atlascloud", "apiframe", "fal", "replicate"
]
BUILT_IN_PROVIDERS: tuple[str, ...] = get_args(ProviderType)  # each usable by name without a table
# The models table's models (catalog.py): "seedream-4.0" | "seedream-4.5" | "seedream-5.0-lite" | ...
ModelName = Literal[MODEL_NAMES]  # type: ignore[valid-type]


class _Frozen(BaseModel):
    # allow_inf_nan=False: TOML has nan and inf, and no key of ours means anything by them
    # (max_cost = nan would compare false with every estimate, i.e. no budget at all).
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class ProviderConfig(_Frozen):
    """A ``[providers.NAME]`` table."""

    type: ProviderType
    api_key_env: Optional[str] = None  # default depends on type
    base_url: Optional[str] = None  # default depends on type
    concurrency: int = Field(4, ge=1, le=64)  # HTTP requests in flight at once, across the build
    requests_per_minute: Optional[int] = Field(None, ge=1, le=1_000_000)  # client-side limit on API requests
    # Upper bounds keep timers within what the OS and threading accept (1e300 s overflows them).
    timeout_s: Optional[float] = Field(None, gt=0, le=3600)  # one HTTP request; None: the type's default
    poll_interval_s: float = Field(2.0, gt=0, le=600)  # first poll delay of async hosts (backs off x1.5 to 10 s)
    poll_timeout_s: float = Field(900.0, gt=0, le=604_800)  # overall deadline for one async job
    max_attempts: int = Field(5, ge=1, le=20)  # tries per HTTP request (429/5xx/timeouts)
    download_deadline_s: float = Field(300.0, gt=0, le=86_400)  # overall deadline for fetching one result image
    max_download_mb: int = Field(64, ge=1, le=4096)  # the largest result image accepted
    fallback: Optional[str] = None  # another [providers.NAME] to use when this one is unavailable
    price_per_image: Optional[Union[float, dict[str, float]]] = None  # USD; or per canonical model
    model_ids: dict[str, str] = Field(default_factory=dict)  # canonical -> host id override (Ark "ep-...")
    # Replicate: canonical model -> the model version to pin (a 64-hex id), sent as
    # POST /v1/predictions {"version": ...}; a model not named runs the model's latest version.
    version: dict[str, str] = Field(default_factory=dict)


class ProjectConfig(_Frozen):
    """The ``[project]`` table."""

    name: Optional[str] = None
    output_dir: str = "assets"
    provider: str = "local"
    model: ModelName = "seedream-4.0"
    max_cost: Optional[float] = Field(None, ge=0)


class LimitsConfig(_Frozen):
    """The ``[limits]`` table: refuse input that would exhaust the machine before it does."""

    # Variants over the whole manifest; a matrix is counted before it is expanded.
    max_variants: int = Field(10_000, ge=1)
    # Pixels of one reference image, read from its header before it is decoded (a
    # decompression-bomb guard). 6000x6000 is the most any Seedream host accepts.
    max_reference_pixels: int = Field(36_000_000, ge=1)


class CacheConfig(_Frozen):
    """The ``[cache]`` table: a shared remote cache. Never credentials (the AWS env vars or a
    profile carry them)."""

    remote: Optional[str] = None  # s3://bucket/prefix or file:///path; env ASSETBUILD_CACHE_REMOTE overrides
    endpoint_url: Optional[str] = None  # an S3-compatible store (else AWS_ENDPOINT_URL, else AWS)
    timeout_s: float = Field(5.0, gt=0, le=300)  # connect and read timeout of one remote request
    leases: bool = True  # one machine pays for a fingerprint, the others wait for it (store/leases.py)
    lease_ttl_s: float = Field(DEFAULT_TTL_S, ge=MIN_TTL_S, le=MAX_TTL_S)  # a lease nobody renews expires after this


MatrixValue = Union[str, int, float, bool]


class AssetSpec(_Frozen):
    """One ``[assets.ID]`` table with ``[defaults]`` applied. Every key is optional here so
    the same model validates ``[defaults]``. A generated asset has a ``prompt``; a derived one
    has ``from`` and ``steps`` (tables checked by steps.py once matrix values are filled in)."""

    prompt: Optional[str] = None
    source: Optional[str] = Field(None, alias="from")  # derived: "@asset", "@asset#N" or a file
    steps: list[Any] = Field(default_factory=list)  # derived: [{ op = ... }, ...]
    references: list[str] = Field(default_factory=list)
    matrix: dict[str, list[MatrixValue]] = Field(default_factory=dict)
    count: int = Field(1, ge=1, le=15)
    candidates: int = Field(1, ge=2, le=15)  # generate N in one request, keep one (the pick); 2..15 when set
    size: str = "2K"
    seed: Optional[int] = Field(None, ge=-1, le=2_147_483_647)
    watermark: bool = False
    params: dict[str, Any] = Field(default_factory=dict)
    output: Optional[str] = None
    provider: Optional[str] = None
    model: Optional[ModelName] = None
    # "sequential": count / candidates as one batch request (the host's batch); "separate": N
    # single-image requests, each its own job and cache entry, for an exact count.
    batch: Literal["sequential", "separate"] = "sequential"
    output_format: Optional[Literal["png", "jpeg"]] = None  # the host's output format, where it takes one


class Manifest(_Frozen):
    """The whole validated ``assetbuild.toml``."""

    project: ProjectConfig = Field(default_factory=ProjectConfig)
    defaults: AssetSpec = Field(default_factory=AssetSpec)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    assets: dict[str, AssetSpec] = Field(default_factory=dict)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
