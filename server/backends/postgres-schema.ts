/**
 * The PostgreSQL backend's tables and functions, created on first use in their own schema (so
 * several buses, or test runs, share a database without meeting). `S` stands for the quoted schema.
 *
 * Publishers are serialized by an advisory lock (waiters queue, instead of all waking at every
 * commit as they would on a row lock) and the single `meta` row, both held until commit: global ids
 * commit in id order and a reader never sees 11 before 10. `channels` holds each channel's last id, never trimmed, so ids never restart within an
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

-- Client requests (docs/protocol.md#12-requests): per client the highest id claimed; per request its
-- reply once settled, or until when it is claimed. The client row is locked by each claim, so a
-- client's claims serialize across processes.
CREATE TABLE IF NOT EXISTS ${S}.request_clients (
  who text PRIMARY KEY,
  max_id bigint NOT NULL,
  touched bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS request_clients_touched ON ${S}.request_clients (touched);
CREATE TABLE IF NOT EXISTS ${S}.requests (
  who text NOT NULL,
  id bigint NOT NULL,
  reply text,
  claimed_until bigint NOT NULL,
  PRIMARY KEY (who, id)
);

CREATE OR REPLACE FUNCTION ${S}.claim_request(p_who text, p_id bigint, p_claim bigint, p_window bigint)
RETURNS TABLE (out_state text, out_reply text) LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := ${S}.now_ms();
  v_max bigint;
  v_reply text;
  v_until bigint;
BEGIN
  INSERT INTO ${S}.request_clients AS rc (who, max_id, touched) VALUES (p_who, 0, v_now)
    ON CONFLICT (who) DO UPDATE SET touched = v_now RETURNING rc.max_id INTO v_max;
  SELECT r.reply, r.claimed_until INTO v_reply, v_until FROM ${S}.requests r WHERE r.who = p_who AND r.id = p_id;
  IF FOUND THEN
    IF v_reply IS NOT NULL THEN out_state := 'done'; out_reply := v_reply; RETURN NEXT; RETURN; END IF;
    IF v_until > v_now THEN out_state := 'running'; RETURN NEXT; RETURN; END IF;
    UPDATE ${S}.requests r SET claimed_until = v_now + p_claim WHERE r.who = p_who AND r.id = p_id;
    out_state := 'run'; RETURN NEXT; RETURN;
  END IF;
  IF p_id <= v_max - p_window THEN out_state := 'stale'; RETURN NEXT; RETURN; END IF;
  IF p_id > v_max THEN
    UPDATE ${S}.request_clients rc SET max_id = p_id WHERE rc.who = p_who;
    DELETE FROM ${S}.requests r WHERE r.who = p_who AND r.id <= p_id - p_window;
  END IF;
  INSERT INTO ${S}.requests (who, id, claimed_until) VALUES (p_who, p_id, v_now + p_claim);
  out_state := 'run'; RETURN NEXT;
END $$;

-- Clients idle for longer than the replies are kept, and everything they had.
CREATE OR REPLACE FUNCTION ${S}.forget_requests(p_keep bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE v_before bigint := ${S}.now_ms() - p_keep;
BEGIN
  DELETE FROM ${S}.requests r USING ${S}.request_clients c WHERE c.who = r.who AND c.touched < v_before;
  DELETE FROM ${S}.request_clients c WHERE c.touched < v_before;
END $$;

-- Publishes a batch (the appends a process has queued while its previous batch committed): one
-- transaction, one fsync, one NOTIFY for all of them; ids in array order.
CREATE OR REPLACE FUNCTION ${S}.publish_batch(
  p_channels text[], p_metas text[], p_datas text[], p_sizes bigint[], p_ages double precision[],
  p_global_size bigint, p_notify text, p_lock bigint
) RETURNS TABLE (out_epoch text, out_global_id bigint, out_message_id bigint) LANGUAGE plpgsql AS $$
DECLARE
  n int := cardinality(p_channels);
  v_epoch text;
  v_first bigint;
  v_gid bigint;
  v_mid bigint;
  v_now bigint := ${S}.now_ms();
  v_exp bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(p_lock);
  UPDATE ${S}.meta m SET global_id = m.global_id + n WHERE m.id = 1 RETURNING m.epoch, m.global_id - n INTO v_epoch, v_first;
  FOR i IN 1..n LOOP
    v_gid := v_first + i;
    INSERT INTO ${S}.channels AS c (channel, last_id) VALUES (p_channels[i], 1)
      ON CONFLICT (channel) DO UPDATE SET last_id = c.last_id + 1 RETURNING c.last_id INTO v_mid;
    v_exp := v_now + (p_ages[i] * 1000)::bigint;
    UPDATE ${S}.backlog b SET expires_at = v_exp WHERE b.channel = p_channels[i] AND b.expires_at > v_exp;
    INSERT INTO ${S}.backlog (channel, message_id, global_id, meta, data, expires_at)
      VALUES (p_channels[i], v_mid, v_gid, p_metas[i], p_datas[i], v_exp);
    DELETE FROM ${S}.backlog b WHERE b.channel = p_channels[i] AND b.message_id <= v_mid - p_sizes[i];
    DELETE FROM ${S}.backlog b WHERE b.channel = p_channels[i] AND b.expires_at <= v_now;
    INSERT INTO ${S}.global_backlog (global_id, message_id, meta, data) VALUES (v_gid, v_mid, p_metas[i], p_datas[i]);
    out_epoch := v_epoch;
    out_global_id := v_gid;
    out_message_id := v_mid;
    RETURN NEXT;
  END LOOP;
  DELETE FROM ${S}.global_backlog g WHERE g.global_id <= v_first + n - p_global_size;
  PERFORM pg_notify(p_notify, v_epoch || ':' || (v_first + n));
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
