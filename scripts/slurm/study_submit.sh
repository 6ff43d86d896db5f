#!/bin/bash
# Submit a study's ladder as an array job (one rung per task), then the report job once all succeeded.
#   scripts/slurm/study_submit.sh input_files/study_lgps.in [study options, e.g. --out DIR]
set -euo pipefail
here=$(dirname "$0")
source "${FITSNAP_EXT_VENV:-$PWD/.venv}/bin/activate"
n=$(python -m fitsnap_ext study "$1" --check "${@:2}" | sed -n 's/.* models: //p' | tr ',' '\n' | grep -c .)
array=$(${SBATCH:-sbatch} --parsable --array=0-$((n - 1)) "$here/study_rung.sbatch" "$@")
${SBATCH:-sbatch} --dependency=afterok:"${array%%;*}" "$here/study_report.sbatch" "$@"
echo "submitted $n rungs as job $array and the report after them"
