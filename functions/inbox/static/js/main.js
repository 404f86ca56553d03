// Start: read the stack's configuration, sign the agent in when the stack uses Cognito, open the inbox.

import { createApi } from "./api.js";
import { accessToken, agentName, completeSignIn, signIn, signOut } from "./auth.js";
import { $, fill, h, show } from "./dom.js";
import { Inbox } from "./inbox.js";

function gate(text, action, onAction) {
  show($("layout"), false);
  show($("gate"), true);
  $("gate-text").textContent = text;
  const button = $("gate-action");
  show(button, Boolean(action));
  if (action) {
    button.textContent = action;
    button.onclick = onAction;
  }
}

async function loadConfig() {
  const response = await fetch("/inbox/config.json", { cache: "no-store", credentials: "omit" });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

async function start() {
  let config;
  try {
    config = await loadConfig();
  } catch (error) {
    gate(`לא ניתן לטעון את הגדרות תיבת ההודעות (${error.message}). רעננו את הדף בעוד רגע.`, "ניסיון נוסף", () =>
      location.reload(),
    );
    return;
  }
  let token = async () => null;
  if (config.auth === "cognito") {
    const cognito = config.cognito;
    try {
      await completeSignIn(cognito);
    } catch (error) {
      gate(`הכניסה נכשלה: ${error.message}`, "כניסה מחדש", () => signIn(cognito));
      return;
    }
    if (!(await accessToken(cognito))) {
      gate("כדי לקרוא ולענות ללידים יש להיכנס עם חשבון הנציג.", "כניסה", () => signIn(cognito));
      return;
    }
    token = () => accessToken(cognito);
    const name = agentName();
    fill(
      $("account"),
      name ? h("span", { dir: "auto" }, name) : null,
      h("button", { type: "button", onclick: () => signOut(cognito) }, "יציאה"),
    );
  }
  const inbox = new Inbox({ api: createApi({ baseUrl: config.api_base_url || "", token }), config });
  inbox.onUnauthorized = () => {
    inbox.poller.stop();
    if (config.auth === "cognito") gate("פג תוקף הכניסה. היכנסו שוב.", "כניסה", () => signIn(config.cognito));
  };
  inbox.start();
}

start();
