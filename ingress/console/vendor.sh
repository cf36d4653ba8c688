#!/usr/bin/env bash
# Re-vendors the console's front-end libraries from npm at their pinned
# versions and checks them: each tarball against its pinned npm integrity
# (sha512), each copied file against web/vendor/MANIFEST (sha256).
#
#   ./vendor.sh            fetch, verify, copy (fails when a file differs from MANIFEST)
#   ./vendor.sh --check    fetch and verify only; the committed files must be identical
#   ./vendor.sh --update   after changing a pin below: copy and rewrite MANIFEST
#
# The built files are committed (web/vendor/), so neither `make build` nor CI
# needs npm for the console; this script is how they are refreshed.
set -euo pipefail
cd "$(dirname "$0")"
mode="${1:-}"

# package@version  npm dist.integrity  (npm view <pkg>@<version> dist.integrity)
pins=(
  "preact@11.2.0 sha512-/HfHI/7N84e6GrWBJ3J280z3mLaRJiDcSvj/A+y/4AbLnND/1UlGHe1sR6oYuTGwId0nP7dqDU9OnLxMPZ7xBg=="
  "htm@3.1.1 sha512-983Vyg8NwUE7JkZ6NmOqpCZ+sh1bKv2iYTlUkzlWmA5JD2acKoxd4KVxbMmxX/85mtfdnDmTFoNKcg5DGAvxNQ=="
  "uplot@1.6.32 sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=="
)
# package  file in the tarball  ->  file under web/vendor
files=(
  "preact package/dist/preact.mjs preact.mjs"
  "preact package/hooks/dist/hooks.mjs hooks.mjs"
  "preact package/LICENSE LICENSE.preact"
  "htm package/dist/htm.mjs htm.mjs"
  "htm package/LICENSE LICENSE.htm"
  "uplot package/dist/uPlot.iife.min.js uPlot.iife.min.js"
  "uplot package/dist/uPlot.min.css uPlot.min.css"
  "uplot package/LICENSE LICENSE.uplot"
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for pin in "${pins[@]}"; do
  read -r spec integrity <<<"$pin"
  name=${spec%@*}
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
  tgz=$(ls "$tmp"/"$name"-*.tgz)
  got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  if [[ "$got" != "$integrity" ]]; then
    echo "vendor.sh: $spec: tarball integrity $got, pinned $integrity" >&2
    exit 1
  fi
  mkdir -p "$tmp/$name"
  tar xzf "$tgz" -C "$tmp/$name"
done

out="$tmp/vendor"
mkdir -p "$out"
manifest="$out/MANIFEST"
echo "# sha256  file  (from package@version); written by vendor.sh --update" >"$manifest"
for f in "${files[@]}"; do
  read -r name src dst <<<"$f"
  cp "$tmp/$name/$src" "$out/$dst"
  version=""
  for pin in "${pins[@]}"; do [[ "$pin" == "$name@"* ]] && version=${pin%% *}; done
  printf '%s  %s  %s\n' "$(sha256sum "$out/$dst" | cut -d' ' -f1)" "$dst" "$version" >>"$manifest"
done

case "$mode" in
--update)
  cp "$out"/* web/vendor/
  echo "vendor.sh: web/vendor updated; commit it with the new pins"
  ;;
--check | "")
  if ! diff -u web/vendor/MANIFEST "$manifest"; then
    echo "vendor.sh: npm files differ from web/vendor/MANIFEST (after changing a pin, run --update)" >&2
    exit 1
  fi
  for f in "${files[@]}"; do
    read -r _ _ dst <<<"$f"
    cmp -s "$out/$dst" "web/vendor/$dst" || { echo "vendor.sh: web/vendor/$dst differs from npm" >&2; exit 1; }
  done
  [[ "$mode" == --check ]] || cp "$out"/* web/vendor/
  echo "vendor.sh: web/vendor matches the pinned npm packages"
  ;;
*)
  echo "usage: vendor.sh [--check|--update]" >&2
  exit 2
  ;;
esac
