"""Examples of user extensions (models) for dlflow-airflow."""
