from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# numba compiles kernels on first use: the first example of a property test may be slow
settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60
)
settings.register_profile(
    "ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=60,
    derandomize=True,
)
# before a format or coder change lands: pytest --hypothesis-profile=thorough tests/codecs ...
settings.register_profile(
    "thorough", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=1000
)
settings.load_profile("ci" if os.environ.get("CI") else "default")
