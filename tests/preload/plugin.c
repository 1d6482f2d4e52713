/* A library the dlopen test loads after start-up. */
#include <stdlib.h>
#include <string.h>

__attribute__((visibility("default"))) char *plugin_make_secret(void)
{
    char *secret = malloc(48);

    if (secret)
        strcpy(secret, "made by a library loaded later");
    return secret;
}
