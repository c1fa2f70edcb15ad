// The answers built as literals (server-convert.ts) are the messages create() builds, and encode to
// the same bytes.
import {
  CheckErrorSchema,
  CheckResponseSchema,
  CheckStreamResponseSchema,
  Decision as PDecision,
  PolicyMode as PMode,
} from "@agentsh/proto";
import { create, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import type { Decision } from "./engine-types.js";
import { checkErrorToProto, checkResponseToProto, streamResponse } from "./server-convert.js";

const base: Decision = {
  decision: "deny",
  enforcedDecision: "deny",
  wouldDeny: false,
  mode: "enforce",
  rule: "secrets",
  pattern: "C:\\Users\\*\\.ssh\\**",
  policyVersion: "3-0123456789ab",
  mitre: "T1552.004",
  risk: "",
  message: "agent may not touch credentials: C:\\Users\\dev\\.ssh\\id",
  cacheTtlMs: 60000,
  canonicalPath: "C:\\Users\\dev\\.ssh\\id",
  notify: false,
};

describe("answers as literals", () => {
  it("a decision: every field as create() sets it, with and without the optional ones", () => {
    const cases: Decision[] = [
      base,
      {
        ...base,
        decision: "allow",
        enforcedDecision: "deny",
        wouldDeny: true,
        mode: "monitor",
        decidedSide: "destination",
        redirectPath: "C:\\safe\\x",
        approvalTimeoutMs: 120000,
        notify: true,
      },
      { ...base, decision: "approve", enforcedDecision: "approve", approvalTimeoutMs: 5000 },
    ];
    for (const d of cases) {
      const made = create(CheckResponseSchema, {
        requestId: 77n,
        decision: { allow: PDecision.ALLOW, deny: PDecision.DENY, approve: PDecision.APPROVE }[
          d.decision as "allow" | "deny" | "approve"
        ],
        rule: d.rule,
        pattern: d.pattern,
        policyVersion: d.policyVersion,
        mitreTechnique: d.mitre,
        message: d.message,
        cacheTtlMs: d.cacheTtlMs,
        mode: d.mode === "monitor" ? PMode.MONITOR : PMode.ENFORCE,
        enforcedDecision: { allow: PDecision.ALLOW, deny: PDecision.DENY, approve: PDecision.APPROVE }[
          d.enforcedDecision as "allow" | "deny" | "approve"
        ],
        decidedSide: d.decidedSide ?? "",
        canonicalPath: d.canonicalPath,
        redirectPath: d.redirectPath ?? "",
        approvalTimeoutMs: d.approvalTimeoutMs ?? 0,
        notify: d.notify,
      });
      const literal = checkResponseToProto(77n, d);
      expect(literal).toStrictEqual(made);
      expect(toBinary(CheckResponseSchema, literal)).toEqual(toBinary(CheckResponseSchema, made));
    }
  });

  it("errors and CheckStream messages: one answer, one error, a batch", () => {
    const err = checkErrorToProto(4n, "invalid_argument", "path is required");
    expect(err).toStrictEqual(
      create(CheckErrorSchema, { requestId: 4n, code: "invalid_argument", message: "path is required" }),
    );
    const answer = checkResponseToProto(5n, base);
    expect(streamResponse({ case: "response", value: answer })).toStrictEqual(
      create(CheckStreamResponseSchema, { result: { case: "response", value: answer } }),
    );
    expect(streamResponse({ case: "error", value: err })).toStrictEqual(
      create(CheckStreamResponseSchema, { result: { case: "error", value: err } }),
    );
    const batch = streamResponse();
    expect(batch).toStrictEqual(create(CheckStreamResponseSchema));
    batch.responses.push(answer);
    batch.errors.push(err);
    expect(toBinary(CheckStreamResponseSchema, batch)).toEqual(
      toBinary(
        CheckStreamResponseSchema,
        create(CheckStreamResponseSchema, { responses: [answer], errors: [err] }),
      ),
    );
  });
});
