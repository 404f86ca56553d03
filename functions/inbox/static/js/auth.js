// Agents sign in through the stack's Cognito hosted UI: authorization code with PKCE (S256), no client secret.
// Tokens stay in this tab's sessionStorage; the access token goes to the API as a Bearer token.

const TOKENS = "inbox.tokens";
const PENDING = "inbox.pkce";

function base64url(bytes) {
  let text = "";
  for (const byte of new Uint8Array(bytes)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(bytes = 32) {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

export function redirectUri() {
  return `${location.origin}/inbox`;
}

export async function signIn(cognito) {
  const verifier = randomString(48);
  const state = randomString(16);
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state }));
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const query = new URLSearchParams({
    response_type: "code",
    client_id: cognito.client_id,
    redirect_uri: redirectUri(),
    scope: cognito.scopes.join(" "),
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  location.assign(`${cognito.domain}/oauth2/authorize?${query}`);
}

async function tokenRequest(cognito, form) {
  const response = await fetch(`${cognito.domain}/oauth2/token`, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: cognito.client_id, ...form }),
    credentials: "omit",
  });
  if (!response.ok) throw new Error(`sign-in failed (HTTP ${response.status})`);
  const answer = await response.json();
  const previous = readTokens() || {};
  const tokens = {
    access_token: answer.access_token,
    id_token: answer.id_token || previous.id_token,
    refresh_token: answer.refresh_token || previous.refresh_token,
    expires_at: Date.now() + (Number(answer.expires_in) || 3600) * 1000,
  };
  sessionStorage.setItem(TOKENS, JSON.stringify(tokens));
  return tokens;
}

function readTokens() {
  try {
    return JSON.parse(sessionStorage.getItem(TOKENS) || "null");
  } catch {
    return null;
  }
}

/** After the hosted UI sends the agent back with ?code=&state=: trade the code for tokens. */
export async function completeSignIn(cognito) {
  const query = new URLSearchParams(location.search);
  const code = query.get("code");
  if (!code && !query.get("error")) return false;
  history.replaceState(null, "", location.pathname + location.hash);
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  if (query.get("error")) throw new Error(query.get("error_description") || query.get("error"));
  if (!pending || pending.state !== query.get("state")) throw new Error("sign-in state does not match; try again");
  await tokenRequest(cognito, {
    grant_type: "authorization_code",
    code,
    redirect_uri: redirectUri(),
    code_verifier: pending.verifier,
  });
  return true;
}

/** A valid access token, refreshed a minute before it expires; null when the agent must sign in. */
export async function accessToken(cognito) {
  const tokens = readTokens();
  if (!tokens) return null;
  if (tokens.expires_at - 60000 > Date.now()) return tokens.access_token;
  if (!tokens.refresh_token) return null;
  try {
    return (await tokenRequest(cognito, { grant_type: "refresh_token", refresh_token: tokens.refresh_token }))
      .access_token;
  } catch {
    sessionStorage.removeItem(TOKENS);
    return null;
  }
}

export function agentName() {
  const tokens = readTokens();
  if (!tokens || !tokens.id_token) return null;
  try {
    const payload = tokens.id_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(payload), (c) => c.charCodeAt(0))));
    return claims.name || claims.email || claims["cognito:username"] || null;
  } catch {
    return null;
  }
}

export function signOut(cognito) {
  sessionStorage.removeItem(TOKENS);
  const query = new URLSearchParams({ client_id: cognito.client_id, logout_uri: redirectUri() });
  location.assign(`${cognito.domain}/logout?${query}`);
}
