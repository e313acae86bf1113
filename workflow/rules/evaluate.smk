# Evaluation: sample metrics (SSIM, FID), the score error of each solver, the paper's
# tables (results/tables/t*.{csv,md,tex}) and figures (results/figures/f*.{png,pdf}).
# Every rule calls one `fpscore` command (src/fpscore/cli/evaluate.py); each table and
# figure has a short rule name and a stable path, so one target regenerates alone:
#   snakemake --cores 4 results/figures/f4_budget_32.png
# Tables and figures take seconds: on a cluster they run on the submit host rather
# than wait in the queue (FID and SSIM, which generate features, stay jobs).

import shlex


localrules:
    score_error,
    t1_time_to_ssim,
    t2_solvers,
    t3_systems,
    t4_budget,
    f1_schematic,
    f2_denoising,
    f3_generation,
    f4_budget,
    f6_solver_time,
    f7_picard,
    f8_projection_residual,
    f9_rank_sweep,
    f10_ssim_curves,


SOLVE_SIZES = config["experiments"]["solver_sizes"]
# spsolve is the reference every reduction and score error is measured against.
T2_SOLVERS = ["spsolve"] + [s for s in config["scores"]["benchmark_solvers"] if s != "spsolve"]
SOLVE_LOGS = expand("results/scores/{dataset}/{res}/{solver}/solve_log.csv",
                    dataset=DATASETS, res=SOLVE_SIZES, solver=T2_SOLVERS)
FID = config["evaluate"]["fid"]
DENOISE = experiments_of("denoise")
BUDGET = experiments_of("budget")
# Figure f4_budget_{res} shows the first budget experiment at that resolution.
BUDGET_AT = {str(experiment(name)["resolution"]): name for name in reversed(BUDGET)}
SPEC_IMAGES = "results/data/{dataset}/{resolution}/images.npz"
# Methods T1, T4, F4 and F10 compare: ours and DDPM, and the like-for-like dsm baseline where it is
# trained (learn.dsm.train); its logs and metrics are inputs only then.
COMPARED = ["ours", "ddpm"] + (["dsm"] if config["learn"]["dsm"]["train"] else [])

# Every table and figure, for the all target (f9 from the solver benchmark's rank sweep).
EVALUATE_TARGETS = (
    expand("results/tables/{name}.{ext}", ext=["csv", "md", "tex"],
           name=["t1_time_to_ssim", "t2_solvers", "t3_systems", "t4_budget"])
    + expand("results/figures/{name}.png",
             name=["f1_schematic", "f2_denoising", "f3_generation", "f6_solver_time", "f7_picard",
                   "f8_projection_residual", "f9_rank_sweep", "f10_ssim_curves"])
    + expand("results/figures/f4_budget_{res}.png", res=sorted(BUDGET_AT, key=int))
)


# ---- metrics ----------------------------------------------------------------------------------

rule score_error:
    input:
        expand("results/scores/{{dataset}}/{{res}}/{solver}/scores.npz", solver=T2_SOLVERS),
    output:
        "results/metrics/scores/{dataset}/{res}/score_error.csv",
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/score_error_{dataset}_{res}.log",
    shell:
        "fpscore score-error --scores {input:q} --out {output:q} > {log:q} 2>&1"


rule ssim:
    input:
        samples="results/samples/{experiment}/{method}/samples.npz",
        references=lambda wildcards: SPEC_IMAGES.format(**experiment(wildcards.experiment)),
    output:
        "results/metrics/{experiment}/{method}/ssim.csv",
    params:
        references=lambda wildcards: reference_option(experiment(wildcards.experiment)),
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/ssim_{experiment}_{method}.log",
    shell:
        "fpscore ssim --samples {input.samples:q} --references {input.references:q} "
        "{params.references} --experiment {wildcards.experiment} --method {wildcards.method} "
        "--out {output:q} > {log:q} 2>&1"


# Without the standard Inception weights (and no way to download them) this records
# "unavailable: <reason>" and succeeds: the workflow carries on without an FID number.
rule fid:
    input:
        samples="results/samples/{experiment}/{method}/samples.npz",
        references=lambda wildcards: SPEC_IMAGES.format(**experiment(wildcards.experiment)),
    output:
        "results/metrics/{experiment}/{method}/fid.csv",
    params:
        references=lambda wildcards: reference_option(experiment(wildcards.experiment)),
        weights=FID["weights_path"],
        url=FID["url"],
        sha256=FID["sha256"],
        batch_size=FID["batch_size"],
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/fid_{experiment}_{method}.log",
    shell:
        "fpscore fid --samples {input.samples:q} --references {input.references:q} "
        "{params.references} --experiment {wildcards.experiment} --method {wildcards.method} "
        "--weights-path {params.weights:q} --url {params.url:q} --sha256={params.sha256:q} "
        "--batch-size {params.batch_size} --out {output:q} > {log:q} 2>&1"


