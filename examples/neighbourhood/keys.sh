#!/bin/sh
# Generates the three servers' RSA-2048 keys (PKCS#8) and public keys for the example neighbourhood.
set -eu
mkdir -p data/neighbourhood
chmod 700 data data/neighbourhood
for i in 0 1 2; do
  key="data/neighbourhood/server$i-key.pem"
  [ -f "$key" ] || openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$key"
  chmod 600 "$key"
  openssl pkey -in "$key" -pubout -out "$key.pub"
done
echo "keys in data/neighbourhood/"
