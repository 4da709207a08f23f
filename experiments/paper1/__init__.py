"""Paper 1 (Liu & Li, ICML 2024): output-scale robustness of the init scaling rule
(``output_scale``), generalization gap vs the regularizer on synthetic regression
(``gen_gap``) and the four-way ablation of the LRA table (``ablation``)."""
