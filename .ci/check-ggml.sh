#!/usr/bin/env bash
# whisper-rs and llama-cpp-2 each vendor ggml: linked into one binary they clash (duplicate
# symbols, or whisper silently running on llama's ggml). Fail if any package's dependency tree
# (normal + build edges, this platform or macOS) holds both.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
packages=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print("\n".join(p["name"] for p in json.load(sys.stdin)["packages"]))')
for target in "" "--target aarch64-apple-darwin"; do
    for pkg in $packages; do
        tree=$(cargo tree -q -p "$pkg" -e normal,build $target --prefix none --format '{p}' 2>/dev/null | awk '{print $1}' | sort -u)
        if grep -qx whisper-rs <<<"$tree" && grep -qx llama-cpp-2 <<<"$tree"; then
            echo "FAIL: $pkg ${target:+($target) }links both whisper-rs and llama-cpp-2; keep llama-cpp-2 in the roxy-llm worker only" >&2
            status=1
        fi
    done
done
(( status == 0 )) && echo "ggml check: no package links both whisper-rs and llama-cpp-2"
exit $status
