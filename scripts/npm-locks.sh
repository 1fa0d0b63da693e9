#!/usr/bin/env bash
# Every committed package-lock.json must install with `npm ci` (no install scripts, so nothing downloads a browser
# or a binary). A folder whose node_modules was installed from the same package.json and lock is not reinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."
for lock in $(git ls-files '*package-lock.json'); do
  dir=$(dirname "$lock")
  stamp="$dir/node_modules/.installed-from"
  wanted=$(cat "$dir/package.json" "$lock" | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
    echo "npm ci $dir: up to date"
    continue
  fi
  echo "npm ci $dir"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  echo "$wanted" > "$stamp"
done
