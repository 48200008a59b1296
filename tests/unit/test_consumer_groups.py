"""Each stream service's checkpointed intake has a consumer group of its own.

Faust joins the group named by its app id; a second consumer with another subscription in the
same group makes the two rebalance each other (the experiments service hung on its second
start that way).
"""

from __future__ import annotations

from finops.experiments.app import create_app as experiments_app
from finops.experiments.settings import ExperimentsSettings
from finops.optimizer.app import create_app as optimizer_app
from finops.optimizer.settings import OptimizerSettings


def test_intake_group_is_not_the_faust_app_group():
    settings = ExperimentsSettings()
    app = experiments_app(settings)
    faust_group = app.state.faust.conf.id
    assert faust_group.startswith("finops-")
    assert settings.consumer_group != faust_group


def test_the_optimizer_runs_no_faust_app_whose_group_its_intake_could_share():
    app = optimizer_app(OptimizerSettings())
    assert app.state.faust is None
