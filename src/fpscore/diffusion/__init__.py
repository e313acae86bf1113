"""Learning from pre-computed scores (METHOD.md sections 7-9) and the DDPM baseline.

sde: g, lambda, time levels; embedding: score embedding; unet: the network;
losses: our loss and the DDPM loss; sampling: probability-flow ODE; ddpm: the
DDPM schedule and samplers; methods: both methods behind one interface;
evaluation: Table 1's protocols (generate, noisy_copy) as one evaluator for every method;
training: the shared training loop (TrainState, EMA, stopping rules, checkpoints).
"""
