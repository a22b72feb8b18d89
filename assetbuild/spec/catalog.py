"""The models x hosts table: which Seedream model each host sells, under which ids, with which
sizes, reference limits, batch behaviour, request fields and price, and where each fact comes
from. The one owner of that knowledge (STYLE rule 12): sizes.py reads the models' size limits
from it, every host reads its rows, pricing reads the price rules, and ``assetbuild models``
prints it. A new model is a new :class:`Model` and one :class:`Offer` per host that sells it.

Sources are named per row with the date they were read (README, "Models"). Tags as in
providers.md: [doc] the host's own page, [sdk] its official client or OpenAPI file, [3p] a
third party (a hint, not a contract), [stand-in] no price found: a figure for estimates only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..money import unit_price

READ_ON = "2026-12-06"  # when the sources below were read (search corpus of the hosts' pages)

# Modes a request can be in: text-to-image, edit (with references), a batch, both.
MODES = ("t2i", "edit", "sequential", "edit-sequential")

# How a host makes several images for one asset (count or candidates > 1):
#   sequential  one request; the model makes *up to* N and reads N from the prompt
#   num_images  one request of N separate generations, exactly N images (fal)
#   jobs        one job per image, submitted together (Apiframe: no batch field)
#   none        one image per request only: count > 1 needs batch = "separate"
BATCH_KINDS = ("sequential", "num_images", "jobs", "none")

ARK_MEDIA = ("image/jpeg", "image/png", "image/webp", "image/bmp", "image/tiff", "image/gif")
OLD_MEDIA = ("image/jpeg", "image/png")
ARK_RATIO = (1 / 16, 16.0)


@dataclass(frozen=True)
class Tier:
    """A price that holds up to ``max_pixels`` output pixels (inclusive)."""

    label: str
    max_pixels: int
    usd: float


@dataclass(frozen=True)
class Price:
    """USD per output image: ``usd``, or the first of ``tiers`` whose pixels the image fits,
    plus ``per_extra_reference`` for each reference image after the first."""

    usd: float
    source: str
    tiers: tuple[Tier, ...] = ()
    per_extra_reference: float = 0.0

    def per_image(self, pixels: int = 0, references: int = 0) -> float:
        usd = next((tier.usd for tier in self.tiers if pixels and pixels <= tier.max_pixels), self.usd)
        return usd + self.per_extra_reference * max(0, references - 1)

    def rule(self) -> str:
        """The rule in words: "$0.035/image", "$0.045/image up to 2,359,296 px, else $0.09/image
        + $0.003 per reference after the first"."""
        parts = [f"{unit_price(t.usd)}/image up to {t.max_pixels:,} px ({t.label})" for t in self.tiers]
        text = f"{', '.join(parts)}, else {unit_price(self.usd)}/image" if parts else f"{unit_price(self.usd)}/image"
        if self.per_extra_reference:
            text += f" + {unit_price(self.per_extra_reference)} per reference after the first"
        return text


@dataclass(frozen=True)
class Model:
    """A Seedream model's own limits (Ark's docs, the maker's API), whatever the host."""

    name: str  # canonical, as the manifest writes it
    title: str
    released: str
    tiers: tuple[str, ...]  # keyword sizes
    min_pixels: int
    max_pixels: int
    max_references: int
    source: str
    min_ratio: float = 1 / 16
    max_ratio: float = 16.0
    output_formats: tuple[str, ...] = ()  # selectable output formats; () = JPEG, not selectable


@dataclass(frozen=True)
class Offer:
    """One model on one host (provider type)."""

    host: str
    model: str
    ids: Mapping[str, str]  # mode (MODES) -> the host's model id for it
    price: Price
    source: str
    max_references: int = 14
    reference_media_types: tuple[str, ...] = ARK_MEDIA
    reference_ratio: tuple[float, float] = ARK_RATIO
    batch: str = "sequential"  # BATCH_KINDS
    max_count: int = 15  # images one request (or one submit of jobs) makes
    takes: frozenset[str] = frozenset()  # optional asset keys the host maps: output_format, seed, watermark, version
    refuses: tuple[str, ...] = ()  # body keys (dotted) never sent: the host answers 400 to them
    # Where the host sizes by keyword (tier + ratio), its tiers; () = it takes exact pixels.
    keyword_tiers: tuple[str, ...] = ()
    # The host's own bounds on output pixels (w x h), where narrower than the model's.
    pixels: tuple[int, int] | None = None
    notes: str = ""

    @property
    def id(self) -> str:
        return self.ids["t2i"]

    def model_id(self, references: bool, batch: bool) -> str:
        mode = ("edit-sequential" if batch else "edit") if references else ("sequential" if batch else "t2i")
        return self.ids.get(mode) or self.ids["t2i"]


