// The README's "A first job", run as written: its task file and crontab lines, copied from the
// README into a checkout-like folder (the repository's tasks and crontab beside them, src/
// linked so the file's `../src/index.ts` import resolves), a real node, and the README's
// commands with the output the README says they print.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { projectRoot } from "../../src/engine/db/sql-file.ts";
import { runCliProcess } from "../helpers/cli.ts";
import { useTestDatabase } from "../helpers/db.ts";
import { eventually } from "../helpers/wait.ts";
import { freePort, NodeProcess } from "../engine/cluster/harness.ts";

const db = useTestDatabase();
const readme = fs.readFileSync(path.join(projectRoot, "README.md"), "utf8");
const walkthrough = readme.slice(readme.indexOf("<!-- first-job:"), readme.indexOf("\n## ", readme.indexOf("<!-- first-job:")));
/** The n-th fenced block of the walkthrough, its list indentation removed. */
function block(n: number): string {
  const blocks = [...walkthrough.matchAll(/^ {3}```[a-z]*\n([\s\S]*?)^ {3}```$/gm)].map((match) => match[1]!.replace(/^ {3}/gm, ""));
  assert.ok(blocks[n], `the walkthrough's block ${n + 1}`);
  return blocks[n]!;
}

const checkout = path.join(projectRoot, ".data", `first-job-${process.pid}`);
let node: NodeProcess;
let env: Record<string, string>;

describe("the README's first job", () => {
  before(async () => {
    fs.mkdirSync(path.join(checkout, "tasks"), { recursive: true });
    fs.symlinkSync(path.join(projectRoot, "src"), path.join(checkout, "src"));
    for (const file of fs.readdirSync(path.join(projectRoot, "tasks"))) fs.copyFileSync(path.join(projectRoot, "tasks", file), path.join(checkout, "tasks", file));
    fs.copyFileSync(path.join(projectRoot, "crontab"), path.join(checkout, "crontab"));
    const port = await freePort();
    env = { DATABASE_URL: db.connectionString, SCHEDULER_TASKS_DIR: path.join(checkout, "tasks"), SCHEDULER_CRONTAB: path.join(checkout, "crontab"), SCHEDULER_HTTP_ADDR: `127.0.0.1:${port}` };
    node = await new NodeProcess("first-job", { ...env, SCHEDULER_CRONTAB_POLL_MS: "" }).started(60_000);
  });
  after(async () => {
    await node?.stop();
    fs.rmSync(checkout, { recursive: true, force: true });
  });

  it("runs as written: the task file and crontab line are picked up live, run and history print what the README says", async () => {
    // Step 1: the task file. Step 2: the crontab lines, appended.
    fs.writeFileSync(path.join(checkout, "tasks", "hello.ts"), block(0));
    fs.appendFileSync(path.join(checkout, "crontab"), `\n${block(1)}`);
    await eventually(async () => (await db.pool.query("select 1 from scheduled_jobs where job_name = 'hello'")).rowCount === 1, { timeoutMs: 15_000, what: "the node to take the new task and line" });
    assert.deepEqual(node.logged(/rejected|failed to load/), [], "no error on the way");

    // Step 3: the README's commands, as written.
    const commands = block(2).split("\n").filter((line) => line.startsWith("npx systemprompt-scheduler "));
    assert.deepEqual(commands, ["npx systemprompt-scheduler run hello --wait", "npx systemprompt-scheduler history hello"]);
    const ran = await runCliProcess(commands[0]!.split(" ").slice(2), env);
    assert.equal(ran.code, 0, ran.stderr);
    assert.match(ran.stdout, /^hello: success in \d+ ms — hello newcomer: 0 open session\(s\)/);
    const shown = await runCliProcess(commands[1]!.split(" ").slice(2), env);
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /hello newcomer: 0 open session\(s\)/);

    // The dashboard lists it.
    const schedules = (await (await fetch(`http://${env.SCHEDULER_HTTP_ADDR}/api/schedules`)).json()) as { job_name: string; schedule: string }[];
    assert.deepEqual(schedules.filter((row) => row.job_name === "hello").map((row) => row.schedule), ["* * * * *"]);
  });
});
