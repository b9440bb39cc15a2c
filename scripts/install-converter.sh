#!/usr/bin/env bash
# Installs Debian's headless LibreOffice (Writer, Calc, Impress without the GUI), the metric-compatible
# fonts documents expect (Carlito for Calibri, Caladea for Cambria, Liberation for Arial/Times/Courier,
# DejaVu as the fallback) and poppler-utils (pdftoppm for previews, pdftotext for the tests), for the
# `convert` role's local converter (CONVERTER=local) and its tests. About 316 MB.
# Idempotent: does nothing when soffice, pdftoppm, pdftotext and every package are present; runs
# `apt-get update` only when a package is not known to apt yet. apt waits up to 15 minutes for the dpkg
# lock, because other jobs on the machine may be installing at the same time.
set -euo pipefail

PACKAGES=(
  libreoffice-writer-nogui
  libreoffice-calc-nogui
  libreoffice-impress-nogui
  fonts-crosextra-carlito
  fonts-crosextra-caladea
  fonts-liberation2
  fonts-dejavu-core
  poppler-utils
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ] && command -v soffice >/dev/null 2>&1 \
  && command -v pdftoppm >/dev/null 2>&1 && command -v pdftotext >/dev/null 2>&1; then
  echo "install-converter: already installed ($(soffice --version 2>/dev/null | head -n 1 || echo 'unknown version')); nothing to do"
  exit 0
fi

# shellcheck source=lib/apt-install.sh
source "$(dirname "$0")/lib/apt-install.sh"
apt_install install-converter "install LibreOffice (soffice) and poppler-utils another way" "${PACKAGES[@]}"

echo "install-converter: installed $(soffice --version 2>/dev/null | head -n 1), $(pdftoppm -v 2>&1 | head -n 1)"
