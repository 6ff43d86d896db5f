#!/bin/bash
# CP2K labelling as an array job: write every missing configuration's input, run one folder per array task,
# then parse the finished runs with the ordinary command.
#   scripts/slurm/cp2k_prepare.sh input_files/gen_gan.in [--groups A,B] [--upto K]
set -euo pipefail
here=$(dirname "$0")
source "${FITSNAP_EXT_VENV:-$PWD/.venv}/bin/activate"
out=$(python -m fitsnap_ext generate --prepare "$@")
echo "$out"
list=$(printf '%s\n' "$out" | sed -n 's/.*listed in \(.*prepared\.txt\).*/\1/p' | tail -n 1)
[ -n "$list" ] || { echo "no prepared.txt reported: nothing to label"; exit 0; }
n=$(grep -c . "$list")
array=$(${SBATCH:-sbatch} --parsable --array=1-"$n" "$here/cp2k_run.sbatch" "$list")
${SBATCH:-sbatch} --dependency=afterany:"${array%%;*}" --ntasks=1 --time=01:00:00 \
    --wrap="source ${FITSNAP_EXT_VENV:-$PWD/.venv}/bin/activate && python -m fitsnap_ext generate $(printf '%q ' "$@")"
echo "submitted $n CP2K runs as job $array and the parsing run after them"
