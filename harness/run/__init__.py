"""A run: the scenario file (scenario.py), the plan it resolves into (plan.py: cells, blocks, settings; nothing
below reads the scenario again), the runner looping over the plan's blocks (runner.py), precision stopping
(precision.py), planted faults for the gate's tests (plants.py), side-by-side runs (sidebyside.py) and
`describe`."""
