#!/usr/bin/env bash
# Regenerates the *_pb2.py modules from our own .proto files with Debian's protoc 3.21 (its output
# loads on protobuf 4.21 and 7.x). protoc's Python imports are flat (`import ops_pb2`); they are
# rewritten to the installed namespace (`from pybuildkit.solver.pb import ops_pb2`).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null || { echo "protoc missing: apt-get install protobuf-compiler" >&2; exit 1; }

# proto file -> python package it is generated into
declare -A PACKAGE=(
  [solver/pb/ops.proto]=pybuildkit.solver.pb
  [appliance/api/proto/worker.proto]=pybuildkit.appliance.api.proto
  [appliance/api/proto/control.proto]=pybuildkit.appliance.api.proto
  [appliance/api/proto/gateway.proto]=pybuildkit.appliance.api.proto
  [appliance/session/proto/fsutil.proto]=pybuildkit.appliance.session.proto
  [appliance/session/proto/session.proto]=pybuildkit.appliance.session.proto
  [appliance/session/proto/batch.proto]=pybuildkit.appliance.session.proto
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in "${!PACKAGE[@]}"; do cp "$f" "$tmp/"; done
(cd "$tmp" && protoc -I. --python_out=. ./*.proto)

sed_args=()
for f in "${!PACKAGE[@]}"; do
  mod=$(basename "$f" .proto)_pb2
  sed_args+=(-e "s/^import ${mod} as /from ${PACKAGE[$f]} import ${mod} as /")
done
for f in "${!PACKAGE[@]}"; do
  mod=$(basename "$f" .proto)_pb2
  sed "${sed_args[@]}" "$tmp/${mod}.py" > "$(dirname "$f")/${mod}.py"
done
echo "generated: ${!PACKAGE[*]}"
