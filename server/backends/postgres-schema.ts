/**
 * The PostgreSQL backend's tables and functions, created on first use in their own schema (so
 * several buses, or test runs, share a database without meeting). `S` stands for the quoted schema.
 *
 * Publishers are serialized by the single `meta` row, updated first in every publish: a publish
 * holds its lock until it commits, so global ids commit in id order and a reader never sees 11
 * before 10. `channels` holds each channel's last id, never trimmed, so ids never restart within an
 * epoch. Backlogs keep the publisher's JSON text as is. `expires_at` is the effective expiry (see
 * redis-scripts.ts): it never decreases with the id, so expiring drops a prefix.
 */
export function schemaSql(S: string): string {
  return `
CREATE SCHEMA IF NOT EXISTS ${S};
CREATE TABLE IF NOT EXISTS ${S}.meta (
  id int PRIMARY KEY CHECK (id = 1),
  epoch text NOT NULL,
  global_id bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS ${S}.channels (
  channel text PRIMARY KEY,
  last_id bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS ${S}.backlog (
  channel text NOT NULL,
  message_id bigint NOT NULL,
  global_id bigint NOT NULL,
  meta text NOT NULL,
  data text NOT NULL,
  expires_at bigint NOT NULL,
  PRIMARY KEY (channel, message_id)
);
CREATE INDEX IF NOT EXISTS backlog_expiry ON ${S}.backlog (channel, expires_at);
CREATE TABLE IF NOT EXISTS ${S}.global_backlog (
  global_id bigint PRIMARY KEY,
  message_id bigint NOT NULL,
  meta text NOT NULL,
  data text NOT NULL
);

CREATE OR REPLACE FUNCTION ${S}.now_ms() RETURNS bigint LANGUAGE sql AS
$$ SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

CREATE OR REPLACE FUNCTION ${S}.publish(
  p_channel text, p_meta text, p_data text, p_size bigint, p_age double precision,
  p_global_size bigint, p_notify text, p_lock bigint
) RETURNS TABLE (out_epoch text, out_global_id bigint, out_message_id bigint) LANGUAGE plpgsql AS $$
DECLARE
  v_epoch text;
  v_gid bigint;
  v_mid bigint;
  v_now bigint := ${S}.now_ms();
  v_exp bigint := ${S}.now_ms() + (p_age * 1000)::bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(p_lock);
  UPDATE ${S}.meta m SET global_id = m.global_id + 1 WHERE m.id = 1 RETURNING m.epoch, m.global_id INTO v_epoch, v_gid;
  INSERT INTO ${S}.channels AS c (channel, last_id) VALUES (p_channel, 1)
    ON CONFLICT (channel) DO UPDATE SET last_id = c.last_id + 1 RETURNING c.last_id INTO v_mid;
  UPDATE ${S}.backlog b SET expires_at = v_exp WHERE b.channel = p_channel AND b.expires_at > v_exp;
  INSERT INTO ${S}.backlog (channel, message_id, global_id, meta, data, expires_at)
    VALUES (p_channel, v_mid, v_gid, p_meta, p_data, v_exp);
  DELETE FROM ${S}.backlog b WHERE b.channel = p_channel AND b.message_id <= v_mid - p_size;
  DELETE FROM ${S}.backlog b WHERE b.channel = p_channel AND b.expires_at <= v_now;
  INSERT INTO ${S}.global_backlog (global_id, message_id, meta, data) VALUES (v_gid, v_mid, p_meta, p_data);
  DELETE FROM ${S}.global_backlog g WHERE g.global_id <= v_gid - p_global_size;
  PERFORM pg_notify(p_notify, v_epoch || ':' || v_gid);
  RETURN QUERY SELECT v_epoch, v_gid, v_mid;
END $$;

CREATE OR REPLACE FUNCTION ${S}.reset(p_epoch text, p_notify text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 FROM ${S}.meta WHERE id = 1 FOR UPDATE;
  DELETE FROM ${S}.backlog;
  DELETE FROM ${S}.global_backlog;
  DELETE FROM ${S}.channels;
  UPDATE ${S}.meta SET epoch = p_epoch, global_id = 0 WHERE id = 1;
  PERFORM pg_notify(p_notify, p_epoch || ':0');
END $$;
`;
}
