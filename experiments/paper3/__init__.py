"""Paper 3 (Honarpisheh et al., NeurIPS 2025): selective SSMs. Unstable init and the loss
explosion (``unstable_init``, Figure 1), length-independent generalization from s_A = 0
(``length_independence``, Figure 2), the s_A sweep (``sA_sweep``, Figure 5) and the bound
terms vs T (``bound_terms``, Table 1)."""
