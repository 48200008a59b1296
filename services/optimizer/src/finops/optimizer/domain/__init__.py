"""The optimizer's pure domain: analytics, budgets, anomalies and the routing policy."""

#: the ``source`` of every alert the optimizer raises (:class:`finops.common.alerts.Alert`)
ALERT_SOURCE = "optimizer"
