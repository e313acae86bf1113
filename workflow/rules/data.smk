# Dataset stage: download archives (cifar10, celeba) and prepare
# results/data/{dataset}/{res}/images.npz + manifest.json (see src/fpscore/data/).
# Offline: place the archive at the download rule's output path and rerun.


# Downloads run on the submit host: compute nodes of a cluster often have no internet.
localrules:
    download_cifar10,
    download_celeba,


rule download_cifar10:
    output:
        PLAN.download_target("cifar10"),
    params:
        url=config["data"]["cifar10"]["url"],
        md5=config["data"]["cifar10"]["md5"],
    conda:
        CONDA_ENV
    log:
        "results/logs/data/download_cifar10.log",
    shell:
        "fpscore download --dataset cifar10 --url {params.url:q} --md5 {params.md5:q} --out {output:q} > {log:q} 2>&1"


rule download_celeba:
    output:
        PLAN.download_target("celeba"),
    params:
        url=config["data"]["celeba"]["url"],
        md5=config["data"]["celeba"]["md5"],
    conda:
        CONDA_ENV
    log:
        "results/logs/data/download_celeba.log",
    shell:
        "fpscore download --dataset celeba --url {params.url:q} --md5 {params.md5:q} --out {output:q} > {log:q} 2>&1"


# The solver comparison's images when experiments.solver_images is set (fpscore.experiments, compare_stage).
rule solver_subset:
    input:
        "results/data/{dataset}/{res}/images.npz",
    output:
        images="results/data/{dataset}/{res}/solver_subset/images.npz",
        manifest="results/data/{dataset}/{res}/solver_subset/manifest.json",
    params:
        images=PLAN.solver_images,
    conda:
        CONDA_ENV
    log:
        "results/logs/data/{dataset}_{res}_solver_subset.log",
    shell:
        "fpscore data-subset --images {input:q} --count {params.images} --out {output.images:q} "
        "--manifest {output.manifest:q} > {log:q} 2>&1"


rule prepare_data:
    input:
        archive=prepare_archive,
    output:
        images="results/data/{dataset}/{res}/images.npz",
        manifest="results/data/{dataset}/{res}/manifest.json",
    params:
        options=data_options,
    conda:
        CONDA_ENV
    log:
        "results/logs/data/{dataset}_{res}.log",
    shell:
        "fpscore data --dataset {wildcards.dataset} --resolution {wildcards.res} --out {output.images:q} "
        "--manifest {output.manifest:q} {params.options} > {log:q} 2>&1"
