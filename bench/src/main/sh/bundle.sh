#!/usr/bin/env bash
# On this machine (not the GPU one): packs .device with ../shared/tools/device-bundle and trims it under the 64 MiB
# carry limit. The jars of test classes (model-gemma's test jar, which train's tests depend on) duplicate
# .device/test-classes and the tree's test resources: they go. With "images" (a runtime with ImageIO, 11 MB more) only
# the GPU tests' classes stay (classes tagged gpu, and the test classes they use, by jdeps): such a bundle runs the GPU
# suite (image tests included), the trainer through .device/jtune or -cp "$CP" (its big resources are read from the
# tree, not the jar) and the bench mains (image-qlora.sh, HfInterop), but not the cpu tests.
# BEFORE=REV adds .device/before/jtune.jar, the trainer built at commit REV (in a worktree under /tmp), without its
# bundled tokenizer (ab-end-to-end.sh reads it from the tree): side A of ab-end-to-end.sh. It fits beside the plain
# bundle, not beside images.
# Usage: [BEFORE=REV] bash bench/src/main/sh/bundle.sh [plain|images] [--no-build]
set -eu
kind=${1:-plain}; shift || true
case "$kind" in
  plain) ../shared/tools/device-bundle "$@" ;;
  images) ../shared/tools/device-bundle --images "$@" ;;
  *) echo "bundle.sh: plain or images, not $kind" >&2; exit 2 ;;
esac 2>&1 | grep -v "too large to carry" || true
rm -f .device/lib/*-tests.jar

# keeps in .device/test-classes only the GPU test classes and, transitively, the test classes they refer to
gpu_tests_only() {
  local tc=.device/test-classes jdeps=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}/bin/jdeps roots keep
  roots=$(grep -rl '@Tag("gpu")' --include='*.java' ./*/src/test/java | sed -E 's#^\./[^/]+/src/test/java/##; s#\.java$##; s#/#.#g')
  # jdeps' class edges ("A -> B"), inner classes folded into their outer one; the closure from the roots
  keep=$("$jdeps" -verbose:class -filter:none $(ls -d $tc/*) 2>/dev/null | awk -v roots="$roots" '
    $2 == "->" { a = $1; b = $3; sub(/\$.*/, "", a); sub(/\$.*/, "", b); if (a != b) edge[a] = edge[a] " " b }
    END {
      n = split(roots, q, "\n"); for (i = 1; i <= n; i++) keep[q[i]] = 1
      for (i = 1; i <= n; i++) { m = split(edge[q[i]], to, " "); for (j = 1; j <= m; j++) if (!(to[j] in keep)) { keep[to[j]] = 1; q[++n] = to[j] } }
      for (c in keep) print c
    }')
  find $tc -name '*.class' | while read -r f; do
    c=${f#$tc/*/}; c=${c%.class}; c=${c%%\$*}; c=${c//\//.}
    grep -qxF "$c" <<< "$keep" || rm -f "$f"
  done
  echo "bundle.sh: test classes kept: $(find $tc -name '*.class' ! -name '*$*' | wc -l) (the GPU tests and what they use)"
}
[ "$kind" = images ] && gpu_tests_only

if [ -n "${BEFORE:-}" ]; then
  rev=$(git rev-parse --short "$BEFORE"); wt=/tmp/jtune-before-$rev
  [ -d "$wt" ] || git worktree add -q "$wt" "$rev"
  (cd "$wt" && mvn -B -q -ntp -o -Dstyle.color=never package -DskipTests -pl train -am) >/dev/null
  mkdir -p .device/before && cp "$wt/train/target/jtune.jar" .device/before/jtune.jar
  zip -q -d .device/before/jtune.jar 'dev/jtune/gemma/tokenizer/gemma3-tokenizer.json.gz' >/dev/null
  echo "bundle.sh: .device/before/jtune.jar is $rev's trainer (side A of ab-end-to-end.sh)"
fi

# bytes, not du's rounded blocks: the images bundle with its tests comes within a MiB of the limit
size=$(find .device -type f -printf '%s\n' | awk '{s += $1} END {print s}')
tree=$(git ls-files -co --exclude-standard -z | xargs -0 stat -c %s | awk '{s += $1} END {print s}')
awk -v d="$size" -v t="$tree" -v k="$kind" 'BEGIN {
  printf "bundle.sh: .device (%s) is %.1f MiB, the tree %.1f MiB: %.1f of the 64 MiB that can travel\n", k, d / 1048576, t / 1048576, (d + t) / 1048576
  exit (d + t < 64 * 1048576) ? 0 : 1 }' || { echo "bundle.sh: still too large to carry" >&2; exit 1; }
# the device unpacks the runtime only when /tmp/device-jre is missing: after switching kinds on a warm machine, run
# rm -rf /tmp/device-jre first
