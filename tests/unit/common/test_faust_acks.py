"""FINOPS_KAFKA_ACKS reaches the Faust apps' producers (the healer's and the experiments'), as it
reaches the aiokafka producers: they sent with acks=-1 whatever it said. No broker is
contacted: the apps and their producers are only built."""

from __future__ import annotations

import pytest

from finops.common.kafka import producer_config
from finops.experiments.app import create_app as create_experiments_app
from finops.experiments.settings import ExperimentsSettings
from finops.healer.app import create_app as create_healer_app
from finops.healer.settings import HealerSettings

SERVICES = [(create_healer_app, HealerSettings), (create_experiments_app, ExperimentsSettings)]


@pytest.mark.parametrize(("create_app", "settings_class"), SERVICES)
@pytest.mark.parametrize(("acks", "expected"), [("all", -1), ("-1", -1), ("1", 1), ("0", 0)])
def test_the_faust_producer_sends_with_the_acks_setting(
    monkeypatch, create_app, settings_class, acks, expected
):
    monkeypatch.setenv("FINOPS_KAFKA_ACKS", acks)
    # idempotence needs acks=all (aiokafka refuses the others with it)
    monkeypatch.setenv("FINOPS_KAFKA_ENABLE_IDEMPOTENCE", str(expected == -1).lower())
    settings = settings_class()
    faust_app = create_app(settings).state.faust
    assert faust_app.conf.producer_acks == expected
    # what Faust hands the aiokafka producer it builds, next to a plain producer's
    assert faust_app.producer._settings_default()["acks"] == expected
    assert producer_config(settings)["acks"] == expected
