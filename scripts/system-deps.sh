#!/usr/bin/env bash
# Installs the Debian packages that some tests need: chromium (the HTML report is checked in a
# real headless browser), dataset-fashion-mnist (the Fashion-MNIST loader and benchmarks) and
# fortunes (a real offline text corpus for the language-model canary audits).
# Runs apt-get only when something is missing and we are root; otherwise it says what to install
# and those tests skip with a reason (under CI=true they fail instead of skipping).
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
[ -f /usr/share/games/fortunes/fortunes ] || need+=(fortunes)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || echo "warning: could not install ${need[*]}; tests that need them will skip (or fail under CI=true)" >&2
else
  echo "note: tests that need ${need[*]} will skip; install with: sudo apt-get install ${need[*]}" >&2
fi
exit 0