def _same(model_id: str) -> dict[str, str]:
    return {mode: model_id for mode in MODES}


def _suffixed(base: str, **suffixes: str) -> dict[str, str]:
    return {"t2i": base, **{mode.replace("_", "-"): base + suffix for mode, suffix in suffixes.items()}}


def _fal(app: str) -> dict[str, str]:
    """fal's two endpoints under one app path: /text-to-image, and /edit with references."""
    t2i, edit = f"{app}/text-to-image", f"{app}/edit"
    return {"t2i": t2i, "edit": edit, "sequential": t2i, "edit-sequential": edit}


# -- the models ---------------------------------------------------------------------------

ARK_DOC = "BytePlus/Volcengine image generation API [doc] (providers.md §1.3, §1.4)"
MODELS: tuple[Model, ...] = (
    Model("seedream-4.0", "Seedream 4.0", "2025-08-28", ("1K", "2K", "4K"), 921_600, 16_777_216, 14, ARK_DOC),
    Model("seedream-4.5", "Seedream 4.5", "2025-11-28", ("2K", "4K"), 3_686_400, 16_777_216, 14, ARK_DOC),
    Model("seedream-5.0-lite", "Seedream 5.0 Lite", "2026-01-28", ("2K", "3K"), 3_686_400, 10_404_496, 14,
          "Volcengine API doc 82379/1541523 [doc, via a verbatim copy verified 2026-05-16]; jiekou.ai mirror "
          "of the BytePlus page (pixels [2560x1440, 3072x3072x1.1025], 14 refs)",
          output_formats=("png", "jpeg")),
    Model("seedream-5.0-pro", "Seedream 5.0 Pro", "2026-06-28", ("1K", "2K"), 921_600, 4_194_304, 10,
          "apiyi.com version notes [3p] (1K/2K, <= 4.19 MP, 10 refs, png/jpeg, 400 on any "
          "sequential_image_generation or stream field); minimum pixels unconfirmed (4.0's)",
          output_formats=("png", "jpeg")),
)
MODEL_NAMES: tuple[str, ...] = tuple(m.name for m in MODELS)

# -- prices -------------------------------------------------------------------------------

_LIST_4 = "Seedream list price, third-party figures (providers.md §1.8) [3p]"
_LITE = "$0.035/image: fal's 5.0 Lite page [doc]; BytePlus list per apiyi.com, aiapiplaybook.com [3p]"
_PRO = Price(0.09, "two output-pixel tiers (<= / > 2.36 MP) + each reference after the first: hop-base.com "
             "($0.045 / $0.09), laozhang.ai ($0.003 per extra reference, 2026-09-25) [3p]",
             tiers=(Tier("1K", 2_359_296, 0.045),), per_extra_reference=0.003)
_EVOLINK = ("evolink seeds: 1.6 credits = $0.0222 per 4.0 image, 2.25 credits = $0.0313 per 4.5 image "
            "(providers.md §2 / seeds) [doc]")

PRO_REFUSES_ARK = ("sequential_image_generation", "sequential_image_generation_options", "stream")
_ARK_OPT = frozenset({"watermark"})
_ARK_OPT_FORMAT = frozenset({"watermark", "output_format"})

