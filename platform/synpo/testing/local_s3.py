"""An S3-compatible server on loopback for trying the ``s3://`` paths on one machine (``make s3-local``).

    .venv/bin/python -m synpo.testing.local_s3 [--port 9000] [--bucket bucket]

Starts moto's S3 server on ``127.0.0.1:PORT``, creates the bucket, prints the variables every synpo
command reads (endpoint, region, keys) and serves until Ctrl-C or SIGTERM. Objects live in memory: they
are gone when it stops. moto comes with the ``dev`` extra (``make setup`` installs it).
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import threading

ACCESS_KEY = SECRET_KEY = "testing"  # moto accepts any key pair; these name the local server's
REGION = "us-east-1"


def environment(port: int) -> dict[str, str]:
    """The variables that point boto3, pyarrow and every synpo command at the local server."""
    return {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000, help="loopback port (default 9000)")
    parser.add_argument("--bucket", default="bucket", help="bucket to create (default 'bucket')")
    args = parser.parse_args(argv)
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:  # moto's server thread would fail on a busy port without telling this one
        try:
            probe.bind(("127.0.0.1", args.port))
        except OSError as error:
            print(f"local_s3: error: cannot listen on 127.0.0.1:{args.port} ({error.strerror}); choose another --port", file=sys.stderr)
            return 2
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    variables = environment(args.port)
    client = boto3.client("s3", endpoint_url=variables["AWS_ENDPOINT_URL"], region_name=REGION, aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    client.create_bucket(Bucket=args.bucket)
    print(f"S3 on {variables['AWS_ENDPOINT_URL']} with bucket s3://{args.bucket}/ (in memory; Ctrl-C stops it). In another shell:")
    print("export " + " ".join(f"{name}={value}" for name, value in variables.items()), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        print("local_s3: stopped")
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
