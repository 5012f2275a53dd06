#!/usr/bin/env bash
# Builds and runs the native ESP tests: unit tests (g++ -Wall -Wextra -Werror, then again under
# ASan/UBSan), a short standalone run of the fuzz harness, the known-answer vector regeneration
# check (node), and the clang-format check. Prints a summary; exits non-zero on any failure.
#
#   native/test/run.sh            # everything
#   QUICK=1 native/test/run.sh    # skip the sanitizer build
set -u
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${OUT:-$here/build}"
results=()
failed=0

step() {
  local name="$1"
  shift
  echo "== $name"
  if "$@"; then
    results+=("ok    $name")
  else
    results+=("FAIL  $name")
    failed=1
  fi
}

skip() { results+=("skip  $1 ($2)"); }

step "build (g++ -Wall -Wextra -Werror)" make -s -C "$here" OUT="$out" all
step "esp_test" "$out/esp_test"
if [ -z "${QUICK:-}" ]; then
  step "build asan+ubsan" make -s -C "$here" OUT="$out" asan
  step "esp_test under asan+ubsan" "$out/esp_test_asan"
fi
step "fuzz_decap_driver (200000 generated inputs)" "$out/fuzz_decap_driver" -n 200000

if command -v node >/dev/null 2>&1; then
  step "kat_vectors.inc matches gen_vectors.mjs" \
    bash -c "node '$here/gen_vectors.mjs' | diff -u '$here/kat_vectors.inc' -"
else
  skip "kat_vectors.inc regeneration" "no node"
fi

if command -v clang-format >/dev/null 2>&1; then
  # The files this suite covers; `npm run lint` checks all of native/.
  step "clang-format" bash -c "cd '$root' && clang-format --dry-run --Werror native/esp.cc native/esp.h \
    native/replay.cc native/replay.h native/packet.cc native/packet.h native/sockets.h native/test/*.cc"
else
  skip "clang-format" "not installed"
fi

echo
echo "== summary"
printf '%s\n' "${results[@]}"
exit $failed
