import os from "node:os";
import crypto from "node:crypto";
import type { Queryable } from "../db/pool.ts";

export function newNodeId(host: string): string {
  return `${host}:${process.pid}:${crypto.randomBytes(3).toString("hex")}`;
}

export async function registerNode(db: Queryable, node: { nodeId: string; host: string; version: string }): Promise<void> {
  await db.query(
    `insert into scheduler.nodes (node_id, host, pid, version) values ($1, $2, $3, $4)
     on conflict (node_id) do update set last_heartbeat_at = now(), stopped_at = null`,
    [node.nodeId, node.host, process.pid, node.version],
  );
}

export async function recordWorkerPool(db: Queryable, nodeId: string, workerPoolId: string): Promise<void> {
  await db.query("update scheduler.nodes set worker_pool_id = $2 where node_id = $1", [nodeId, workerPoolId]);
}

export async function heartbeat(db: Queryable, nodeId: string): Promise<void> {
  await db.query("update scheduler.nodes set last_heartbeat_at = now() where node_id = $1", [nodeId]);
}

export async function deregisterNode(db: Queryable, nodeId: string): Promise<void> {
  await db.query("update scheduler.nodes set stopped_at = now() where node_id = $1", [nodeId]);
}

export function defaultHost(): string {
  return os.hostname();
}
