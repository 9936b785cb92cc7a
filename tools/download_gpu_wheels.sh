#!/usr/bin/env bash
# Download the GPU suite's wheels (benchmarks/gpu_wheels.txt) into .whl/ for the GPU image's platform
# (CPython 3.12, x86-64 manylinux), as /work/.library/device/README.md says; then print what travels.
#   bash tools/download_gpu_wheels.sh          # run from anywhere; replaces .whl/
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .whl && mkdir .whl
mapfile -t pins < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' benchmarks/gpu_wheels.txt | grep -v '^$')
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d .whl "${pins[@]}"
ls -l .whl | awk 'NR > 1 {printf "%10d  %s\n", $5, $9}'
wheels=$(du -cb .whl/*.whl | tail -1 | cut -f1)
tree=$( (git ls-files; git ls-files --others --exclude-standard) | sort -u |
  python3 -c "import os, sys; print(sum(os.path.getsize(f) for f in sys.stdin.read().splitlines() if os.path.isfile(f)))")
echo "wheels $((wheels / 1024)) KiB + working tree $((tree / 1024)) KiB = $(((wheels + tree) / 1048576)) MiB of the 64 MiB a call carries"
