#!/usr/bin/env bash
# Write instance/dev.env once: random local secrets for `make run`, never committed.
set -euo pipefail
file=instance/dev.env
[ -f "$file" ] && exit 0
mkdir -p instance
py=${1:-.venv/bin/python}
cat > "$file" <<ENV
DATABASE_URL=sqlite:///instance/loyalty.db
SHOPIFY_API_KEY=demo-api-key
SHOPIFY_API_SECRET=$($py -c 'import secrets; print(secrets.token_hex(24))')
SECRET_KEY=$($py -c 'import secrets; print(secrets.token_hex(32))')
LOYALTY_ENCRYPTION_KEYS=$($py -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')
ENV
echo "wrote $file (local secrets for the demo)"
