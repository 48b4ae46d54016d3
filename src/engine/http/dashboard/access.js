import { el } from "./view.js";

// The operator's token and the actions. The token is kept in sessionStorage (this tab only,
// gone when it closes) and sent as an Authorization header, never as a cookie, so no other
// site can make this browser act with it.

const KEY = "systemprompt-scheduler.token";
const $ = (id) => document.getElementById(id);

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => (value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY)),
};

export function notify(text, kind = "info") {
  const notice = $("notice");
  notice.hidden = false;
  notice.className = `notice ${kind}`;
  notice.textContent = text;
}

/** POSTs an action; resolves with its JSON answer, shows what happened either way. */
export async function act(name, body) {
  const headers = { "content-type": "application/json" };
  const presented = token.get();
  if (presented) headers.authorization = `Bearer ${presented}`;
  const response = await fetch(`/api/actions/${name}`, { method: "POST", headers, body: JSON.stringify(body), credentials: "omit", cache: "no-store" });
  const answer = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) {
    notify(`refused (${response.status}): ${answer.error}${answer.hint ? ` — ${answer.hint}` : ""}`, "error");
    return null;
  }
  notify(answer.message, "ok");
  return answer;
}

/** Shows whether this node takes actions, and the token form when it does. */
export function showAccess(info, onChange) {
  const mode = $("mode");
  const form = $("token-form");
  document.body.classList.toggle("read-only", !info.actions);
  if (!info.actions) {
    mode.replaceChildren(el("strong", { text: "Read-only." }), ` Actions are off on this node: ${info.actions_hint}.`);
    form.hidden = true;
    return;
  }
  const has = Boolean(token.get());
  mode.replaceChildren(el("strong", { text: has ? "Actions on." : "Actions need the token." }), has ? " A token is set for this tab." : " Enter this node's SCHEDULER_HTTP_TOKEN to run, pause or resume jobs.");
  form.hidden = false;
  $("token-forget").hidden = !has;
  if (!form.dataset.wired) {
    form.dataset.wired = "1";
    $("token-use").addEventListener("click", () => {
      token.set($("token").value.trim());
      $("token").value = "";
      onChange();
    });
    $("token").addEventListener("keydown", (event) => event.key === "Enter" && $("token-use").click());
    $("token-forget").addEventListener("click", () => {
      token.set(null);
      onChange();
    });
  }
}

/** Asks for a pause reason in a dialog, then pauses. */
export function askPause(job, done) {
  const dialog = $("pause-dialog");
  $("pause-job").textContent = job;
  $("pause-reason").value = "";
  const confirm = $("pause-confirm");
  const fresh = confirm.cloneNode(true);
  confirm.replaceWith(fresh);
  fresh.addEventListener("click", async () => {
    dialog.close();
    await act("pause", { job, reason: $("pause-reason").value.trim() || null });
    done();
  });
  $("pause-cancel").onclick = () => dialog.close();
  dialog.showModal();
  $("pause-reason").focus();
}
