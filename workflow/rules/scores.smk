# Score pre-computation (METHOD.md sections 2-6), sharded: every shard of
# `scores.shard_size` images is a job; the merge writes the one score directory the
# rest of the workflow reads (memory-mapped .npy files, fpscore.score_store; written one
# shard at a time, byte-identical whatever the shard size). For the
# projection solver the seed work is its own job that every shard depends on.
# Stage {stage}: scores = the whole set (what training reads), scores_subset = the first
# experiments.solver_images images, for the solver comparison (fpscore.experiments, compare_stage).
# OPENBLAS_NUM_THREADS=1: numpy's threaded BLAS spins against PETSc on few cores.


rule scores_prepare:
    input:
        images=stage_images,
    output:
        prepared="results/{stage}/{dataset}/{res}/projection/prepared.npz",
        log="results/{stage}/{dataset}/{res}/projection/prepare_log.csv",
    params:
        options=scores_options,
    log:
        "results/logs/{stage}/{dataset}_{res}_projection_prepare.log",
    threads: 1
    resources:
        timed_cpus=timed_cpus,
    conda:
        CONDA_ENV
    shell:
        "OPENBLAS_NUM_THREADS=1 fpscore scores-prepare --images {input.images:q} --solver projection "
        "--out {output.prepared:q} --log {output.log:q} {params.options} > {log:q} 2>&1"


rule scores_shard:
    input:
        images=stage_images,
        prepared=projection_file("prepared.npz"),
    output:
        scores=temp("results/{stage}/{dataset}/{res}/{solver}/shards/{shard}.npz"),
        log=temp("results/{stage}/{dataset}/{res}/{solver}/shards/{shard}.csv"),
    params:
        options=scores_options,
        prepared=optional_option("--prepared", "prepared"),
    log:
        "results/logs/{stage}/{dataset}_{res}_{solver}_shard{shard}.log",
    wildcard_constraints:
        shard=r"[0-9]+",
    threads: 1
    resources:
        timed_cpus=timed_cpus,
    conda:
        CONDA_ENV
    shell:
        "OPENBLAS_NUM_THREADS=1 fpscore scores --images {input.images:q} --solver {wildcards.solver} "
        "--shard {wildcards.shard} {params.prepared} --no-progress "
        "--out {output.scores:q} --log {output.log:q} {params.options} > {log:q} 2>&1"


rule scores_merge:
    input:
        images=stage_images,
        shards=shard_files("npz"),
        logs=shard_files("csv"),
        prepare_log=projection_file("prepare_log.csv"),
    output:
        scores=directory("results/{stage}/{dataset}/{res}/{solver}/scores"),
        log="results/{stage}/{dataset}/{res}/{solver}/solve_log.csv",
    params:
        prepare_log=optional_option("--prepare-log", "prepare_log"),
    log:
        "results/logs/{stage}/{dataset}_{res}_{solver}_merge.log",
    conda:
        CONDA_ENV
    shell:
        "fpscore scores-merge --images {input.images:q} --shards {input.shards:q} --logs {input.logs:q} "
        "{params.prepare_log} --out {output.scores:q} --log {output.log:q} > {log:q} 2>&1"


# All solvers side by side in one process on the builtin photo and face sets at the
# solver sizes (`fpscore solver-benchmark`, fpscore/solver_benchmark.py): table T2's companion,
# the rank sweep of figure F9 and the projection residual against dissimilarity to the seed.
rule solver_benchmark:
    output:
        table="results/tables/solver_benchmark.csv",
        rank_sweep="results/benchmarks/rank_sweep.csv",
        dissimilarity="results/benchmarks/projection_dissimilarity.csv",
    params:
        sizes=config["experiments"]["solver_sizes"],
    log:
        "results/logs/scores/solver_benchmark.log",
    threads: 1
    resources:
        timed_cpus=timed_cpus,
    conda:
        CONDA_ENV
    shell:
        "OPENBLAS_NUM_THREADS=1 fpscore solver-benchmark --sets photos faces --sizes {params.sizes} "
        "--out {output.table:q} --rank-sweep-out {output.rank_sweep:q} "
        "--dissimilarity-out {output.dissimilarity:q} > {log:q} 2>&1"
