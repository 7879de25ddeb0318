/**
 * Workflow histories to and from proto3 JSON, the format of
 * `temporal workflow show --output json` and of the SDKs' history files.
 *
 * Same algorithm as `historyToJSON` / `historyFromJSON` of
 * @temporalio/common/lib/proto-utils, but with the protobufjs codec that
 * @temporalio/proto's types were built with. The SDK's pair loads protobufjs
 * from @temporalio/common's folder; when npm nests separate copies of it (as it
 * does while @grpc/proto-loader keeps protobufjs 7 at the root), that codec
 * rejects @temporalio/proto's History type with "type must be a Type".
 */
import proto from '@temporalio/proto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { projectRoot } from './tools.ts';

/** Where the committed histories live (`npm run histories:record` writes them, the replay test reads them). */
export const historiesDir = path.join(projectRoot, 'test', 'replay', 'histories');

export type History = proto.temporal.api.history.v1.IHistory;

interface ProtoJsonCodec {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options?: { ignoreUnknownFields?: boolean }): unknown;
}

const HistoryType = proto.temporal.api.history.v1.History;
const nextToProto = createRequire(createRequire(import.meta.url).resolve('@temporalio/proto'));
const codec = nextToProto('protobufjs/ext/protojson') as ProtoJsonCodec;

/** A history (e.g. from `handle.fetchHistory()`) as indented proto3 JSON. */
export function historyToJSON(history: History): string {
  return JSON.stringify(codec.toJson(HistoryType, HistoryType.fromObject(history)), null, 2);
}

/** A parsed proto3 JSON history as the History message that `Worker.runReplayHistories` takes. */
export function historyFromJSON(json: unknown): History {
  // Tolerate fields a newer server may have added, as the SDK does.
  return codec.fromJson(HistoryType, json, { ignoreUnknownFields: true }) as History;
}