# ---- tables -----------------------------------------------------------------------------------

rule t1_time_to_ssim:
    input:
        expand("results/train/{experiment}/{method}/train_log.json",
               experiment=DENOISE, method=COMPARED),
    output:
        csv=report("results/tables/t1_time_to_ssim.csv", caption="../report/t1_time_to_ssim.rst", category="Tables"),
        md="results/tables/t1_time_to_ssim.md",
        tex="results/tables/t1_time_to_ssim.tex",
    params:
        stem=lambda wildcards, output: output.csv.removesuffix(".csv"),
        specs=" ".join(f"{n}:{experiment(n)['dataset']}:{experiment(n)['resolution']}"
                       for n in DENOISE),
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/t1_time_to_ssim.log",
    shell:
        "fpscore table t1 --summaries {input:q} --denoise {params.specs} "
        "--out {params.stem:q} > {log:q} 2>&1"


rule t2_solvers:
    input:
        logs=SOLVE_LOGS,
        errors=expand("results/metrics/scores/{dataset}/{res}/score_error.csv", dataset=DATASETS, res=SOLVE_SIZES),
    output:
        csv=report("results/tables/t2_solvers.csv", caption="../report/t2_solvers.rst", category="Tables"),
        md="results/tables/t2_solvers.md",
        tex="results/tables/t2_solvers.tex",
    params:
        stem=lambda wildcards, output: output.csv.removesuffix(".csv"),
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/t2_solvers.log",
    shell:
        "fpscore table t2 --solve-logs {input.logs:q} --score-errors {input.errors:q} "
        "--out {params.stem:q} > {log:q} 2>&1"


rule t3_systems:
    input:
        SOLVE_LOGS,
    output:
        csv=report("results/tables/t3_systems.csv", caption="../report/t3_systems.rst", category="Tables"),
        md="results/tables/t3_systems.md",
        tex="results/tables/t3_systems.tex",
    params:
        stem=lambda wildcards, output: output.csv.removesuffix(".csv"),
        rank=config["scores"]["projection"]["rank"],
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/t3_systems.log",
    shell:
        "fpscore table t3 --solve-logs {input:q} --rank projection={params.rank} "
        "--out {params.stem:q} > {log:q} 2>&1"


rule t4_budget:
    input:
        expand("results/metrics/{experiment}/{method}/{metric}.csv",
               experiment=BUDGET, method=COMPARED, metric=["ssim", "fid"]),
    output:
        csv=report("results/tables/t4_budget.csv", caption="../report/t4_budget.rst", category="Tables"),
        md="results/tables/t4_budget.md",
        tex="results/tables/t4_budget.tex",
    params:
        stem=lambda wildcards, output: output.csv.removesuffix(".csv"),
        specs=" ".join(f"{n}:{experiment(n)['dataset']}:{experiment(n)['resolution']}:"
                       f"{experiment(n)['budget_seconds']}" for n in BUDGET),
        methods=" ".join(COMPARED),
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/t4_budget.log",
    shell:
        "fpscore table t4 --budget {params.specs} --methods {params.methods} --metrics-dir results/metrics "
        "--out {params.stem:q} > {log:q} 2>&1"


# ---- figures ----------------------------------------------------------------------------------

rule f1_schematic:
    output:
        png=report("results/figures/f1_schematic.png", caption="../report/f1_schematic.rst", category="Figures"),
        pdf="results/figures/f1_schematic.pdf",
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/f1_schematic.log",
    shell:
        "fpscore figure f1 --out {output.png:q} > {log:q} 2>&1"


rule f2_denoising:
    input:
        expand("results/samples/{experiment}/ours/samples.npz", experiment=DENOISE),
    output:
        png=report("results/figures/f2_denoising.png", caption="../report/f2_denoising.rst", category="Figures"),
        pdf="results/figures/f2_denoising.pdf",
    params:
        labelled=lambda wildcards, input: " ".join(
            f"{experiment(n)['dataset']}_{experiment(n)['resolution']}x{experiment(n)['resolution']}={path}"
            for n, path in zip(DENOISE, input)),
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/f2_denoising.log",
    shell:
        "fpscore figure f2 --samples {params.labelled} --out {output.png:q} > {log:q} 2>&1"


