#!/usr/bin/env bash
# Install everything medcrawl needs into ./.venv, plus the system packages (Chromium for
# JavaScript pages and the web-page tests, Redis for distributed crawls, the sample-image
# packages for the demo). Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

need=()
for pkg in chromium redis-server; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import medcrawl, scrapy, tensorflow, fitz, gradio" 2>/dev/null \
   || [ requirements.txt -nt .venv/.installed ]; then
  echo "setup: pip install -r requirements.txt"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.txt
  # setuptools warns on every editable install ("Editable installation ... careful with folders named
  # like the package"); the install is meant to be editable, so the set-up's output leaves it out.
  PYTHONWARNINGS="ignore:Editable installation" .venv/bin/pip install -q --no-deps -e .
  touch .venv/.installed
fi
PYTHON=.venv/bin/python bash scripts/install_sample_packages.sh
echo "setup: ready (.venv)"
