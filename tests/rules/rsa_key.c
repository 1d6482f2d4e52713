/*
 * Where OpenSSL keeps an RSA private key when the program runs under the
 * preload with SMP_POOL_SCOPE='keys=fn:RSA_*,fn:BN_*': the numbers of a
 * key it generates, and of the same key read back from PEM, must lie in
 * pool memory; a buffer the program allocates itself must not.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <stdio.h>
#include <stdlib.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

int smp_owns(const void *ptr) __attribute__((weak));

static int failures;

/*
 * A BIGNUM and its limbs. bignum_st has begun with its limb pointer
 * (BN_ULONG *d) in every OpenSSL release; the struct itself is opaque.
 */
static void check_bn(const char *what, const BIGNUM *bn)
{
    const void *limbs = *(const void *const *)bn;

    if (!smp_owns(bn) || !smp_owns(limbs)) {
        printf("%s: BIGNUM %s, limbs %s\n", what,
               smp_owns(bn) ? "in a pool" : "on the heap",
               smp_owns(limbs) ? "in a pool" : "on the heap");
        failures++;
    }
}

static void check_key(const char *what, EVP_PKEY *pkey)
{
    const RSA *rsa = EVP_PKEY_get0_RSA(pkey);
    const BIGNUM *n, *e, *d, *p, *q;
    char name[64];

    if (!rsa) {
        printf("%s: not an RSA key\n", what);
        failures++;
        return;
    }
    RSA_get0_key(rsa, &n, &e, &d);
    RSA_get0_factors(rsa, &p, &q);
    snprintf(name, sizeof name, "%s d", what);
    check_bn(name, d);
    snprintf(name, sizeof name, "%s p", what);
    check_bn(name, p);
    snprintf(name, sizeof name, "%s q", what);
    check_bn(name, q);
}

int main(void)
{
    if (!smp_owns) {
        printf("rsa_key: not running under libsmp_preload.so\n");
        return 2;
    }

    EVP_PKEY *made = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (!made)
        return 2;
    check_key("generated", made);

    BIO *pem = BIO_new(BIO_s_mem());
    if (!pem || !PEM_write_bio_PrivateKey(pem, made, NULL, NULL, 0, NULL, NULL))
        return 2;
    EVP_PKEY *read = PEM_read_bio_PrivateKey(pem, NULL, NULL, NULL);
    if (!read)
        return 2;
    check_key("read back", read);

    void *mine = malloc(256);
    if (smp_owns(mine)) {
        printf("the program's own buffer is in a pool\n");
        failures++;
    }
    free(mine);

    EVP_PKEY_free(read);
    BIO_free(pem);
    EVP_PKEY_free(made);
    printf("rsa_key: %s\n", failures ? "FAILED" : "ok");
    return failures != 0;
}
