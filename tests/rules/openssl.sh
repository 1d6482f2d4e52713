#!/bin/sh
# The openssl command, unchanged, under libsmp_preload.so with a rule that
# routes its RSA key work into the pool "keys": the outputs must be the
# same as without smp, and the statistics must show allocations in "keys".
#   openssl.sh PRELOAD WORKDIR
set -eu

preload=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
work=$2
rules='keys=fn:RSA_*,fn:BN_*'
mkdir -p "$work"
cd "$work"
rm -f key.pem key2.pem sig*.bin pub*.pem stats*.txt

fail() {
    echo "openssl.sh: $*" >&2
    exit 1
}

# Runs openssl under the preload; its diagnostics go to stats-NAME.txt.
smp() {
    name=$1
    shift
    LD_PRELOAD=$preload SMP_POOL_SCOPE=$rules SMP_OPTIONS=print_stats=1 \
        openssl "$@" 2>"stats-$name.txt" ||
        fail "openssl $* failed under the preload: $(cat "stats-$name.txt")"
    # a row "keys INSTANCES ALLOCS ..." with ALLOCS above zero
    grep -Eq '^keys +[0-9]+ +[1-9][0-9]* ' "stats-$name.txt" ||
        fail "no allocations in pool keys for openssl $*: $(cat "stats-$name.txt")"
}

printf 'the data to sign\n' >data.txt
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out key.pem 2>/dev/null

# Signing (RSA PKCS#1 v1.5 is deterministic) and the public key.
openssl dgst -sha256 -sign key.pem -out sig-plain.bin data.txt
smp sign dgst -sha256 -sign key.pem -out sig-smp.bin data.txt
cmp sig-plain.bin sig-smp.bin || fail "signatures differ"

openssl pkey -in key.pem -pubout -out pub-plain.pem
smp pubout pkey -in key.pem -pubout -out pub-smp.pem
cmp pub-plain.pem pub-smp.pem || fail "public keys differ"

# A key made under the preload is a valid key.
smp genpkey genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out key2.pem
openssl pkey -in key2.pem -check -noout >/dev/null ||
    fail "the key made under the preload does not check"
openssl dgst -sha256 -sign key2.pem -out sig2.bin data.txt
openssl pkey -in key2.pem -pubout -out pub2.pem
openssl dgst -sha256 -verify pub2.pem -signature sig2.bin data.txt \
    >/dev/null || fail "the key made under the preload does not verify"

grep -E '^keys ' stats-sign.txt stats-genpkey.txt
echo "openssl.sh: ok"
