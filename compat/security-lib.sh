# Shared by the launchers (compat/rill-launch.sh, compat/kafka-launch.sh with
# --security sasl_ssl) and the security tests; sourced, not run.
#
# The secured clusters have the same users, passwords and certificates on
# Rill and on Kafka, so one test script proves itself against Kafka first.

# user:password pairs every secured cluster knows (SCRAM-SHA-256,
# SCRAM-SHA-512 and PLAIN). `nobody` is a user no cluster knows. admin is a
# super user; test_sasl_ssl.sh gives alice and bob every right on topics
# and groups; carol and dave start with none (test_acls.sh).
COMPAT_SASL_USERS="admin:admin-secret alice:alice-secret bob:bob-secret carol:carol-secret dave:dave-secret"
COMPAT_SCRAM_ITERATIONS=4096

# make_pki DIR [NAME]: a CA (DIR/ca.crt, ca.key) and a certificate for
# localhost and 127.0.0.1 signed by it (DIR/NAME.crt, NAME.key, and
# DIR/NAME.pem with both, the form Kafka's PEM keystore reads). With an
# existing CA in DIR, only the certificate is made (a rotation). The
# subject's CN is NAME, so a client certificate made this way names the
# principal User:NAME (on Rill, and on Kafka with the launchers' mapping
# rule).
make_pki() {
    local dir=$1 name=${2:-broker}
    mkdir -p "$dir"
    if [ ! -f "$dir/ca.crt" ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
            -subj "/CN=rill-compat-ca" -keyout "$dir/ca.key" -out "$dir/ca.crt" 2>/dev/null
    fi
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
        -keyout "$dir/$name.key.new" -out "$dir/$name.csr" 2>/dev/null
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
        -days 30 -out "$dir/$name.crt.new" \
        -extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n') 2>/dev/null
    # PKCS#8, which every reader (rustls, Kafka's PEM keystore) takes.
    openssl pkcs8 -topk8 -nocrypt -in "$dir/$name.key.new" -out "$dir/$name.key.p8"
    cat "$dir/$name.key.p8" "$dir/$name.crt.new" >"$dir/$name.pem.new"
    # Renames, so a reader never sees half a file.
    mv "$dir/$name.key.p8" "$dir/$name.key"
    mv "$dir/$name.crt.new" "$dir/$name.crt"
    mv "$dir/$name.pem.new" "$dir/$name.pem"
    rm -f "$dir/$name.key.new" "$dir/$name.csr"
}

# The launchers' Kafka rule that makes a client certificate's principal
# User:<CN>, as Rill does.
KAFKA_PRINCIPAL_RULE='RULE:^CN=([^,]*).*$/$1/,DEFAULT'

# rill_credentials FILE: Rill's SASL credentials file for COMPAT_SASL_USERS
# (both SCRAM mechanisms; salted and hashed, as an operator would write it).
rill_credentials() {
    python3 - "$1" "$COMPAT_SCRAM_ITERATIONS" $COMPAT_SASL_USERS <<'PY'
import base64, hashlib, hmac, os, sys
path, iterations, pairs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
lines = ["# user mechanism credential (written by compat/security-lib.sh)"]
for pair in pairs:
    user, password = pair.split(":", 1)
    for mech, hash_name in (("SCRAM-SHA-256", "sha256"), ("SCRAM-SHA-512", "sha512")):
        salt = os.urandom(24)
        salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)
        client_key = hmac.new(salted, b"Client Key", hash_name).digest()
        stored_key = hashlib.new(hash_name, client_key).digest()
        server_key = hmac.new(salted, b"Server Key", hash_name).digest()
        b64 = lambda b: base64.b64encode(b).decode()
        lines.append(f"{user} {mech} salt={b64(salt)},stored_key={b64(stored_key)},"
                     f"server_key={b64(server_key)},iterations={iterations}")
with open(path + ".new", "w") as f:
    f.write("\n".join(lines) + "\n")
os.replace(path + ".new", path)
PY
}

# kafka_scram_format_args: StorageTool --add-scram arguments for
# COMPAT_SASL_USERS.
kafka_scram_format_args() {
    local pair user password
    for pair in $COMPAT_SASL_USERS; do
        user=${pair%%:*}; password=${pair#*:}
        printf -- '--add-scram\nSCRAM-SHA-256=[name=%s,password=%s,iterations=%s]\n' "$user" "$password" "$COMPAT_SCRAM_ITERATIONS"
        printf -- '--add-scram\nSCRAM-SHA-512=[name=%s,password=%s,iterations=%s]\n' "$user" "$password" "$COMPAT_SCRAM_ITERATIONS"
    done
}

# kafka_plain_jaas: the JAAS line with which Kafka's PLAIN mechanism knows
# COMPAT_SASL_USERS (Kafka keeps PLAIN passwords in its configuration; Rill
# checks PLAIN passwords against the SCRAM credentials).
kafka_plain_jaas() {
    local pair users=""
    for pair in $COMPAT_SASL_USERS; do users+=" user_${pair%%:*}=\"${pair#*:}\""; done
    echo "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"admin-secret\"$users;"
}
