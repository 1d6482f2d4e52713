#!/bin/sh
# libsmp_preload.so exports the malloc family, dlopen/dlclose and the
# public smp_ API, nothing else; and its thread-locals use the
# initial-exec model (static TLS, no __tls_get_addr, which may allocate).
# usage: check_exports.sh LIBSMP_PRELOAD
lib=$1
failed=0

extra=$(readelf --dyn-syms -W "$lib" |
    awk '$5 == "GLOBAL" || $5 == "WEAK" { if ($7 != "UND") print $8 }' |
    sed 's/@.*//' |
    grep -Ev '^(malloc|free|calloc|realloc|reallocarray|posix_memalign|aligned_alloc|memalign|valloc|pvalloc|malloc_usable_size|dlopen|dlclose|smp_[a-z_]+)$')
if [ -n "$extra" ]; then
    echo "exported beyond the API:" $extra
    failed=1
fi

for fn in malloc free calloc realloc reallocarray posix_memalign \
    aligned_alloc memalign valloc pvalloc malloc_usable_size \
    smp_scope_enter_new smp_scope_exit smp_owns; do
    if ! readelf --dyn-syms -W "$lib" |
        awk -v fn="$fn" '$7 != "UND" && $8 == fn { found = 1 }
                         END { exit !found }'; then
        echo "not exported: $fn"
        failed=1
    fi
done

if readelf --dyn-syms -W "$lib" | grep -q '__tls_get_addr'; then
    echo "uses __tls_get_addr: a thread-local is not initial-exec"
    failed=1
fi
if ! readelf -d "$lib" | grep -q 'STATIC_TLS'; then
    echo "no STATIC_TLS flag: thread-locals are not initial-exec"
    failed=1
fi
exit $failed
