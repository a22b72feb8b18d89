"""plan/routing.py: what the planner asks of a provider without making one."""

from __future__ import annotations

import pytest

from assetbuild.plan.routing import OFFLINE_TYPES
from assetbuild.providers import provider_class
from assetbuild.spec.models import ProviderConfig


@pytest.mark.parametrize("type_", sorted(OFFLINE_TYPES))
def test_an_offline_type_reads_no_key_and_bills_nothing(type_):
    """Routing answers price 0 and no key for these types without making the provider: the
    provider must say the same."""
    provider = provider_class(type_)(type_, ProviderConfig(type=type_))
    assert provider.key_env is None
    for model in provider.models:
        assert provider.price_per_image(model, 4096 * 4096, 10) == 0.0


def test_a_plan_of_local_assets_makes_no_provider(project):
    """A plan with local assets to generate imports neither a provider nor pydantic (a plan
    after a prompt edit stays near its floor)."""
    import subprocess
    import sys

    project.manifest('[project]\nprovider = "local"\n\n[assets.a]\nprompt = "one"\nsize = "64x64"\n')
    assert project.run("plan").exit_code == 0  # the blueprint memo
    script = ("import sys; from assetbuild.api import Project; p = Project.load(sys.argv[1]); r = p.plan(); "
              "print(r.summary, sorted(m for m in ('pydantic', 'PIL', 'assetbuild.providers.local') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script, str(project.root)], capture_output=True, text=True,
                         env={**project.env}, check=True).stdout
    assert out.strip() == "1 generate []"
