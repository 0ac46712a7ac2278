#!/usr/bin/env bash
# Makes Fashion-MNIST available offline: Debian's dataset-fashion-mnist package where
# apt-get is usable (root), else keras' loader (downloads into ~/.keras/datasets).
set -euo pipefail
PY=${1:-python3}
if dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
  echo "Fashion-MNIST: Debian package dataset-fashion-mnist is installed."
  exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "Fashion-MNIST: installing Debian package dataset-fashion-mnist."
  if ! apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; then
    apt-get update -q >/dev/null
    apt-get install -y -q dataset-fashion-mnist >/dev/null
  fi
  exit 0
fi
echo "Fashion-MNIST: no apt-get as root; using keras' downloader."
"$PY" -c "import keras; keras.datasets.fashion_mnist.load_data()"
