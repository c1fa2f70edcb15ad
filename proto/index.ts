// Public surface of @agentsh/proto: the generated protobuf-es messages and service descriptors of
// the network API (agentsh.v1 and the standard grpc.health.v1). Regenerate with `npm run proto:gen`.
export * from "./gen/agentsh/v1/approval_pb.js";
export * from "./gen/agentsh/v1/broker_pb.js";
export * from "./gen/agentsh/v1/policy_pb.js";
export * from "./gen/agentsh/v1/session_pb.js";
export * from "./gen/agentsh/v1/types_pb.js";
export * as health from "./gen/grpc/health/v1/health_pb.js";

/** CheckStream response header by which a server announces that it answers batches
 * (CheckStreamRequest.checks, see policy.proto); its value is "1". */
export const CHECK_BATCH_HEADER = "agentsh-check-batch";
