// @grpc/grpc-js clients for the proto/ services, with protobuf-es (de)serialisation: grpc-js does the
// transport (HTTP/2, name resolution, round-robin load balancing, keepalive, retries), protobuf-es
// the messages (written and read by relay-codec.ts's and relay-decode.ts's functions compiled from
// the same descriptors). One
// channel per target, shared by every client built on it.

import { ApprovalService, health, PolicyService } from "@agentsh/proto";
import {
  type DescMessage,
  type DescService,
  fromBinary,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { addressFamily } from "../config.js";
import { compiledSerializer } from "./relay-codec.js";
import { compiledDeserializer } from "./relay-decode.js";

/** A grpc-js service definition for a protobuf-es service descriptor. */
export function grpcDefinition(service: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const m of service.methods) {
    const codec = <D extends DescMessage>(desc: D) => ({
      serialize: compiledSerializer(desc) ?? ((msg: MessageShape<D>) => Buffer.from(toBinary(desc, msg))),
      deserialize: compiledDeserializer(desc) ?? ((b: Buffer) => fromBinary(desc, b)),
    });
    const input = codec(m.input);
    const output = codec(m.output);
    def[m.localName] = {
      path: `/${service.typeName}/${m.name}`,
      requestStream: m.methodKind === "client_streaming" || m.methodKind === "bidi_streaming",
      responseStream: m.methodKind === "server_streaming" || m.methodKind === "bidi_streaming",
      requestSerialize: input.serialize as (v: unknown) => Buffer,
      requestDeserialize: input.deserialize,
      responseSerialize: output.serialize as (v: unknown) => Buffer,
      responseDeserialize: output.deserialize,
    };
  }
  return def;
}

export interface ChannelOptions {
  /**
   * A gRPC target: "host:port", "dns:///name:port" (every address of the name), or
   * "ipv4:127.0.0.1:7001,127.0.0.1:7002" (a list of replicas).
   */
  target: string;
  /** PEM contents for TLS; plaintext (h2c) when absent. */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined;
  keepaliveMs?: number;
}

/** Turns a list of "host:port" replicas into one grpc-js target (ipv4:/ipv6: lists, else the name). */
export function targetOf(addresses: readonly string[]): string {
  if (addresses.length === 1) return addresses[0]!;
  const family = addressFamily(addresses);
  if (family !== undefined) return `${family}:${addresses.join(",")}`;
  throw new Error(
    `server addresses: a list must be all IPv4 or all IPv6 "addr:port" (got ${addresses.join(", ")}); use one DNS name (dns:///name:port) for a named fleet`,
  );
}

export class PolicyChannel {
  readonly policy: grpc.Client & Record<string, unknown>;
  readonly approval: grpc.Client & Record<string, unknown>;
  readonly health: grpc.Client & Record<string, unknown>;
  private readonly channel: grpc.Channel;

  constructor(opts: ChannelOptions) {
    const creds = opts.tls
      ? grpc.credentials.createSsl(opts.tls.ca ?? null, opts.tls.key ?? null, opts.tls.cert ?? null)
      : grpc.credentials.createInsecure();
    const keepalive = opts.keepaliveMs ?? 10_000;
    const options: grpc.ChannelOptions = {
      "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
      "grpc.keepalive_time_ms": keepalive,
      "grpc.keepalive_timeout_ms": Math.max(1000, Math.floor(keepalive / 2)),
      "grpc.keepalive_permit_without_calls": 1,
      "grpc.initial_reconnect_backoff_ms": 100,
      "grpc.max_reconnect_backoff_ms": 2000,
      "grpc.enable_retries": 1,
    };
    this.channel = new grpc.Channel(opts.target, creds, options);
    const make = (svc: DescService) => {
      const Ctor = grpc.makeGenericClientConstructor(grpcDefinition(svc), svc.name);
      return new Ctor(opts.target, creds, { ...options, channelOverride: this.channel }) as grpc.Client &
        Record<string, unknown>;
    };
    this.policy = make(PolicyService);
    this.approval = make(ApprovalService);
    this.health = make(health.Health);
  }

  /** Connectivity of the channel as a whole (READY when at least one replica is). */
  state(): grpc.connectivityState {
    return this.channel.getConnectivityState(true);
  }

  close(): void {
    this.policy.close();
    this.approval.close();
    this.health.close();
    this.channel.close();
  }
}

/** Calls a unary method of a generic client as a promise with a deadline. */
export function unary<Req, Res>(
  client: grpc.Client & Record<string, unknown>,
  method: string,
  request: Req,
  deadline: number,
  metadata = new grpc.Metadata(),
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = client[method] as (
      req: Req,
      md: grpc.Metadata,
      opts: grpc.CallOptions,
      cb: (err: grpc.ServiceError | null, res?: Res) => void,
    ) => grpc.ClientUnaryCall;
    fn.call(client, request, metadata, { deadline }, (err, res) => (err ? reject(err) : resolve(res as Res)));
  });
}
