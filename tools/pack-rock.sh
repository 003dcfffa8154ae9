#!/bin/sh
# tools/pack-rock.sh [OUTDIR] - packs cotylua-0.2.0-1.src.rock into OUTDIR
# (default build/rock) from this checkout, with no network: the rock holds
# the tree of the tag v0.2.0 (or, in a clone without that tag, of HEAD, as
# that tag) and the release rockspec unchanged.
set -eu
cd "$(dirname "$0")/.."
spec=cotylua-0.2.0-1.rockspec
tag=v0.2.0
out=$(mkdir -p "${1:-build/rock}" && cd "${1:-build/rock}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A clone named like the published repository, holding the tag.
git clone -q --no-hardlinks . "$work/cotylua"
if ! git -C "$work/cotylua" rev-parse -q --verify "refs/tags/$tag" >/dev/null; then
    echo "pack-rock: no tag $tag here; packing HEAD ($(git rev-parse --short HEAD)) as $tag"
    git -C "$work/cotylua" -c user.name=pack -c user.email=pack@localhost tag "$tag"
fi

# luarocks fetches the source named in the rockspec: point a copy at the
# local clone, pack, then put the release rockspec back into the rock.
mkdir "$work/pack"
sed "s|^  url = .*|  url = \"git+file://$work/cotylua\",|" "$spec" > "$work/pack/$spec"
if ! (cd "$work/pack" && luarocks --lua-version=5.4 pack "$spec") >"$work/log" 2>&1; then
    cat "$work/log" >&2
    exit 1
fi
cp "$spec" "$work/$spec"
(cd "$work" && zip -q "pack/cotylua-0.2.0-1.src.rock" "$spec")
mv "$work/pack/cotylua-0.2.0-1.src.rock" "$out/"
echo "$out/cotylua-0.2.0-1.src.rock"
