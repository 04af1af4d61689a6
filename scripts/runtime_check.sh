#!/usr/bin/env bash
# The notebooks on the runtimes learners open them in. For each runtime: a venv holding its own packages, a clean
# clone of HEAD, and step 3 run there through papermill in smoke mode from the clone's notebooks/ folder, where
# era_s7 is not installed, so that its set-up cell installs it; then every package of the runtime must be the
# version it was (torch above all), and the run's record must name the runtime's torch.
#   scripts/runtime_check.sh [--discard] [RUNTIME ...]     (default: all; make test-runtimes)
#   --discard: remove each runtime's venv once it is checked, so that only one is on disk at a time (CI)
# The package sets (shared/cases/colab_runtime.md, from Colab's published package lists):
#   colab          Colab's GPU runtime of 2026-08: Python 3.13, torch 2.11.0
#   colab-2026-05  Colab's of 2026-05, the image Kaggle's is built on: Python 3.12, torch 2.10.0, numpy 2.0.2
# Each venv (about 5 GB: torch's CUDA build, as on Colab) is kept in .venv-runtimes/ and rebuilt when its set changes.
set -euo pipefail
top=$(git rev-parse --show-toplevel)
declare -A python=([colab]=3.13 [colab-2026-05]=3.12)
declare -A packages=(
  [colab]="torch==2.11.0 torchvision==0.26.0 numpy==2.1.3 matplotlib==3.10.0 pillow==11.3.0 torchsummary==1.5.1"
  [colab-2026-05]="torch==2.10.0 torchvision==0.25.0 numpy==2.0.2 matplotlib==3.10.0 pillow==11.3.0 torchsummary==1.5.1"
)
# what runs the notebook (Colab runs it in its own Jupyter; papermill stands in for that here)
harness="ipykernel papermill"
# free disk a runtime's venv needs while pip installs it: the venv (~6.5 GB) and the wheels pip unpacks on the way
need_gb=10
discard=
[ "${1:-}" = --discard ] && { discard=1; shift; }
runtimes=("$@")
[ ${#runtimes[@]} -gt 0 ] || runtimes=(colab colab-2026-05)

packages_of() {  # the runtime's own packages in a venv, as pip freeze writes them, one line each, sorted
  "$1/bin/python" -m pip freeze --disable-pip-version-check | grep -iE '^(torch|torchvision|numpy|matplotlib|pillow|torchsummary)==' | sort
}

interpreter() {  # the pyenv Python of a minor version, else python3.X on PATH
  local c
  for c in "$(pyenv root 2>/dev/null)"/versions/"$1".*/bin/python"$1" "python$1"; do
    "$c" -c pass 2>/dev/null && { echo "$c"; return; }
  done
  echo "runtime_check: no Python $1 here (pyenv install $1, or apt-get install python$1)" >&2
  return 1
}

for name in "${runtimes[@]}"; do
  [ -n "${packages[$name]:-}" ] || { echo "runtime_check: unknown runtime '$name'; known: ${!packages[*]}" >&2; exit 2; }
  venv=$top/.venv-runtimes/$name
  want="${python[$name]} ${packages[$name]} $harness"
  if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$want" ]; then
    rm -rf "$venv"
    free_gb=$(df -Pk "$top" | awk 'NR == 2 {print int($4 / 1048576)}')
    if [ "$free_gb" -lt "$need_gb" ]; then
      echo "runtime_check: $name: $free_gb GB free on $top's disk; its venv needs about $need_gb GB while it installs" \
        "(torch's CUDA build); fix: free space (rm -rf .venv-floor, or other runtimes' venvs in .venv-runtimes/)" >&2
      exit 1
    fi
    "$(interpreter "${python[$name]}")" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check ${packages[$name]} $harness
    "$venv/bin/python" -m ipykernel install --prefix "$venv" --name era-s7-runtime >/dev/null
    echo "$want" > "$venv/.installed"
  fi
  "$venv/bin/python" -m pip uninstall --quiet --yes era-s7 2>/dev/null || true  # as a new runtime: not installed
  # the runtime's own packages, as installed (compared after the run)
  before=$(packages_of "$venv")
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  git clone -q "$top" "$work/era-s7"
  start=$SECONDS
  (cd "$work/era-s7/notebooks" && JUPYTER_PATH="$venv/share/jupyter" "$venv/bin/python" -m papermill step3.ipynb \
      "$work/step3.ipynb" -k era-s7-runtime -p smoke True -p device cpu -p results_dir "$work/results" --no-progress-bar \
      --log-level WARNING)
  after=$(packages_of "$venv")
  if [ "$before" != "$after" ]; then
    echo "runtime_check: $name: the set-up cell changed the runtime's packages:" >&2
    diff <(echo "$before") <(echo "$after") >&2 || true
    exit 1
  fi
  torch_run=$("$venv/bin/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['torch'])" "$work/results/step3.json")
  torch_have=$(echo "$before" | grep -i '^torch==' | cut -d= -f3)
  case "$torch_run" in
    "$torch_have"|"$torch_have"+*) ;;
    *) echo "runtime_check: $name: step 3 ran on torch $torch_run, not the runtime's $torch_have" >&2; exit 1 ;;
  esac
  echo "runtime_check: $name (Python ${python[$name]}): step 3's smoke run passed in $((SECONDS - start)) s on torch $torch_run, the runtime's packages kept: $(echo $after)"
  rm -rf "$work"
  [ -z "$discard" ] || rm -rf "$venv"
done
