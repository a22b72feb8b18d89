import pytest

from assetbuild.spec.sizes import TABLE_RATIOS, SizeError, nearest_ratio, nearest_tier, resolve_size, tiers


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


# -- what the hosts ask (providers.md §1.4): the one owner of Seedream's size knowledge ----------


@pytest.mark.parametrize("model,expected", [
    ("seedream-4.0", ("1K", "2K", "4K")),
    ("seedream-4.5", ("2K", "4K")),  # no 1K on 4.5
    ("seedream-9.9", ("2K", "4K")),  # a model only a host's config names: the tiers every Seedream has
])
def test_tiers_per_model(model, expected):
    assert tiers(model) == expected


@pytest.mark.parametrize("model,width,height,tier", [
    ("seedream-4.0", 1280, 720, "1K"),
    ("seedream-4.0", 1024, 1024, "1K"),
    ("seedream-4.0", 1448, 1448, "1K"),  # 2,096,704 px: just under the geometric mean of 1K and 2K
    ("seedream-4.0", 1449, 1449, "2K"),
    ("seedream-4.0", 2848, 1600, "2K"),
    ("seedream-4.0", 5504, 3040, "4K"),
    ("seedream-4.5", 1280, 720, "2K"),  # 4.5 has no 1K: the nearest it offers
    ("seedream-4.5", 2560, 1440, "2K"),
    ("seedream-4.5", 4096, 4096, "4K"),
    ("seedream-4.5", 6240, 2656, "4K"),
])
def test_nearest_tier(model, width, height, tier):
    assert nearest_tier(model, width, height) == tier


@pytest.mark.parametrize("width,height,ratio", [
    (2048, 2048, "1:1"), (2848, 1600, "16:9"), (1600, 2848, "9:16"), (3136, 1344, "21:9"),
    (2304, 1728, "4:3"), (1664, 2496, "2:3"), (3840, 960, "21:9"), (960, 3840, "9:16"),
    (2000, 2500, "3:4"),  # 4:5 is not in the table: the nearest table ratio
])
def test_nearest_ratio_of_the_table(width, height, ratio):
    assert nearest_ratio(width, height) == ratio


def test_nearest_ratio_among_a_hosts_own_list():
    assert nearest_ratio(2000, 2500, ("1:1", "4:5", "3:4")) == "4:5"
    assert nearest_ratio(1000, 2000, ("1:1", "4:1")) == "1:1"  # log scale: 1:2 is as far from 1:1 as 2:1
    assert nearest_ratio(2000, 1000, ("1:1", "1:4")) == "1:1"


def test_the_table_ratios_are_the_recommended_tables_keys():
    assert TABLE_RATIOS == ("1:1", "4:3", "3:4", "16:9", "9:16", "3:2", "2:3", "21:9")
    for tier in ("1K", "2K", "4K"):
        for ratio in TABLE_RATIOS:
            width, height = resolve_size(f"{ratio}@{tier}", "seedream-4.0")
            assert nearest_ratio(width, height) == ratio


@pytest.mark.parametrize("text,model,expected", [
    ("21:9@1K", "seedream-4.0", (1512, 648)),  # 21:9 reduces to 7:3: the table is still found
    ("21:9@4K", "seedream-4.5", (6240, 2656)),  # was 6256x2688, over the pixel limit, and refused
    ("7:3@4K", "seedream-4.0", (6240, 2656)),
    ("42:18", "seedream-4.0", (3136, 1344)),
])
def test_a_ratio_the_table_lists_unreduced_is_found(text, model, expected):
    assert resolve_size(text, model) == expected
