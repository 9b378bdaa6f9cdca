"""GPU tests: the CUDA simulator runs in a subprocess (sim_worker.py); real-GPU tests skip here.

``sim_worker.py`` and ``compile_ptx.py`` are scripts run in their own processes, not test
modules: keep them out of collection (``--doctest-modules`` would import them).
"""

from __future__ import annotations

collect_ignore = ["sim_worker.py", "compile_ptx.py"]
