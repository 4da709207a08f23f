"""Paper 2 (Liu & Li, *Autocorrelation Matters*, ICLR 2025): output scale at init vs L and the
autocorrelation timescale (``output_scale``), Gram conditioning of the read-out problem
(``conditioning``), memory with zero real parts (``memory``), sequential vs decorrelated
sequential MNIST with one init factor changed at a time and Re after training (``smnist``),
the trained best Delta vs L (``delta_sweep``). Shared formulas in
:mod:`ssm_jax.experiments.paper2.common`; in-memory training of many small runs at once in
:mod:`ssm_jax.experiments.paper2.members`."""
