/** The message envelope, exactly message_bus's, so its browser client works unchanged (docs/protocol.md#2-messages-ids-and-epochs). */
export interface Message<T = unknown> {
  global_id: number;
  message_id: number;
  channel: string;
  data: T;
}

export const STATUS_CHANNEL = "/__status";

/**
 * `/__status` data: `channel → position` ("your position on this channel is now X", at the place the
 * status stands in the stream), plus two cometbus extensions that message-bus-client ignores because
 * they are not channel names: `__epoch` (the backend's epoch) and `__reset` (channels whose requested
 * position could not be honoured: another epoch, trimmed, or beyond the channel's last id).
 */
export interface StatusData {
  [channel: string]: number | string | string[] | undefined;
  __epoch?: string;
  __reset?: string[];
}

export function statusMessage(data: StatusData): Message<StatusData> {
  return { global_id: -1, message_id: -1, channel: STATUS_CHANNEL, data };
}

export function isStatus(m: Message): m is Message<StatusData> {
  return m.channel === STATUS_CHANNEL;
}

/** The envelope as JSON, keys in message_bus's order. Encoded once per message, never per subscriber. */
export function encodeMessage(m: Message): string {
  return JSON.stringify({ global_id: m.global_id, message_id: m.message_id, channel: m.channel, data: m.data });
}

/**
 * The same envelope around `data` already encoded (the publisher's JSON text, as a store keeps it):
 * no second stringify of the data, and the same bytes as encodeMessage.
 */
export function encodeEnvelope(globalId: number, messageId: number, channel: string, dataJson: string): string {
  return `{"global_id":${globalId},"message_id":${messageId},"channel":${JSON.stringify(channel)},"data":${dataJson}}`;
}

/**
 * An envelope (as encoded above) with `client_ids`: the client ids it is for, on a connection shared
 * by several (docs/protocol.md#14-shared-connections). Only such connections ever see the key.
 */
export function encodeAddressed(envelopeJson: string, clientIds: readonly string[]): string {
  return `${envelopeJson.slice(0, -1)},"client_ids":${JSON.stringify(clientIds)}}`;
}

/** A `/__status` message as JSON. */
export function encodeStatus(data: StatusData): string {
  return JSON.stringify(statusMessage(data));
}