OFFERS: tuple[Offer, ...] = (
    # BytePlus ModelArk (§1)
    Offer("modelark", "seedream-4.0", _same("seedream-4-0-250828"), Price(0.03, _LIST_4), ARK_DOC, takes=_ARK_OPT),
    Offer("modelark", "seedream-4.5", _same("seedream-4-5-251128"), Price(0.04, _LIST_4), ARK_DOC, takes=_ARK_OPT),
    Offer("modelark", "seedream-5.0-lite", _same("seedream-5-0-260128"), Price(0.035, _LITE),
          "BytePlus image generation API, later revision covering 5.0-lite [doc] (providers.md §1.2)",
          takes=_ARK_OPT_FORMAT),
    Offer("modelark", "seedream-5.0-pro", _same("seedream-5-0-pro-260628"), _PRO,
          "model id: laozhang.ai, apiyi.com [3p]; no BytePlus page for 5.0 Pro was found",
          max_references=10, batch="none", max_count=1, takes=_ARK_OPT_FORMAT, refuses=PRO_REFUSES_ARK,
          notes="any sequential_image_generation field, even \"disabled\", is answered 400 [3p]"),
    # Volcengine Ark (§1): the same protocol, doubao- ids; USD prices are stand-ins (CNY list unconfirmed)
    Offer("volcengine", "seedream-4.0", _same("doubao-seedream-4-0-250828"), Price(0.03, _LIST_4 + " [stand-in]"),
          ARK_DOC, takes=_ARK_OPT),
    Offer("volcengine", "seedream-4.5", _same("doubao-seedream-4-5-251128"), Price(0.04, _LIST_4 + " [stand-in]"),
          ARK_DOC, takes=_ARK_OPT),
    Offer("volcengine", "seedream-5.0-lite", _same("doubao-seedream-5-0-260128"), Price(0.035, _LITE + " [stand-in]"),
          "Volcengine doc 82379/1541523 [doc, via a verbatim copy]; skills.volces.com model list [doc]",
          takes=_ARK_OPT_FORMAT),
    # evolink (§2): ratio + quality, the backend picks the pixels
    Offer("evolink", "seedream-4.0", _same("doubao-seedream-4.0"), Price(0.0222, _EVOLINK),
          "docs.evolink.ai seedream-4.0-image-generate [doc] (providers.md §2.2)", max_references=10,
          reference_media_types=OLD_MEDIA, reference_ratio=(1 / 3, 3.0), keyword_tiers=("1K", "2K", "4K")),
    Offer("evolink", "seedream-4.5", _same("doubao-seedream-4.5"), Price(0.0313, _EVOLINK),
          "docs.evolink.ai seedream-4.5-image-generate [doc] (providers.md §2.2)", keyword_tiers=("2K", "4K")),
    Offer("evolink", "seedream-5.0-lite", _same("doubao-seedream-5.0-lite"),
          Price(0.035, "not found on evolink's pages: " + _LITE + " [stand-in]"),
          "docs.evolink.ai seedream-5.0-lite-image-generate [doc] (model id; fields assumed as 4.5's, "
          "quality 2K/3K)", keyword_tiers=("2K", "3K"),
          notes="5.0 Pro (doubao-seedream-5.0-pro) is listed as not yet available [doc]"),
    # Atlas Cloud (§3): the model id carries the mode
    Offer("atlascloud", "seedream-4.0",
          _suffixed("bytedance/seedream-v4", edit="/edit", sequential="/sequential", edit_sequential="/edit-sequential"),
          Price(0.027, "atlascloud.ai model pages, $0.027/run for /edit and /edit-sequential, taken per image [doc]"),
          "atlascloud.ai model pages [doc]; fields [3p] (providers.md §3)", max_references=10),
    Offer("atlascloud", "seedream-4.5",
          _suffixed("bytedance/seedream-v4.5", edit="/edit", sequential="/sequential", edit_sequential="/edit-sequential"),
          Price(0.036, "atlascloud.ai model pages, $0.036/run, taken per image [doc]"),
          "atlascloud.ai model pages [doc]; edit-sequential from Atlas's ComfyUI nodes [sdk] (§7.14)",
          max_references=10),
    Offer("atlascloud", "seedream-5.0-lite",
          _suffixed("bytedance/seedream-v5.0-lite", edit="/edit", sequential="/sequential",
                    edit_sequential="/edit-sequential"),
          Price(0.032, "atlascloud.ai/models/bytedance/seedream-v5.0-lite/edit-sequential, $0.032/run [doc]"),
          "atlascloud.ai/models/bytedance/seedream-v5.0-lite/edit-sequential [doc]", max_references=10),
    # Apiframe (§4): one job per image; sizes by keyword + ratio, or size "custom" with width/height
    Offer("apiframe", "seedream-4.0", _same("seedream-4"), Price(0.03, "credits; USD value not found: " + _LIST_4
                                                                + " [stand-in]"),
          "apiframe-nodejs-sdk openapi.json [sdk] (providers.md §4.2)", batch="jobs",
          takes=frozenset({"seed", "output_format"})),
    Offer("apiframe", "seedream-4.5", _same("seedream-4.5"), Price(0.04, "4 credits/generation (docs-v2.apiframe.ai "
                                                                   "seedream-4-5 [doc]); USD value not found [stand-in]"),
          "docs-v2.apiframe.ai/docs/images/seedream/seedream-4-5 [doc]; output_format jpg | png: the OpenAPI "
          "file [sdk]", batch="jobs", takes=frozenset({"seed", "output_format"})),
    Offer("apiframe", "seedream-5.0-lite", _same("seedream-5-lite"),
          Price(0.035, "4 credits/generation (docs-v2.apiframe.ai seedream-5-lite [doc]); USD value not found "
                "[stand-in]"),
          "docs-v2.apiframe.ai/docs/images/seedream/seedream-5-lite [doc]: size 2K|3K + aspect_ratio, "
          "image_input string[] (<= 14), output_format png|jpg", batch="jobs", keyword_tiers=("2K", "3K"),
          takes=frozenset({"output_format"}), refuses=("seedreamParams.width", "seedreamParams.height")),
    Offer("apiframe", "seedream-5.0-pro", _same("seedream-5-pro"), _PRO,
          "model enum of apiframe-nodejs-sdk openapi.json [sdk]; price as Ark's [3p]", max_references=10,
          batch="jobs", keyword_tiers=("1K", "2K"), takes=frozenset({"output_format"}),
          refuses=("seedreamParams.width", "seedreamParams.height")),
    # fal (§5): /text-to-image and /edit endpoints; num_images runs separate generations
    Offer("fal", "seedream-4.0", _fal("fal-ai/bytedance/seedream/v4"),
          Price(0.03, "fal.ai seedream v4 text-to-image llms.txt [doc]"),
          "fal.ai/models/fal-ai/bytedance/seedream/v4/{text-to-image,edit}/llms.txt [doc]", max_references=10,
          batch="num_images", max_count=6, takes=frozenset({"seed"})),
    Offer("fal", "seedream-4.5", _fal("fal-ai/bytedance/seedream/v4.5"),
          Price(0.04, "[3p] (providers.md §5.2)"),
          "fal.ai seedream v4.5 pages [3p] (providers.md §5.2)", max_references=10, batch="num_images", max_count=6,
          takes=frozenset({"seed"})),
    Offer("fal", "seedream-5.0-lite", _fal("fal-ai/bytedance/seedream/v5/lite"),
          Price(0.035, "fal.ai/models/fal-ai/bytedance/seedream/v5/lite/edit/llms.txt, $0.035 per image [doc]"),
          "fal.ai/docs/model-api-reference/image-generation-api/bytedance-seedream-v5-lite [doc]: image_size "
          "total 2560x1440..3072x3072, num_images / max_images 1-6", max_references=10, batch="num_images",
          max_count=6, takes=frozenset({"seed"}), pixels=(3_686_400, 9_437_184)),
    Offer("fal", "seedream-5.0-pro", _fal("bytedance/seedream/v5/pro"), _PRO,
          "endpoint ids from the issue report (no fal-ai/ prefix) [3p]; fal's page was not found",
          max_references=10, batch="none", max_count=1, refuses=("num_images", "max_images")),
    # Replicate (§6.1)
    Offer("replicate", "seedream-4.0", _same("bytedance/seedream-4"), Price(0.03, _LIST_4 + " [stand-in]"),
          "replicate.com/bytedance/seedream-4 API schema [doc]", max_references=10, takes=frozenset({"version"})),
    Offer("replicate", "seedream-4.5", _same("bytedance/seedream-4.5"), Price(0.04, _LIST_4 + " [stand-in]"),
          "replicate.com/bytedance/seedream-4.5 API schema [doc]", takes=frozenset({"version"})),
    Offer("replicate", "seedream-5.0-lite", _same("bytedance/seedream-5-lite"), Price(0.035, _LITE + " [stand-in]"),
          "replicate.com/bytedance/seedream-5-lite/versions/eeb2857d.../api [doc]: size 2K|3K + aspect_ratio "
          "(no custom), image_input 1-14, max_images 1-15, output_format png|jpeg",
          keyword_tiers=("2K", "3K"), takes=frozenset({"version", "output_format"}),
          refuses=("input.width", "input.height")),
)

