#!/usr/bin/env bash
# Runs the Molecule scenarios against the boot ISO, from the repository root:
#   molecule/run.sh              # every scenario under molecule/
#   molecule/run.sh default      # the named ones
# Builds the ISO first (seconds when only the collection changed; PRENIXOS_SKIP_ISO_BUILD=1
# skips it). Each scenario boots QEMU machines (KVM when a probe guest boots with it, software
# emulation otherwise); logs of the last run: build/molecule-logs/<scenario>/ and <scenario>.log.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export PATH=$repo/.venv/bin:$PATH
export ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-0}
export PY_COLORS=${PY_COLORS:-0}

if [[ -z ${PRENIXOS_SKIP_ISO_BUILD:-} ]]; then
    bash iso/build.sh
fi

if (( $# )); then
    scenarios=("$@")
else
    mapfile -t scenarios < <(for f in molecule/*/molecule.yml; do basename "$(dirname "$f")"; done)
fi

failed=()
summary=()
for scenario in "${scenarios[@]}"; do
    started=$(date +%s)
    # The whole output is also kept: tools/test_clock.py prints why a failed scenario failed from it.
    mkdir -p build/molecule-logs
    if molecule test -s "$scenario" 2>&1 | tee "build/molecule-logs/$scenario.log"; then
        result=passed
    else
        result=FAILED
        failed+=("$scenario")
    fi
    summary+=("$(printf '%-20s %s in %d s' "$scenario" "$result" $(( $(date +%s) - started )))")
done

echo "==> molecule scenarios:"
printf '    %s\n' "${summary[@]}"
if (( ${#failed[@]} )); then
    echo "==> failed: ${failed[*]}; serial console and first-boot journal in build/molecule-logs/<scenario>/" >&2
    exit 1
fi
