// The broker -> server hop over TLS with certificates made for the test (a CA, a server certificate
// for 127.0.0.1/localhost): the relay verifies the server, and refuses one signed by another CA.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CheckRequestSchema, Decision, Kind, Operation } from "@agentsh/proto";
import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type PolicyServer, startPolicyServer } from "../../../policy-server/src/server.js";
import { Relay } from "./relay.js";
import { PolicyChannel } from "./relay-grpc.js";

const dir = mkdtempSync(join(tmpdir(), "agentsh-tls-"));
const f = (name: string) => join(dir, name);
const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });

function makeCa(name: string): void {
  openssl(
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "1",
    "-subj",
    `/CN=${name}`,
    "-keyout",
    f(`${name}.key`),
    "-out",
    f(`${name}.pem`),
  );
}

const POLICY = `version: 1
name: tls
mode: enforce
default_action: deny
default_read_action: allow
file_rules:
  - name: workspace
    paths: ['C:\\\\w\\\\**']
    operations: ['*']
    decision: allow
`;

let server: PolicyServer;
beforeAll(async () => {
  makeCa("ca");
  makeCa("other-ca");
  writeFileSync(f("san.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  openssl(
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=policy-server",
    "-keyout",
    f("server.key"),
    "-out",
    f("server.csr"),
  );
  openssl(
    "x509",
    "-req",
    "-in",
    f("server.csr"),
    "-CA",
    f("ca.pem"),
    "-CAkey",
    f("ca.key"),
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    f("san.cnf"),
    "-out",
    f("server.pem"),
  );
  server = await startPolicyServer({
    address: "127.0.0.1:0",
    policyText: POLICY,
    tlsCert: f("server.pem"),
    tlsKey: f("server.key"),
    logger: { info() {}, warn() {}, error() {} } as never,
  });
});
afterAll(() => server?.close());

function relayWith(ca: string) {
  const channel = new PolicyChannel({ target: `127.0.0.1:${server.port}`, tls: { ca: readFileSync(f(ca)) } });
  const relay = new Relay({
    channel,
    failMode: "closed",
    streams: 1,
    breakerThreshold: 5,
    probeIntervalMs: 1000,
    staleIfErrorMs: 0,
  });
  return {
    relay,
    close: () => {
      relay.close();
      channel.close();
    },
  };
}

const req = create(CheckRequestSchema, {
  kind: Kind.FILE,
  operation: Operation.WRITE,
  path: "C:\\w\\a.c",
  session: { token: 1n },
});

describe("broker -> policy server over TLS", () => {
  it("decides through a verified TLS connection", async () => {
    const { relay, close } = relayWith("ca.pem");
    try {
      const d = await relay.check(req, "k", Date.now() + 5000);
      expect(d.source).toBe("server");
      expect(d.response.decision).toBe(Decision.ALLOW);
    } finally {
      close();
    }
  });

  it("refuses a server whose certificate another CA signed (fail mode decides)", async () => {
    const { relay, close } = relayWith("other-ca.pem");
    try {
      const d = await relay.check(req, "k", Date.now() + 2000);
      expect(d.source).toBe("fail_mode");
      expect(d.response.decision).toBe(Decision.DENY);
    } finally {
      close();
    }
  });
});
