"""A real SMTP server for the tests (PyPI's aiosmtpd): every accepted message is written as one
JSON file in a folder, with its envelope, the time it was accepted, its headers and its decoded
text and HTML parts, so a Rust test can read it without a MIME parser.

Recipients whose local part starts with "reject" are refused with 550, as a real server refuses
an unknown mailbox.

    python3 smtp_sink.py FOLDER PORT [--tls starttls|smtps --cert CERT --key KEY] [--auth USER:PASSWORD]

With --tls starttls the server requires STARTTLS; with --tls smtps the connection is TLS from
the start. With --auth every message needs AUTH with those credentials.
"""

import argparse
import ssl

import email
import email.policy
import json
import os
import time
import uuid

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    def __init__(self, folder):
        self.folder = folder

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.split("@")[0].lower().startswith("reject"):
            return "550 5.1.1 <%s>: mailbox unavailable" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        received_at = time.time()
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        headers = {}
        for name, value in message.items():
            headers.setdefault(name.lower(), []).append(str(value))
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "received_at": received_at,
            "headers": headers,
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None else None,
            "raw": raw.decode("utf-8", "replace"),
        }
        name = "%d-%s.json" % (time.time_ns(), uuid.uuid4().hex)
        temporary = os.path.join(self.folder, "." + name + ".tmp")
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump(record, out)
        # A reader never sees half a file.
        os.rename(temporary, os.path.join(self.folder, name))
        return "250 Message accepted"


def authenticator_for(credentials):
    user, password = credentials.split(":", 1)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok)

    return authenticator


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("port", type=int)
    parser.add_argument("--tls", choices=["none", "starttls", "smtps"], default="none")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--auth")
    args = parser.parse_args()
    os.makedirs(args.folder, exist_ok=True)
    options = {}
    context = None
    if args.tls != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
    if args.tls == "starttls":
        options.update(tls_context=context, require_starttls=True)
    if args.auth:
        options.update(
            authenticator=authenticator_for(args.auth),
            auth_required=True,
            # aiosmtpd counts only STARTTLS as TLS; an smtps connection is TLS from the start.
            auth_require_tls=args.tls == "starttls",
        )
    if args.tls == "smtps":
        controller = Controller(
            Sink(args.folder),
            hostname="127.0.0.1",
            port=args.port,
            ssl_context=context,
            server_kwargs=options,
        )
    else:
        controller = Controller(
            Sink(args.folder), hostname="127.0.0.1", port=args.port, server_kwargs=options
        )
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
