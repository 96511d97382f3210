"""Views of what a run left in the workspace: the run report in the Airflow UI.

- :mod:`.partitions`: each stage's partitions for its run (written, reused,
  missing, blocked by the gate), from the artifact contract; the CLI's
  ``report`` prints the same states.
- :mod:`.run_report`: a DAG run's report (stages, metrics and plots, drift,
  fmap, model manifest), read through the storage layer.
- :mod:`.page`: the report as a small server-rendered HTML page.
- :mod:`.app` and :mod:`.plugin`: the Airflow plugin serving it (api-server only).
"""
