# Evaluation: sample metrics (SSIM, FID), the score error of each solver, the paper's
# tables (results/tables/t*.{csv,md,tex}) and figures (results/figures/f*.{png,pdf}).
# Every rule calls one `fpscore` command (src/fpscore/cli/metrics.py, table.py, figure.py) with its input
# files: training summaries and samples files record their experiment, method, dataset and size; solve
# logs come with their labels (fpscore.experiments). Each table and figure has a short rule name and a
# stable path, so one target regenerates alone:
#   snakemake --cores 4 results/figures/f4_budget_32.png
# Tables and figures take seconds: on a cluster they run on the submit host rather
# than wait in the queue (FID and SSIM, which generate features, stay jobs).

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


# The runs each table and figure compares come from the package's plan (PLAN, fpscore.experiments).


# ---- metrics ----------------------------------------------------------------------------------

rule score_error:
    input:
        compared_scores,
    output:
        "results/metrics/scores/{dataset}/{res}/score_error.csv",
    params:
        solvers=PLAN.t2_solvers,
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/score_error_{dataset}_{res}.log",
    shell:
        "fpscore score-error --scores {input:q} --solvers {params.solvers} --dataset {wildcards.dataset} "
        "--resolution {wildcards.res} --out {output:q} > {log:q} 2>&1"


rule ssim:
    input:
        samples="results/samples/{experiment}/{method}/samples.npz",
        references=experiment_images,
    output:
        "results/metrics/{experiment}/{method}/ssim.csv",
    params:
        references=reference_option,
        ssim_mode=PLAN.metric_options("ssim"),
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/ssim_{experiment}_{method}.log",
    shell:
        "fpscore ssim --samples {input.samples:q} --references {input.references:q} "
        "{params.references} {params.ssim_mode} --experiment {wildcards.experiment} --method {wildcards.method} "
        "--out {output:q} > {log:q} 2>&1"


# Without the standard Inception weights (and no way to download them) this records
# "unavailable: <reason>" and succeeds: the workflow carries on without an FID number.
rule fid:
    input:
        samples="results/samples/{experiment}/{method}/samples.npz",
        references=experiment_images,
    output:
        "results/metrics/{experiment}/{method}/fid.csv",
    params:
        references=reference_option,
        options=PLAN.metric_options("fid"),
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/fid_{experiment}_{method}.log",
    shell:
        "fpscore fid --samples {input.samples:q} --references {input.references:q} "
        "{params.references} --experiment {wildcards.experiment} --method {wildcards.method} "
        "{params.options} --out {output:q} > {log:q} 2>&1"


# ---- tables -----------------------------------------------------------------------------------

rule t1_time_to_ssim:
    input:
        PLAN.run_files("denoise", "results/train/{experiment}/{method}/train_log.json"),
    output:
        csv=report("results/tables/t1_time_to_ssim.csv", caption="../report/t1_time_to_ssim.rst", category="Tables"),
        md="results/tables/t1_time_to_ssim.md",
        tex="results/tables/t1_time_to_ssim.tex",
    params:
        stem=table_stem,
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/t1_time_to_ssim.log",
    shell:
        "fpscore table t1 --summaries {input:q} --out {params.stem:q} > {log:q} 2>&1"


rule t2_solvers:
    input:
        logs=PLAN.solve_logs(),
        errors=PLAN.score_errors(),
    output:
        csv=report("results/tables/t2_solvers.csv", caption="../report/t2_solvers.rst", category="Tables"),
        md="results/tables/t2_solvers.md",
        tex="results/tables/t2_solvers.tex",
    params:
        stem=table_stem,
        labels=PLAN.solve_labels(),
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/t2_solvers.log",
    shell:
        "fpscore table t2 --solve-logs {input.logs:q} {params.labels} --score-errors {input.errors:q} "
        "--out {params.stem:q} > {log:q} 2>&1"


rule t3_systems:
    input:
        PLAN.solve_logs(),
    output:
        csv=report("results/tables/t3_systems.csv", caption="../report/t3_systems.rst", category="Tables"),
        md="results/tables/t3_systems.md",
        tex="results/tables/t3_systems.tex",
    params:
        stem=table_stem,
        labels=PLAN.solve_labels(),
        rank=PLAN.rank_option(),
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/t3_systems.log",
    shell:
        "fpscore table t3 --solve-logs {input:q} {params.labels} {params.rank} --out {params.stem:q} > {log:q} 2>&1"


