#!/usr/bin/env bash
# dist-check.sh checks what `make dist` left in dist/ (or in the directory
# given): SHA256SUMS verifies and lists every archive; each archive holds one
# lifeline binary for the OS and CPU its name says (read from the file's own
# header: ELF, Mach-O or PE, and its machine field; also `file`'s word when
# `file` is installed); the Linux ones are static; no binary holds the build
# machine's paths (-trimpath); and the binary this machine can run prints the
# version the archive's name says. CI runs it right after `make dist`.
set -euo pipefail

dist=${1:-dist}
cd "$(dirname "$0")/.."
root=$(pwd)
cd "$dist"

fail=0 # failed checks so far
bad() { echo "dist-check: $*" >&2; fail=$((fail + 1)); }

[ -s SHA256SUMS ] || { echo "dist-check: no $dist/SHA256SUMS: run make dist" >&2; exit 1; }
if command -v sha256sum >/dev/null; then
	sha256sum --quiet -c SHA256SUMS || bad "SHA256SUMS does not verify"
else
	shasum -a 256 -c SHA256SUMS >/dev/null || bad "SHA256SUMS does not verify"
fi

# Every archive is in SHA256SUMS, and every line of SHA256SUMS is an archive.
listed=$(awk '{print $2}' SHA256SUMS | sed 's/^\*//' | sort)
shopt -s nullglob
archives=(*.tar.gz *.zip)
present=$(printf '%s\n' "${archives[@]}" | sort)
[ "$listed" = "$present" ] || bad "SHA256SUMS lists [$listed] but dist holds [$present]"

# hexat FILE OFFSET COUNT prints COUNT bytes at OFFSET as one hex string.
hexat() { od -An -tx1 -j "$2" -N "$3" "$1" | tr -d ' \n'; }

# le32 HEX turns 4 little-endian bytes (as hex) into a number.
le32() { echo $((16#${1:6:2}${1:4:2}${1:2:2}${1:0:2})); }

# platform FILE prints "os/arch" from the binary's header, or "unknown".
platform() {
	local f=$1 magic
	magic=$(hexat "$f" 0 4)
	case $magic in
	7f454c46) # ELF: e_machine at 18, little-endian
		case $(hexat "$f" 18 2) in
		3e00) echo linux/amd64 ;; b700) echo linux/arm64 ;; *) echo "linux/unknown" ;;
		esac ;;
	cffaedfe) # Mach-O 64-bit, little-endian: cputype at 4
		case $(hexat "$f" 4 4) in
		07000001) echo darwin/amd64 ;; 0c000001) echo darwin/arm64 ;; *) echo "darwin/unknown" ;;
		esac ;;
	4d5a*) # MZ: the PE header's offset at 0x3c, then "PE\0\0" and the machine
		local pe
		pe=$(le32 "$(hexat "$f" 60 4)")
		if [ "$(hexat "$f" "$pe" 4)" != 50450000 ]; then echo unknown; return; fi
		case $(hexat "$f" $((pe + 4)) 2) in
		6486) echo windows/amd64 ;; 64aa) echo windows/arm64 ;; *) echo "windows/unknown" ;;
		esac ;;
	*) echo unknown ;;
	esac
}

# fileword OS/ARCH prints what `file` says of such a binary.
fileword() {
	case $1 in
	linux/amd64) echo "ELF 64-bit LSB executable, x86-64" ;;
	linux/arm64) echo "ELF 64-bit LSB executable, ARM aarch64" ;;
	darwin/amd64) echo "Mach-O 64-bit x86_64 executable" ;;
	darwin/arm64) echo "Mach-O 64-bit arm64 executable" ;;
	windows/amd64) echo "PE32+ executable" ;;
	windows/arm64) echo "PE32+ executable" ;;
	esac
}

host="$(uname -s | tr 'A-Z' 'a-z')/$(uname -m | sed 's/x86_64/amd64/; s/aarch64/arm64/')"
ran=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
count=0
for archive in "${archives[@]}"; do
	count=$((count + 1))
	before=$fail
	base=${archive%.tar.gz}
	base=${base%.zip}
	# lifeline-VERSION-OS-ARCH: the version may hold dashes, OS and ARCH do not.
	arch=${base##*-}
	rest=${base%-*}
	os=${rest##*-}
	version=${rest%-*}
	version=${version#lifeline-}
	want=$os/$arch
	dir=$work/$base
	mkdir -p "$dir"
	case $archive in
	*.zip)
		[ "$os" = windows ] || bad "$archive: a zip for $os (want tar.gz)"
		if command -v unzip >/dev/null; then
			unzip -q "$archive" -d "$dir" || { bad "$archive: cannot unzip"; continue; }
		else
			python3 -m zipfile -e "$archive" "$dir" || { bad "$archive: cannot unzip"; continue; }
		fi
		exe=lifeline.exe ;;
	*)
		[ "$os" != windows ] || bad "$archive: a tar.gz for windows (want zip)"
		tar -xzf "$archive" -C "$dir" || { bad "$archive: cannot untar"; continue; }
		exe=lifeline ;;
	esac
	bin=$dir/$base/$exe
	if [ ! -f "$bin" ]; then
		bad "$archive: no $base/$exe inside"
		continue
	fi
	got=$(platform "$bin")
	[ "$got" = "$want" ] || bad "$archive: holds a $got binary, want $want"
	if command -v file >/dev/null; then
		desc=$(file -b "$bin")
		case $desc in
		"$(fileword "$want")"*) ;;
		*) bad "$archive: file says \"$desc\", want \"$(fileword "$want")\"" ;;
		esac
		case $want in
		windows/arm64) case $desc in *Aarch64* | *ARM64*) ;; *) bad "$archive: file says \"$desc\", not arm64" ;; esac ;;
		windows/amd64) case $desc in *x86-64*) ;; *) bad "$archive: file says \"$desc\", not x86-64" ;; esac ;;
		linux/*) case $desc in *"statically linked"*) ;; *) bad "$archive: not static: $desc" ;; esac ;;
		esac
	elif [ "$os" = linux ] && grep -qa 'ld-linux' "$bin"; then
		bad "$archive: names a dynamic loader: not static"
	fi
	if grep -qaF "$root/" "$bin"; then
		bad "$archive: holds the build directory's path $root/ (want -trimpath)"
	fi
	[ -f "$dir/$base/README.md" ] || bad "$archive: no README.md inside"
	if [ "$want" = "$host" ]; then
		out=$("$bin" version) || bad "$archive: lifeline version failed"
		case $out in
		"lifeline $version ("*"$want)") ran=1 ;;
		*) bad "$archive: lifeline version prints \"$out\", want \"lifeline $version (... $want)\"" ;;
		esac
	fi
	if [ "$fail" = "$before" ]; then echo "dist-check: $archive: $got ok"; fi
done

[ "$count" -gt 0 ] || bad "no archive in $dist"
if [ "$ran" = 0 ]; then
	if [ "$host" = linux/amd64 ]; then
		bad "no linux/amd64 archive to run"
	else
		echo "dist-check: no archive for this machine ($host) to run: version not checked"
	fi
fi
if [ "$fail" != 0 ]; then
	exit 1
fi
echo "dist-check: $count archives ok"
