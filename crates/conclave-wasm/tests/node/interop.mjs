// Drives the Node.js build of conclave-wasm (target/wasm/node, made by scripts/build-wasm) for
// the Rust test tests/node_interop.rs. Protocol: one JSON request per stdin line, one JSON
// reply per stdout line: {"ok": true, ...} or {"ok": false, "error": "..."}. Byte strings are
// lower-case hex, epochs decimal numbers. Uses Node built-ins only.
//
// Requests: kat, frame_new, frame_set_epoch, seal, open, member_new, key_package,
// delivered, admitted, commit_pending, send_application, poll, state, bench.

import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

const wasmDir = process.env.CONCLAVE_WASM_NODE;
const repo = process.env.CONCLAVE_REPO;
if (!wasmDir || !repo) {
  throw new Error("CONCLAVE_WASM_NODE and CONCLAVE_REPO must be set");
}
const wasm = createRequire(import.meta.url)(join(wasmDir, "conclave_wasm.js"));

const hex = (bytes) => Buffer.from(bytes).toString("hex");
const unhex = (text) => new Uint8Array(Buffer.from(text, "hex"));

function kat() {
  const codes = JSON.parse(
    readFileSync(join(repo, "crates/conclave-e2ee/test_vectors/security_code.json"), "utf8"),
  );
  let checked = 0;
  for (const v of codes.vectors) {
    const got = wasm.security_code(unhex(v.epoch_authenticator));
    if (got !== v.security_code) {
      throw new Error(`security code of ${v.epoch_authenticator}: ${got} != ${v.security_code}`);
    }
    checked += 1;
  }
  const frames = JSON.parse(
    readFileSync(join(repo, "crates/conclave-frame/test_vectors/mls_sframe.json"), "utf8"),
  );
  for (const v of frames.vectors) {
    if (v.epoch_bits !== 4 || v.counter !== 0) {
      throw new Error(`vector with epoch_bits ${v.epoch_bits}, counter ${v.counter} unsupported`);
    }
    const cipher = new wasm.FrameCipher(2000);
    cipher.set_epoch(BigInt(v.epoch), unhex(v.epoch_secret), v.sender_leaf, [v.sender_leaf], 0);
    const sealed = hex(cipher.seal(v.codec, unhex(v.frame)));
    if (sealed !== v.sealed) {
      throw new Error(`sealed ${v.codec} frame of epoch ${v.epoch}: ${sealed} != ${v.sealed}`);
    }
    const receiver = new wasm.FrameCipher(2000);
    receiver.set_epoch(BigInt(v.epoch), unhex(v.epoch_secret), v.sender_leaf + 1, [v.sender_leaf, v.sender_leaf + 1], 0);
    const opened = receiver.open(v.codec, unhex(v.sealed), 0);
    if (hex(opened.frame) !== v.frame || opened.sender_leaf !== v.sender_leaf || opened.epoch !== BigInt(v.epoch)) {
      throw new Error(`opening the ${v.codec} vector of epoch ${v.epoch} gave another frame`);
    }
    checked += 1;
  }
  return { checked };
}

function outputJson(output) {
  if (output.kind !== "event") {
    return { kind: output.kind, bytes: hex(output.bytes) };
  }
  const event = {};
  for (const [key, value] of Object.entries(output.event)) {
    if (value instanceof Uint8Array) event[key] = hex(value);
    else if (typeof value === "bigint") event[key] = Number(value);
    else event[key] = value;
  }
  return { kind: "event", event };
}

function filled(first, length) {
  const frame = new Uint8Array(length);
  frame.set(first);
  for (let i = first.length; i < length; i++) frame[i] = (i * 37) & 0xff;
  return frame;
}

function bench(iterations) {
  const cases = [
    ["opus_100B", "opus", filled([0x78], 100), iterations],
    ["vp8_delta_1200B", "vp8", filled([0x31, 0x02, 0x00], 1200), iterations],
    ["vp8_key_50KB", "vp8", filled([0x50, 0x2a, 0x01, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01], 50000), Math.max(1, Math.floor(iterations / 10))],
  ];
  const results = [];
  for (const [name, codec, frame, n] of cases) {
    const a = new wasm.FrameCipher(2000);
    const b = new wasm.FrameCipher(2000);
    a.set_epoch(1n, new Uint8Array(16).fill(7), 0, [0, 1], 0);
    b.set_epoch(1n, new Uint8Array(16).fill(7), 1, [0, 1], 0);
    for (let i = 0; i < Math.min(n, 500); i++) b.open(codec, a.seal(codec, frame), 1); // warm-up (JIT tiers)
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const opened = b.open(codec, a.seal(codec, frame), 1);
      if (opened.sender_leaf !== 0) throw new Error("wrong sender");
    }
    const ns = Number(process.hrtime.bigint() - start) / n;
    results.push({ name, iterations: n, ns_per_op: Math.round(ns) });
  }
  return { results };
}

let cipher = null;
let member = null;

function handle(request) {
  switch (request.cmd) {
    case "kat":
      return kat();
    case "frame_new":
      cipher = new wasm.FrameCipher(request.grace_ms);
      return {};
    case "frame_set_epoch":
      cipher.set_epoch(BigInt(request.epoch), unhex(request.secret), request.own_leaf, request.members, request.now);
      return {};
    case "seal":
      return { sealed: hex(cipher.seal(request.codec, unhex(request.frame))) };
    case "open": {
      const opened = cipher.open(request.codec, unhex(request.sealed), request.now);
      return { sender_leaf: opened.sender_leaf, epoch: Number(opened.epoch), frame: hex(opened.frame) };
    }
    case "member_new":
      member = new wasm.Member(
        unhex(request.credential),
        unhex(request.seed),
        request.organisation,
        unhex(request.server_key),
        unhex(request.server_identity),
        request.now,
      );
      return {};
    case "key_package":
      return { key_package: hex(member.key_package()) };
    case "group_info":
      return { group_info: hex(member.group_info()) };
    case "create_group":
      member.create_group(request.now);
      return {};
    case "delivered":
      member.delivered(unhex(request.bytes), request.now);
      return {};
    case "admitted":
      member.admitted(request.device);
      return {};
    case "commit_pending":
      member.commit_pending(request.now);
      return {};
    case "send_application":
      member.send_application(unhex(request.data), request.now);
      return {};
    case "poll": {
      const outputs = [];
      for (let output = member.poll_output(); output !== undefined; output = member.poll_output()) {
        outputs.push(outputJson(output));
      }
      return { outputs };
    }
    case "state": {
      const epoch = member.epoch();
      const secret = member.sframe_epoch_secret();
      return {
        epoch: epoch === undefined ? null : Number(epoch),
        own_leaf: member.own_leaf() ?? null,
        security_code: member.security_code() ?? null,
        sframe_epoch_secret: secret === undefined ? null : hex(secret),
        member_leaves: Array.from(member.member_leaves()),
      };
    }
    case "device_public_key":
      return { public_key: wasm.device_public_key(unhex(request.seed)) };
    case "sign_join_challenge":
      return {
        signature: hex(wasm.sign_join_challenge(unhex(request.seed), request.meeting, unhex(request.challenge))),
      };
    case "bench":
      return bench(request.iterations);
    default:
      throw new Error(`unknown request ${request.cmd}`);
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (line.trim() === "") continue;
  let reply;
  try {
    reply = { ok: true, ...handle(JSON.parse(line)) };
  } catch (error) {
    reply = { ok: false, error: String(error && error.message ? error.message : error) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