rule t4_budget:
    input:
        ssim=PLAN.run_files("budget", "results/metrics/{experiment}/{method}/ssim.csv"),
        fid=PLAN.run_files("budget", "results/metrics/{experiment}/{method}/fid.csv"),
        summaries=PLAN.run_files("budget", "results/train/{experiment}/{method}/train_log.json"),
    output:
        csv=report("results/tables/t4_budget.csv", caption="../report/t4_budget.rst", category="Tables"),
        md="results/tables/t4_budget.md",
        tex="results/tables/t4_budget.tex",
    params:
        stem=table_stem,
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/t4_budget.log",
    shell:
        "fpscore table t4 --ssim {input.ssim:q} --fid {input.fid:q} --summaries {input.summaries:q} "
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
        PLAN.run_files("denoise", "results/samples/{experiment}/{method}/samples.npz", ["ours"]),
    output:
        png=report("results/figures/f2_denoising.png", caption="../report/f2_denoising.rst", category="Figures"),
        pdf="results/figures/f2_denoising.pdf",
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/f2_denoising.log",
    shell:
        "fpscore figure f2 --samples {input:q} --out {output.png:q} > {log:q} 2>&1"


rule f3_generation:
    input:
        [f"results/samples/{name}/ours/samples.npz" for name in PLAN.of_kind("generation")[:1]],
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
        samples=budget_files("results/samples/{experiment}/{method}/samples.npz"),
        ssim=budget_files("results/metrics/{experiment}/{method}/ssim.csv"),
        fid=budget_files("results/metrics/{experiment}/{method}/fid.csv"),
    output:
        png=report("results/figures/f4_budget_{res}.png", caption="../report/f4_budget.rst", category="Figures",
                   subcategory="{res}x{res}"),
        pdf="results/figures/f4_budget_{res}.pdf",
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/f4_budget_{res}.log",
    wildcard_constraints:
        res="|".join(PLAN.budget_at()),
    shell:
        "fpscore figure f4 --samples {input.samples:q} --ssim {input.ssim:q} --fid {input.fid:q} "
        "--out {output.png:q} > {log:q} 2>&1"


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
        PLAN.solve_logs(),
    output:
        png=report("results/figures/f7_picard.png", caption="../report/f7_picard.rst", category="Figures"),
        pdf="results/figures/f7_picard.pdf",
    params:
        labels=PLAN.solve_labels(),
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/f7_picard.log",
    shell:
        "fpscore figure f7 --solve-logs {input:q} {params.labels} --out {output.png:q} > {log:q} 2>&1"


rule f8_projection_residual:
    input:
        logs=PLAN.projection_files("solve_log.csv"),
        prepared=PLAN.projection_files("prepared.npz"),
        images=PLAN.projection_files("images.npz"),
    output:
        png=report("results/figures/f8_projection_residual.png", caption="../report/f8_projection_residual.rst",
                   category="Figures"),
        pdf="results/figures/f8_projection_residual.pdf",
    params:
        labels=PLAN.projection_labels(),
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/f8_projection_residual.log",
    shell:
        "fpscore figure f8 --solve-logs {input.logs:q} --prepared {input.prepared:q} --images {input.images:q} "
        "{params.labels} --out {output.png:q} > {log:q} 2>&1"


# The rank sweep is measured by the solver benchmark (`fpscore solver-benchmark`); its CSV has
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
        logs=PLAN.run_files("denoise", "results/train/{experiment}/{method}/train_log.csv"),
        summaries=PLAN.run_files("denoise", "results/train/{experiment}/{method}/train_log.json"),
    output:
        png=report("results/figures/f10_ssim_curves.png", caption="../report/f10_ssim_curves.rst",
                   category="Figures"),
        pdf="results/figures/f10_ssim_curves.pdf",
    conda:
        CONDA_ENV
    log:
        "results/logs/evaluate/f10_ssim_curves.log",
    shell:
        "fpscore figure f10 --train-logs {input.logs:q} --summaries {input.summaries:q} --out {output.png:q} "
        "> {log:q} 2>&1"
