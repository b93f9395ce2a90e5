// A webhook receiver for Chatdesk's tests. Every delivery is verified with `standardwebhooks`,
// the Standard Webhooks reference library (not Chatdesk's code), and appended as one JSON line
// to the output file, which the test reads.
//
//   node receiver.js --host 127.0.0.1 --port 0 --secrets secrets.json --out deliveries.jsonl
//
// It prints `listening <port>` once ready. `secrets.json` maps an endpoint name to the secrets
// that may sign its deliveries (read on every request, so the test can add endpoints later).
// The path is `/<mode>/<name>`: `ok` answers 200, `fail-once` answers 500 to the first attempt
// of each webhook-id and 200 after, `slow` waits 30 s before answering 200, `redirect` answers
// 302 to `/ok/redirected` on this same receiver.

"use strict";

const fs = require("fs");
const http = require("http");
const { Webhook } = require("standardwebhooks");

function arg(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

const host = arg("host", "127.0.0.1");
const port = Number(arg("port", "0"));
const secretsFile = arg("secrets");
const outFile = arg("out");
const failedOnce = new Set();

function secretsFor(name) {
  try {
    const all = JSON.parse(fs.readFileSync(secretsFile, "utf8"));
    const secrets = all[name];
    return Array.isArray(secrets) ? secrets : secrets ? [secrets] : [];
  } catch (error) {
    return [];
  }
}

function verify(name, body, headers) {
  const errors = [];
  for (const secret of secretsFor(name)) {
    try {
      new Webhook(secret).verify(body, headers);
      return { verified: true };
    } catch (error) {
      errors.push(String(error && error.message ? error.message : error));
    }
  }
  return { verified: false, error: errors.join("; ") || "no secret for this endpoint" };
}

const server = http.createServer((request, response) => {
  const chunks = [];
  request.on("data", (chunk) => chunks.push(chunk));
  request.on("end", () => {
    const body = Buffer.concat(chunks).toString("utf8");
    const [, mode = "ok", name = ""] = request.url.split("?")[0].split("/");
    const id = request.headers["webhook-id"] || null;
    const check = verify(name, body, {
      "webhook-id": request.headers["webhook-id"] || "",
      "webhook-timestamp": request.headers["webhook-timestamp"] || "",
      "webhook-signature": request.headers["webhook-signature"] || "",
    });
    let status = 200;
    if (mode === "fail-once" && !failedOnce.has(id)) {
      failedOnce.add(id);
      status = 500;
    }
    if (mode === "redirect") {
      status = 302;
    }
    let parsed = null;
    try {
      parsed = JSON.parse(body);
    } catch (error) {
      parsed = null;
    }
    fs.appendFileSync(
      outFile,
      JSON.stringify({
        mode,
        name,
        id,
        timestamp: request.headers["webhook-timestamp"] || null,
        signatures: (request.headers["webhook-signature"] || "").split(" ").length,
        type: parsed && parsed.type,
        verified: check.verified,
        error: check.error || null,
        answered: status,
        body: parsed,
        received_at: Date.now() / 1000,
      }) + "\n",
    );
    const answer = () => {
      if (status === 302) {
        const address = server.address();
        const where = address.family === "IPv6" ? `[${address.address}]` : address.address;
        response.writeHead(302, { location: `http://${where}:${address.port}/ok/redirected` });
        response.end();
        return;
      }
      response.writeHead(status, { "content-type": "text/plain" });
      response.end(status === 200 ? `ok ${name}` : `failing on purpose ${name}`);
    };
    if (mode === "slow") {
      setTimeout(answer, 30000);
    } else {
      answer();
    }
  });
});

server.listen(port, host, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
