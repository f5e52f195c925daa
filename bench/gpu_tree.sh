#!/usr/bin/env bash
# The device tool sends the working tree (tracked files, untracked files git does not ignore, and the
# carried paths) and refuses more than 64 MiB. The committed results (docs/results: resume kits, labelled
# frames, ~140 MB on 2026-12-07) are far over that, and the GPU check needs none of them.
#
#   bash bench/gpu_tree.sh size [CARRIED...]   what would travel, in MiB (files present on disk)
#   bash bench/gpu_tree.sh light                remove docs/results' files over 256 kB from the working tree
#                                               (not from git; refused while docs/results has changes)
#   bash bench/gpu_tree.sh restore              put them back from git (only the files that are missing)
#
# Around a device call: `light`, `size .whl .so3lr` (under 64), the call, `restore`.
# If a session ends in between, `git checkout -- docs/results` in a clean tree brings everything back.
set -euo pipefail
cd "$(dirname "$0")/.."
LIMIT=$((64 * 1024 * 1024))

travelling_bytes() {
  # tracked and untracked-not-ignored files that exist, plus the carried paths
  { git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
      [ -f "$f" ] && [ ! -L "$f" ] && printf '%s\0' "$f"; done
    for carried in "$@"; do [ -e "$carried" ] && find "$carried" -type f -print0; done
  } | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1
}

case "${1:-}" in
  size)
    shift
    bytes=$(travelling_bytes "$@")
    echo "would travel: $((bytes / 1048576)) MiB of the device tool's 64 MiB ($( [ "$bytes" -lt "$LIMIT" ] && echo fits || echo 'too large: bash bench/gpu_tree.sh light' ))"
    ;;
  light)
    if [ -n "$(git status --porcelain -- docs/results)" ]; then
      echo "docs/results has uncommitted changes; commit them first (nothing removed)" >&2
      exit 2
    fi
    count=0
    while IFS= read -r -d '' f; do
      if [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 262144 ]; then rm -- "$f"; count=$((count + 1)); fi
    done < <(git ls-files -z -- docs/results)
    echo "removed $count files of docs/results from the working tree (bash bench/gpu_tree.sh restore brings them back)"
    ;;
  restore)
    missing=$(git ls-files --deleted -- docs/results | wc -l)
    git ls-files -z --deleted -- docs/results | xargs -0 -r git checkout --
    echo "restored $missing files of docs/results"
    ;;
  *)
    echo "usage: bash bench/gpu_tree.sh size [CARRIED...] | light | restore" >&2
    exit 2
    ;;
esac
