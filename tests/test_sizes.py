import pytest

from assetbuild.sizes import SizeError, resolve_size


@pytest.mark.parametrize("text,model,expected", [
    ("2K", "seedream-4.0", (2048, 2048)),
    ("1K", "seedream-4.0", (1024, 1024)),
    ("4K", "seedream-4.5", (4096, 4096)),
    ("16:9", "seedream-4.0", (2848, 1600)),  # newer revision of the recommended table
    ("16:9@4K", "seedream-4.5", (5504, 3040)),
    ("9:16@1K", "seedream-4.0", (720, 1280)),
    ("4:3@1K", "seedream-4.0", (1152, 864)),  # the doc lists it swapped (sic); corrected
    ("32:18", "seedream-4.0", (2848, 1600)),  # reduced to 16:9
    ("5:4", "seedream-4.0", (2288, 1824)),  # not in the table: the tier's pixel budget
    ("2048x2048", "seedream-4.5", (2048, 2048)),
    ("16x16", "local", (16, 16)),
    ("8192x64", "local", (8192, 64)),
])
def test_resolves(text, model, expected):
    assert resolve_size(text, model) == expected


@pytest.mark.parametrize("text,model,message", [
    ("800x800", "seedream-4.0", "needs 921,600"),
    ("1500x1500", "seedream-4.5", "needs 3,686,400"),
    ("1920x1080", "seedream-4.5", "needs 3,686,400"),
    ("1K", "seedream-4.5", "no 1K"),
    ("4097x4097", "seedream-4.0", "16,777,216"),
    ("4000x200", "seedream-4.0", "aspect ratio"),
    ("8x8", "local", "16 to 8192"),
    ("2k pixels", "seedream-4.0", "is not 1K"),
    ("0x10", "local", "zero"),
])
def test_rejects(text, model, message):
    with pytest.raises(SizeError, match=message):
        resolve_size(text, model)
