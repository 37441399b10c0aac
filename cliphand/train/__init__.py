"""Training: the losses (paper eqs. 4-7), the training loop of both phases, and the experiment steps
(pretrain, finetune, ablation rows, evaluation) that the DVC stages call."""
