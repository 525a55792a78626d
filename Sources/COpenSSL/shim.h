// OpenSSL's libcrypto (already linked by libwebsockets): HMAC-SHA256, scrypt, random bytes, constant-time compare.
#ifndef SWITCHBOARD_OPENSSL_SHIM_H
#define SWITCHBOARD_OPENSSL_SHIM_H
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#endif
