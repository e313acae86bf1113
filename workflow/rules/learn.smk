# Learning (METHOD.md sections 7-9): train our method (score embedding of the
# pre-computed scores), the DDPM baseline and (learn.dsm.train) the like-for-like DSM
# baseline per experiment, then sample.
#   results/train/{experiment}/{method}/model.pt, train_log.csv, train_log.json (summary)
#   results/samples/{experiment}/{method}/samples.npz
# Training resumes from model.pt.ckpt (beside the model, undeclared) after an interruption.
# Input functions (_learn_images, _learn_scores, learn_targets) live in common.smk.
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
        sde=lambda wildcards: sde_options(config["scores"]) if wildcards.method == "dsm" else "",
        stop=lambda wildcards: stop_options(experiment(wildcards.experiment)),
        options=train_options(config["learn"]),
    threads: config["learn"]["train"]["threads"]
    resources:
        runtime=lambda wildcards: runtime_minutes(experiment(wildcards.experiment), config["learn"]),
        timed_cpus=timed_cpus,
    conda:
        CONDA_ENV
    log:
        "results/logs/learn/train_{experiment}_{method}.log",
    shell:
        "fpscore train --method {wildcards.method} --images {input.images:q} {params.scores} {params.sde} "
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
    conda:
        CONDA_ENV
    log:
        "results/logs/learn/sample_{experiment}_{method}.log",
    shell:
        "fpscore sample --model {input.model:q} --out {output.samples:q} --n {params.n} "
        "--progression-steps {params.progression} --seed {params.seed} --threads {threads} > {log:q} 2>&1"
