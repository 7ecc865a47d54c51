// Everything the bench reads about a process from /proc: CPU seconds, RSS, peak RSS, its children.
import { readFileSync, readdirSync } from "node:fs";

const TICK = 100; // CLK_TCK on Linux

function stat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces): state is field 3.
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) / TICK };
  } catch {
    return null;
  }
}

/** The pid and every descendant (nginx's workers under its master). */
export function tree(pid) {
  const parents = new Map();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    const s = stat(d);
    if (s) parents.set(Number(d), s.ppid);
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) for (const [p, pp] of parents) if (pp === out[i]) out.push(p);
  return out;
}

/** utime + stime of a process tree, in seconds (10 ms resolution). */
export function cpuSeconds(pids) {
  let sum = 0;
  for (const p of pids) sum += stat(p)?.cpu ?? 0;
  return sum;
}

function statusKb(pid, key) {
  try {
    const m = readFileSync(`/proc/${pid}/status`, "utf8").match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Peak RSS (VmHWM) of a process tree, bytes. */
export function peakRss(pids) {
  return pids.reduce((a, p) => a + statusKb(p, "VmHWM") * 1024, 0);
}

/** Current RSS of a process tree, bytes. */
export function rss(pids) {
  return pids.reduce((a, p) => a + statusKb(p, "VmRSS") * 1024, 0);
}

/** Bytes a process tree handed to write syscalls (`wchar` of /proc/<pid>/io): for a server, about its bytes on the wire. */
export function bytesWritten(pids) {
  let sum = 0;
  for (const p of pids) {
    try {
      sum += Number(readFileSync(`/proc/${p}/io`, "utf8").match(/^wchar:\s+(\d+)/m)?.[1] ?? 0);
    } catch {}
  }
  return sum;
}

/** Monotonic microseconds, the same clock in every process of this machine. */
export function nowUs() {
  return Number(process.hrtime.bigint() / 1000n);
}
