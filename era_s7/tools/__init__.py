"""The commands, each run as `python -m era_s7.tools.<name>` (or by make): notebooks (run and report them), check
(a learner's model against the assignment), predict, export (the web demo's models), bench, profile, stale (`make
check`), and the search's sweep, its candidates and its rounds. They build on the core, era_s7/*.py, which never
imports them."""
