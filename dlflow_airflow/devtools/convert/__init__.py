"""``dlflow-airflow convert``: a DLFlow HOCON config (and its dmflow merge flow) as a pipeline.

One module per step: :mod:`.hocon` reads HOCON with its includes (pyhocon,
imported lazily), :mod:`.templates` turns DLFlow's and dmflow's placeholders
into ours, :mod:`.mapping` maps the top-level keys and hands the blocks to
:mod:`.model` (which model, by task and labels: :mod:`.modelchoice`),
:mod:`.buckets`, :mod:`.sparkconf` and :mod:`.merge` (whose
FeatureFlow :mod:`.featureflow` reads: :mod:`.flowdeps` the dependencies,
:mod:`.flowsteps` the steps), :mod:`.findings` keeps what was not
mapped, :mod:`.output` renders and checks the YAML, :mod:`.command` runs it
all. See docs/migration.md.
"""
