# Shell helpers shared by guest/build, tests/nested/bed and bench/nested-boot (sourced, bash).

# modules_in_order MODDIR NAME...: print the .ko paths (relative to MODDIR) needed for NAMEs,
# dependencies first, each once. Built-in modules (modules.builtin) and names the kernel does not
# have are skipped silently: flavours differ (the cloud kernel builds ext4 in and has no ccp).
modules_in_order() {
	local moddir=$1; shift
	awk -v want="$*" '
	function norm(s) { gsub(/-/, "_", s); return s }
	function base(p) { sub(/.*\//, "", p); sub(/\.ko(\.[a-z]+)?$/, "", p); return norm(p) }
	function visit(m,   n, i, d) {
		if (m in done || !(m in path)) return
		done[m] = 1
		n = split(deps[m], d, " ")
		for (i = n; i >= 1; i--) visit(base(d[i]))  # modules.dep lists the deepest dependency last
		print path[m]
	}
	FNR == 1 { file++ }
	file == 1 { p = $1; sub(/:$/, "", p); m = base(p); path[m] = p; $1 = ""; deps[m] = $0 }
	END { n = split(want, w, " "); for (i = 1; i <= n; i++) visit(norm(w[i])) }
	' "$moddir/modules.dep"
}

# copy_with_libs ROOT FILE [DEST]: copy an executable into ROOT (at DEST, default its own path), with
# the shared libraries and the dynamic loader that ldd lists, so that it runs in an initramfs.
copy_with_libs() {
	local root=$1 f=$2 dest=${3:-$2} lib
	install -D -m 755 "$f" "$root$dest"
	for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*'); do
		[ -e "$root$lib" ] || install -D -m 755 "$lib" "$root$lib"
	done
}

# pack_cpio DIR OUT [gzip]: a newc archive of DIR, owned by root, optionally gzip-compressed.
pack_cpio() {
	local dir=$1 out=$2 compress=${3:-}
	( cd "$dir" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet ) |
		if [ "$compress" = gzip ]; then gzip -6n; else cat; fi >"$out.tmp"
	mv "$out.tmp" "$out"
}
