// Does a local port accept TCP connections? A service is only `running` when it does.
import net from "node:net";

const LOOPBACKS = ["127.0.0.1", "::1"] as const;

function connects(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (answer: boolean) => {
      socket.removeAllListeners();
      socket.on("error", () => {});
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** True when 127.0.0.1 or ::1 accepts a connection on `port` within `timeoutMs`. */
export async function portAnswers(port: number, timeoutMs = 500): Promise<boolean> {
  const results = await Promise.all(LOOPBACKS.map((host) => connects(host, port, timeoutMs)));
  return results.some(Boolean);
}

/** Probes many ports at once, at most `concurrency` connections in flight. */
export async function probePorts(ports: Iterable<number>, options: { timeoutMs?: number; concurrency?: number } = {}): Promise<Map<number, boolean>> {
  const queue = [...new Set(ports)];
  const answers = new Map<number, boolean>();
  const workers = Array.from({ length: Math.min(options.concurrency ?? 64, queue.length) }, async () => {
    for (let port = queue.pop(); port !== undefined; port = queue.pop()) {
      answers.set(port, await portAnswers(port, options.timeoutMs));
    }
  });
  await Promise.all(workers);
  return answers;
}

/** Polls until the port is closed (true) or `timeoutMs` passed (false). */
export async function waitForPortFree(port: number, timeoutMs: number, pollMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await portAnswers(port, 250))) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
