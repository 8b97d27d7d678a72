#!/usr/bin/env bash
# Fetches and builds the real programs of benches/real (cached): Lua 5.4, the
# muparser C-API sample and xz, each from its Debian source package, built
# the upstream way (make / configure; no dpkg-buildpackage, which strips)
# at -O2 with symbols. Nothing of theirs is committed: only these commands.
# Where apt has no source packages, it adds deb-src twins of the machine's
# Debian deb entries in /etc/apt/sources.list.d/utrace-bench-src.{sources,list}.
# Usage: benches/real/setup.sh OUT   (binaries land in OUT/bin, sources in OUT/src)
# Prints one line per program on stdout: "NAME PATH" when built, "NAME - WHY" when not.
set -euo pipefail
exec 3>&2 # progress, also from recipes whose stderr goes to their build log

out=$1
mkdir -p "$out/src" "$out/bin" "$out/log"
src=$out/src bin=$out/bin log=$out/log

# apt-get source needs deb-src entries. Derive them from the deb entries this
# machine already uses for the Debian archive (no mirror is named here).
add_deb_src() {
    local dir=/etc/apt/sources.list.d
    local f822=$dir/utrace-bench-src.sources flist=$dir/utrace-bench-src.list
    shopt -s nullglob
    local sources=("$dir"/*.sources) lists=(/etc/apt/sources.list "$dir"/*.list)
    shopt -u nullglob
    sources=("${sources[@]/$f822/}") lists=("${lists[@]/$flist/}")
    # deb822 stanzas whose URIs are a Debian archive: same stanza, Types: deb-src.
    for f in "${sources[@]}"; do
        [[ -f $f ]] || continue
        awk 'BEGIN { RS = ""; ORS = "\n\n" }
             /(^|\n)Types:[^\n]*deb/ && /URIs:[^\n]*\/debian(-security)?\/?([ \n]|$)/ {
                 sub(/(^|\n)Types:[^\n]*/, "\nTypes: deb-src"); sub(/^\n/, ""); print }' "$f"
    done >"$f822.tmp"
    for f in "${lists[@]}"; do
        [[ -f $f ]] || continue
        awk '$1 == "deb" && /\/debian(-security)?\/? / { $1 = "deb-src"; print }' "$f"
    done >"$flist.tmp"
    for f in "$f822" "$flist"; do
        if [[ -s $f.tmp ]]; then mv "$f.tmp" "$f"; else rm -f "$f.tmp"; fi
    done
    [[ -e $f822 || -e $flist ]]
}

have_src() { [[ -n $(apt-cache showsrc "$1" 2>/dev/null) ]]; }

# Idempotent and cheap once sources are there (each recipe runs in its own subshell).
ensure_sources() {
    have_src lua5.4 && return 0
    command -v apt-get >/dev/null || { echo "setup: no apt-get" >&3; return 1; }
    ((EUID == 0)) || { echo "setup: not root: cannot fetch Debian sources" >&3; return 1; }
    if ! have_src lua5.4; then
        echo "setup: apt-get update (for source package lists)" >&3
        apt-get update -q >"$log/apt-update.log" 2>&1 || true
    fi
    if ! have_src lua5.4; then
        add_deb_src || { echo "setup: found no Debian deb entry to derive deb-src from" >&3; return 1; }
        echo "setup: added deb-src entries; apt-get update" >&3
        apt-get update -q >"$log/apt-update.log" 2>&1 || true
    fi
    have_src lua5.4 || { echo "setup: apt has no source packages (see $log/apt-update.log)" >&3; return 1; }
}

# Downloads PKG's source package into src/PKG and unpacks its upstream tarball;
# prints the unpacked directory.
fetch() {
    local pkg=$1 dir=$src/$1
    if [[ ! -e $dir/.unpacked ]]; then
        ensure_sources || return 1
        rm -rf "$dir" && mkdir -p "$dir"
        echo "setup: apt-get source --download-only $pkg" >&3
        (cd "$dir" && apt-get source --download-only -q "$pkg") >"$log/$pkg-fetch.log" 2>&1 ||
            { echo "setup: fetching $pkg failed (see $log/$pkg-fetch.log)" >&3; return 1; }
        local tarball
        tarball=$(ls "$dir"/*.orig.tar.* | grep -v '\.asc$' | head -n 1)
        tar -C "$dir" -xf "$tarball" || return 1
        touch "$dir/.unpacked"
    fi
    find "$dir" -mindepth 1 -maxdepth 1 -type d | head -n 1
}

# build NAME RECIPE: runs RECIPE (a function printing the built binary) unless
# bin/NAME was built by the same recipe (its text is the stamp). A recipe runs
# in a condition, where `set -e` does not apply: each step says `|| return 1`.
build() {
    local name=$1 recipe=$2 stamp
    stamp=$(declare -f "$recipe")
    if [[ -x $bin/$name && $(cat "$bin/$name.stamp" 2>/dev/null) == "$stamp" ]]; then
        echo "$name $bin/$name"
        return
    fi
    local start=$SECONDS built
    if built=$("$recipe" 2>>"$log/$name-build.log") && [[ -x $built ]]; then
        cp "$built" "$bin/$name"
        printf '%s' "$stamp" >"$bin/$name.stamp"
        echo "setup: built $name in $((SECONDS - start)) s" >&3
        echo "$name $bin/$name"
    else
        echo "setup: building $name failed (see $log/$name-build.log)" >&3
        echo "$name - build failed (see $log/$name-build.log)"
    fi
}

# Lua 5.4 (C; errors are longjmps): upstream `make linux`, whose CFLAGS are -O2.
lua_recipe() {
    local dir
    dir=$(fetch lua5.4) || return 1
    make -C "$dir" -j2 linux >&2 || return 1
    echo "$dir/src/lua"
}

# muparser (C++; parse errors are exceptions) and its C-API sample example2,
# compiled as its CMakeLists does for a static library without OpenMP
# (this machine has no cmake): the library with MUPARSER_DLL (the C API),
# everything with MUPARSER_STATIC.
muparser_recipe() {
    local dir obj
    dir=$(fetch muparser) || return 1
    obj=$dir/build && mkdir -p "$obj"
    local flags=(-O2 -Wall -Wno-long-long -pedantic -DMUPARSER_STATIC -I"$dir/include")
    printf '%s\n' "$dir"/src/*.cpp | OBJ=$obj xargs -P 2 -I {} sh -c \
        'g++ "$@" -c "$0" -o "$OBJ/$(basename "$0" .cpp).o"' {} "${flags[@]}" -DMUPARSER_DLL >&2 ||
        return 1
    gcc -O2 -DMUPARSER_STATIC -I"$dir/include" -c "$dir/samples/example2/example2.c" \
        -o "$obj/example2.o" >&2 || return 1
    g++ -O2 -o "$obj/example2" "$obj"/*.o >&2 || return 1
    echo "$obj/example2"
}

# xz (C, threads with -T): upstream configure + make, liblzma linked in
# statically so its functions are the executable's.
xz_recipe() {
    local dir
    dir=$(fetch xz-utils) || return 1
    (cd "$dir" && ./configure -q CFLAGS=-O2 --disable-shared --disable-nls --disable-doc \
        --disable-scripts --disable-xzdec --disable-lzmadec --disable-lzmainfo \
        --disable-lzma-links) >&2 || return 1
    make -C "$dir/src/liblzma" -j2 >&2 || return 1
    make -C "$dir/src/xz" -j2 >&2 || return 1
    echo "$dir/src/xz/xz"
}

build lua lua_recipe
build muparser-example2 muparser_recipe
build xz xz_recipe
