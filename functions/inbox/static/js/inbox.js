// The inbox: the lead list, one thread, the send box, kept live by polling.

import { $, fill, h, show } from "./dom.js";
import {
  INTENTS,
  STATUSES,
  cleanName,
  clockTime,
  dayLabel,
  dayOf,
  displayNumber,
  errorText,
  fileSize,
  shortWhen,
  slotWhen,
  timeLeft,
} from "./format.js";
import { Poller } from "./poller.js";
import { approvedByLanguage, buildTemplate, parameterFields, pickerOptions, templateKey } from "./templates.js";

const LEAD_PAGE = 100;
const THREAD_PAGE = 50;
const TEXT_LIMIT = 4096;
const TEMPLATES_RETRY_MS = 30_000;
const MEDIA_TYPES = new Set(["image", "video", "audio", "document", "sticker"]);
// Why the service holds no file (the read API's media.reason), in words an agent can act on.
const MEDIA_UNAVAILABLE = {
  expired: "נמחק בתום תקופת השמירה",
  deleted: "נמחק",
  too_large: "גדול מדי לשמירה",
  empty: "קובץ ריק",
  gone_at_meta: "כבר לא זמין ב-WhatsApp; בקשו מהליד לשלוח שוב",
  meta_download_failed: "WhatsApp לא מסר את הקובץ; בקשו מהליד לשלוח שוב",
  checksum_mismatch: "הקובץ הגיע פגום",
  not_kept: "לא נשמר אצלנו",
};
const MEDIA_WORDS = { image: "תמונה", video: "סרטון", audio: "הקלטה", document: "מסמך", sticker: "מדבקה" };
// A link is asked for again this long before its 15 minutes are over.
const LINK_MARGIN_MS = 60_000;
// What a caption may go with (Meta: audio and stickers take none).
const CAPTIONED = new Set(["image", "video", "document"]);

function isFuture(iso, now = new Date()) {
  return Boolean(iso) && new Date(iso).getTime() > now.getTime();
}

// A conversation is a lead with one of our numbers (a lead who wrote to two numbers has two): its key in
// the list and in links (#/c/<wa_id>/<phone_number_id>) names both.
function conversationKey(lead) {
  return lead.phone_number_id ? `${lead.wa_id}/${lead.phone_number_id}` : lead.wa_id;
}

function keyParts(key) {
  const [waId, number] = String(key || "").split("/");
  return { waId, number: number || null };
}

function leadTitle(lead, mode) {
  return cleanName(lead.name) || displayNumber(lead.wa_id, mode);
}

export class Inbox {
  constructor({ api, config }) {
    this.api = api;
    this.config = config;
    this.tz = config.timezone || "Asia/Jerusalem";
    this.mode = config.phone_numbers || "masked";
    this.leads = new Map();
    this.leadOrder = [];
    this.leadCursor = null;
    this.leadRows = new Map();
    this.selected = null;
    this.messages = new Map();
    this.threadCursor = null;
    this.threadLoadedFor = null;
    // The number of the thread on screen, as the API named it (a link without one opens the lead's latest).
    this.threadNumber = null;
    this.multipleNumbers = false;
    this.messageRows = new Map();
    this.mediaLinks = new Map();
    this.attachment = null;
    this.sending = false;
    // The Idempotency-Key of the send being attempted, kept for as long as the same message is retried.
    this.attempt = null;
    this.templates = new Map();
    this.templatesLoaded = null;
    this.templatesRetryAt = 0;
    this.templateFields = [];
    this.lastInbound = new Map();
    this.poller = new Poller(() => this.refresh(), { onState: (state) => this.connection(state) });
  }

  start() {
    this.bind();
    show($("layout"), true);
    this.route(); // first, so that the first poll already fetches a thread opened by its link
    this.poller.start();
    setInterval(() => this.renderComposerState(), 1000);
  }

  // --- events ----------------------------------------------------------------------------------

