import os

# Tests run on CPU with deterministic single-threaded XLA reductions where possible.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
