#!/usr/bin/env bash
# Builds pybuildkit_VERSION_all.deb from this checkout into dist/ (README: packaging):
# installs the build dependencies, assembles a source tree with debian/ at its top (the unit
# files come from systemd/, the single copy), runs dpkg-buildpackage and lintian.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
out="${1:-$repo/dist}"
export DEBIAN_FRONTEND=noninteractive
deps=(debhelper dh-python python3-all python3-setuptools dpkg-dev fakeroot lintian)
missing=()
for p in "${deps[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
src="$work/pybuildkit"
mkdir -p "$src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | grep -zv '^packaging/deb/debian/' \
  | xargs -0 cp --parents -t "$src")
cp -r "$repo/packaging/deb/debian" "$src/debian"
cp "$repo/systemd/pybuildkit.socket" "$src/debian/pybuildkit.socket"
cp "$repo/systemd/pybuildkit.service" "$src/debian/pybuildkit.service"
cp "$repo/systemd/pybuildkit.tmpfiles" "$src/debian/pybuildkit.tmpfiles"
mkdir -p "$src/debian/sysusers"  # shipped as a file; postinst creates the user with adduser
cp "$repo/systemd/pybuildkit.sysusers" "$src/debian/sysusers/pybuildkit.conf"
[ -f "$repo/systemd/pybuildkit-binfmt.service" ] && cp "$repo/systemd/pybuildkit-binfmt.service" "$src/debian/pybuildkit.pybuildkit-binfmt.service"
if [ -n "${PYBUILDKIT_DEB_VERSION:-}" ]; then  # a rebuilt package with another version (upgrade tests)
  { printf 'pybuildkit (%s) bookworm; urgency=medium\n\n  * Rebuilt.\n\n -- pybuildkit developers <dev@pybuildkit.invalid>  %s\n\n' \
      "$PYBUILDKIT_DEB_VERSION" "$(date -R)"; cat "$src/debian/changelog"; } > "$src/debian/changelog.new"
  mv "$src/debian/changelog.new" "$src/debian/changelog"
fi
(cd "$src" && dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) || { tail -50 "$work/build.log" >&2; exit 1; }
mkdir -p "$out"
deb=$(ls "$work"/pybuildkit_*_all.deb)
cp "$deb" "$out/"
echo "built $out/$(basename "$deb")"
if [ "${SKIP_LINTIAN:-0}" != 1 ]; then
  lintian --fail-on error,warning --suppress-tags-from-file "$repo/packaging/deb/debian/source/lintian-overrides" \
    "$out/$(basename "$deb")"
fi
