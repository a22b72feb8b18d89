import io

from PIL import Image

from assetbuild.providers.base import GenerationRequest, MemoryJobStore, ReferenceImage
from assetbuild.providers.local import LocalProvider
from tests.conftest import png


def request(**kw):
    base = dict(asset_id="a", fingerprint="f" * 64, prompt="a fox", model="local", width=300, height=200,
                size="300x200", count=1)
    return GenerationRequest(**{**base, **kw})


def decode(data):
    return Image.open(io.BytesIO(data))


def test_exact_size_count_and_determinism():
    provider = LocalProvider()
    result = provider.generate(request(count=3), MemoryJobStore())
    assert len(result.images) == 3 and result.cost_usd == 0 and result.model_id == "local"
    assert all(decode(img).size == (300, 200) for img in result.images)
    assert len(set(result.images)) == 3  # each image of a batch differs
    assert provider.generate(request(count=3), MemoryJobStore()).images == result.images


def test_inputs_change_the_picture():
    provider = LocalProvider()
    one = provider.generate(request(), MemoryJobStore()).images[0]
    assert provider.generate(request(prompt="a wolf"), MemoryJobStore()).images[0] != one
    ref = ReferenceImage("ref.png", png(40, 40, (255, 0, 0)), "image/png", 40, 40)
    with_ref = provider.generate(request(references=(ref,)), MemoryJobStore()).images[0]
    assert with_ref != one
    # the reference is shown as a thumbnail in the bottom-left corner
    pixel = decode(with_ref).convert("RGB").getpixel((10, 190))
    assert pixel[0] > 200 and pixel[1] < 60
