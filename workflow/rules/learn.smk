# Learning (METHOD.md sections 7-9): train our method (score embedding of the
# pre-computed scores), the DDPM baseline and (learn.dsm.train) the like-for-like DSM
# baseline per experiment, then sample.
#   results/train/{experiment}/{method}/model.pt, train_log.csv, train_log.json (summary)
#   results/samples/{experiment}/{method}/samples.npz
# Training resumes from model.pt.ckpt (beside the model, undeclared) after an interruption.
# Inputs and options come from the package's plan (fpscore.experiments) through common.smk.
rule train:
    input:
        images=experiment_images,
        scores=learn_scores("scores"),
        solve_log=learn_scores("solve_log.csv"),
    output:
        model="results/train/{experiment}/{method}/model.pt",
        log="results/train/{experiment}/{method}/train_log.csv",
        summary="results/train/{experiment}/{method}/train_log.json",
    params:
        scores=optional_option("--scores", "scores"),
        solve_log=optional_option("--score-log", "solve_log"),
        options=train_options,
    threads: config["learn"]["train"]["threads"]
    resources:
        runtime=train_runtime,
        timed_cpus=timed_cpus,
    conda:
        CONDA_ENV
    log:
        "results/logs/learn/train_{experiment}_{method}.log",
    shell:
        "fpscore train --method {wildcards.method} --images {input.images:q} {params.scores} {params.solve_log} "
        "{params.options} --threads {threads} --out {output.model:q} --log {output.log:q} "
        "--summary {output.summary:q} > {log:q} 2>&1"


rule sample:
    input:
        model="results/train/{experiment}/{method}/model.pt",
        images=experiment_images,
    output:
        samples="results/samples/{experiment}/{method}/samples.npz",
    params:
        options=sample_options,
    threads: config["learn"]["train"]["threads"]
    conda:
        CONDA_ENV
    log:
        "results/logs/learn/sample_{experiment}_{method}.log",
    shell:
        "fpscore sample --model {input.model:q} --out {output.samples:q} {params.options} "
        "--threads {threads} > {log:q} 2>&1"