  bind() {
    window.addEventListener("hashchange", () => this.route());
    $("search").addEventListener("input", () => this.renderLeads());
    $("needs-human").addEventListener("change", () => this.renderLeads());
    $("number-filter").addEventListener("change", () => this.renderLeads());
    $("more-leads").addEventListener("click", () => this.loadMoreLeads());
    $("older").addEventListener("click", () => this.loadOlder());
    $("back").addEventListener("click", () => {
      location.hash = "";
    });
    $("lead-list").addEventListener("keydown", (event) => this.listKeys(event));
    $("thread").addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.selected && window.matchMedia("(max-width: 720px)").matches) {
        location.hash = "";
      }
    });
    const text = $("message-text");
    text.addEventListener("input", () => this.renderCharCount());
    text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        this.sendText();
      }
    });
    $("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      if (!$("template-form").hidden) this.sendTemplate();
      else this.sendText();
    });
    $("template-name").addEventListener("change", () => this.renderTemplateFields());
    $("attach-file").addEventListener("change", () => this.chooseAttachment());
    $("attachment-remove").addEventListener("click", () => this.clearAttachment());
    $("reload-templates").addEventListener("click", () => this.loadTemplates());
  }

  listKeys(event) {
    const buttons = [...$("lead-list").querySelectorAll(".lead-open")];
    const index = buttons.indexOf(document.activeElement);
    if (index < 0) return;
    const moves = { ArrowDown: index + 1, ArrowUp: index - 1, Home: 0, End: buttons.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const target = buttons[Math.max(0, Math.min(buttons.length - 1, moves[event.key]))];
    if (target) target.focus();
  }

  route() {
    const match = /^#\/c\/(\d{5,20})(?:\/(\d{1,30}))?$/.exec(location.hash);
    const waId = match ? (match[2] ? `${match[1]}/${match[2]}` : match[1]) : null;
    if (waId === this.selected) return;
    this.selected = waId;
    this.threadNumber = null;
    this.messages = new Map();
    this.messageRows = new Map();
    this.threadCursor = null;
    this.threadLoadedFor = null;
    $("messages").replaceChildren();
    $("send-error").hidden = true;
    // A file chosen for one lead is never sent to the next one opened.
    if (this.attachment) this.clearAttachment();
    $("layout").classList.toggle("has-thread", Boolean(waId));
    show($("thread-view"), Boolean(waId));
    show($("thread-empty"), !waId);
    this.renderLeads();
    if (waId) {
      this.renderThreadHeader();
      this.renderComposer();
      $("thread-title").focus();
      this.poller.now();
    } else {
      const row = this.leadRows.get(this.lastOpened);
      if (row) row.button.focus();
    }
    this.lastOpened = waId || this.lastOpened;
  }

  /** The conversation on screen: the link's, or for a link naming only the lead, the thread's number's. */
  current() {
    if (!this.selected) return null;
    const exact = this.leads.get(this.selected);
    if (exact) return exact;
    const { waId, number } = keyParts(this.selected);
    if (number) return null;
    const wanted = this.threadNumber;
    return [...this.leads.values()].find((l) => l.wa_id === waId && (!wanted || l.phone_number_id === wanted)) || null;
  }

  isCurrent(lead) {
    const current = this.current();
    return Boolean(current) && conversationKey(current) === conversationKey(lead);
  }

  // --- polling ---------------------------------------------------------------------------------

  async refresh() {
    const selected = this.selected;
    const { waId, number } = keyParts(selected);
    const [list, thread] = await Promise.all([
      this.api.conversations(LEAD_PAGE),
      selected
        ? this.api.messages(waId, THREAD_PAGE, null, number).catch((error) => {
            // A link to a lead with no conversation: say so, and keep polling (the lead may write yet).
            if (error.code === "not_found") return { messages: [], next_cursor: null, missing: true };
            throw error;
          })
        : Promise.resolve(null),
    ]);
    this.mergeLeads(list.conversations, this.leadCursor === null ? list.next_cursor : this.leadCursor);
    if (thread && selected === this.selected) {
      if (this.threadLoadedFor !== selected) {
        this.threadCursor = thread.next_cursor;
        this.threadLoadedFor = selected;
      }
      if (thread.phone_number_id) this.threadNumber = thread.phone_number_id;
      this.mergeMessages(thread.messages);
      show($("thread-missing"), Boolean(thread.missing));
      if (!thread.missing) this.markReadIfNeeded();
    }
    this.renderLeads();
    if (this.selected) {
      this.renderThreadHeader();
      this.renderComposer();
    }
  }

  connection(state) {
    const line = $("connection");
    if (state.ok) {
      line.textContent = "מחובר · מתעדכן אוטומטית";
      line.classList.remove("offline");
      return;
    }
    const error = state.error || {};
    if (error.code === "unauthorized" && this.onUnauthorized) {
      this.onUnauthorized();
      return;
    }
    if (error.code === "forbidden" && this.config.auth === "iam") {
      line.textContent = "ה-API דורש חתימת IAM; כניסת נציגים פועלת בפריסה עם ApiAuth=JWT";
    } else {
      line.textContent = `אין חיבור לשרת · מנסה שוב בעוד ${Math.round(state.retryInMs / 1000)} שניות`;
    }
    line.classList.add("offline");
  }

  mergeLeads(conversations, cursor) {
    for (const lead of conversations) this.leads.set(conversationKey(lead), lead);
    this.leadCursor = cursor;
    this.leadOrder = [...this.leads.values()]
      .sort((a, b) => String(b.last_message_at || "").localeCompare(String(a.last_message_at || "")))
      .map((lead) => conversationKey(lead));
  }

  async loadMoreLeads() {
    if (!this.leadCursor) return;
    try {
      const page = await this.api.conversations(LEAD_PAGE, this.leadCursor);
      this.mergeLeads(page.conversations, page.next_cursor || "");
      this.renderLeads();
    } catch (error) {
      this.toast(errorText(error));
    }
  }

  mergeMessages(messages) {
    let newInbound = null;
    for (const message of messages) {
      const known = this.messages.has(message.id);
      this.messages.set(message.id, message);
      if (!known && message.direction === "inbound" && this.threadRendered) newInbound = message;
    }
    this.renderMessages();
    this.threadRendered = true;
    if (newInbound) {
      const lead = this.current();
      this.announce(`הודעה חדשה מ${lead ? leadTitle(lead, this.mode) : "הליד"}: ${newInbound.text || ""}`);
    }
  }

  async loadOlder() {
    if (!this.selected || !this.threadCursor) return;
    const scroll = $("messages-scroll");
    const before = scroll.scrollHeight - scroll.scrollTop;
    try {
      const { waId, number } = keyParts(this.selected);
      const page = await this.api.messages(waId, THREAD_PAGE, this.threadCursor, number || this.threadNumber);
      this.threadCursor = page.next_cursor;
      for (const message of page.messages) this.messages.set(message.id, message);
      this.renderMessages({ keepBottom: false });
      scroll.scrollTop = scroll.scrollHeight - before;
    } catch (error) {
      this.toast(errorText(error));
    }
  }

  markReadIfNeeded() {
    const lead = this.current();
    if (!lead || document.hidden) return;
    const conversation = conversationKey(lead);
    const newest = [...this.messages.values()].filter((m) => m.direction === "inbound").map((m) => m.id);
    const key = `${conversation}:${newest.length}:${lead.unread_count}`;
    if (lead.unread_count === 0 && this.lastInbound.has(conversation)) return;
    if (this.lastInbound.get(conversation) === key) return;
    this.lastInbound.set(conversation, key);
    this.api
      .markRead(lead.wa_id, lead.phone_number_id)
      .then((answer) => {
        const read = conversationKey(answer);
        const current = this.leads.get(read);
        if (current) this.leads.set(read, { ...current, unread_count: answer.unread_count });
        this.renderLeads();
      })
      .catch(() => this.lastInbound.delete(conversation));
  }

  // --- the lead list -------------------------------------------------------------------------------

  visibleLeads() {
    const query = $("search").value.trim().toLowerCase();
    const digits = query.replace(/\D/g, "");
    const needsHuman = $("needs-human").checked;
    const number = $("number-filter").value;
    return this.leadOrder
      .map((key) => this.leads.get(key))
      .filter((lead) => {
        if (needsHuman && !(lead.awaits_response && !lead.opted_out)) return false;
        if (number && lead.phone_number_id !== number) return false;
        if (!query) return true;
        const name = (cleanName(lead.name) || "").toLowerCase();
        return name.includes(query) || (digits.length >= 3 && lead.wa_id.includes(digits));
      });
  }

  renderNumberFilter() {
    const numbers = [...new Set([...this.leads.values()].map((l) => l.phone_number_id).filter(Boolean))].sort();
    const select = $("number-filter");
    const existing = [...select.options].slice(1).map((o) => o.value);
    if (numbers.join() !== existing.join()) {
      const chosen = select.value;
      fill(
        select,
        h("option", { value: "" }, "כל המספרים"),
        numbers.map((n) => h("option", { value: n, dir: "ltr" }, n)),
      );
      select.value = numbers.includes(chosen) ? chosen : "";
    }
    show($("number-filter-field"), numbers.length > 1);
    this.multipleNumbers = numbers.length > 1;
  }

  renderLeads() {
    this.renderNumberFilter();
    const list = $("lead-list");
    const visible = this.visibleLeads();
    const now = new Date();
    const seen = new Set();
    visible.forEach((lead, index) => {
      const key = conversationKey(lead);
      seen.add(key);
      const signature = JSON.stringify([
        lead,
        this.isCurrent(lead),
        this.multipleNumbers,
        shortWhen(lead.last_message_at, this.tz, now),
      ]);
      let row = this.leadRows.get(key);
      if (!row) {
        const button = h("button", { type: "button", class: "lead-open" });
        button.addEventListener("click", () => {
          location.hash = `#/c/${key}`;
        });
        const dataset = { waId: lead.wa_id, number: lead.phone_number_id || "" };
        row = { item: h("li", { class: "lead", dataset }, button), button, signature: "" };
        this.leadRows.set(key, row);
      }
      if (row.signature !== signature) {
        this.fillLead(row.button, lead, now);
        row.signature = signature;
      }
      if (list.children[index] !== row.item) list.insertBefore(row.item, list.children[index] || null);
    });
    for (const [key, row] of this.leadRows) {
      if (!seen.has(key) && row.item.parentNode) row.item.remove();
    }
    show($("leads-empty"), visible.length === 0);
    show($("more-leads"), Boolean(this.leadCursor));
  }

  fillLead(button, lead, now) {
    const title = leadTitle(lead, this.mode);
    const marks = this.leadMarks(lead, now);
    button.setAttribute("aria-current", this.isCurrent(lead) ? "true" : "false");
    // <bdi dir=auto>: each name and preview keeps its own direction, aligned to the page's start.
    fill(
      button,
      h("span", { class: "lead-name" }, h("bdi", { dir: "auto" }, title)),
      h("span", { class: "lead-time" }, shortWhen(lead.last_message_at, this.tz, now)),
      h("span", { class: "lead-number" }, h("bdi", { dir: "ltr" }, cleanName(lead.name) ? displayNumber(lead.wa_id, this.mode) : "")),
      // With more than one business number, each conversation says which of ours it is with.
      this.multipleNumbers && lead.phone_number_id
        ? h("span", { class: "lead-via", title: "המספר העסקי של השיחה" }, "דרך ", h("bdi", { dir: "ltr" }, lead.phone_number_id))
        : null,
      // dir=auto on the line itself: an English preview is cut at its own end, not at its beginning.
      h("span", { class: "lead-preview", dir: "auto" }, lead.last_message_preview || ""),
      h("span", { class: "lead-marks" }, marks.map(([cls, text, hint]) => h("span", { class: `mark ${cls}`, title: hint }, text))),
      lead.unread_count > 0
        ? h(
            "span",
            { class: "badge", "aria-label": `${lead.unread_count} הודעות שלא נקראו` },
            String(lead.unread_count),
          )
        : null,
    );
  }

  leadMarks(lead, now = new Date()) {
    const marks = [];
    if (lead.opted_out) marks.push(["mark-optout", "הסרה", "הליד ביקש לא לקבל הודעות"]);
    else if (lead.awaits_response) marks.push(["mark-awaits", "ממתין למענה", "הליד כתב והשאלה עוד פתוחה"]);
    if (isFuture(lead.human_takeover_until, now)) {
      marks.push(["mark-human", "בטיפול נציג", `הבוט מושתק עד ${clockTime(lead.human_takeover_until, this.tz)}`]);
    }
    if (lead.meeting && lead.meeting.slot_start) {
      marks.push(["mark-meeting", `פגישה: ${slotWhen(lead.meeting.slot_start, this.tz)}`, "מועד שהליד בחר"]);
    }
    return marks;
  }

  // --- the thread ------------------------------------------------------------------------------------

  renderThreadHeader() {
    const lead = this.current();
    const title = lead ? leadTitle(lead, this.mode) : displayNumber(keyParts(this.selected).waId, this.mode);
    if ($("thread-title").textContent !== title) $("thread-title").textContent = title;
    $("thread-number").textContent = lead && cleanName(lead.name) ? displayNumber(lead.wa_id, this.mode) : "";
    const via = lead && this.multipleNumbers ? lead.phone_number_id || "" : "";
    $("thread-via").textContent = via ? `דרך ${via}` : "";
    show($("thread-via"), Boolean(via));
    const marks = lead ? this.leadMarks(lead) : [];
    const signature = JSON.stringify(marks);
    if ($("thread-marks").dataset.signature !== signature) {
      $("thread-marks").dataset.signature = signature;
      fill($("thread-marks"), marks.map(([cls, text, hint]) => h("li", { class: `mark ${cls}`, title: hint }, text)));
    }
  }

  sortedMessages() {
    return [...this.messages.values()].sort(
      (a, b) => String(a.timestamp).localeCompare(String(b.timestamp)) || String(a.id).localeCompare(String(b.id)),
    );
  }

  renderMessages({ keepBottom = true } = {}) {
    const scroll = $("messages-scroll");
    const nearBottom = scroll.scrollHeight - scroll.scrollTop - scroll.clientHeight < 80;
    const list = $("messages");
    const lead = this.current();
    const booked = lead && lead.meeting ? lead.meeting.slot_id : null;
    const items = [];
    let day = null;
    for (const message of this.sortedMessages()) {
      const messageDay = dayOf(message.timestamp, this.tz);
      if (messageDay !== day) {
        day = messageDay;
        items.push(this.dayRow(message.timestamp));
      }
      items.push(this.messageRow(message, booked));
    }
    items.forEach((item, index) => {
      if (list.children[index] !== item) list.insertBefore(item, list.children[index] || null);
    });
    while (list.children.length > items.length) list.lastChild.remove();
    show($("older"), Boolean(this.threadCursor));
    if (keepBottom && (nearBottom || !this.scrolledOnce)) {
      scroll.scrollTop = scroll.scrollHeight;
      this.scrolledOnce = list.children.length > 0;
    }
  }

  dayRow(timestamp) {
    const label = dayLabel(timestamp, this.tz);
    const key = `day:${label}`;
    let row = this.messageRows.get(key);
    if (!row) {
      row = { item: h("li", { class: "day" }, h("span", {}, label)), signature: "" };
      this.messageRows.set(key, row);
    }
    return row.item;
  }

  messageRow(message, booked) {
    const signature = JSON.stringify([message, booked]);
    let row = this.messageRows.get(message.id);
    if (!row) {
      row = { item: h("li", { dataset: { id: message.id } }), signature: "" };
      this.messageRows.set(message.id, row);
    }
    if (row.signature !== signature) {
      this.fillMessage(row.item, message, booked);
      row.signature = signature;
    }
    return row.item;
  }

  fillMessage(item, message, booked) {
    const inbound = message.direction === "inbound";
    const bot = !inbound && message.auto_reply;
    item.className = `msg ${inbound ? "msg-in" : "msg-out"}${bot ? " msg-bot" : ""}`;
    const who = inbound ? "הליד כתב" : bot ? "מענה אוטומטי של הבוט" : "נשלח מהעסק";
    const bubble = h(
      "div",
      { class: "bubble" },
      h("span", { class: "visually-hidden" }, `${who}:`),
      message.template_name ? h("p", { class: "msg-template" }, "תבנית: ", h("bdi", { dir: "ltr" }, message.template_name)) : null,
      this.mediaBlock(message),
      message.text ? h("p", { class: "msg-text", dir: "auto" }, message.text) : null,
      !message.text && !message.template_name && !MEDIA_TYPES.has(message.type)
        ? h("p", { class: "msg-text media-missing" }, message.type === "unknown" ? "הודעה שנשלחה מחוץ למערכת" : `הודעה מסוג ${message.type}`)
        : null,
      message.buttons && message.buttons.length
        ? h(
            "ul",
            { class: "slots", "aria-label": "אפשרויות שהוצעו" },
            message.buttons.map((button) =>
              h(
                "li",
                { class: `slot${button.id === booked ? " slot-booked" : ""}`, dir: "auto" },
                button.title,
                button.id === booked ? " ✓ נבחר" : null,
              ),
            ),
          )
        : null,
      h("div", { class: "msg-meta" }, this.messageMeta(message)),
    );
    item.replaceChildren(bubble);
  }

  mediaBlock(message) {
    if (!MEDIA_TYPES.has(message.type)) return null;
    const word = MEDIA_WORDS[message.type] || "קובץ";
    const media = message.media;
    if (!media) return h("p", { class: "msg-media media-missing" }, `${word} (לא נשמר)`);
    if (media.status === "pending") return h("p", { class: "msg-media media-missing" }, `${word} (מתקבל…)`);
    if (media.status !== "archived") {
      const why = MEDIA_UNAVAILABLE[media.reason] || "אינו זמין";
      return h("p", { class: "msg-media media-missing" }, `${word} (${why})`);
    }
    if (message.type === "image" || message.type === "sticker") {
      const image = h("img", { alt: media.caption || word, loading: "lazy", decoding: "async", referrerpolicy: "no-referrer" });
      this.loadImage(media, image);
      return h("figure", { class: "msg-media" }, image);
    }
    // Documents, voice notes and videos: a download link with the file's name and size.
    const name = media.filename || word;
    const size = fileSize(media.size);
    const link = h(
      "a",
      { href: "#", class: "media-link", rel: "noopener noreferrer" },
      "📎 ",
      h("bdi", { dir: "auto" }, name),
    );
    link.setAttribute("aria-label", `הורדת ${word}: ${name}${size ? `, ${size}` : ""}`);
    link.addEventListener("click", async (event) => {
      if (this.freshLink(media.id)) return; // the href is a live link: let the browser download it
      event.preventDefault();
      try {
        const url = await this.mediaLink(media.id);
        link.href = url;
        location.assign(url);
      } catch (error) {
        this.toast(`לא ניתן להוריד את הקובץ: ${this.mediaError(error)}`);
      }
    });
    this.mediaLink(media.id)
      .then((url) => {
        link.href = url;
      })
      .catch(() => {});
    const sizeText = size ? h("span", { class: "media-size" }, " · ", h("bdi", { dir: "ltr" }, size)) : null;
    return h("p", { class: "msg-media" }, link, sizeText);
  }

  freshLink(mediaId) {
    const known = this.mediaLinks.get(mediaId);
    return Boolean(known && known.url && known.until > Date.now());
  }

  /** The file's presigned link, asked once and again when it is about to expire. */
  mediaLink(mediaId) {
    const known = this.mediaLinks.get(mediaId);
    if (known && (known.pending || known.until > Date.now())) return known.pending || Promise.resolve(known.url);
    const { waId } = keyParts(this.selected);
    const pending = this.api.mediaLink(waId, mediaId).then(
      (answer) => {
        const seconds = Number(answer && answer.expires_in) || 60;
        this.mediaLinks.set(mediaId, { url: answer.url, until: Date.now() + seconds * 1000 - LINK_MARGIN_MS });
        return answer.url;
      },
      (error) => {
        this.mediaLinks.delete(mediaId);
        throw error;
      },
    );
    this.mediaLinks.set(mediaId, { pending });
    return pending;
  }

  mediaError(error) {
    if (error && error.code === "media_not_archived") return "הקובץ עוד לא נשמר או שאינו זמין";
    if (error && error.code === "not_found") return "הקובץ לא נמצא";
    return errorText(error);
  }

  loadImage(media, image) {
    this.mediaLink(media.id)
      .then((url) => {
        image.src = url;
      })
      .catch((error) => {
        image.replaceWith(h("span", { class: "media-missing" }, `התמונה אינה זמינה (${this.mediaError(error)})`));
      });
    // A link that expired while the thread stayed open: ask for a new one once.
    image.addEventListener(
      "error",
      () => {
        this.mediaLinks.delete(media.id);
        this.mediaLink(media.id).then((url) => {
          image.src = url;
        }, () => {});
      },
      { once: true },
    );
  }

  messageMeta(message) {
    const parts = [];
    if (message.direction === "inbound" && message.intent) {
      parts.push(h("span", { class: "tag", title: "הכוונה שהבוט זיהה" }, `כוונה: ${INTENTS[message.intent] || message.intent}`));
    }
    if (message.direction === "outbound") {
      if (message.auto_reply) parts.push(h("span", { class: "tag tag-bot" }, "מענה אוטומטי"));
      else if (message.sent_by === "human") parts.push(h("span", { class: "tag tag-agent" }, "נציג"));
    }
    parts.push(h("time", { datetime: message.timestamp }, clockTime(message.timestamp, this.tz)));
    if (message.direction === "outbound" && message.status) parts.push(this.ticks(message));
    return parts;
  }

  ticks(message) {
    const known = STATUSES[message.status] || { ticks: "", label: message.status };
    if (message.status === "failed") {
      const error = message.error || {};
      const reason = error.title || error.message || "שגיאה לא ידועה";
      const code = error.code ? ` (${error.code})` : "";
      return h("span", { class: "ticks ticks-failed", role: "img", "aria-label": `לא נמסרה: ${reason}${code}` }, `⚠ לא נמסרה: ${reason}${code}`);
    }
    const history = (message.status_history || []).find((entry) => entry.status === message.status);
    const when = history ? ` ${clockTime(history.timestamp, this.tz)}` : "";
    return h(
      "span",
      {
        class: `ticks ticks-${message.status}`,
        role: "img",
        "aria-label": known.label,
        title: `${known.label}${when}`,
        dataset: { status: message.status },
      },
      known.ticks,
    );
  }

  // --- the send box ----------------------------------------------------------------------------------

  renderComposer() {
    const lead = this.current();
    const optedOut = Boolean(lead && lead.opted_out);
    const windowOpen = Boolean(lead && isFuture(lead.window_expires_at));
    show($("opted-out"), optedOut);
    show($("free-text"), !optedOut && windowOpen);
    show($("template-form"), !optedOut && !windowOpen && Boolean(lead));
    // Listed once; after a failure, again only after a pause (or by the agent's button), never every poll.
    if (!optedOut && !windowOpen && lead && !this.templatesLoaded && Date.now() >= this.templatesRetryAt) {
      this.loadTemplates();
    }
    this.renderComposerState();
    this.renderCharCount();
  }

  renderComposerState() {
    if (!this.selected) return;
    const lead = this.current();
    const windowState = $("window-state");
    const botState = $("bot-state");
    if (!lead) {
      windowState.textContent = "";
      botState.textContent = "";
      return;
    }
    if (lead.opted_out) {
      windowState.textContent = "";
      botState.textContent = "";
      return;
    }
    const windowOpen = isFuture(lead.window_expires_at);
    if ($("free-text").hidden === windowOpen) {
      this.renderComposer(); // the window just closed (or opened): swap the free text for the template picker
      return;
    }
    if (windowOpen) {
      const left = timeLeft(lead.window_expires_at) || "פחות מדקה";
      windowState.textContent = `חלון 24 השעות פתוח: נותרו ${left} לשליחת הודעה חופשית`;
      windowState.classList.toggle("state-closing", new Date(lead.window_expires_at).getTime() - Date.now() < 3600000);
    } else {
      windowState.textContent = lead.window_expires_at
        ? "חלון 24 השעות נסגר: אפשר לשלוח רק תבנית מאושרת עד שהליד יכתוב שוב"
        : "הליד עוד לא כתב לנו: אפשר לשלוח רק תבנית מאושרת";
      windowState.classList.remove("state-closing");
    }
    if (isFuture(lead.human_takeover_until)) {
      botState.textContent = `השיחה בטיפולך: הבוט לא יענה לליד עד ${clockTime(lead.human_takeover_until, this.tz)}`;
      botState.className = "composer-state state-human";
    } else {
      const hours = this.config.human_takeover_hours;
      botState.textContent = `הבוט עונה לליד אוטומטית. הודעה ממך תשתיק אותו ל-${hours} שעות.`;
      botState.className = "composer-state";
    }
  }

  renderCharCount() {
    const length = $("message-text").value.length;
    $("char-count").textContent = `${length} / ${TEXT_LIMIT}`;
  }

  loadTemplates() {
    const help = $("template-help");
    help.textContent = "טוען את רשימת התבניות…";
    this.templatesLoaded = this.api
      .templates()
      .then((answer) => {
        const groups = approvedByLanguage(answer && answer.templates);
        this.templates = new Map(groups.flatMap(([, list]) => list.map((template) => [templateKey(template), template])));
        const select = $("template-name");
        const chosen = select.value;
        fill(select, pickerOptions(groups));
        select.value = this.templates.has(chosen) ? chosen : "";
        help.textContent = groups.length
          ? "רק תבניות שאושרו ב-WhatsApp Manager, לפי שפה."
          : "אין תבניות מאושרות. צרו תבנית ב-WhatsApp Manager והמתינו לאישור.";
        this.renderTemplateFields();
      })
      .catch((error) => {
        this.templatesLoaded = null;
        this.templatesRetryAt = Date.now() + TEMPLATES_RETRY_MS;
        help.textContent = `לא ניתן לטעון את רשימת התבניות: ${errorText(error)}`;
      });
    return this.templatesLoaded;
  }

  renderTemplateFields() {
    const template = this.templates.get($("template-name").value);
    const container = $("template-params");
    const previous = new Map(
      [...container.querySelectorAll(".template-param-value")].map((input) => [input.dataset.field, input.value]),
    );
    this.templateFields = template ? parameterFields(template) : [];
    fill(
      container,
      template && this.templateFields.length === 0 ? h("p", { class: "help" }, "התבנית אינה מקבלת פרמטרים.") : null,
      this.templateFields.map((field, position) => {
        const id = `template-param-${position}`;
        const key = `${templateKey(template)}:${field.component}:${field.index || ""}:${field.label}`;
        const media = field.component === "header" && field.kind !== "text";
        const input = h("input", {
          id,
          type: media ? "url" : "text",
          dir: media ? "ltr" : "auto",
          class: "template-param-value",
          autocomplete: "off",
          dataset: { field: key },
        });
        input.value = previous.get(key) || "";
        return h("div", { class: "template-param" }, h("label", { class: "field", for: id }, h("span", {}, field.label), input));
      }),
    );
  }

  showError(text) {
    const box = $("send-error");
    box.textContent = text;
    box.hidden = !text;
  }

  async submit(message, onSuccess) {
    if (this.sending || !this.selected) return;
    this.sending = true;
    this.showError("");
    const buttons = [$("send-text"), $("send-template")];
    buttons.forEach((button) => {
      button.disabled = true;
    });
    // Sent in the conversation on screen: from its business number (whose window the composer shows).
    const lead = this.current();
    const body = { to: keyParts(this.selected).waId, ...message };
    if (lead && lead.phone_number_id) body.from_phone_number_id = lead.phone_number_id;
    // One key per message: a retry of the same message (after a lost connection, say) reuses it, so the
    // server answers it once; another message, or the same text sent again after success, gets a new one.
    const fingerprint = JSON.stringify(body);
    if (!this.attempt || this.attempt.fingerprint !== fingerprint) {
      this.attempt = { fingerprint, key: crypto.randomUUID() };
    }
    try {
      await this.api.send(body, this.attempt.key);
      this.attempt = null;
      onSuccess();
      this.toast("ההודעה נשלחה · הבוט הושתק והשיחה בטיפולך");
      this.poller.now();
    } catch (error) {
      if (error.code === "idempotency_key_reused") this.attempt = null;
      // The catalogue changed since the page listed it: list it again, so the fields match what Meta has.
      if (error.code === "template_mismatch") this.loadTemplates();
      this.showError(errorText(error));
      this.poller.now();
    } finally {
      this.sending = false;
      buttons.forEach((button) => {
        button.disabled = false;
      });
    }
  }

  chooseAttachment() {
    const input = $("attach-file");
    const file = input.files && input.files[0];
    this.attachment = file ? { file, uploaded: null } : null;
    this.renderAttachment();
  }

  clearAttachment() {
    this.attachment = null;
    $("attach-file").value = "";
    this.renderAttachment();
  }

  renderAttachment() {
    const file = this.attachment && this.attachment.file;
    show($("attachment"), Boolean(file));
    // Each part isolated: a Hebrew name with a Latin extension, then the size left to right.
    fill($("attachment-name"), file ? [h("bdi", { dir: "auto" }, file.name), " · ", h("bdi", { dir: "ltr" }, fileSize(file.size))] : null);
    $("message-text").placeholder = file ? "כיתוב לקובץ (לא חובה)…" : "כתבו הודעה…";
  }

  sendText() {
    const field = $("message-text");
    const body = field.value;
    if (this.attachment) {
      this.sendAttachment(body);
      return;
    }
    if (!body.trim()) {
      this.showError("כתבו הודעה לפני השליחה.");
      field.focus();
      return;
    }
    if (body.length > TEXT_LIMIT) {
      this.showError(`ההודעה ארוכה מדי (${body.length} תווים, עד ${TEXT_LIMIT}).`);
      return;
    }
    this.submit({ type: "text", text: { body } }, () => {
      field.value = "";
      this.renderCharCount();
    });
  }

  /** POST /media (once per chosen file), then the message by its media id, the text as its caption. */
  async sendAttachment(caption) {
    if (this.sending) return;
    const attachment = this.attachment;
    if (!attachment.uploaded) {
      this.sending = true;
      this.showError("");
      $("send-text").disabled = true;
      this.announce("מעלה את הקובץ…");
      try {
        attachment.uploaded = await this.api.upload(attachment.file);
      } catch (error) {
        this.showError(`הקובץ לא נשלח: ${errorText(error)}`);
        return;
      } finally {
        this.sending = false;
        $("send-text").disabled = false;
      }
    }
    const uploaded = attachment.uploaded;
    const kind = uploaded.kind;
    const content = { id: uploaded.media_id };
    if (caption.trim() && CAPTIONED.has(kind)) content.caption = caption.trim().slice(0, 1024);
    if (kind === "document") content.filename = uploaded.filename || attachment.file.name;
    this.submit({ type: kind, [kind]: content }, () => {
      this.clearAttachment();
      if (content.caption) {
        $("message-text").value = "";
        this.renderCharCount();
      }
    });
  }

  sendTemplate() {
    const template = this.templates.get($("template-name").value);
    if (!template) {
      this.showError("בחרו תבנית מהרשימה.");
      $("template-name").focus();
      return;
    }
    const inputs = [...document.querySelectorAll(".template-param-value")];
    let built;
    try {
      built = buildTemplate(template, this.templateFields, inputs.map((input) => input.value));
    } catch (problem) {
      this.showError(problem.message);
      const empty = inputs.find((input) => !input.value.trim());
      if (empty) empty.focus();
      return;
    }
    this.submit({ type: "template", template: built }, () => {
      inputs.forEach((input) => {
        input.value = "";
      });
    });
  }

  // --- feedback -----------------------------------------------------------------------------------

  toast(text) {
    const toast = $("toast");
    toast.textContent = text;
    toast.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => {
      toast.hidden = true;
    }, 4000);
  }

  announce(text) {
    $("announcer").textContent = text;
  }
}