HOSTS: tuple[str, ...] = tuple(dict.fromkeys(o.host for o in OFFERS))
_BY_KEY: dict[tuple[str, str], Offer] = {(o.host, o.model): o for o in OFFERS}
_MODELS: dict[str, Model] = {m.name: m for m in MODELS}


def model(name: str) -> Model | None:
    return _MODELS.get(name)


def offer(host: str, model_name: str) -> Offer | None:
    """The row for ``model_name`` on provider type ``host``, or None if the host does not sell it."""
    return _BY_KEY.get((host, model_name))


def offers_of(host: str) -> tuple[Offer, ...]:
    return tuple(o for o in OFFERS if o.host == host)


def hosts_of(model_name: str) -> tuple[str, ...]:
    return tuple(o.host for o in OFFERS if o.model == model_name)


def rows() -> list[dict[str, object]]:
    """The table as data (``assetbuild models --json``): one row per model x host."""
    out = []
    for o in OFFERS:
        m = _MODELS[o.model]
        out.append({
            "model": o.model, "host": o.host, "ids": dict(o.ids), "tiers": list(o.keyword_tiers or m.tiers),
            "pixels": [m.min_pixels, m.max_pixels], "ratio": [m.min_ratio, m.max_ratio],
            "sizing": "keyword + ratio" if o.keyword_tiers else "exact pixels",
            "max_references": o.max_references, "batch": o.batch, "max_count": o.max_count,
            "takes": sorted(o.takes), "refuses": list(o.refuses),
            "output_formats": list(m.output_formats or ("png", "jpeg")) if "output_format" in o.takes else [],
            "price_usd": o.price.usd, "price_rule": o.price.rule(), "price_source": o.price.source,
            "source": o.source, "notes": o.notes,
        })
    return out


