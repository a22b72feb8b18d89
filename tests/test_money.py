"""One money format everywhere an amount is shown (plan, build, progress, summaries, report)."""

from assetbuild.money import usd


def test_amounts_read_with_cents_and_thousands():
    assert [usd(0), usd(0.03), usd(0.125), usd(12), usd(1234.5)] == ["$0.00", "$0.03", "$0.12", "$12.00", "$1,234.50"]


def test_an_amount_under_a_cent_is_not_shown_as_free():
    assert usd(0.004) == "$0.0040" and usd(0.0001) == "$0.0001"


def test_a_unit_price_keeps_its_digits():
    from assetbuild.money import unit_price

    assert [unit_price(0.035), unit_price(0.5), unit_price(0.0222), unit_price(0.03)] == [
        "$0.035", "$0.5", "$0.0222", "$0.03"]
