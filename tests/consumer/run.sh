#!/usr/bin/env bash
# Builds tests/consumer three ways against sluice and runs each: against the copy
# `cmake --install` put in a prefix (find_package, then pkg-config --static), and with
# sluice as a subproject (add_subdirectory). With --deb (root, or sudo without a
# password), also as the Debian package `cpack -G DEB` makes: installed with apt-get,
# used through find_package and pkg-config from /usr, then removed.
# A shared build (BUILD_SHARED_LIBS=ON: BUILD_DIR has libsluice.so) is checked through
# find_package and plain pkg-config instead, and each consumer must load libsluice.so.
# Usage: run.sh BUILD_DIR [--deb]   (BUILD_DIR: a built sluice tree, e.g. build/release)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$(cd "$here/../.." && pwd)"
build="$(cd "$1" && pwd)"
work="$build/consumers"
rm -rf "$work"
mkdir -p "$work"

cmake --install "$build" --prefix "$work/prefix" >/dev/null

if [ -e "$build/libsluice.so" ]; then
  # Each consumer runs against the shared libraries of the prefix, not static copies.
  uses_shared() {
    ldd "$1" | grep -q "$work/prefix/lib/libsluice.so" ||
      { echo "$1 does not load the installed libsluice.so"; ldd "$1"; exit 1; }
  }
  echo "--- find_package(sluice) against the installed shared libraries"
  cmake -S "$here" -B "$work/package" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
  cmake --build "$work/package" >/dev/null
  uses_shared "$work/package/consumer"
  "$work/package/consumer"
  echo "--- pkg-config sluice (shared)"
  flags=$(PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig" pkg-config --cflags --libs sluice)
  g++ "$here/main.cpp" -o "$work/pkg-config-consumer" $flags -Wl,-rpath,"$work/prefix/lib"
  uses_shared "$work/pkg-config-consumer"
  "$work/pkg-config-consumer"
  echo "--- exported: $(nm -D --defined-only "$work/prefix/lib/libsluice.so" | wc -l) symbols in libsluice.so, none of Asio's"
  if nm -DC --defined-only "$work/prefix/lib/libsluice.so" | grep -q "asio::"; then
    echo "libsluice.so exports Asio symbols"
    exit 1
  fi
  exit 0
fi

echo "--- find_package(sluice) against the installed copy"
cmake -S "$here" -B "$work/package" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/package" >/dev/null
"$work/package/consumer"

echo "--- pkg-config --static sluice"
flags=$(PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig" pkg-config --cflags --libs --static sluice)
g++ "$here/main.cpp" -o "$work/pkg-config-consumer" $flags
"$work/pkg-config-consumer"

echo "--- add_subdirectory(sluice)"
cmake -S "$here" -B "$work/subproject" -G Ninja -DSLUICE_SOURCE_DIR="$src" >/dev/null
cmake --build "$work/subproject" >/dev/null
"$work/subproject/consumer"

if [ "${2:-}" = "--deb" ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "--- libsluice-dev.deb (cpack), installed with apt-get"
  (cd "$build" && cpack -G DEB -B "$work/deb" >/dev/null)
  deb=$(ls "$work"/deb/libsluice-dev_*.deb)
  dpkg-deb -f "$deb" Package Version Depends | sed 's/^/  /'
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "$deb" >/dev/null
  trap 'DEBIAN_FRONTEND=noninteractive $sudo apt-get remove -y -q libsluice-dev >/dev/null' EXIT
  cmake -S "$here" -B "$work/deb-package" -G Ninja >/dev/null
  cmake --build "$work/deb-package" >/dev/null
  "$work/deb-package/consumer"
  g++ "$here/main.cpp" -o "$work/deb-pkg-config-consumer" $(pkg-config --cflags --libs --static sluice)
  "$work/deb-pkg-config-consumer"
fi