def _ids_text(o: Offer) -> str:
    distinct = list(dict.fromkeys(o.ids[mode] for mode in MODES if mode in o.ids))
    return " / ".join(f"`{i}`" for i in distinct)


def markdown_table() -> str:
    """The table as README shows it (a test keeps README and this equal)."""
    lines = ["| model | host | model id(s) | sizes | max refs | batch | takes | price |",
             "|---|---|---|---|---|---|---|---|"]
    for o in OFFERS:
        m = _MODELS[o.model]
        tiers = "/".join(o.keyword_tiers or m.tiers)
        sizes = f"{tiers}, {m.min_pixels:,}-{m.max_pixels:,} px" + (" (keyword + ratio)" if o.keyword_tiers else "")
        batch = o.batch if o.batch in ("none", "jobs") else f"{o.batch} <= {o.max_count}"
        takes = ", ".join(sorted(o.takes)) or "-"
        if o.refuses:
            takes += "; never sent: " + ", ".join(f"`{r}`" for r in o.refuses)
        lines.append(f"| {o.model} | {o.host} | {_ids_text(o)} | {sizes} | {o.max_references} | {batch} | "
                     f"{takes} | {o.price.rule()} |")
    return "\n".join(lines)


__all__ = ["BATCH_KINDS", "HOSTS", "MODELS", "MODEL_NAMES", "MODES", "OFFERS", "Model", "Offer", "Price",
           "Tier", "hosts_of", "markdown_table", "model", "offer", "offers_of", "rows"]
