#!/usr/bin/env bash
# Builds the binary wheel of modelmon-interceptor (the Python middleware and its native
# core) into dist/, so that a model's image can `pip install` it without a Rust toolchain.
#
# One wheel per platform: the native core is built against CPython's stable ABI (abi3,
# Python >= 3.10, see interceptor/python/Cargo.toml), so it imports on every CPython from
# 3.10 on. Its manylinux tag is the lowest one its glibc symbols allow (maturin audits
# the library), which is never newer than this machine's glibc: build on the oldest
# system the wheel must serve.
#
# Usage: scripts/build-wheel.sh [extra maturin build args, e.g. --compatibility manylinux_2_36]
# Prints the wheel's path as its last line. Cargo's incremental build lives in
# interceptor/python/target, as for `pip install ./interceptor/python`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pkg="$root/interceptor/python"
dist="$root/dist"
py="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

for tool in cargo rustc; do
    command -v "$tool" >/dev/null || {
        echo "build-wheel.sh: $tool is missing: the wheel is built where Rust is (https://rustup.rs)" >&2
        exit 1
    }
done
if ! "$py" -m maturin --version >/dev/null 2>&1; then
    echo "build-wheel.sh: installing maturin" >&2
    "$py" -m pip install -q 'maturin>=1.5,<2' >&2
fi

# This machine's glibc, e.g. "2.36": the wheel's manylinux tag must not claim less.
glibc="$(ldd --version 2>&1 | head -n1 | grep -oE '[0-9]+\.[0-9]+$' || true)"
if [ -z "$glibc" ]; then
    echo "build-wheel.sh: cannot read the glibc version from \`ldd --version\` (a musl system?)" >&2
    exit 1
fi

# A private output directory, so that the wheel built now is told apart from older ones.
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
# Progress goes to stderr: stdout carries only the wheel's path.
(
    cd "$pkg"
    "$py" -m maturin build --locked --interpreter "$py" --out "$out" "$@"
) >&2

shopt -s nullglob
built=("$out"/modelmon_interceptor-*.whl)
if [ "${#built[@]}" -ne 1 ]; then
    echo "build-wheel.sh: expected one wheel from maturin, found ${#built[@]} in $out" >&2
    exit 1
fi
name="$(basename "${built[0]}")"

# The tags promised: abi3 from CPython 3.10, and a manylinux glibc no newer than this one.
case "$name" in
    *-cp310-abi3-*) ;;
    *)
        echo "build-wheel.sh: $name is not an abi3 wheel for CPython >= 3.10" >&2
        exit 1
        ;;
esac
tag="$(grep -oE 'manylinux_[0-9]+_[0-9]+' <<<"$name" | head -n1 || true)"
if [ -z "$tag" ]; then
    echo "build-wheel.sh: $name has no manylinux_X_Y tag (the library needs something manylinux does not allow)" >&2
    exit 1
fi
IFS=_ read -r _ major minor <<<"$tag"
IFS=. read -r have_major have_minor <<<"$glibc"
if ((major > have_major || (major == have_major && minor > have_minor))); then
    echo "build-wheel.sh: $name claims glibc $major.$minor, newer than this machine's $glibc" >&2
    exit 1
fi

# The type information travels with the code.
"$py" - "${built[0]}" <<'EOF' >&2
import sys
import zipfile

names = set(zipfile.ZipFile(sys.argv[1]).namelist())
missing = [n for n in ("modelmon_interceptor/py.typed", "modelmon_interceptor/_core.pyi") if n not in names]
if missing:
    sys.exit(f"build-wheel.sh: the wheel lacks {', '.join(missing)}")
EOF

mkdir -p "$dist"
mv -f "${built[0]}" "$dist/$name"
echo "build-wheel.sh: built for abi3 CPython >= 3.10, $tag (glibc >= $major.$minor; this machine has $glibc)" >&2
echo "$dist/$name"
