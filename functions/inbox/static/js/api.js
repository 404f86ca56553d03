// The read and send API, called with the agent's token when there is one. Errors become ApiError.

export class ApiError extends Error {
  constructor(status, body, retryAfter, code) {
    const detail = body && body.error ? body.error : {};
    super(detail.message || (body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.retryAfter = retryAfter ? Number(retryAfter) : null;
    // API Gateway's own refusals ({"message": "Unauthorized"|"Forbidden"}) carry no code of ours.
    this.code = code || detail.code || (status === 401 ? "unauthorized" : status === 403 ? "forbidden" : null);
  }
}

export function createApi({ baseUrl = "", token = async () => null } = {}) {
  async function call(method, path, body, extraHeaders = {}) {
    const raw = body instanceof Blob;
    const headers = { Accept: "application/json", ...extraHeaders };
    if (body !== undefined && !raw) headers["Content-Type"] = "application/json";
    const bearer = await token();
    if (bearer) headers.Authorization = `Bearer ${bearer}`;
    let response;
    try {
      response = await fetch(baseUrl + path, {
        method,
        headers,
        body: body === undefined || raw ? body : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
      });
    } catch (failure) {
      throw new ApiError(0, { error: { code: "network", message: String(failure) } }, null, "network");
    }
    const text = await response.text();
    let document = null;
    try {
      document = text ? JSON.parse(text) : null;
    } catch {
      document = null;
    }
    if (!response.ok) throw new ApiError(response.status, document, response.headers.get("Retry-After"));
    return document;
  }

  const lead = (waId) => `/conversations/${encodeURIComponent(waId)}`;
  return {
    conversations: (limit = 100, cursor = null, phoneNumberId = null) => {
      const query = new URLSearchParams({ limit: String(limit) });
      if (cursor) query.set("cursor", cursor);
      if (phoneNumberId) query.set("phone_number_id", phoneNumberId);
      return call("GET", `/conversations?${query}`);
    },
    /** One conversation's thread: the lead's messages with `phoneNumberId` (default: the lead's latest). */
    messages: (waId, limit = 50, cursor = null, phoneNumberId = null) => {
      const query = new URLSearchParams({ limit: String(limit) });
      if (cursor) query.set("cursor", cursor);
      if (phoneNumberId) query.set("phone_number_id", phoneNumberId);
      return call("GET", `${lead(waId)}/messages?${query}`);
    },
    markRead: (waId, phoneNumberId = null) =>
      call("POST", `${lead(waId)}/read${phoneNumberId ? `?${new URLSearchParams({ phone_number_id: phoneNumberId })}` : ""}`),
    /** POST /messages with the attempt's Idempotency-Key: the same key and body are answered once. */
    send: (message, idempotencyKey) =>
      call("POST", "/messages", message, idempotencyKey ? { "Idempotency-Key": idempotencyKey } : {}),
    templates: () => call("GET", "/templates"),
    /** The archived file's 15-minute link ({url, expires_in}): the route answers it as JSON when asked. */
    mediaLink: (waId, mediaId) => call("GET", `${lead(waId)}/media/${encodeURIComponent(mediaId)}`),
    /** POST /media with the file as the raw body: {media_id, kind, mime_type, size, filename}. */
    upload: (file) =>
      call("POST", `/media?${new URLSearchParams({ filename: file.name || "file" })}`, file, {
        "Content-Type": file.type || "application/octet-stream",
      }),
  };
}
