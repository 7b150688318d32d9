#!/usr/bin/env bash
# Builds the source archive of keyferry's Cloud Function (functions/gcp, entry point SecretEvents) for
# infra/gcp (variable function_source_zip).
#
# The Go buildpack of Cloud Functions builds the package at the ROOT of the uploaded source, next to go.mod,
# and ignores subdirectories as entry points. keyferry's function lives in functions/gcp, so the archive is
# the module (go.mod, go.sum and the packages functions/gcp is built from, without tests) plus a small root package that
# imports functions/gcp (whose init registers SecretEvents with functions.CloudEvent) and the framework's
# functions package (which makes the buildpack use its declarative main). The archive is reproducible: same
# sources, same bytes, so the bucket object's name (its SHA-256) changes only when the code does.
#
#   infra/gcp/package.sh [OUTPUT]     default OUTPUT: infra/gcp/build/keyferry-gcp-function.zip
#
# Before zipping it builds the staged module with the main the buildpack generates (go build, offline when
# the module cache has the dependencies), so an archive that would not build is never written.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${1:-$here/build/keyferry-gcp-function.zip}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
GO="${GO:-go}"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

cd "$root"
cp go.mod go.sum "$stage/"
# The packages of this module that functions/gcp is built from, their Go files and embedded files only (no
# tests, no fixtures, no other commands).
mod="$("$GO" list -m)"
"$GO" list -deps -f '{{if and .Module (eq .Module.Path "'"$mod"'")}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}
{{end}}{{end}}' ./functions/gcp | sed "s|^$root/||" | grep -v '^$' | while IFS= read -r f; do
	mkdir -p "$stage/$(dirname "$f")"
	cp "$f" "$stage/$f"
done

cat >"$stage/function.go" <<'EOF'
// Package keyferry is the entry package of the Cloud Function, added at the root of the source archive by
// infra/gcp/package.sh: the Go buildpack builds the root package, and this one registers SecretEvents
// (functions/gcp) by importing it.
package keyferry

import (
	_ "github.com/GoogleCloudPlatform/functions-framework-go/functions"

	_ "github.com/keyferry/keyferry/functions/gcp"
)
EOF

# What the buildpack generates for a declarative function (functions.CloudEvent in an init): a main that
# imports the root package and starts the framework. Built here once, then removed from the archive.
mkdir -p "$stage/kfverifymain"
cat >"$stage/kfverifymain/main.go" <<'EOF'
package main

import (
	"log"
	"os"

	_ "github.com/keyferry/keyferry"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if err := funcframework.Start(port); err != nil {
		log.Fatalf("Function failed to start: %v\n", err)
	}
}
EOF
(cd "$stage" && "$GO" build -o /dev/null ./kfverifymain) || {
	echo "package.sh: the staged function does not build" >&2
	exit 1
}
rm -rf "$stage/kfverifymain"

mkdir -p "$(dirname "$out")"
rm -f "$out"
# Fixed timestamps, sorted entries, no extra attributes: the same sources give the same archive.
find "$stage" -exec touch -h -d '1980-01-02 00:00:00 UTC' {} +
(cd "$stage" && find . -type f | LC_ALL=C sort | sed 's|^\./||' | TZ=UTC zip -X -q -@ "$out")
echo "$out ($(unzip -Z1 "$out" | wc -l) files, sha256 $(sha256sum "$out" | cut -c1-16)…)"