rule f3_generation:
    input:
        expand("results/samples/{experiment}/ours/samples.npz", experiment=experiments_of("generation")[:1]),
    output:
        png=report("results/figures/f3_generation.png", caption="../report/f3_generation.rst",
                   category="Figures"),
        pdf="results/figures/f3_generation.pdf",
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/f3_generation.log",
    shell:
        "fpscore figure f3 --samples {input:q} --out {output.png:q} > {log:q} 2>&1"


rule f4_budget:
    input:
        samples=lambda wildcards: expand("results/samples/{experiment}/{method}/samples.npz",
                                         experiment=BUDGET_AT[wildcards.res], method=COMPARED),
        ssim=lambda wildcards: expand("results/metrics/{experiment}/{method}/ssim.csv",
                                      experiment=BUDGET_AT[wildcards.res], method=COMPARED),
    output:
        png=report("results/figures/f4_budget_{res}.png", caption="../report/f4_budget.rst", category="Figures",
                   subcategory="{res}x{res}"),
        pdf="results/figures/f4_budget_{res}.pdf",
    params:
        samples=lambda wildcards, input: " ".join(shlex.quote(f"{m}={path}")
                                                  for m, path in zip(COMPARED, input.samples)),
        metrics=lambda wildcards: f"results/metrics/{BUDGET_AT[wildcards.res]}",
        budget=lambda wildcards: experiment(BUDGET_AT[wildcards.res])["budget_seconds"],
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/f4_budget_{res}.log",
    wildcard_constraints:
        res="|".join(BUDGET_AT),
    shell:
        "fpscore figure f4 --samples {params.samples} --metrics-dir {params.metrics:q} "
        "--budget-seconds {params.budget} --resolution {wildcards.res} --out {output.png:q} > {log:q} 2>&1"


rule f6_solver_time:
    input:
        "results/tables/t2_solvers.csv",
    output:
        png=report("results/figures/f6_solver_time.png", caption="../report/f6_solver_time.rst",
                   category="Figures"),
        pdf="results/figures/f6_solver_time.pdf",
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/f6_solver_time.log",
    shell:
        "fpscore figure f6 --table {input:q} --out {output.png:q} > {log:q} 2>&1"


rule f7_picard:
    input:
        SOLVE_LOGS,
    output:
        png=report("results/figures/f7_picard.png", caption="../report/f7_picard.rst", category="Figures"),
        pdf="results/figures/f7_picard.pdf",
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/f7_picard.log",
    shell:
        "fpscore figure f7 --solve-logs {input:q} --out {output.png:q} > {log:q} 2>&1"


rule f8_projection_residual:
    input:
        logs=expand("results/scores/{dataset}/{res}/projection/solve_log.csv", dataset=DATASETS, res=SOLVE_SIZES),
        seeds=expand("results/scores/{dataset}/{res}/projection/prepared.npz", dataset=DATASETS, res=SOLVE_SIZES),
        images=expand("results/data/{dataset}/{res}/images.npz", dataset=DATASETS, res=SOLVE_SIZES),
    output:
        png=report("results/figures/f8_projection_residual.png", caption="../report/f8_projection_residual.rst",
                   category="Figures"),
        pdf="results/figures/f8_projection_residual.pdf",
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/f8_projection_residual.log",
    shell:
        "fpscore figure f8 --solve-logs {input.logs:q} --images {input.images:q} --out {output.png:q} > {log:q} 2>&1"


# The rank sweep is measured by the projection benchmark (benchmarks/solver_benchmark.py); its CSV has
# one row per rank (and size): rank, seconds, iterations[, resolution].
rule f9_rank_sweep:
    input:
        "results/benchmarks/rank_sweep.csv",
    output:
        png=report("results/figures/f9_rank_sweep.png", caption="../report/f9_rank_sweep.rst", category="Figures"),
        pdf="results/figures/f9_rank_sweep.pdf",
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/f9_rank_sweep.log",
    shell:
        "fpscore figure f9 --table {input:q} --out {output.png:q} > {log:q} 2>&1"


rule f10_ssim_curves:
    input:
        expand("results/train/{experiment}/{method}/train_log.csv",
               experiment=DENOISE, method=COMPARED),
    output:
        png=report("results/figures/f10_ssim_curves.png", caption="../report/f10_ssim_curves.rst",
                   category="Figures"),
        pdf="results/figures/f10_ssim_curves.pdf",
    params:
        targets=" ".join(f"{n}={experiment(n)['target_ssim']}" for n in DENOISE),
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/f10_ssim_curves.log",
    shell:
        "fpscore figure f10 --train-logs {input:q} --target {params.targets} --out {output.png:q} > {log:q} 2>&1"
