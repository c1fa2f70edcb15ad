/**
 * `agentsh-policy approvals list|approve ID|deny ID`: a Connect client (HTTP/1.1, so it works
 * against the plaintext port and TLS alike) for a running server's ApprovalService.
 */
import { userInfo } from "node:os";
import { parseArgs } from "node:util";
import { type Approval, ApprovalService, Decision, Kind, Operation } from "@agentsh/proto";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { DEFAULT_ADDRESS } from "./server.js";

export const APPROVALS_HELP = `  agentsh-policy approvals list [--json] [--server URL]
  agentsh-policy approvals approve|deny ID [--by NAME] [--reason TEXT] [--server URL]
      Lists pending approvals, or answers one (every broker waiting on it gets the answer).
      --server: default $AGENTSH_POLICY_URL, else http://$AGENTSH_POLICY_ADDR (${DEFAULT_ADDRESS}).
      --by: who answers (default the current user name). Exit 1 when the server refuses.
`;

export interface Output {
  out: (s: string) => void;
  err: (s: string) => void;
}

const stdio: Output = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
};

export function serverUrl(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  const v = flag ?? env.AGENTSH_POLICY_URL ?? env.AGENTSH_POLICY_ADDR ?? DEFAULT_ADDRESS;
  return /^https?:\/\//.test(v) ? v.replace(/\/+$/, "") : `http://${v}`;
}

function defaultUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? process.env.USERNAME ?? "";
  }
}

function kindName(k: Kind): string {
  return k === Kind.REGISTRY ? "registry" : "file";
}

function opName(o: Operation): string {
  return (Operation[o] ?? "unspecified").toLowerCase();
}

function toJson(a: Approval): Record<string, unknown> {
  return {
    id: a.id,
    kind: kindName(a.kind),
    operation: opName(a.operation),
    path: a.path,
    rule: a.rule,
    message: a.message,
    session: {
      token: a.session?.token.toString() ?? "0",
      host: a.session?.host ?? "",
      user_sid: a.session?.userSid ?? "",
      workspace: a.session?.workspace ?? "",
      agent: a.session?.agent ?? "",
    },
    pid: a.pid,
    created_at: new Date(Number(a.createdAtMs)).toISOString(),
    expires_at: new Date(Number(a.expiresAtMs)).toISOString(),
  };
}

function describe(a: Approval, now: number): string {
  const s = a.session;
  const who = [s?.host, s?.token ? `session ${s.token}` : "", a.pid ? `pid ${a.pid}` : "", s?.agent]
    .filter(Boolean)
    .join(", ");
  const left = Math.max(0, Math.round((Number(a.expiresAtMs) - now) / 1000));
  return (
    `${a.id}  ${kindName(a.kind)} ${opName(a.operation)} ${a.path}\n` +
    `    rule ${a.rule}; ${who || "no session"}; expires in ${left}s\n` +
    `    ${a.message}\n`
  );
}

export async function approvalsCommand(argv: string[], io: Output = stdio): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    io.err(`approvals: ${(err as Error).message}\n${APPROVALS_HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(APPROVALS_HELP);
    return 0;
  }
  const [sub, id, ...extra] = positionals;
  const url = serverUrl(values.server);
  const client = createClient(
    ApprovalService,
    createConnectTransport({ baseUrl: url, httpVersion: "1.1", defaultTimeoutMs: 10_000 }),
  );
  try {
    if (sub === "list" && id === undefined) {
      const { approvals } = await client.listApprovals({});
      const now = Date.now();
      if (values.json) for (const a of approvals) io.out(`${JSON.stringify(toJson(a))}\n`);
      else if (approvals.length === 0) io.out("no pending approvals\n");
      else for (const a of approvals) io.out(describe(a, now));
      return 0;
    }
    if ((sub === "approve" || sub === "deny") && id !== undefined && extra.length === 0) {
      const by = values.by ?? defaultUser();
      if (!by) {
        io.err("approvals: --by NAME is required (no user name found)\n");
        return 2;
      }
      const { approval } = await client.resolveApproval({
        approvalId: id,
        decision: sub === "approve" ? Decision.ALLOW : Decision.DENY,
        resolvedBy: by,
        reason: values.reason ?? "",
      });
      const what = approval ? ` (${opName(approval.operation)} ${approval.path})` : "";
      if (values.json)
        io.out(`${JSON.stringify({ ...(approval ? toJson(approval) : { id }), answer: sub })}\n`);
      else io.out(`${sub === "approve" ? "approved" : "denied"} ${id}${what}\n`);
      return 0;
    }
  } catch (err) {
    const e = ConnectError.from(err);
    io.err(`approvals: ${url}: ${e.message}\n`);
    return 1;
  }
  io.err(`approvals: expected list, approve ID or deny ID\n${APPROVALS_HELP}`);
  return 2;
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    options: {
      server: { type: "string" },
      by: { type: "string" },
      reason: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    allowPositionals: true,
  });
}
