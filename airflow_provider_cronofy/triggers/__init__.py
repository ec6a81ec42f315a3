"""Triggers: what a deferred task waits on in Airflow's triggerer (waiting only, no Cronofy request)."""
