/** The PolicyService and grpc.health.v1 implementations served by server.ts. */
import {
  CHECK_BATCH_HEADER,
  type CheckError,
  type CheckRequest,
  type CheckResponse,
  type CheckStreamRequest,
  type CheckStreamResponse,
  health,
  PolicyService,
} from "@agentsh/proto";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { type ApprovalsContext, attachApproval } from "./server-approvals.js";
import {
  checkErrorToProto,
  checkInputFromProto,
  checkResponseToProto,
  streamResponse,
  versionToProto,
} from "./server-convert.js";
import type { PolicyStore, PolicyVersion } from "./server-store.js";
import { evaluate } from "./telemetry-metrics.js";

export const VERSION_HEADER = "agentsh-policy-version";
export const POLICY_SERVICE_NAME = PolicyService.typeName;

/** Shared state: the store, whether we are serving, and a signal that ends streams on shutdown. */
export interface ServiceState {
  store: PolicyStore;
  serving: boolean;
  closing: AbortSignal;
  inFlight: number;
  onStatus: Set<() => void>;
  /** Where `approve` decisions become approvals (without it they carry no approval_id). */
  approvals?: ApprovalsContext | undefined;
}

function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  return new ConnectError(`internal error: ${(err as Error)?.message ?? String(err)}`, Code.Internal);
}

/** Waits for the next of: a store change, a status change, the call's end, shutdown. */
function waiter(
  state: ServiceState,
  ctx: HandlerContext,
): { next: () => Promise<void>; dispose: () => void; pending: PolicyVersion[] } {
  const pending: PolicyVersion[] = [];
  let wake: (() => void) | undefined;
  const poke = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const off = state.store.onChange((v) => {
    pending.push(v);
    poke();
  });
  state.onStatus.add(poke);
  ctx.signal.addEventListener("abort", poke);
  state.closing.addEventListener("abort", poke);
  return {
    pending,
    next: () => new Promise<void>((r) => (wake = r)),
    dispose: () => {
      off();
      state.onStatus.delete(poke);
      ctx.signal.removeEventListener("abort", poke);
      state.closing.removeEventListener("abort", poke);
    },
  };
}

type StreamResult = { ok: true; response: CheckResponse } | { ok: false; error: CheckError };

/** One check of a CheckStream: its answer, or its error by request_id (the stream goes on). */
async function streamCheck(
  state: ServiceState,
  check: CheckRequest | undefined,
  ctx: HandlerContext,
): Promise<StreamResult> {
  const id = check?.requestId ?? 0n;
  state.inFlight++;
  try {
    if (!check) throw new ConnectError("check is required", Code.InvalidArgument);
    const input = checkInputFromProto(check);
    const d = evaluate(state.store.engine, input, ctx, check);
    let res = checkResponseToProto(id, d);
    if (d.decision === "approve" && state.approvals)
      res = await attachApproval(state.approvals, check, input, d, res);
    return { ok: true, response: res };
  } catch (err) {
    const ce = toConnectError(err);
    return {
      ok: false,
      error: checkErrorToProto(
        id,
        Code[ce.code]!.replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase()),
        ce.rawMessage,
      ),
    };
  } finally {
    state.inFlight--;
  }
}

