#!/usr/bin/env bash
# Starts a local S3-compatible server for the storage tests and prints the variables that point
# the tests at it:
#
#     eval "$(.ci/start-s3.sh)"
#     CHATDESK_REQUIRE_S3=1 cargo test -p api --lib storage::s3
#     CHATDESK_REQUIRE_S3=1 cargo test -p tests --test suite attachments::
#     kill "$CHATDESK_TEST_S3_PID"
#
# The server is s3s-fs (crates.io, from the s3s project): a real S3 REST implementation over a
# folder that checks SigV4 request signatures, so a wrong key or a broken signature fails here
# as it would on AWS. It is installed with `cargo install` when missing (about 2 minutes on two
# cores). s3s-fs 0.15 and later need a newer rustc than our toolchain; 0.14.1 is pinned.
#
# The server under test reads the standard AWS_* variables (as in production), so they are
# printed too, AWS_ENDPOINT_URL included. Each run starts its own server on a free port with its
# own data folder, so running it again (or from two checkouts) never collides; stop one with
# `kill "$CHATDESK_TEST_S3_PID"; rm -rf "$CHATDESK_TEST_S3_DATA"*`.
#
# Settings (environment): S3_PORT (default: the first free port from 9000), S3S_FS_VERSION
# (0.14.1), S3S_TARGET_DIR (cargo's build folder for the install; default a folder under the
# system temp folder, never inside the checkout).
set -euo pipefail

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -n "${S3_PORT:-}" ]; then
    port=$S3_PORT
else
    port=9000
    while listening "$port"; do
        port=$((port + 1))
        if [ "$port" -gt 9100 ]; then
            echo "start-s3: no free port in 9000-9100; set S3_PORT" >&2
            exit 1
        fi
    done
fi
version=${S3S_FS_VERSION:-0.14.1}
access_key=chatdesk-test-access
secret_key=chatdesk-test-secret-0123456789
bucket=chatdesk-test
bin=${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs

if ! [ -x "$bin" ] || ! "$bin" --version 2>/dev/null | grep -q "$version"; then
    echo "start-s3: installing s3s-fs $version (cargo install, about 2 minutes)" >&2
    target_dir=${S3S_TARGET_DIR:-${TMPDIR:-/tmp}/target-s3s}
    CARGO_TARGET_DIR=$target_dir cargo install s3s-fs --version "$version" \
        --features binary --locked >&2
fi

answers() { curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/"; }
if listening "$port"; then
    echo "start-s3: something already listens on 127.0.0.1:$port; set S3_PORT to another port" >&2
    exit 1
fi

data=$(mktemp -d "${TMPDIR:-/tmp}/chatdesk-s3.XXXXXX")
# s3s-fs keeps a bucket as a folder under its root: creating the folder creates the bucket
# (a CreateBucket request does the same; this needs no S3 client).
mkdir "$data/$bucket"
nohup "$bin" --host 127.0.0.1 --port "$port" \
    --access-key "$access_key" --secret-key "$secret_key" \
    "$data" >"$data.log" 2>&1 &
pid=$!

for _ in $(seq 1 100); do
    # Any HTTP answer (403 to an unsigned request) means it is up.
    if answers; then
        break
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "start-s3: s3s-fs exited; its log:" >&2
        cat "$data.log" >&2
        exit 1
    fi
    sleep 0.1
done
if ! answers; then
    echo "start-s3: s3s-fs did not answer on port $port within 10 s" >&2
    kill "$pid" 2>/dev/null || true
    exit 1
fi

echo "start-s3: s3s-fs $version (pid $pid) serves bucket '$bucket' from $data on 127.0.0.1:$port" >&2
cat <<EOF
export CHATDESK_TEST_S3_ENDPOINT=http://127.0.0.1:$port
export CHATDESK_TEST_S3_BUCKET=$bucket
export AWS_ACCESS_KEY_ID=$access_key
export AWS_SECRET_ACCESS_KEY=$secret_key
export AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$port
export AWS_ALLOW_HTTP=true
export CHATDESK_TEST_S3_PID=$pid
export CHATDESK_TEST_S3_DATA=$data
EOF
