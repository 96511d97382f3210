"""Airflow operators for dlflow-airflow stages."""
