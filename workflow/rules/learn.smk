# Learning (METHOD.md sections 7-9): train our method (score embedding of the
# pre-computed scores) and the DDPM baseline per experiment, then sample.
#   results/train/{experiment}/{method}/model.pt, train_log.csv, train_log.json (summary)
#   results/samples/{experiment}/{method}/samples.npz
# Training resumes from model.pt.ckpt (beside the model, undeclared) after an interruption.
from fpscore.cli.learn import runtime_minutes, stop_options, train_options


def _learn_images(wildcards):
    spec = experiment(wildcards.experiment)
    return f"results/data/{spec['dataset']}/{spec['resolution']}/images.npz"


def _learn_scores(kind):
    """scores.npz / solve_log.csv of the configured solver (our method only)."""

    def files(wildcards):
        if wildcards.method != "ours":
            return []
        spec = experiment(wildcards.experiment)
        name = "scores.npz" if kind == "scores" else "solve_log.csv"
        return f"results/scores/{spec['dataset']}/{spec['resolution']}/{config['scores']['solver']}/{name}"

    return files


def learn_targets():
    """Samples of every experiment and both methods (generation: ours only, as in Figure 3)."""
    pairs = [(name, method) for name in experiments_of("denoise") + experiments_of("budget")
             for method in ("ours", "ddpm")]
    pairs += [(name, "ours") for name in experiments_of("generation")]
    return [f"results/samples/{name}/{method}/samples.npz" for name, method in pairs]


rule train:
    input:
        images=_learn_images,
        scores=_learn_scores("scores"),
        solve_log=_learn_scores("log"),
    output:
        model="results/train/{experiment}/{method}/model.pt",
        log="results/train/{experiment}/{method}/train_log.csv",
        summary="results/train/{experiment}/{method}/train_log.json",
    params:
        scores=lambda wildcards, input: (f"--scores {input.scores} --solve-log {input.solve_log}"
                                         if input.scores else ""),
        stop=lambda wildcards: stop_options(experiment(wildcards.experiment)),
        options=train_options(config["learn"]),
    threads: config["learn"]["train"]["threads"]
    resources:
        runtime=lambda wildcards: runtime_minutes(experiment(wildcards.experiment), config["learn"]),
    log:
        "results/logs/learn/train_{experiment}_{method}.log",
    shell:
        "fpscore train --method {wildcards.method} --images {input.images:q} {params.scores} "
        "{params.stop} {params.options} --threads {threads} --out {output.model:q} --log {output.log:q} "
        "--summary {output.summary:q} > {log:q} 2>&1"


rule sample:
    input:
        model="results/train/{experiment}/{method}/model.pt",
    output:
        samples="results/samples/{experiment}/{method}/samples.npz",
    params:
        n=config["learn"]["sampler"]["n_samples"],
        progression=config["learn"]["sampler"]["progression_steps"],
        seed=config["learn"]["train"]["seed"],
    threads: config["learn"]["train"]["threads"]
    log:
        "results/logs/learn/sample_{experiment}_{method}.log",
    shell:
        "fpscore sample --model {input.model:q} --out {output.samples:q} --n {params.n} "
        "--progression-steps {params.progression} --seed {params.seed} --threads {threads} > {log:q} 2>&1"
