/**
 * Who may see a message (server/core/targeting.ts), message_bus's rule: the client id must match
 * when client ids are listed; then the user or one of the groups when either is listed; the site
 * when one is set. Ids are compared as strings; a server-side subscriber (`all`) sees everything.
 */
import { describe, expect, it } from "vitest";
import type { StoredMessage, Targets } from "../server/core/backend.js";
import { allowed, type Identity, isTargeted } from "../server/core/targeting.js";

const m = (targets: Omit<Targets, "site_id"> & { site_id?: string | null } = {}): StoredMessage =>
  ({ global_id: 1, message_id: 1, channel: "/t", data: null, ...targets }) as StoredMessage;
const who = (w: Partial<Identity> = {}): Identity => ({ clientId: "c1", ...w });

describe("isTargeted", () => {
  it("is false without targets, and empty lists or a null site are no targets", () => {
    expect(isTargeted(m())).toBe(false);
    expect(isTargeted(m({ user_ids: [], group_ids: [], client_ids: [] }))).toBe(false);
    expect(isTargeted(m({ site_id: null }))).toBe(false);
  });

  it("is true with any one of them", () => {
    expect(isTargeted(m({ user_ids: [1] }))).toBe(true);
    expect(isTargeted(m({ group_ids: ["g"] }))).toBe(true);
    expect(isTargeted(m({ client_ids: ["c1"] }))).toBe(true);
    expect(isTargeted(m({ site_id: "s" }))).toBe(true);
    expect(isTargeted(m({ site_id: "" }))).toBe(true);
  });
});

describe("allowed", () => {
  it("an untargeted message: everyone, even an anonymous client", () => {
    expect(allowed(m(), who())).toBe(true);
    expect(allowed(m({ user_ids: [], group_ids: [], client_ids: [] }), who())).toBe(true);
  });

  it("client ids: only a listed one", () => {
    expect(allowed(m({ client_ids: ["c1", "c2"] }), who({ clientId: "c2" }))).toBe(true);
    expect(allowed(m({ client_ids: ["c1"] }), who({ clientId: "c3" }))).toBe(false);
    expect(allowed(m({ client_ids: ["c1"] }), who({ clientId: "C1" }))).toBe(false);
  });

  it("user ids: only a listed user; anonymous is nobody", () => {
    expect(allowed(m({ user_ids: [1, 2] }), who({ userId: 2 }))).toBe(true);
    expect(allowed(m({ user_ids: [1, 2] }), who({ userId: 3 }))).toBe(false);
    expect(allowed(m({ user_ids: [1] }), who())).toBe(false);
    expect(allowed(m({ user_ids: [1] }), who({ userId: null }))).toBe(false);
  });

  it("group ids: any one of the identity's groups", () => {
    expect(allowed(m({ group_ids: [10] }), who({ groupIds: [5, 10] }))).toBe(true);
    expect(allowed(m({ group_ids: [10, 11] }), who({ groupIds: [11] }))).toBe(true);
    expect(allowed(m({ group_ids: [10] }), who({ groupIds: [5] }))).toBe(false);
    expect(allowed(m({ group_ids: [10] }), who({ groupIds: [] }))).toBe(false);
    expect(allowed(m({ group_ids: [10] }), who({ groupIds: null }))).toBe(false);
    expect(allowed(m({ group_ids: [10] }), who())).toBe(false);
  });

  it("users and groups listed together: the user OR one of the groups", () => {
    const both = m({ user_ids: [1], group_ids: [10] });
    expect(allowed(both, who({ userId: 1 }))).toBe(true);
    expect(allowed(both, who({ userId: 2, groupIds: [10] }))).toBe(true);
    expect(allowed(both, who({ groupIds: [10] }))).toBe(true);
    expect(allowed(both, who({ userId: 2, groupIds: [11] }))).toBe(false);
  });

  it("client ids AND then the user or groups: both must pass", () => {
    const both = m({ client_ids: ["c1"], user_ids: [1] });
    expect(allowed(both, who({ clientId: "c1", userId: 1 }))).toBe(true);
    expect(allowed(both, who({ clientId: "c2", userId: 1 }))).toBe(false);
    expect(allowed(both, who({ clientId: "c1", userId: 2 }))).toBe(false);
  });

  it("ids are compared as strings: 7 and \"7\" are one user, \"07\" another", () => {
    expect(allowed(m({ user_ids: [7] }), who({ userId: "7" }))).toBe(true);
    expect(allowed(m({ user_ids: ["7"] }), who({ userId: 7 }))).toBe(true);
    expect(allowed(m({ user_ids: [7] }), who({ userId: "07" }))).toBe(false);
    expect(allowed(m({ group_ids: ["10"] }), who({ groupIds: [10] }))).toBe(true);
    expect(allowed(m({ group_ids: [10] }), who({ groupIds: ["10.0"] }))).toBe(false);
  });

  it("a site, when set, must be the identity's, on top of everything else", () => {
    expect(allowed(m({ site_id: "s1" }), who({ siteId: "s1" }))).toBe(true);
    expect(allowed(m({ site_id: "s1" }), who({ siteId: "s2" }))).toBe(false);
    expect(allowed(m({ site_id: "s1" }), who())).toBe(false);
    expect(allowed(m({ site_id: null }), who())).toBe(true);
    expect(allowed(m({ site_id: "s1", user_ids: [1] }), who({ siteId: "s1", userId: 1 }))).toBe(true);
    expect(allowed(m({ site_id: "s1", user_ids: [1] }), who({ siteId: "s2", userId: 1 }))).toBe(false);
    expect(allowed(m({ site_id: "s1", user_ids: [1] }), who({ siteId: "s1", userId: 2 }))).toBe(false);
  });

  it("a server-side subscriber (`all`) sees every message, whoever it is for", () => {
    const all = who({ clientId: "server", all: true });
    expect(allowed(m({ client_ids: ["c9"], user_ids: [1], group_ids: [2], site_id: "s" }), all)).toBe(true);
    expect(allowed(m({ site_id: "s" }), all)).toBe(true);
  });
});