export function policyService(state: ServiceState): ServiceImpl<typeof PolicyService> {
  return {
    check(req, ctx) {
      state.inFlight++;
      let pending = false;
      try {
        const input = checkInputFromProto(req);
        const d = evaluate(state.store.engine, input, ctx, req);
        ctx.responseHeader.set(VERSION_HEADER, d.policyVersion);
        const res = checkResponseToProto(req.requestId, d);
        if (d.decision !== "approve" || !state.approvals) return res;
        pending = true;
        return attachApproval(state.approvals, req, input, d, res).then(
          (r) => {
            state.inFlight--;
            return r;
          },
          (err) => {
            state.inFlight--;
            throw toConnectError(err);
          },
        );
      } catch (err) {
        throw toConnectError(err);
      } finally {
        if (!pending) state.inFlight--;
      }
    },
    async *checkStream(reqs: AsyncIterable<CheckStreamRequest>, ctx): AsyncIterable<CheckStreamResponse> {
      ctx.responseHeader.set(VERSION_HEADER, state.store.current.version);
      ctx.responseHeader.set(CHECK_BATCH_HEADER, "1");
      // A broker keeps its streams open: when the server closes, a stream ends (OK) at its next
      // wait for a message, after the check in progress is answered, rather than at the grace
      // period's end with the connection dropped.
      const src = reqs[Symbol.asyncIterator]();
      let stop: ((r: IteratorResult<CheckStreamRequest>) => void) | undefined;
      const halt = (): void => stop?.({ done: true, value: undefined });
      state.closing.addEventListener("abort", halt, { once: true });
      const messages: AsyncIterable<CheckStreamRequest> = {
        [Symbol.asyncIterator]: () => ({
          next: () =>
            state.closing.aborted
              ? Promise.resolve({ done: true, value: undefined })
              : new Promise<IteratorResult<CheckStreamRequest>>((resolve, reject) => {
                  stop = resolve;
                  src.next().then(resolve, reject);
                }),
        }),
      };
      try {
        yield* answer(messages, ctx);
      } finally {
        state.closing.removeEventListener("abort", halt);
      }
    },
    async *watchPolicy(_req, ctx) {
      const w = waiter(state, ctx);
      try {
        yield versionToProto(state.store.current);
        while (!ctx.signal.aborted && !state.closing.aborted) {
          await w.next();
          while (w.pending.length > 0) yield versionToProto(w.pending.shift()!);
        }
      } finally {
        w.dispose();
      }
    },
  };

  async function* answer(
    reqs: AsyncIterable<CheckStreamRequest>,
    ctx: HandlerContext,
  ): AsyncIterable<CheckStreamResponse> {
    for await (const r of reqs) {
      if (r.checks.length === 0) {
        const res = await streamCheck(state, r.check, ctx);
        yield res.ok
          ? streamResponse({ case: "response", value: res.response })
          : streamResponse({ case: "error", value: res.error });
        continue;
      }
      // A batch: one answer message for all of it.
      const out = streamResponse();
      const batch = r.check ? [r.check, ...r.checks] : r.checks;
      for (const c of batch) {
        const res = await streamCheck(state, c, ctx);
        if (res.ok) out.responses.push(res.response);
        else out.errors.push(res.error);
      }
      yield out;
    }
  }
}

const { HealthCheckResponse_ServingStatus: Status } = health;

export function healthService(state: ServiceState): ServiceImpl<typeof health.Health> {
  const statusOf = (service: string): health.HealthCheckResponse_ServingStatus | undefined => {
    if (service !== "" && service !== POLICY_SERVICE_NAME) return undefined;
    return state.serving && !state.closing.aborted ? Status.SERVING : Status.NOT_SERVING;
  };
  return {
    check(req, ctx) {
      const st = statusOf(req.service);
      if (st === undefined) throw new ConnectError(`unknown service ${req.service}`, Code.NotFound);
      ctx.responseHeader.set(VERSION_HEADER, state.store.current.version);
      ctx.responseTrailer.set(VERSION_HEADER, state.store.current.version);
      return { status: st };
    },
    list(_req, ctx) {
      ctx.responseHeader.set(VERSION_HEADER, state.store.current.version);
      return {
        statuses: {
          "": { status: statusOf("")! },
          [POLICY_SERVICE_NAME]: { status: statusOf(POLICY_SERVICE_NAME)! },
        },
      };
    },
    async *watch(req, ctx) {
      ctx.responseHeader.set(VERSION_HEADER, state.store.current.version);
      const w = waiter(state, ctx);
      try {
        let last: health.HealthCheckResponse_ServingStatus | undefined;
        for (;;) {
          const st = statusOf(req.service) ?? Status.SERVICE_UNKNOWN;
          if (st !== last) {
            yield { status: st };
            last = st;
          }
          if (ctx.signal.aborted || state.closing.aborted) return;
          await w.next();
          w.pending.length = 0;
        }
      } finally {
        w.dispose();
      }
    },
  };
}
