#!/usr/bin/env bash
# On this machine (not the GPU one): packs .device with ../shared/tools/device-bundle and trims it under the 64 MiB
# carry limit. The jars of test classes (model-gemma's test jar, which train's tests depend on) duplicate
# .device/test-classes and the tree's test resources: they go. With "images" (a runtime with ImageIO, 11 MB more) the
# JUnit console and the test classes go too: such a bundle runs the trainer and the bench mains (image-qlora.sh,
# HfInterop), not the tests. Usage: bash bench/src/main/sh/bundle.sh [plain|images] [--no-build]
set -eu
kind=${1:-plain}; shift || true
case "$kind" in
  plain) ../shared/tools/device-bundle "$@" ;;
  images) ../shared/tools/device-bundle --images "$@" ;;
  *) echo "bundle.sh: plain or images, not $kind" >&2; exit 2 ;;
esac 2>&1 | grep -v "too large to carry" || true
rm -f .device/lib/*-tests.jar
[ "$kind" = images ] && rm -rf .device/junit-console.jar .device/test-classes
size=$(du -sm .device | cut -f1); tree=$(git ls-files -co --exclude-standard | xargs -d '\n' du -cm 2>/dev/null | tail -1 | cut -f1)
echo "bundle.sh: .device ($kind) is ${size} MiB, the tree about ${tree} MiB"
[ $((size + tree)) -lt 64 ] || { echo "bundle.sh: still too large to carry" >&2; exit 1; }
# the device unpacks the runtime only when /tmp/device-jre is missing: after switching kinds on a warm machine, run
# rm -rf /tmp/device-jre first
